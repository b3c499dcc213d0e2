-- An autospawn accept loop survives running out of descriptors: a child
-- server with a tiny descriptor limit serves 40 concurrent clients that
-- each hold their connection a moment; it backs off on EMFILE and accepts
-- the rest as descriptors free up.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

local probe = assert(io.tcp.listen4('127.0.0.1', 0))
local _, port = probe:getsockname()
probe:close()

local dir = tmpdir()
local script = dir .. '/server.lua'
local f = assert(_G.io.open(script, 'w'))
f:write(([[
local io = require 'lem.io'
local s = assert(io.tcp.listen4('127.0.0.1', %d))
print(s:autospawn(function(c)
	local l = c:read('*l')
	if l then c:write(l, '\n') end
	c:read('*a')
	c:close()
end))
]]):format(port))
f:close()
assert(os.execute(('ulimit -n 24; %s %s > %s/log 2>&1 & echo $! > %s/pid')
	:format(arg[-1], script, dir, dir)))
local pid = assert(_G.io.open(dir .. '/pid')):read('*l')

local sleeper = utils.newsleeper()
local ok, err = pcall(function()
	local c
	for _ = 1, 200 do
		c = io.tcp.connect('127.0.0.1', port)
		if c then break end
		sleeper:sleep(0.01)
	end
	assert(c, 'server did not start')
	c:close()
	local N, done = 40, 0
	for i = 1, N do
		utils.spawn(function()
			local s = assert(io.tcp.connect('127.0.0.1', port))
			s:settimeout(20)
			assert(s:write('client ', tostring(i), '\n'))
			eq(s:read('*l'), 'client ' .. i, 'echo')
			utils.newsleeper():sleep(0.05)
			s:close()
			done = done + 1
		end)
	end
	while done < N do sleeper:sleep(0.01) end
end)
os.execute('kill ' .. pid)
assert(ok, err)
local log = assert(_G.io.open(dir .. '/log')):read('*a')
eq(log, '', 'the accept loop never ended')
