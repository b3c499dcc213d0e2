-- Spawn and switch speed, the shape of the original LEM's figures: N
-- spawns of a coroutine that only counts (the spawner yields every 1,000
-- so the run queue drains), then N utils.yield() switches of the main
-- coroutine.  usage: lem bench/spawn_yield.lua [N]
local utils = require 'lem.utils'
local N = tonumber(arg[1] or 1000000)
local spawn, yield, now = utils.spawn, utils.yield, utils.updatenow

local ran = 0
local function count() ran = ran + 1 end

local t0 = now()
for i = 1, N do
	spawn(count)
	if i % 1000 == 0 then yield() end
end
while ran < N do yield() end
local t1 = now()
for _ = 1, N do yield() end
local t2 = now()
print(('spawn N=%d spawn_s=%.3f yield_s=%.3f'):format(N, t1 - t0, t2 - t1))
