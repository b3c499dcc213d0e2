-- UDP echo round trips in one lem process: a server socket echoing every
-- datagram, N client coroutines (each with a connected socket) sending
-- 64 bytes and waiting for the answer, for DUR seconds. Prints round trips
-- per second. Its floor is bench/udp_echo_tokio (the same in tokio).
-- usage: lem bench/udp_echo.lua [N [DUR]]
local io = require 'lem.io'
local utils = require 'lem.utils'

local N, DUR = tonumber(arg[1]) or 100, tonumber(arg[2]) or 5
local srv = assert(io.udp.bind('127.0.0.1', 0))
local _, port = srv:getsockname()
utils.spawn(function()
	while true do
		local data, h, p = srv:recvfrom()
		if not data then
			break
		end
		srv:sendto(data, h, p)
	end
end)

local msg = ('x'):rep(64)
local count, stop, left = 0, false, N
for _ = 1, N do
	utils.spawn(function()
		local c = assert(io.udp.connect('127.0.0.1', port))
		while not stop do
			assert(c:send(msg))
			assert(c:recv() == msg)
			count = count + 1
		end
		c:close()
		left = left - 1
	end)
end
local t0 = utils.updatenow()
utils.newsleeper():sleep(DUR)
stop = true
local n, t = count, utils.updatenow() - t0
while left > 0 do
	utils.yield()
end
srv:close()
print(('lem udp echo: %d coroutines, %.0f round trips/s'):format(N, n / t))
