-- settimeout takes nil or a number of seconds >= 0: a negative number or
-- NaN is an argument error on every object that has it.
dofile('support.lua')
local io = require 'lem.io'
local queue = require 'lem.io.queue'

local srv = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = srv:getsockname()
local c = assert(io.tcp.connect('127.0.0.1', port))
local f = assert(io.open(tmpdir() .. '/f', 'w'))
local q = queue.wrap(c)

local objects = { stream = c, file = f, server = srv, queue = q }
for what, o in pairs(objects) do
	for _, bad in ipairs({ -1, -0.001, 0 / 0, -math.huge }) do
		checkerr("bad argument #1 to 'settimeout' (timeout must be a number of seconds)", function()
			local r = o:settimeout(bad)
			return r
		end)
	end
	checkerr("bad argument #1 to 'settimeout' (number expected, got string)", function() local r = o:settimeout('x') return r end)
	assert(o:settimeout(0), what .. ': 0')
	assert(o:settimeout(1.5), what .. ': 1.5')
	assert(o:settimeout(math.huge), what .. ': huge')
	assert(o:settimeout(nil), what .. ': nil')
end
c:close(); f:close(); srv:close()

-- The HTTP client's timeout option is checked when the client is made.
local client = require 'lem.http.client'
for _, bad in ipairs({ -1, 0 / 0, 'x' }) do
	checkerr("bad argument #1 to 'new' (timeout must be a number of seconds)", function()
		local c = client.new({ timeout = bad })
		return c
	end)
end
assert(client.new({ timeout = 0.5 }))
