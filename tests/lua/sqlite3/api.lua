-- lem.sqlite3: every documented call one by one, on a file in the test's
-- temp dir and in memory: open and its flags, exec, prepare, bind by
-- position and by name, step, reset, column_names, finalize, fetchall,
-- fetchone, rows, last_insert_rowid, changes, autocommit, close; errors
-- and constraint violations as messages, misuse as argument errors.
dofile('support.lua')
local sqlite3 = require 'lem.sqlite3'
local utils = require 'lem.utils'

-- The flags are SQLite's numbers, added together.
eq(sqlite3.READONLY, 1, 'READONLY')
eq(sqlite3.READWRITE, 2, 'READWRITE')
eq(sqlite3.CREATE, 4, 'CREATE')
eq(sqlite3.URI, 0x40, 'URI')
eq(sqlite3.NOMUTEX, 0x8000, 'NOMUTEX')
eq(sqlite3.FULLMUTEX, 0x10000, 'FULLMUTEX')
eq(sqlite3.SHAREDCACHE, 0x20000, 'SHAREDCACHE')
eq(sqlite3.PRIVATECACHE, 0x40000, 'PRIVATECACHE')
assert(type(sqlite3.version) == 'string' and sqlite3.version:match('^3%.'), 'version')

local path = tmpdir() .. '/test.db'

-- open: a missing file without CREATE fails with SQLite's message.
local db, err = sqlite3.open(path, sqlite3.READWRITE)
assert(db == nil and err:find('unable to open', 1, true), tostring(err))
db, err = sqlite3.open(tmpdir() .. '/no/such/dir/x.db')
assert(db == nil and type(err) == 'string', 'open in a missing dir')

db = assert(sqlite3.open(path))
assert(getmetatable(db) == sqlite3.Connection, 'Connection class')
eq(db:autocommit(), true, 'autocommit outside a transaction')

-- exec: several statements; true.
eq(db:exec [[
	create table t(id integer primary key, name text not null unique, v);
	insert into t(name, v) values('one', 1);
	insert into t(name, v) values('two', 2.5); -- a comment
]], true, 'exec')
eq(db:last_insert_rowid(), 2, 'last_insert_rowid')
eq(db:changes(), 1, 'changes')
eq(db:exec(''), true, 'empty exec')
eq(db:exec('  -- only a comment\n'), true, 'comment-only exec')

-- SQL errors and constraint violations are messages.
local ok
ok, err = db:exec('select * from missing')
assert(ok == nil and err == 'no such table: missing', tostring(err))
ok, err = db:exec("insert into t(name) values('one')")
assert(ok == nil and err == 'UNIQUE constraint failed: t.name', tostring(err))
ok, err = db:exec("insert into t(v) values(3)")
assert(ok == nil and err == 'NOT NULL constraint failed: t.name', tostring(err))
ok, err = db:exec('selec 1')
assert(ok == nil and err:find('syntax error', 1, true), tostring(err))
-- The statements before a failing one have run.
ok, err = db:exec("insert into t(name) values('three'); insert into t(name) values('three')")
assert(ok == nil and err:find('UNIQUE', 1, true), tostring(err))
eq(db:fetchone("select count(*) from t where name = 'three'"), { 1, n = 1 }, 'first of two ran')

-- prepare, bind by position, step to the end.
local ins = assert(db:prepare('insert into t(name, v) values(?, ?)'))
assert(getmetatable(ins) == sqlite3.Statement, 'Statement class')
eq(ins:bind('four', 4), true, 'bind')
eq(ins:step(), true, 'insert step is done')
eq(db:last_insert_rowid(), 4, 'rowid after step')
-- bind resets the statement: it can run again.
eq(ins:bind('five'), true, 'bind fewer values: the rest are NULL')
eq(ins:step(), true, 'step again')
eq(db:fetchone("select v from t where name = 'five'"), { n = 1 }, 'unbound is NULL')
ok, err = ins:bind('four', 4)
assert(ok, err)
ok, err = ins:step()
assert(ok == nil and err == 'UNIQUE constraint failed: t.name', tostring(err))
checkerr('3 values to bind to a statement with 2 parameters', ins.bind, ins, 1, 2, 3)
checkerr('cannot bind a table', ins.bind, ins, 'x', {})
checkerr('cannot bind a function', ins.bind, ins, print)
eq(ins:finalize(), true, 'finalize')
r1, r2 = ins:step()
assert(r1 == nil and r2 == 'closed', 'step after finalize')
r1, r2 = ins:finalize()
assert(r1 == nil and r2 == 'closed', 'finalize twice')

