-- sleeper:sleep(t) with t <= 0 yields exactly once (every other runnable
-- coroutine runs once) and returns nil, 'timeout' at once: it does not
-- wait for a timer (which let a yielding coroutine run many times).
dofile('support.lua')
local utils = require 'lem.utils'

local s = utils.newsleeper()
for _, t in ipairs({ 0, -1, -0.5, 0 / 0, -math.huge }) do
	local log = {}
	utils.spawn(function()
		for i = 1, 5 do
			log[#log + 1] = i
			utils.yield()
		end
	end)
	eq({ s:sleep(t) }, { nil, 'timeout' }, 'sleep(' .. tostring(t) .. ')')
	eq(log, { 1 }, 'sleep(' .. tostring(t) .. ') yields once')
	-- Let the other coroutine finish before the next round.
	for _ = 1, 5 do utils.yield() end
	eq(log, { 1, 2, 3, 4, 5 }, 'the other coroutine went on')
end

-- The sleeper is free again right after: a second sleep(0), a wakeup that
-- finds nobody sleeping.
eq({ s:sleep(0) }, { nil, 'timeout' }, 'again')
eq({ s:wakeup() }, { nil, 'not sleeping' }, 'nobody sleeps after sleep(0)')

-- And it waits for no timer: 3,000 of them end before a 1 s timer fires
-- (each used to wait for tokio's next millisecond tick, ~1 ms: 3 s). An
-- ordering of events with a wide margin, not a measured duration.
local fired = false
utils.spawn(function()
	utils.newsleeper():sleep(1)
	fired = true
end)
for _ = 1, 3000 do
	s:sleep(0)
end
eq(fired, false, '3,000 sleep(0) before a 1 s timer')
