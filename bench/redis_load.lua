-- lem.redis under load: C coroutines on C connections doing N SETs then N
-- GETs in total (as redis-benchmark -c C -P 1 -t set,get), then one
-- pipeline of P commands R times (as redis-benchmark -P P). Prints ops/s.
-- usage: lem bench/redis_load.lua port [C] [N] [P] [R]
local redis = require 'lem.redis'
local utils = require 'lem.utils'
local port = tonumber(arg[1])
local C, N = tonumber(arg[2] or 50), tonumber(arg[3] or 200000)
local P, R = tonumber(arg[4] or 1000), tonumber(arg[5] or 200)

local function run(cmd)
	local left = C
	local per = math.floor(N / C)
	local t0 = utils.updatenow()
	for c = 1, C do
		utils.spawn(function()
			local r = assert(redis.connect('127.0.0.1', port))
			local key = 'key:' .. c
			for _ = 1, per do
				if cmd == 'set' then assert(r:call('SET', key, 'xxx')) else assert(r:call('GET', key)) end
			end
			r:close()
			left = left - 1
		end)
	end
	local s = utils.newsleeper()
	while left > 0 do s:sleep(0.001) end
	return per * C / (utils.updatenow() - t0)
end
print(('lem SET: %.0f requests per second'):format(run('set')))
print(('lem GET: %.0f requests per second'):format(run('get')))

local r = assert(redis.connect('127.0.0.1', port))
local batch = {}
for i = 1, P do batch[i] = { 'SET', 'key:p', 'xxx' } end
local t0 = utils.updatenow()
for _ = 1, R do assert(#r:pipeline(batch) == P) end
print(('lem SET pipeline %d: %.0f requests per second'):format(P, P * R / (utils.updatenow() - t0)))
