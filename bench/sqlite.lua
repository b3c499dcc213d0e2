-- lem.sqlite3 throughput: inserts in one transaction, point SELECTs by
-- primary key, one SELECT of every row. Compare with
-- bench/sqlite_floor (rusqlite called directly) and bench/sqlite_peers.lua
-- (LuaDBI, LuaSQL); run by bench/db_sqlite.sh. With `inline`, the
-- connections are opened with {inline = true} (calls on the loop thread).
--   lem bench/sqlite.lua DIR [N [inline]]
local sqlite3 = require 'lem.sqlite3'
local utils = require 'lem.utils'

local dir = assert(arg[1], 'usage: lem bench/sqlite.lua DIR [N]')
local n = tonumber(arg[2]) or 200000
local opts = { inline = arg[3] == 'inline' }
local path = dir .. '/lem.db'
os.remove(path)
local db = assert(sqlite3.open(path, nil, opts))
assert(db:exec('create table t(id integer primary key, name text, v real)'))

local function report(what, count, secs)
	print(('%-34s %12.0f /s  (%d in %.3f s)'):format(what, count / secs, count, secs))
end

local now = utils.updatenow

-- Inserts: bind + step per row (one call to SQLite's side a row).
local t0 = now()
assert(db:exec('begin'))
local ins = assert(db:prepare('insert into t values(?, ?, ?)'))
for i = 1, n do
	ins:bind(i, 'name' .. i, i * 0.5)
	assert(ins:step() == true)
end
assert(db:exec('commit'))
report('insert (one transaction)', n, now() - t0)

-- Inserts, 1,000 bindings a call: stmt:execmany.
assert(db:exec('create table w(id integer primary key, name text, v real)'))
local insw = assert(db:prepare('insert into w values(?, ?, ?)'))
t0 = now()
assert(db:exec('begin'))
local k = 1
while k <= n do
	local list = {}
	for j = k, math.min(k + 999, n) do
		list[#list + 1] = { j, 'name' .. j, j * 0.5 }
	end
	assert(insw:execmany(list))
	k = k + 1000
end
assert(db:exec('commit'))
report('insert (execmany, 1,000 a call)', n, now() - t0)

-- Inserts, many rows a call: one exec of a multi-row INSERT per 500 rows.
assert(db:exec('create table u(id integer primary key, name text, v real)'))
t0 = now()
assert(db:exec('begin'))
local i = 1
while i <= n do
	local vals = {}
	for j = i, math.min(i + 499, n) do
		vals[#vals + 1] = ("(%d, 'name%d', %s)"):format(j, j, j * 0.5)
	end
	assert(db:exec('insert into u values ' .. table.concat(vals, ',')))
	i = i + 500
end
assert(db:exec('commit'))
report('insert (500 rows an exec)', n, now() - t0)

-- Point SELECTs: a prepared statement, bind + fetchone (one call). In one
-- read transaction, as LuaDBI's (it begins one after each commit while
-- autocommit is off): without one, SQLite's locking and its check of the
-- file (fcntl, stat, pread) cost more than the lookup.
local lookups = math.floor(n / 2)
local sel = assert(db:prepare('select name, v from t where id = ?'))
assert(db:exec('begin'))
t0 = now()
local sum = 0
for k = 0, lookups - 1 do
	sel:bind((k * 7919) % n + 1)
	sum = sum + #sel:fetchone()[1]
end
assert(sum > 0)
report('point select (bind + fetchone)', lookups, now() - t0)

-- Point SELECTs in one call each: db:fetchone(sql, id).
t0 = now()
for k = 0, lookups - 1 do
	local row = db:fetchone('select name, v from t where id = ?', (k * 7919) % n + 1)
	sum = sum + #row[1]
end
report('point select (db:fetchone)', lookups, now() - t0)
assert(db:exec('commit'))

-- Point SELECTs from 4 coroutines on 4 connections.
local conns = 4
local left, done = conns, utils.newsleeper()
t0 = now()
for c = 1, conns do
	utils.spawn(function()
		local cdb = assert(sqlite3.open(path, sqlite3.READONLY, opts))
		for k = c - 1, lookups - 1, conns do
			local row = cdb:fetchone('select name, v from t where id = ?', (k * 7919) % n + 1)
			sum = sum + #row[1]
		end
		cdb:close()
		left = left - 1
		if left == 0 then done:wakeup() end
	end)
end
done:sleep()
report('point select (4 connections)', lookups, now() - t0)

-- Every row in one call.
t0 = now()
local rows = assert(db:fetchall('select id, name, v from t'))
assert(#rows == n)
report('select all rows (rows/s)', n, now() - t0)
t0 = now()
local count = 0
for _ in db:rows('select id, name, v from t') do
	count = count + 1
end
assert(count == n)
report('rows iterator (rows/s)', n, now() - t0)
db:close()
