-- Timer lateness: how long after its deadline a sleep returns.
-- usage: lem bench/timer_lateness.lua [rounds [concurrent]]
--
-- 1. One coroutine sleeps `rounds` times for each of 0.5 ms, 1 ms, 10 ms
--    (the loop otherwise idle): average, median, 99th percentile and worst
--    lateness.
-- 2. The original's sleep test shape: `concurrent` coroutines all sleep
--    1.0 s at once; each one's lateness is the time from its deadline to
--    when it runs again (the last ones also wait for the others to run).
local utils = require 'lem.utils'

local rounds = tonumber(arg[1] or 500)
local concurrent = tonumber(arg[2] or 1000)
local now = utils.updatenow

local function report(name, late)
	table.sort(late)
	local sum = 0
	for _, v in ipairs(late) do sum = sum + v end
	local function at(p) return late[math.max(1, math.ceil(#late * p))] * 1000 end
	print(('%-22s n=%-6d avg_ms=%.3f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f'):format(
		name, #late, sum / #late * 1000, at(0.5), at(0.99), late[#late] * 1000))
end

local s = utils.newsleeper()
for _, d in ipairs({ 0.0005, 0.001, 0.01 }) do
	local late = {}
	for i = 1, rounds do
		local t0 = now()
		s:sleep(d)
		late[i] = now() - t0 - d
	end
	report(('sleep(%g)'):format(d), late)
end

local late, done, main = {}, 0, utils.newsleeper()
local function sleeper(i)
	local t0 = now()
	utils.newsleeper():sleep(1.0)
	late[i] = now() - t0 - 1.0
	done = done + 1
	if done == concurrent then main:wakeup() end
end
for i = 1, concurrent do utils.spawn(sleeper, i) end
main:sleep()
report(('%d x sleep(1.0)'):format(concurrent), late)
