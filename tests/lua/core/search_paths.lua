-- package.path and package.cpath: Debian's lua defaults when the
-- environment sets none (so `apt install lua-lpeg` modules load), and
-- LUA_PATH/LUA_CPATH (LUA_*_5_4 first on Lua 5.4) with ';;' standing for
-- the default, as lua does; -E ignores them.
dofile('support.lua')

local v = jit and '5.1' or _VERSION:match('%d+%.%d+')
local path = ('/usr/local/share/lua/V/?.lua;/usr/local/share/lua/V/?/init.lua;'
	.. '/usr/local/lib/lua/V/?.lua;/usr/local/lib/lua/V/?/init.lua;'
	.. '/usr/share/lua/V/?.lua;/usr/share/lua/V/?/init.lua;./?.lua;./?/init.lua'):gsub('V', v)
eq(package.path, path, 'default package.path')
local cpath = package.cpath
local multiarch = cpath:match('^/usr/local/lib/lua/' .. v .. '/%?%.so;/usr/lib/([^/]+)/lua/')
assert(multiarch and multiarch:find('^[%w_]+%-linux%-%w+$'), cpath)
eq(cpath, ('/usr/local/lib/lua/V/?.so;/usr/lib/' .. multiarch .. '/lua/V/?.so;/usr/lib/lua/V/?.so;'
	.. '/usr/local/lib/lua/V/loadall.so;./?.so'):gsub('V', v), 'default package.cpath')
-- the triplet is this machine's (as dpkg names it, where there is dpkg)
local p = io.popen('dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null')
local native = p:read('*l'); p:close()
if native and native ~= '' then eq(multiarch, native, 'multiarch triplet') end

-- lua-lpeg's pure Lua half lives in /usr/share/lua/<v>/
local ok, re = pcall(require, 're')
assert(ok, tostring(re) .. '\n(install lua-lpeg: scripts/deps)')
eq(re.match('abc', '{%a+}'), 'abc', 're from the default path')

-- the environment, as lua's package library reads it
local LEM = arg[-1]
local function paths(env, opts)
	local p = io.popen(env .. " '" .. LEM .. "' " .. (opts or '')
		.. [[ -e "io.write(package.path, '\n', package.cpath)"]])
	local out = p:read('*a'); p:close()
	return out:match('^(.-)\n(.*)$')
end
eq({ paths('LUA_PATH=x LUA_CPATH=y') }, { 'x', 'y' }, 'LUA_PATH, LUA_CPATH')
eq({ paths('LUA_PATH=x LUA_CPATH=y', '-E') }, { path, cpath }, '-E')
if jit then
	eq({ paths('LUA_PATH="a;;b;;" LUA_CPATH=";;"') },
		{ 'a;' .. path .. ';b;' .. path .. ';', ';' .. cpath .. ';' }, "5.1's ';;'")
else
	eq({ paths('LUA_PATH_5_4=y LUA_PATH=x LUA_CPATH_5_4=c LUA_CPATH=d') }, { 'y', 'c' }, 'versioned first')
	for _, case in ipairs {
		{ ';', ';' }, { ';;', path }, { 'a;;b', 'a;' .. path .. ';b' }, { ';;b', path .. ';b' },
		{ 'a;;', 'a;' .. path }, { 'a;b;;c', 'a;b;' .. path .. ';c' }, { 'a;;b;;', 'a;' .. path .. ';b;;' },
	} do
		eq((paths('LUA_PATH="' .. case[1] .. '"')), case[2], "';;' in " .. case[1])
	end
end
print('ok')
