-- Per-event cost with N parked coroutines: N coroutines wait in
-- utils.suspend() while two others ping-pong M events through sleepers,
-- each event allocating a little garbage (a table and a string), so the
-- collector runs throughout.  usage: lem gc_parked.lua [N] [M] [gcmode [param]]
-- e.g. `incremental 400` sets the pause to 400%.
local utils = require 'lem.utils'
local N = tonumber(arg[1] or 10000)
local M = tonumber(arg[2] or 1000000)
if arg[3] then collectgarbage(arg[3], tonumber(arg[4])) end

for _ = 1, N do utils.spawn(utils.suspend) end
utils.yield() -- let them all park

local ping, pong = utils.newsleeper(), utils.newsleeper()
local sink
utils.spawn(function()
	for i = 1, M do
		local v = ping:sleep()
		sink = { v, tostring(i) }
		pong:wakeup(i)
	end
end)
utils.yield()
local t0 = utils.updatenow()
for i = 1, M do
	ping:wakeup(i)
	sink = { pong:sleep(), 'x' .. i }
end
local t1 = utils.updatenow()
print(string.format('parked N=%d events=%d ns_per_event=%.0f', N, M, (t1 - t0) / M * 1e9))
utils.exit(0)
