-- lem.sqlite3's two ways of running calls: on the connection's own thread
-- (the default: the loop never waits for SQLite) and, opened with
-- {inline = true}, on the loop thread. The same API and results in both
-- (queued too); SQLite's own message when a database cannot be opened;
-- unknown options raise. Thread mode: a long statement leaves the other
-- coroutines running, a timeout or a cancel in the middle of a statement
-- stops it and frees the connection, close() while a job runs interrupts
-- it.
dofile('support.lua')
local sqlite3 = require 'lem.sqlite3'
local queued = require 'lem.sqlite3.queued'
local utils = require 'lem.utils'

-- A query that runs for minutes unless interrupted.
local LONG = 'with recursive c(x) as (select 1 union all select x + 1 from c where x < 1000000000) select count(*) from c'

local dir = tmpdir()

local function sleep(t)
	utils.newsleeper():sleep(t)
end

-- Open failures are SQLite's message, unchanged (scripts compare it).
for _, opts in ipairs { {}, { inline = true }, { inline = false } } do
	local db, err = sqlite3.open(dir .. '/absent.db', sqlite3.READWRITE, opts)
	eq({ db, err }, { nil, 'unable to open database file' }, 'no file, no CREATE')
	db, err = sqlite3.open(dir .. '/no/such/dir/x.db', nil, opts)
	eq({ db, err }, { nil, 'unable to open database file' }, 'no directory')
	db, err = queued.open(dir .. '/absent.db', sqlite3.READONLY, opts)
	eq({ db, err }, { nil, 'unable to open database file' }, 'queued, read-only')
end

-- The options table: only `inline`, a boolean.
checkerr("bad argument #3 to 'open' (unknown option 'inlin')", sqlite3.open, ':memory:', nil, { inlin = true })
checkerr("unknown option '1'", sqlite3.open, ':memory:', nil, { true })
checkerr("unknown option 'x'", queued.open, ':memory:', nil, { inline = true, x = 1 })
checkerr('inline must be a boolean', sqlite3.open, ':memory:', nil, { inline = 1 })
checkerr('table expected', sqlite3.open, ':memory:', nil, 'inline')
checkerr('path contains a NUL byte', sqlite3.open, 'a\0b')

