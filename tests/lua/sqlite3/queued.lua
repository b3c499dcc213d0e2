-- lem.sqlite3.queued: the same API, but a second caller waits its turn.
-- 50 coroutines on one queued connection, 50 on connections of their own
-- (one file, WAL), stmt:get()/put() keeping a statement's steps together,
-- and close() while others wait (they get nil, 'closed').
dofile('support.lua')
local queued = require 'lem.sqlite3.queued'
local sqlite3 = require 'lem.sqlite3'
local utils = require 'lem.utils'

-- The same classes, constants and functions, but its own open.
assert(queued.Connection == sqlite3.Connection and queued.Statement == sqlite3.Statement, 'same classes')
eq(queued.CREATE, sqlite3.CREATE, 'same flags')
assert(queued.open ~= sqlite3.open, 'its own open')

local path = tmpdir() .. '/queued.db'
local db = assert(queued.open(path))
assert(db:exec('pragma journal_mode = wal; create table t(co, i)'))

-- Wait for n coroutines started by `run`.
local function all(n, f)
	local left, done = n, utils.newsleeper()
	local errs = {}
	for i = 1, n do
		utils.spawn(function()
			local ok, err = pcall(f, i)
			if not ok then errs[#errs + 1] = err end
			left = left - 1
			if left == 0 then done:wakeup() end
		end)
	end
	if left > 0 then done:sleep() end
	assert(#errs == 0, table.concat(errs, '\n'))
end

-- 50 coroutines, each 20 calls on the one connection: none is 'busy'.
all(50, function(co)
	local ins = assert(db:prepare('insert into t values(?, ?)'))
	for i = 1, 10 do
		assert(ins:bind(co, i))
		eq(ins:step(), true, 'insert')
		assert(db:exec('select 1'))
	end
	assert(ins:finalize())
end)
eq(db:fetchone('select count(*), count(distinct co) from t'), { 500, 50, n = 2 }, 'every insert')

-- Queued fetches by many coroutines at once.
all(50, function(co)
	local rows = assert(db:fetchall('select i from t where co = ? order by i', co))
	eq(#rows, 10, 'rows of coroutine ' .. co)
	eq(db:fetchone('select count(*) from t where co = :co', { co = co }), { 10, n = 1 }, 'fetchone')
	local n = 0
	for row in db:rows('select i from t where co = ?', co) do
		n = n + row[1]
	end
	eq(n, 55, 'rows')
end)

-- get()/put(): one coroutine's steps are not interleaved with another's;
-- the others wait on the statement, not fail.
local st = assert(db:prepare('select i from t where co = ? order by i'))
local order = {}
all(5, function(co)
	assert(st:get())
	assert(st:bind(co))
	for _ = 1, 10 do
		local row = assert(st:step())
		order[#order + 1] = co * 100 + row[1]
	end
	eq(st:step(), true, 'end of the rows')
	assert(st:put())
end)
eq(#order, 50, 'every step')
for k = 1, 50, 10 do
	local co = math.floor(order[k] / 100)
	for j = 0, 9 do
		eq(order[k + j], co * 100 + j + 1, 'steps of one holder in a row')
	end
end
-- Without get(), single calls still wait (never 'busy').
all(20, function()
	eq(st:fetchone(), { 1, n = 1 }, 'the last binding stays')
end)
assert(st:finalize())

-- 50 coroutines on 50 connections to one file.
all(50, function(co)
	local c = assert(queued.open(path))
	assert(c:exec('pragma busy_timeout = 10000'))
	-- The transaction in one call: a connection that held the write lock
	-- between calls would wait for a pool thread while the other
	-- connections' busy waits hold every pool thread (docs/sqlite3.md).
	local sql = { 'begin immediate;' }
	for i = 1, 5 do
		sql[#sql + 1] = ('insert into t values(%d, %d);'):format(1000 + co, i)
	end
	sql[#sql + 1] = 'commit'
	assert(c:exec(table.concat(sql)))
	eq(c:fetchone('select count(*) from t where co = ?', 1000 + co), { 5, n = 1 }, 'own rows')
	assert(c:close())
end)
eq(db:fetchone('select count(*) from t where co > 1000'), { 250, n = 1 }, 'rows of 50 connections')

-- close() while others wait their turn: the running call is interrupted,
-- the waiting ones get nil, 'closed'.
local LONG = 'with recursive c(x) as (select 1 union all select x + 1 from c where x < 1000000000) select count(*) from c'
local results = {}
local held = assert(db:prepare('select 1'))
local done = utils.newsleeper()
local left = 12
local function note(k, ...)
	results[k] = { ... }
	left = left - 1
	if left == 0 then done:wakeup() end
end
utils.spawn(function() note('long', db:fetchone(LONG)) end)
for i = 1, 10 do
	utils.spawn(function() note(i, db:exec('select 1')) end)
end
assert(held:get())
utils.spawn(function() note('stmt', held:step()) end)
utils.yield()
eq(db:close(), true, 'close while others wait')
if left > 0 then done:sleep() end
eq(results.long, { nil, 'interrupted' }, 'the running call')
for i = 1, 10 do
	eq(results[i], { nil, 'closed' }, 'waiting call ' .. i)
end
eq(results.stmt, { nil, 'closed' }, 'waiting on a held statement')
local r, err = held:step()
assert(r == nil and err == 'closed', 'held statement after close')
local r2, err2 = db:close()
assert(r2 == nil and err2 == 'closed', 'second close')
print('ok')
