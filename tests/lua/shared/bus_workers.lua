-- Messages across the workers of lem -w 2: each worker's messages reach
-- both workers' subscribers, all of them, in the order each publisher
-- sent them; a subscription that does not read loses what overflows its
-- queue, and counts it.
local support = dofile('support.lua')
local io = require 'lem.io'

local script = support.write_file('bus.lua', [[
local shared = require 'lem.shared'
local utils = require 'lem.utils'
local id, n = utils.worker()
local d = shared.dict('sync', '64k')
local sub = shared.subscribe('room')
local slow = shared.subscribe('slow', { queue = 5 })
-- Everyone subscribes before anyone publishes.
d:incr('ready', 1, 0)
while d:get('ready') < n do utils.newsleeper():sleep(0.01) end
for i = 1, 500 do shared.publish('room', id .. ' ' .. i) end
for i = 1, 20 do shared.publish('slow', id .. ' ' .. i) end
d:incr('published', 1, 0)
local last, count = {}, 0
while count < 500 * n do
	local msg = assert(sub:receive(20))
	local from, i = msg:match('^(%d+) (%d+)$')
	i = tonumber(i)
	assert(i == (last[from] or 0) + 1, 'out of order from ' .. from .. ': ' .. msg)
	last[from] = i
	count = count + 1
end
-- 'slow' was not read: once every worker has published, its queue holds
-- the first 5 messages and counts the others dropped (a receive on 'room'
-- reads the ring for every channel).
while d:get('published') < n do utils.newsleeper():sleep(0.01) end
assert(select(2, sub:receive(0)) == 'timeout')
local kept = 0
while slow:receive(0) do kept = kept + 1 end
print('worker', id, count, sub:dropped(), kept, slow:dropped())
utils.newsleeper():sleep(600)
]])
local sup = assert(io.spawn({ arg[-1], '-w', '2', '--grace', '0', script }, { stdout = 'pipe' }))
local seen = {}
for _ = 1, 2 do
	local line = assert(sup.stdout:read('*l'))
	local id, count, dropped, kept, slow = line:match('^worker\t(%d)\t(%d+)\t(%d+)\t(%d+)\t(%d+)$')
	assert(id, line)
	eq({ count, dropped, kept, slow }, { '1000', '0', '5', '35' }, 'worker ' .. id)
	seen[id] = true
end
assert(seen['1'] and seen['2'])
assert(sup:kill('TERM'))
eq(sup:wait().status, 0)
print('ok')
