-- lem.shared's speed, for bench/shared.sh: `lem bench/shared.lua [n]`
-- (one process) or `lem -w 2 bench/shared.lua [n]`. Every worker runs n
-- operations of each kind (set, get, incr) on one dictionary, all workers
-- at once (a barrier in the dictionary before each phase), and prints
-- `id<TAB>op<TAB>ops per second`. With two workers, worker 1 then sends
-- 10,000 messages to worker 2 one at a time, each answered at once, and
-- prints `1<TAB>rtt<TAB>p50 µs<TAB>p99 µs` of the round trips. Under -w
-- the workers then wait to be stopped (a worker that ended would be
-- started again).
local utils = require 'lem.utils'
local shared = require 'lem.shared'

local N = tonumber(arg[1]) or 2000000
local id, count = utils.worker()
local d = shared.dict('bench', '64m')
local keys, counters = {}, {}
for i = 1, 1000 do
	keys[i] = 'key' .. i
	counters[i] = 'counter' .. i
end
local sleeper = utils.newsleeper()
local now = utils.updatenow

local function barrier(name)
	d:incr(name, 1, 0)
	while d:get(name) < count do sleeper:sleep(0.001) end
end

local function phase(name, f)
	barrier(name)
	local t0 = now()
	f()
	io.stdout:write(('%d\t%s\t%.0f\n'):format(id, name, N / (now() - t0)))
	io.stdout:flush()
end

phase('set', function()
	for i = 1, N do d:set(keys[i % 1000 + 1], 'value') end
end)
phase('get', function()
	for i = 1, N do d:get(keys[i % 1000 + 1]) end
end)
phase('incr', function()
	for i = 1, N do d:incr(counters[i % 1000 + 1], 1, 0) end
end)

if count >= 2 and id <= 2 then
	local M = 10000
	local inbox = shared.subscribe(id == 1 and 'pong' or 'ping', { queue = 10 })
	barrier('subscribed')
	if id == 1 then
		local rtt = {}
		for i = 1, M do
			local t0 = now()
			shared.publish('ping', tostring(i))
			assert(inbox:receive() == tostring(i))
			rtt[i] = now() - t0
		end
		shared.publish('ping', 'done')
		table.sort(rtt)
		io.stdout:write(('1\trtt\t%.1f\t%.1f\n'):format(rtt[math.floor(M / 2)] * 1e6, rtt[math.floor(M * 0.99)] * 1e6))
		io.stdout:flush()
	else
		while true do
			local m = inbox:receive()
			if m == 'done' then break end
			shared.publish('pong', m)
		end
	end
end
if count >= 2 then sleeper:sleep(3600) end
