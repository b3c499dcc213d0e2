-- The command line behaves as lua.c's where Lua's own main.lua checks it:
-- the script's arguments come from the `arg` table as -e left it, messages
-- are named by argv[0], --help, warnings' control messages, many script
-- arguments, os.exit(code, true) in the main chunk, and error objects
-- whose __tostring fails.
local support = dofile('support.lua')

local LEM = arg[-1]

local q, run, script = support.shell_quote, support.lem, support.write_file

-- The script's arguments are arg[1..#arg] after -e ran, as lua.c's pushargs.
eq({ run('-e "arg[1] = 100" - x', 'print(...)') }, { '100\n', '', 0 }, '-e changes arg')
eq({ run('-e "arg[3] = 3" - a b', 'print(...)') }, { 'a\tb\t3\n', '', 0 }, '-e grows arg')
local out, err, code = run('-e "arg = 1" -', '')
eq({ out, err, code }, { '', LEM .. ": 'arg' is not a table\n", 1 }, 'arg not a table')

-- Many arguments: more than a new coroutine's stack holds at first.
local s = script('many.lua', 'print(select("#", ...), (select(30, ...)))')
eq({ run(s .. string.rep(' a', 30)) }, { '30\ta\n', '', 0 }, '30 arguments')
eq({ run(s .. string.rep(' a', 300)) }, { '300\ta\n', '', 0 }, '300 arguments')

-- Messages are named by argv[0], as lua's.
out, err, code = run('-h')
eq({ out, code }, { '', 1 }, '-h is no lua option')
assert(err:find('^' .. LEM:gsub('%p', '%%%0') .. ": unrecognized option '%-h'\nusage: "), err)
out, err, code = run(script('boom.lua', 'error("boom")'))
eq(code, 1, 'error status')
-- (long chunk names are shortened from the left)
assert(err:find(LEM .. ': ', 1, true) == 1 and err:find('boom.lua:1: boom', 1, true), err)

-- --help: the usage on stdout, nothing run, status 0.
out, err, code = run('--help -e "print(1)"')
eq({ err, code }, { '', 0 }, '--help status')
assert(out:find('^usage: ' .. LEM:gsub('%p', '%%%0') .. ' %[options%] %[script %[args%]%]\n'), out)
for _, opt in ipairs { '-e stat', '-i', '-l mod', '-l g=mod', '-v', '-E', '-W', '--', '-', '--help' } do
	assert(out:find('\n  ' .. opt:gsub('%p', '%%%0') .. ' '), opt .. ' in:\n' .. out)
end
-- after the script it is the script's argument
eq({ run('- --help', 'print(...)') }, { '--help\n', '', 0 }, '--help as an argument')

-- os.exit(code, true) closes the main chunk's to-be-closed variables (Lua 5.4).
if _VERSION == 'Lua 5.4' then
	s = script('close.lua', [[
		local x <close> = setmetatable({}, { __close = function(_, e) assert(e == nil) print('x') end })
		local y <close> = setmetatable({}, { __close = function() print('y') end })
		os.exit(3, true)
	]])
	eq({ run(s) }, { 'y\nx\n', '', 3 }, 'os.exit closes')
	s = script('noclose.lua', [[
		local x <close> = setmetatable({}, { __close = function() print('x') end })
		os.exit(true)
	]])
	eq({ run(s) }, { '', '', 0 }, 'os.exit without close')
	s = script('coclose.lua', [[
		coroutine.wrap(function()
			local x <close> = setmetatable({}, { __close = function() print('not closed') end })
			os.exit(false, true)
		end)()
	]])
	eq({ run(s) }, { '', '', 1 }, 'os.exit in a user coroutine')
end

-- An error object whose __tostring fails is reported, not a crash.
s = script('tostring.lua', 'error(setmetatable({}, { __tostring = function() error("inner") end }))')
out, err, code = run(s)
eq(code, 1, 'failing __tostring status')
assert(err:find('tostring.lua:1: inner', 1, true), err)
s = script('tostring2.lua', 'error(setmetatable({}, { __tostring = function() return {} end }))')
out, err, code = run(s)
eq(code, 1, '__tostring of no string')
assert(err:find('(error object is a table value)', 1, true), err)

-- utils.spawn with more arguments than a new coroutine has room for
local many = {}
for i = 1, 200 do many[i] = i end
local got
require('lem.utils').spawn(function(...) got = { select('#', ...), (select(200, ...)) } end, (table.unpack or unpack)(many))
require('lem.utils').yield()
eq(got, { 200, 200 }, 'spawn with 200 arguments')

print('ok')
