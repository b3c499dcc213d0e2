-- lem.shared under lem -w: 2 and 4 workers hammering incr on one key get
-- the exact sum; the data outlives a SIGHUP reload; a worker killed with
-- SIGKILL while it holds a dictionary's lock leaves the others going
-- (a read it was doing loses nothing; a change it was making empties the
-- dictionary, which the next taker says on stderr); entries expire for
-- every worker alike.
local support = dofile('support.lua')
local utils = require 'lem.utils'
local io = require 'lem.io'

local dir = support.tmpdir()

-- Run `script` under `lem -w n`; returns the process and a function that
-- waits for the next line of its stdout (or stderr) matching a pattern.
local function start(n, script, env)
	local path = support.write_file('w' .. n .. '.lua', script)
	local sup = assert(io.spawn({ arg[-1], '-w', tostring(n), '--grace', '0', path, dir },
		{ stdout = 'pipe', stderr = 'pipe', env = env }))
	local lines = { out = {}, err = {} }
	local sleeper = utils.newsleeper()
	local function pump(stream, into)
		utils.spawn(function()
			for line in function() return stream:read('*l') end do
				into[#into + 1] = line
				sleeper:wakeup()
			end
		end)
	end
	pump(sup.stdout, lines.out)
	pump(sup.stderr, lines.err)
	local seen = { out = 0, err = 0 }
	local function expect(pattern, which)
		which = which or 'out'
		local deadline = utils.updatenow() + 30
		while true do
			local list = lines[which]
			for i = seen[which] + 1, #list do
				seen[which] = i
				local caps = { list[i]:match(pattern) }
				if caps[1] then return (table.unpack or unpack)(caps) end
			end
			assert(utils.updatenow() < deadline, 'no line like ' .. pattern .. ' on ' .. which
				.. ':\n' .. table.concat(lines.out, '\n') .. '\n' .. table.concat(lines.err, '\n'))
			sleeper:sleep(1)
		end
	end
	return sup, expect, lines
end

local function stop(sup)
	assert(sup:kill('TERM'))
	eq(sup:wait().status, 0)
end

-- incr from every worker at once: the sum is exact.
local hammer = [[
local shared = require 'lem.shared'
local utils = require 'lem.utils'
local id, n = utils.worker()
local d = shared.dict('hammer', '1m')
for _ = 1, 20000 do assert(d:incr('k', 1, 0)) end
if d:incr('done', 1, 0) == n then print('total', d:get('k')) end
utils.newsleeper():sleep(600)
]]
for _, n in ipairs { 2, 4 } do
	local sup, expect = start(n, hammer)
	eq(expect('^total\t(%d+)$'), tostring(20000 * n), n .. ' workers')
	stop(sup)
end

-- Expiry across workers. An operation reads the clock only when it meets
-- an entry with a TTL or gives one (src/shared/dict.rs), so worker 1
-- keeps working on entries without one while worker 2 waits out another's
-- TTL: once it has, both see it expired, and the others are all there.
local expiry = [[
local shared = require 'lem.shared'
local utils = require 'lem.utils'
local id = utils.worker()
local d = shared.dict('expiry', '1m')
local sleeper = utils.newsleeper()
local function wait(key) while not d:get(key) do sleeper:sleep(0.005) end end
if id == 1 then
	for i = 1, 100 do d:set('plain' .. i, i) end
	assert(d:set('brief', 'b', 0.05))
	assert(d:incr('brief-n', 1, 0, 0.05))
	assert(d:set('set', true))
	-- Busy with entries without a TTL until worker 2 has seen 'brief' go.
	while not d:get('seen') do
		for i = 1, 100 do assert(d:get('plain' .. i) == i) end
		sleeper:sleep(0)
	end
	print('1', d:get('brief'), d:get('brief-n'), d:ttl('brief'), select(3, d:get_stale('brief')))
elseif id == 2 then
	wait('set')
	sleeper:sleep(0.1)
	print('2', d:get('brief'), d:get('brief-n'), d:ttl('brief'), select(3, d:get_stale('brief')))
	d:set('seen', true)
	wait('done')
end
local n = 0
for i = 1, 100 do if d:get('plain' .. i) == i then n = n + 1 end end
print('plain', id, n)
if id == 1 then d:set('done', true) end
sleeper:sleep(600)
]]
do
	local sup, expect = start(2, expiry)
	-- (Two processes' lines: in either order.)
	local got = {}
	for _ = 1, 2 do
		local id, line = expect('^([12])\t(.*)$')
		got[id] = line
	end
	eq(got['2'], 'nil\tnil\tnil\ttrue', 'worker 2 after the TTL')
	eq(got['1'], 'nil\tnil\tnil\ttrue', 'worker 1 after worker 2 saw it')
	eq(expect('^plain\t%d\t(%d+)$'), '100')
	eq(expect('^plain\t%d\t(%d+)$'), '100')
	stop(sup)
end

-- A reload: the new workers find what the old ones left; a worker killed
-- holding the lock.
local app = [[
local shared = require 'lem.shared'
local utils = require 'lem.utils'
local dir = arg[1]
local id = utils.worker()
local pid = _G.io.open('/proc/self/stat'):read('*a'):match('^%d+')
local d = shared.dict('kept', '256k')
local function exists(f) local h = _G.io.open(dir .. '/' .. f) if h then h:close() end return h ~= nil end
local function touch(f) _G.io.open(dir .. '/' .. f, 'w'):close() end
local start = d:incr('starts', 1, 0)
if start == 1 then d:set('data', 'from the first') end
print('start', id, pid, start, d:get('data'))
if id == 1 and start > 2 then
	-- Worker 1 (after the reload) holds the lock when told to (files `hold-clean`,
	-- `hold-dirty`), once each.
	while true do
		if exists('hold-clean') and not exists('held-clean') then
			touch('held-clean')
			d:get('clean-held')    -- holds the lock, changing nothing, until killed
		elseif exists('hold-dirty') and not exists('held-dirty') then
			touch('held-dirty')
			d:set('dirty-held', 1) -- holds it in the middle of a change
		end
		utils.newsleeper():sleep(0.01)
	end
elseif id == 2 and start > 2 then
	-- Worker 2 (after the reload) reads when told to (file `go-N`), even while worker 1
	-- holds the lock.
	local round = 1
	while true do
		if exists('go-' .. round) then
			print('trying', round)
			print('read', round, d:get('data'), d:get('starts'))
			round = round + 1
		end
		utils.newsleeper():sleep(0.01)
	end
end
utils.newsleeper():sleep(600)
]]
local sup, expect, lines = start(2, app, { LEM_SHARED_TEST_HOLD = 'clean:clean-held,dirty:dirty-held' })
local seen = {}
for _ = 1, 2 do
	local id, _, n, data = expect('^start\t(%d)\t(%d+)\t(%d+)\t(.*)$')
	eq(data, 'from the first')
	seen[id] = true
end
assert(seen['1'] and seen['2'])
support.write_file('reloaded', '')
assert(sup:kill('HUP'))
local pid1
for _ = 1, 2 do
	local id, pid, n, data = expect('^start\t(%d)\t(%d+)\t(%d+)\t(.*)$')
	eq(data, 'from the first', 'kept over the reload')
	assert(tonumber(n) >= 3, n)
	if id == '1' then pid1 = pid end
end
expect('reloaded', 'err')
-- Worker 1 holds the lock, reading: worker 2's read waits for it, then
-- goes on once it is killed, and nothing is lost.
support.write_file('hold-clean', '')
expect('holding the lock', 'err')
support.write_file('go-1', '')
expect('^trying\t1$')
assert(os.execute('kill -9 ' .. pid1))
eq(expect('^read\t1\t(.-)\t'), 'from the first')
-- Its replacement holds it in the middle of a change: the next taker
-- empties the dictionary.
local pid = expect('^start\t1\t(%d+)\t5\tfrom the first$')
support.write_file('hold-dirty', '')
expect('holding the lock', 'err')
support.write_file('go-2', '')
expect('^trying\t2$')
assert(os.execute('kill -9 ' .. pid))
local data, starts = expect('^read\t2\t(.-)\t(.*)$')
assert(starts == 'nil' or starts == '1', 'emptied: ' .. starts)
expect("shared dictionary 'kept' emptied: a process died while changing it", 'err')
-- And the dictionary works: the next worker 1 starts over.
eq({ expect('^start\t1\t%d+\t(%d+)\t(.*)$') }, { '1', 'from the first' })
stop(sup)
print('ok')