-- Named parameters: :name, @name, $name, given with or without their
-- prefix; ?NNN and plain ? by index.
local sel = assert(db:prepare('select :a, @b, $c, ?4, :e'))
eq(sel:bind { a = 1, ['@b'] = 'two', c = 3.5, [4] = true, [5] = 'five-by-index' }, true, 'bind table')
eq(sel:step(), { 1, 'two', 3.5, 1, 'five-by-index', n = 5 }, 'named values')
eq(sel:step(), true, 'done after one row')
eq(sel:reset(), true, 'reset')
eq(sel:bind { b = false }, true, 'bind table with false')
eq(sel:step(), { nil, 0, n = 5 }, 'missing names are NULL')
sel:finalize()

-- execmany: many bindings, one trip.
local many = assert(db:prepare('insert into t(name, v) values(?, ?)'))
eq(many:execmany { { 'm1', 1 }, { 'm2', n = 2 }, { 'm3', 3 } }, 3, 'execmany by position')
eq(db:fetchall("select name, v from t where name like 'm%' order by name"),
	{ { 'm1', 1, n = 2 }, { 'm2', n = 2 }, { 'm3', 3, n = 2 } }, 'execmany rows')
local named = assert(db:prepare('insert into t(name, v) values(:name, :v)'))
eq(named:execmany { { name = 'm4', v = 4 }, { name = 'm5' } }, 2, 'execmany by name')
eq(named:execmany {}, 0, 'execmany of nothing')
local r1, r2, r3 = many:execmany { { 'm6' }, { 'm1' }, { 'm7' } }
assert(r1 == nil and r2 == 'UNIQUE constraint failed: t.name' and r3 == 2, 'execmany failure: ' .. tostring(r2))
eq(db:fetchone("select count(*) from t where name in ('m6', 'm7')"), { 1, n = 1 }, 'entries before the failure ran')
checkerr('a list of tables of values expected', many.execmany, many, { 1, 2 })
checkerr('cannot bind a function', many.execmany, many, { { print } })
checkerr('table expected', many.execmany, many)
assert(db:exec("delete from t where name like 'm%'"))
many:finalize()
named:finalize()

