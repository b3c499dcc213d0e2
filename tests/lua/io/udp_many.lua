-- 10,000 datagrams over loopback, none lost: sent in bursts of 100, each
-- burst answered (by count) before the next, so the receive buffer never
-- overflows. Also several coroutines each with its own socket pair.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

local N, BURST = 10000, 100
local r = assert(io.udp.bind('127.0.0.1', 0))
local _, rport = r:getsockname()
local s = assert(io.udp.connect('127.0.0.1', rport))
local _, sport = s:getsockname()

local got, seen = 0, {}
local acked = 0
utils.spawn(function()
	while got < N do
		local data, _, port = assert(r:recvfrom())
		eq(port, sport, 'sender port')
		local i = tonumber(data:match('^(%d+):'))
		assert(i and not seen[i], data)
		eq(#data, 64, 'size')
		seen[i] = true
		got = got + 1
		if got % BURST == 0 then
			assert(r:sendto(tostring(got), '127.0.0.1', sport))
		end
	end
end)

for b = 0, N / BURST - 1 do
	for i = b * BURST + 1, (b + 1) * BURST do
		local msg = i .. ':'
		assert(s:send(msg .. ('.'):rep(64 - #msg)))
	end
	-- Wait until the receiver has the whole burst.
	eq(s:recv(), tostring((b + 1) * BURST), 'burst ' .. b)
	acked = acked + 1
end
eq(got, N, 'all received')
for i = 1, N do
	assert(seen[i], i)
end

-- 100 coroutines echoing at once through one server socket.
local srv = assert(io.udp.bind('::1', 0))
local _, port = srv:getsockname()
utils.spawn(function()
	while true do
		local data, h, p = srv:recvfrom()
		if not data then
			break
		end
		assert(srv:sendto(data, h, p))
	end
end)
local left = 100
for c = 1, 100 do
	utils.spawn(function()
		local cl = assert(io.udp.connect('::1', port))
		for i = 1, 20 do
			local msg = c .. '/' .. i
			assert(cl:send(msg))
			eq(cl:recv(), msg, 'echo')
		end
		cl:close()
		left = left - 1
	end)
end
while left > 0 do
	utils.yield()
end
srv:close()
r:close()
s:close()
