-- examples/chat.lua served in a child process, driven by three real TCP
-- clients at once.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

-- A port that was free a moment ago.
local probe = assert(io.tcp.listen4('127.0.0.1', 0))
local _, port = probe:getsockname()
probe:close()

local log = tmpdir() .. '/chat.log'
local pidfile = tmpdir() .. '/chat.pid'
assert(os.execute(('%s ../../examples/chat.lua %d > %s 2>&1 & echo $! > %s')
	:format(arg[-1], port, log, pidfile)))
local pid = assert(_G.io.open(pidfile)):read('*l')

local function connect()
	local sleeper = utils.newsleeper()
	for _ = 1, 200 do
		local c = io.tcp.connect('127.0.0.1', port)
		if c then return c end
		sleeper:sleep(0.01) -- the server is still starting
	end
	error('chat server did not start')
end

local ok, err = pcall(function()
	local a, b, c = connect(), connect(), connect()
	local function welcome(s)
		local l = s:read('*l')
		assert(l:find('^welcome, 127%.0%.0%.1:%d+$'), l)
		return l:match('welcome, (.*)')
	end
	local na, nb, nc = welcome(a), welcome(b), welcome(c)
	-- All three greeted: each is registered. Now talk, concurrently.
	utils.spawn(function() a:write('hello from a\n') end)
	utils.spawn(function() b:write('hello from b\n') end)
	local got = {}
	for _, s in ipairs({ a, b, c }) do got[s] = {} end
	local function expect(s, n)
		for _ = 1, n do
			got[s][assert(s:read('*l'))] = true
		end
	end
	expect(c, 2)
	expect(a, 1)
	expect(b, 1)
	eq(got[c], { [na .. ': hello from a'] = true, [nb .. ': hello from b'] = true }, 'c hears a and b')
	eq(got[a], { [nb .. ': hello from b'] = true }, 'a hears b only')
	eq(got[b], { [na .. ': hello from a'] = true }, 'b hears a only')
	-- A burst from one client arrives whole and in order at the others.
	for i = 1, 100 do c:write(('line %d\n'):format(i)) end
	for i = 1, 100 do
		eq(a:read('*l'), ('%s: line %d'):format(nc, i), 'a burst line')
		eq(b:read('*l'), ('%s: line %d'):format(nc, i), 'b burst line')
	end
	-- One leaves; the others go on.
	c:write('/quit\n')
	eq({ c:read() }, { nil, 'closed' }, 'quit closes')
	b:write('still here\n')
	eq(a:read('*l'), nb .. ': still here', 'after one left')
	a:close(); b:close(); c:close()
end)
os.execute('kill ' .. pid)
assert(ok, err)
