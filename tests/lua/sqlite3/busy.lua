-- lem.sqlite3: one connection, several coroutines. A second caller gets
-- nil, 'busy' (never a crash); a statement held with get() is 'busy' to
-- others until put(); close() from another coroutine interrupts a running
-- query; a timed-out or cancelled call interrupts its query and leaves the
-- connection usable; the loop runs other coroutines meanwhile.
dofile('support.lua')
local sqlite3 = require 'lem.sqlite3'
local utils = require 'lem.utils'

-- A query that runs for minutes unless interrupted.
local LONG = 'with recursive c(x) as (select 1 union all select x + 1 from c where x < 1000000000) select count(*) from c'

local db = assert(sqlite3.open(tmpdir() .. '/busy.db'))
assert(db:exec('create table t(x)'))

-- While one coroutine's call is on the pool, every other call is 'busy'.
local done = utils.newsleeper()
local first
utils.spawn(function()
	first = { db:fetchall('select 1 union all select 2') }
	done:wakeup()
end)
utils.yield() -- the spawned call is now in flight
for _, f in ipairs { 'exec', 'prepare', 'fetchall', 'fetchone', 'last_insert_rowid', 'changes', 'autocommit' } do
	local r, err = db[f](db, 'select 1')
	assert(r == nil and err == 'busy', f .. ' while busy: ' .. tostring(err))
end
checkerr('busy', function() for _ in db:rows('select 1') do end end)
done:sleep()
eq(first, { { { 1, n = 1 }, { 2, n = 1 } } }, 'the first call is unharmed')
eq(db:fetchone('select 3'), { 3, n = 1 }, 'free again')

-- A statement's calls are the connection's: busy while another runs.
local st = assert(db:prepare('select x from t'))
utils.spawn(function() db:exec('insert into t values(1)') done:wakeup() end)
utils.yield()
local r, err = st:step()
assert(r == nil and err == 'busy', 'step while the connection is busy')
done:sleep()

-- get() holds a statement: others get 'busy' until put().
assert(db:exec('insert into t values(2)'))
eq(st:get(), true, 'get')
eq(st:get(), true, 'get again by the holder')
local other = {}
utils.spawn(function()
	other[1] = { st:step() }
	other[2] = { st:get() }
	other[3] = { st:fetchall() }
	done:wakeup()
end)
done:sleep(0.01)
eq(other[1], { nil, 'busy' }, 'step on a held statement')
eq(other[2], { nil, 'busy' }, 'get on a held statement')
eq(other[3], { nil, 'busy' }, 'fetchall on a held statement')
eq(st:step(), { 1, n = 1 }, 'the holder steps')
eq(st:step(), { 2, n = 1 }, 'the holder steps again')
eq(st:put(), true, 'put')
checkerr('statement not held by this coroutine', st.put, st)
eq(st:fetchall(), { { 1, n = 1 }, { 2, n = 1 } }, 'free after put')
utils.spawn(function()
	other.got = st:get()
	done:wakeup()
end)
done:sleep()
eq(other.got, true, 'another coroutine can get it')
r, err = st:step()
assert(r == nil and err == 'busy', 'held by the other coroutine now')
assert(st:finalize() == nil, 'finalize of a held statement is busy')

-- close() from another coroutine interrupts a running query.
local slow
utils.spawn(function()
	slow = { db:fetchone(LONG) }
	done:wakeup()
end)
utils.yield()
local ticks = 0
utils.spawn(function()
	while not slow do
		ticks = ticks + 1
		utils.yield()
	end
end)
eq(db:close(), true, 'close while a query runs')
if not slow then done:sleep() end
eq(slow, { nil, 'interrupted' }, 'the running query is interrupted')
assert(ticks > 0, 'the loop ran other coroutines meanwhile')
r, err = db:exec('select 1')
assert(r == nil and err == 'closed', 'closed afterwards')
r, err = st:get()
assert(r == nil and err == 'closed', 'get on a statement of a closed connection')

-- A call that times out interrupts its query: the connection is free at
-- once and usable.
db = assert(sqlite3.open(':memory:'))
r, err = utils.timeout(0.05, function() return db:fetchone(LONG) end)
assert(r == nil and err == 'timeout', 'timeout: ' .. tostring(err))
eq(db:fetchone('select 42'), { 42, n = 1 }, 'usable after a timed-out call')
-- And a cancelled one too.
local task = utils.task(function() return db:exec(LONG) end)
utils.yield()
assert(task:cancel())
local ok, why = task:join()
assert(ok == nil and why == 'cancelled', 'cancelled: ' .. tostring(why))
eq(db:fetchone('select 43'), { 43, n = 1 }, 'usable after a cancelled call')

-- Many coroutines on one plain connection: each either runs or is told
-- 'busy'; none crashes, and what ran is all there.
assert(db:exec('create table m(x)'))
local ran, busy, left = 0, 0, 50
for i = 1, 50 do
	utils.spawn(function()
		local okk, e = db:exec('insert into m values(' .. i .. ')')
		if okk then
			ran = ran + 1
		else
			assert(e == 'busy', e)
			busy = busy + 1
		end
		left = left - 1
		if left == 0 then done:wakeup() end
	end)
end
done:sleep()
eq(ran + busy, 50, 'every call answered')
assert(ran >= 1 and busy >= 1, 'one ran, the others were busy')
eq(db:fetchone('select count(*) from m'), { ran, n = 1 }, 'rows of the calls that ran')
assert(db:close())
print('ok')
