-- lem.io.queue: concurrent writers of whole messages, no 'busy', no
-- interleaving; close/closed pass through.
dofile('support.lua')
local io = require 'lem.io'
local queue = require 'lem.io.queue'
local utils = require 'lem.utils'

local server = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = server:getsockname()
local a
utils.spawn(function() a = assert(io.tcp.connect('127.0.0.1', port)) end)
local b = assert(server:accept())
while not a do utils.yield() end

-- Without the queue, a big write suspends and a second writer is 'busy'.
local big = ('z'):rep(4 * 1024 * 1024)
local first
utils.spawn(function() first = a:write(big, '\n') end)
utils.yield()
eq({ a:write('x') }, { nil, 'busy' }, 'plain stream: second writer busy')
b:setlimit(#big + 10)
eq(#b:read('*l'), #big, 'big line')
while not first do utils.yield() end

-- With it: 20 writers of 200 KB messages, each arriving whole.
local q = queue.wrap(a)
local N, SIZE = 20, 200 * 1024
local results = {}
for i = 1, N do
	utils.spawn(function()
		local body = string.char(64 + i):rep(SIZE)
		results[i] = { q:write(('%02d:'):format(i), body, '\n') }
	end)
end
b:setlimit(SIZE + 10)
local seen = {}
for _ = 1, N do
	local line = assert(b:read('*l'))
	local i = tonumber(line:sub(1, 2))
	eq(#line, SIZE + 3, 'message length')
	eq(line:sub(4), string.char(64 + i):rep(SIZE), 'message not interleaved')
	seen[i] = true
end
for i = 1, N do
	assert(seen[i], 'message ' .. i)
	eq(results[i], { true }, 'write result ' .. i)
end
eq(q:closed(), false, 'closed passes through')
assert(q:close())
eq(a:closed(), true, 'close passes through')
eq({ q:write('x') }, { nil, 'closed' }, 'write after close')
b:close()
server:close()
