-- A job queue served by three workers, each job taking a while, plus a
-- ticker that keeps running the whole time: sequential code per coroutine,
-- no callbacks, no locks.   usage: lem examples/workers.lua [jobs]
local utils = require 'lem.utils'
local queue = require 'lem.queue'

local jobs = queue.new()
local results = queue.new()
local njobs = tonumber(arg[1]) or 9

for w = 1, 3 do
	utils.spawn(function()
		local sleeper = utils.newsleeper()
		for job in jobs:consume() do
			sleeper:sleep(0.1 * job % 0.3 + 0.05) -- pretend to work
			results:put(('worker %d finished job %d'):format(w, job))
		end
	end)
end

local ticking = true
utils.spawn(function()
	local t0, s = utils.now(), utils.newsleeper()
	while ticking do
		s:sleep(0.1)
		print(('tick %.1f s'):format(utils.updatenow() - t0))
	end
end)

for job = 1, njobs do jobs:put(job) end
for _ = 1, njobs do print(results:get()) end
jobs:signal(nil) -- let the workers' consume() loops end
ticking = false
print('all done')
