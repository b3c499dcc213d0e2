-- 1,000,000 tasks created and joined, against as many plain spawns: time,
-- and Lua memory with all of them alive (created, not yet run).
-- usage: lem bench/tasks.lua task|spawn [N]
local utils = require 'lem.utils'
local mode = arg[1] or 'task'
local N = tonumber(arg[2] or 1000000)

local done = 0
local function work(i)
	utils.yield()
	done = done + 1
	return i
end

collectgarbage()
local base = collectgarbage('count')
local t0 = utils.updatenow()
local tasks = {}
if mode == 'task' then
	for i = 1, N do tasks[i] = utils.task(work, i) end
else
	for i = 1, N do utils.spawn(work, i) end
end
local peak = collectgarbage('count') - base
if mode == 'task' then
	for i = 1, N do
		local ok, v = tasks[i]:join()
		assert(ok and v == i)
	end
else
	while done < N do utils.yield() end
end
local t1 = utils.updatenow()
assert(done == N)
print(string.format('%s N=%d seconds=%.2f ns_each=%.0f lua_kib_alive=%.0f bytes_each=%.0f',
	mode, N, t1 - t0, (t1 - t0) / N * 1e9, peak, peak * 1024 / N))