-- The same work gives the same answers in every mode.
local function work(db, tag)
	assert(db:exec('create table t(id integer primary key, name text, v real)'))
	assert(db:exec('begin'))
	local ins = assert(db:prepare('insert into t values(?, ?, ?)'))
	for i = 1, 500 do
		assert(ins:bind(i, 'name' .. i, i * 0.5))
		eq(ins:step(), true, tag .. ': insert')
	end
	assert(ins:finalize())
	assert(db:exec('commit'))
	eq(db:last_insert_rowid(), 500, tag .. ': last rowid')
	eq(db:autocommit(), true, tag .. ': autocommit')
	local sel = assert(db:prepare('select name, v from t where id = ?'))
	for i = 1, 500, 7 do
		assert(sel:bind(i))
		eq(sel:fetchone(), { 'name' .. i, i * 0.5, n = 2 }, tag .. ': point select')
	end
	eq(db:fetchone('select count(*), sum(id) from t'), { 500, 125250, n = 2 }, tag .. ': aggregate')
	local n = 0
	for row in db:rows('select id from t order by id') do
		n = n + 1
		assert(row[1] == n, tag .. ': rows in order')
	end
	eq(n, 500, tag .. ': every row')
	eq(#assert(db:fetchall('select * from t')), 500, tag .. ': fetchall')
	local r, err = db:exec('insert into t values(1, 2, 3)')
	eq({ r, err }, { nil, 'UNIQUE constraint failed: t.id' }, tag .. ': an SQL error is a value')
	eq(db:fetchone('select 1 where 0'), true, tag .. ': no row')
	assert(db:close())
	eq({ db:exec('select 1') }, { nil, 'closed' }, tag .. ': closed')
	eq({ sel:step() }, { nil, 'closed' }, tag .. ': statement of a closed connection')
end
work(assert(sqlite3.open(':memory:')), 'thread')
work(assert(sqlite3.open(':memory:', nil, { inline = true })), 'inline')
work(assert(sqlite3.open(dir .. '/file.db', nil, { inline = true })), 'inline file')
work(assert(queued.open(':memory:', nil, { inline = true })), 'queued inline')
work(assert(queued.open(':memory:', nil, {})), 'queued thread')

-- Inline, a second coroutine's call finds the connection free: a call
-- never suspends, so no call is ever in flight.
do
	local db = assert(sqlite3.open(':memory:', nil, { inline = true }))
	local got = {}
	for i = 1, 3 do
		utils.spawn(function() got[i] = db:fetchone('select ?', i)[1] end)
	end
	utils.yield()
	eq(got, { 1, 2, 3 }, 'inline calls from several coroutines')
	-- A statement held with get() by another coroutine is still 'busy'.
	local st = assert(db:prepare('select 1'))
	local held = utils.newsleeper()
	utils.spawn(function()
		assert(st:get())
		held:sleep()
		assert(st:put())
	end)
	utils.yield()
	eq({ st:step() }, { nil, 'busy' }, 'inline: held by another coroutine')
	held:wakeup()
	utils.yield()
	eq(st:step(), { 1, n = 1 }, 'inline: free after put')
	-- Inline calls never suspend: they work where a coroutine cannot yield
	-- (a C function's callback); on a thread they raise there, as any
	-- suspending call.
	local seen = 0
	table.sort({ 3, 1, 2 }, function(a, b)
		seen = seen + db:fetchone('select 1')[1]
		return a < b
	end)
	assert(seen > 0, 'inline inside table.sort')
	local tdb = assert(sqlite3.open(':memory:'))
	checkerr('attempt to yield across a C-call boundary', function()
		table.sort({ 1, 2 }, function(a, b) tdb:exec('select 1') return a < b end)
	end)
	eq(tdb:fetchone('select 2'), { 2, n = 1 }, 'thread: usable after that')
	assert(tdb:close())
	-- Dropped objects are finalized and closed by the collector.
	st = nil
	db = nil
	collectgarbage()
	collectgarbage()
end

-- Thread mode: a long statement leaves the loop to the other coroutines.
do
	local db = assert(sqlite3.open(':memory:'))
	local ticks, result = 0, nil
	utils.spawn(function()
		while not result do
			ticks = ticks + 1
			utils.yield()
		end
	end)
	-- Long enough to take many loop turns, short enough to finish.
	result = { db:fetchone('with recursive c(x) as (select 1 union all select x + 1 from c where x < 3000000) select count(*) from c') }
	eq(result, { { 3000000, n = 1 } }, 'the long statement finished')
	assert(ticks > 1, 'other coroutines ran meanwhile: ' .. ticks)

	-- A timeout in the middle of a statement stops it; the connection is
	-- free at once and usable.
	local r, err = utils.timeout(0.05, function() return db:fetchone(LONG) end)
	eq({ r, err }, { nil, 'timeout' }, 'timed out in the middle of a statement')
	eq(db:fetchone('select 42'), { 42, n = 1 }, 'usable after the timeout')

	-- A cancel in the middle of a statement (the task's call had started).
	local started = false
	local task = utils.task(function()
		started = true
		return db:exec(LONG)
	end)
	sleep(0.02)
	assert(started, 'the task runs its statement')
	assert(task:cancel())
	local ok, why = task:join()
	eq({ ok, why }, { nil, 'cancelled' }, 'cancelled in the middle of a statement')
	eq(db:fetchone('select 43'), { 43, n = 1 }, 'usable after the cancel')

	-- A cancel of a task whose call was handed over but not yet looked at.
	task = utils.task(function() return db:exec(LONG) end)
	utils.yield()
	assert(task:cancel())
	ok, why = task:join()
	eq({ ok, why }, { nil, 'cancelled' }, 'cancelled right after the call')
	eq(db:fetchone('select 44'), { 44, n = 1 }, 'usable after that cancel')

	-- close() while another coroutine's statement runs: it is interrupted.
	local slow
	local done = utils.newsleeper()
	utils.spawn(function()
		slow = { db:fetchone(LONG) }
		done:wakeup()
	end)
	sleep(0.02)
	eq(db:close(), true, 'close while a statement runs')
	if not slow then done:sleep() end
	eq(slow, { nil, 'interrupted' }, 'the running statement was interrupted')
	eq({ db:close() }, { nil, 'closed' }, 'closed once')

	-- Queued callers waiting behind a running statement get 'closed'.
	db = assert(queued.open(':memory:'))
	local waits = {}
	utils.spawn(function() waits[1] = { db:fetchone(LONG) } end)
	for i = 2, 3 do
		utils.spawn(function() waits[i] = { db:fetchone('select 1') } end)
	end
	sleep(0.02)
	eq(db:close(), true, 'close of a queued connection')
	while not (waits[1] and waits[2] and waits[3]) do utils.yield() end
	eq(waits, { { nil, 'interrupted' }, { nil, 'closed' }, { nil, 'closed' } }, 'the queue answered')
end
print('ok')
