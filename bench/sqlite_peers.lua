-- The work of bench/sqlite.lua's per-row parts through the synchronous
-- bindings a Lua developer would otherwise use, under stock lua5.4:
-- LuaDBI (Debian lua-dbi-sqlite3, prepared statements) and LuaSQL (Debian
-- lua-sql-sqlite3, which has no prepared statements: SQL text a row). Run
-- by bench/db_sqlite.sh.
--   lua5.4 bench/sqlite_peers.lua DIR [N]
local dir = assert(arg[1], 'usage: lua5.4 bench/sqlite_peers.lua DIR [N]')
local n = tonumber(arg[2]) or 200000
local lookups = n // 2
-- Stock Lua has no sub-second wall clock: ask date(1) (a millisecond or
-- so per phase, against phases of a fraction of a second or more).
local function clock()
	local f = assert(io.popen('date +%s.%N'))
	local t = assert(tonumber(f:read('l')))
	f:close()
	return t
end

local function report(who, what, count, secs)
	print(('%-8s %-32s %12.0f /s  (%d in %.3f s)'):format(who, what, count / secs, count, secs))
end

do
	local DBI = require 'DBI'
	local path = dir .. '/dbi.db'
	os.remove(path)
	local db = assert(DBI.Connect('SQLite3', path))
	assert(db:prepare('create table t(id integer primary key, name text, v real)')):execute()
	db:autocommit(false)
	local ins = assert(db:prepare('insert into t values(?, ?, ?)'))
	local t0 = clock()
	for i = 1, n do
		assert(ins:execute(i, 'name' .. i, i * 0.5))
	end
	assert(db:commit())
	report('luadbi', 'insert (one transaction)', n, clock() - t0)
	-- With autocommit off, LuaDBI has begun a transaction again after the
	-- commit: the lookups run in it (bench/sqlite.lua's in one too).
	local sel = assert(db:prepare('select name, v from t where id = ?'))
	local sum = 0
	t0 = clock()
	for k = 0, lookups - 1 do
		sel:execute((k * 7919) % n + 1)
		sum = sum + #sel:fetch(false)[1]
	end
	report('luadbi', 'point select (prepared)', lookups, clock() - t0)
	assert(sum > 0)
	db:close()
end

do
	local luasql = require 'luasql.sqlite3'
	local env = luasql.sqlite3()
	local path = dir .. '/luasql.db'
	os.remove(path)
	local con = assert(env:connect(path))
	assert(con:execute('create table t(id integer primary key, name text, v real)'))
	local fmt = string.format
	local t0 = clock()
	assert(con:execute('begin'))
	for i = 1, n do
		assert(con:execute(fmt("insert into t values(%d, 'name%d', %s)", i, i, i * 0.5)))
	end
	assert(con:execute('commit'))
	report('luasql', 'insert (one transaction)', n, clock() - t0)
	local sum = 0
	assert(con:execute('begin'))
	t0 = clock()
	for k = 0, lookups - 1 do
		local cur = con:execute(fmt('select name, v from t where id = %d', (k * 7919) % n + 1))
		sum = sum + #cur:fetch()
		cur:close()
	end
	report('luasql', 'point select', lookups, clock() - t0)
	assert(con:execute('commit'))
	assert(sum > 0)
	con:close()
	env:close()
end
