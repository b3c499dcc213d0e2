-- N coroutines each sleeping 1 s on a sleeper of its own; the main one
-- waits until the last has woken. Run under /usr/bin/time for the peak
-- RSS (bench/core.sh).  usage: lem bench/sleep.lua [N]
local utils = require 'lem.utils'
local N = tonumber(arg[1] or 100000)
local now = utils.updatenow

local main, woken = utils.newsleeper(), 0
local function sleeper()
	utils.newsleeper():sleep(1.0)
	woken = woken + 1
	if woken == N then main:wakeup() end
end

local t0 = now()
for _ = 1, N do utils.spawn(sleeper) end
local t1 = now()
main:sleep()
print(('sleep N=%d spawn_s=%.3f total_s=%.3f'):format(N, t1 - t0, now() - t0))