-- column_names, step over rows, reset, fetchall/fetchone on a statement.
local q = assert(db:prepare('select id, name, v from t where id <= ? order by id'))
eq(q:column_names(), { 'id', 'name', 'v' }, 'column_names')
q:bind(2)
eq(q:step(), { 1, 'one', 1, n = 3 }, 'row 1')
eq(q:step(), { 2, 'two', 2.5, n = 3 }, 'row 2')
eq(q:step(), true, 'end')
eq(q:reset(), true, 'reset after the end')
eq(q:fetchall(), { { 1, 'one', 1, n = 3 }, { 2, 'two', 2.5, n = 3 } }, 'stmt:fetchall')
-- fetchall reset the statement: it runs again from the start.
eq(q:fetchone(), { 1, 'one', 1, n = 3 }, 'stmt:fetchone')
eq(q:fetchone(), { 1, 'one', 1, n = 3 }, 'fetchone resets')
q:bind(0)
eq(q:fetchall(), {}, 'no rows: empty table')
eq(q:fetchone(), true, 'no row: true')
q:bind(2)
local seen = {}
for row in q:rows() do
	seen[#seen + 1] = row[2]
end
eq(seen, { 'one', 'two' }, 'stmt:rows')
seen = {}
for row in q:rows() do
	seen[#seen + 1] = row[2]
end
eq(seen, { 'one', 'two' }, 'stmt:rows again (reset at the end)')

-- Integers stay integers (Lua 5.4), floats floats.
local big = db:fetchone('select 9007199254740993, 1.0, -5, 2.0*3')
if math.type then
	assert(math.type(big[1]) == 'integer' and big[1] == 9007199254740993, 'big integer')
	assert(math.type(big[2]) == 'float', 'float')
	assert(math.type(big[3]) == 'integer' and big[3] == -5, 'negative integer')
	assert(math.type(big[4]) == 'float' and big[4] == 6, 'computed float')
else
	assert(big[3] == -5 and big[4] == 6, 'numbers on LuaJIT')
end
eq(db:fetchone('select ? + 1', 41), { 42, n = 1 }, 'integer bind')
eq(db:fetchone('select typeof(?), typeof(?), typeof(?)', 1, 1.5, 'x'),
	{ 'integer', 'real', 'text', n = 3 }, 'bound types')

-- db:fetchall / fetchone / rows with values by position or table.
eq(db:fetchall('select name from t where id in (?, ?) order by id', 1, 2),
	{ { 'one', n = 1 }, { 'two', n = 1 } }, 'db:fetchall')
eq(db:fetchall('select name from t where id = :id', { id = 4 }), { { 'four', n = 1 } }, 'db:fetchall by name')
eq(db:fetchone('select name from t where id = 99'), true, 'db:fetchone no row')
ok, err = db:fetchall('select * from absent')
assert(ok == nil and err == 'no such table: absent', tostring(err))
ok, err = db:fetchone('')
assert(ok == nil and err:find('no SQL statement', 1, true), tostring(err))
ok, err = db:fetchall('select ?', 1, 2)
assert(ok == nil and err:find('2 values to bind', 1, true), tostring(err))
seen = {}
for row in db:rows('select id from t where id < ? order by id', 3) do
	seen[#seen + 1] = row[1]
end
eq(seen, { 1, 2 }, 'db:rows')
checkerr('no such table: nowhere', function()
	for _ in db:rows('select * from nowhere') do end
end)
-- A failure while stepping raises from the iterator.
checkerr('integer overflow', function()
	for _ in db:rows('select abs(-9223372036854775807 - 1)') do end
end)
ok, err = db:prepare('select * from absent')
assert(ok == nil and err == 'no such table: absent', tostring(err))
ok, err = db:prepare('   ')
assert(ok == nil and err:find('no SQL statement', 1, true), tostring(err))

-- autocommit and transactions.
assert(db:exec('begin'))
eq(db:autocommit(), false, 'in a transaction')
assert(db:exec("insert into t(name) values('six')"))
assert(db:exec('rollback'))
eq(db:autocommit(), true, 'after rollback')
eq(db:fetchone("select count(*) from t where name = 'six'"), { 0, n = 1 }, 'rolled back')
assert(db:exec("update t set v = 0 where id <= 2"))
eq(db:changes(), 2, 'changes after update')

-- Misuse raises.
checkerr("bad argument #1 to 'exec' (string expected, got no value)", function() db:exec() end)
checkerr("string expected, got table", function() db:exec({}) end)
checkerr("lem.sqlite3.Connection expected, got string", db.exec, 'nope', 'select 1')
checkerr("bad argument #2 to 'open'", sqlite3.open, path, 'rw')

-- Data persists in the file; READONLY refuses writes.
local stmt_left = assert(db:prepare('select 1'))
eq(db:close(), true, 'close (finalizes statements)')
r1, r2 = db:close()
assert(r1 == nil and r2 == 'closed', 'close twice')
r1, r2 = db:exec('select 1')
assert(r1 == nil and r2 == 'closed', 'exec after close')
r1, r2 = stmt_left:step()
assert(r1 == nil and r2 == 'closed', 'statement after close')
for _, f in ipairs { 'last_insert_rowid', 'changes', 'autocommit', 'fetchall', 'fetchone', 'prepare' } do
	r1, r2 = db[f](db, 'select 1')
	assert(r1 == nil and r2 == 'closed', f .. ' after close')
end
checkerr('closed', function() for _ in db:rows('select 1') do end end)

local ro = assert(sqlite3.open(path, sqlite3.READONLY))
eq(ro:fetchone('select count(*) from t'), { 5, n = 1 }, 'data on disk')
ok, err = ro:exec("insert into t(name) values('ro')")
assert(ok == nil and err:find('readonly', 1, true), tostring(err))
ro:close()

-- URI filenames.
local uri = assert(sqlite3.open('file:' .. path .. '?mode=ro', sqlite3.URI + sqlite3.READONLY))
eq(uri:fetchone('select count(*) from t'), { 5, n = 1 }, 'URI open')
uri:close()

-- Calls outside a coroutine's reach raise, as every suspending call.
local mem = assert(sqlite3.open(':memory:', sqlite3.READWRITE + sqlite3.CREATE + sqlite3.NOMUTEX + sqlite3.PRIVATECACHE))
checkerr('attempt to yield across a C-call boundary', function()
	table.sort({ 1, 2 }, function(a, b) mem:exec('select 1') return a < b end)
end)
-- A statement and a connection that are only dropped are cleaned up by
-- the collector (nothing to assert but no crash).
mem:prepare('select 1')
mem = nil
collectgarbage()
collectgarbage()
utils.newsleeper():sleep(0.01)
print('ok')
