-- lem.postgres's statement cache, against a real PostgreSQL cluster: exec
-- with parameters prepares a statement once per connection and later sends
-- Bind/Execute only. What the server holds is read from its own
-- pg_prepared_statements (by simple queries, which do not use the cache):
-- hits give the results of the uncached path, the least recently used is
-- closed past the size, a schema change between two execs is retried
-- (outside a transaction) or returned (inside one), errors in a transaction
-- leave no name the server does not know, DISCARD ALL and DEALLOCATE (seen
-- or not) are survived, the off switch, a bound over many distinct
-- statements, and one cache per connection of a pool.
dofile('support.lua')
local postgres = require 'lem.postgres'
local queued = require 'lem.postgres.queued'
local S = dofile('postgres/data/server.lua')

local srv = S.start()
local info = ('host=%s port=%d user=postgres dbname=postgres'):format(srv.dir, srv.port)

-- The cache's statements on the server for db: { [query] = name }, count.
local function held(db)
	local r = assert(db:exec("SELECT name, statement FROM pg_prepared_statements WHERE name LIKE '\\_\\_lem\\_%'"))
	local t = {}
	for i = 1, #r do t[r[i][2]] = r[i][1] end
	return t, #r
end

local function count(db)
	return select(2, held(db))
end

local db = assert(postgres.connect(info))
local plain = assert(postgres.connect(info, { statement_cache = false }))
assert(db:exec('CREATE TABLE t (id int PRIMARY KEY, name text, note text)'))
assert(db:exec("INSERT INTO t VALUES (1, 'one', NULL), (2, 'two', 'x'), (3, 'three', 'y')"))

-- hits give what the uncached path gives
local unpack = table.unpack or unpack
local function pack(...) return { n = select('#', ...), ... } end
local queries = {
	pack('SELECT id, name, note FROM t WHERE id >= $1 ORDER BY id', 2),
	pack('SELECT id, name, note FROM t WHERE id = $1', 1),
	pack('SELECT * FROM t WHERE id = $1', 99),
	pack('SELECT $1::text AS a, $2::int AS b, $3::bool AS c', nil, '7', false),
	pack('UPDATE t SET note = note WHERE id = $1', 1),
	pack('INSERT INTO t VALUES ($1, $2, NULL) ON CONFLICT (id) DO UPDATE SET name = $2 RETURNING id, name', 4, 'four'),
}
for _, q in ipairs(queries) do
	local want = { plain:exec(unpack(q, 1, q.n)) }
	assert(want[1], want[2])
	for round = 1, 3 do
		eq({ db:exec(unpack(q, 1, q.n)) }, want, q[1] .. ': round ' .. round .. ' as uncached')
	end
end
local names, n = held(db)
eq(n, #queries, 'one statement per query text')
assert(names[queries[1][1]], 'the statement is the query')
eq(count(plain), 0, 'statement_cache = false prepares nothing')
local r = assert(db:exec('SELECT id, name FROM t WHERE id = $1', 2))
r[0][1] = 'changed'
eq(db:exec('SELECT id, name FROM t WHERE id = $1', 2)[0], { 'id', 'name' }, 'a result names its columns in a copy')

-- numbers go as the text tostring gives them (whole ones written by lem)
for _, v in ipairs { 0, 7, -5, 123456789, math.maxinteger or 2 ^ 53, math.mininteger or -2 ^ 53,
	2 ^ 53, 1e14, 99999999999999, -99999999999999, 1.5, -0.0, 1e300, 1 / 3 } do
	eq(db:exec('SELECT $1::text AS v', v)[1][1], tostring(v), 'the number ' .. tostring(v))
end

-- errors on a hit: returned, the statement kept
local ok, err = db:exec('SELECT id, name, note FROM t WHERE id = $1', 'nope')
assert(ok == nil and err:find('invalid input syntax for type integer', 1, true), err)
eq(held(db)[queries[2][1]], names[queries[2][1]], 'kept after an error in Bind')
checkerr("bad argument #2 to 'exec' (string, number, boolean or nil expected)", db.exec, db,
	'SELECT id, name, note FROM t WHERE id = $1', {})
checkerr("bad argument #3 to 'exec' (string, number, boolean or nil expected)", db.exec, db,
	'SELECT $1::text AS a, $2::int AS b, $3::bool AS c', 1, {})
eq(db:exec('SELECT id, name, note FROM t WHERE id = $1', 2)[1][2], 'two', 'usable after a misuse')
checkerr("bad argument #2 to 'run'", db.run, db, 'nosuch', {})

-- the least recently used goes past the size
local small = assert(postgres.connect(info, { statement_cache = 3 }))
local function sel(i) return assert(small:exec('SELECT $1::int + ' .. i .. ' AS v', 1))[1][1] end
eq({ sel(1), sel(2), sel(3), sel(1) }, { '2', '3', '4', '2' }, 'three statements, then a hit')
eq(sel(4), '5', 'a fourth')
names, n = held(small)
eq(n, 3, 'still three on the server')
assert(names['SELECT $1::int + 1 AS v'] and not names['SELECT $1::int + 2 AS v'], 'the least recently used (2) closed')
eq(sel(2), '3', 'prepared again')
assert(not held(small)['SELECT $1::int + 3 AS v'], 'then 3 closed')
small:close()

-- a schema change between two execs: outside a transaction, made again
local q = 'SELECT * FROM t WHERE id = $1'
eq(db:exec(q, 1)[0], { 'id', 'name', 'note' }, 'before')
assert(db:exec('ALTER TABLE t ADD COLUMN extra int DEFAULT 5'))
r = assert(db:exec(q, 1))
eq({ r[0], r[1][4] }, { { 'id', 'name', 'note', 'extra' }, '5' }, 'a column added: prepared again')
assert(db:exec('ALTER TABLE t RENAME COLUMN extra TO more'))
eq(db:exec(q, 1)[0], { 'id', 'name', 'note', 'more' }, 'a column renamed: the new name')
local before = held(db)[q]
eq(db:exec(q, 1)[0], { 'id', 'name', 'note', 'more' }, 'then a hit')
eq(held(db)[q], before, 'one statement for it')
-- inside a transaction: the error (the transaction is aborted by it), and
-- a new statement after the rollback
local held_before = count(db)
assert(db:exec('BEGIN'))
assert(db:exec('ALTER TABLE t DROP COLUMN more'))
ok, err = db:exec(q, 1)
assert(ok == nil and err:find('cached plan must not change result type', 1, true), err)
ok, err = db:exec(q, 1)
assert(ok == nil and err:find('current transaction is aborted', 1, true), err)
assert(db:exec('ROLLBACK'))
eq(db:exec(q, 1)[0], { 'id', 'name', 'note', 'more' }, 'after the rollback')
eq(count(db), held_before, 'the stale statement closed, none left over')

-- errors in a transaction, then reuse: no name the server does not know
local qa, qb = 'SELECT name FROM t WHERE id = $1', 'SELECT note FROM t WHERE id = $1'
assert(db:exec('BEGIN'))
eq(db:exec(qa, 1)[1][1], 'one', 'prepared in a transaction')
ok, err = db:exec('SELECT 1/0')
assert(ok == nil and err:find('division by zero', 1, true), err)
ok, err = db:exec(qb, 2)
assert(ok == nil and err:find('current transaction is aborted', 1, true), err)
ok, err = db:exec(qa, 1)
assert(ok == nil and err:find('current transaction is aborted', 1, true), err)
assert(db:exec('ROLLBACK'))
names = held(db)
assert(names[qa] and not names[qb], 'kept what the server prepared, not what it refused')
eq(db:exec(qa, 1)[1][1], 'one', 'prepared in a rolled back transaction: still there')
eq(db:exec(qb, 2)[1][1], 'x', 'refused in the failed transaction: prepared now')
assert(db:exec('BEGIN'))
eq(db:exec('SELECT $1::int * 2 AS v', 21)[1][1], '42', 'prepared in a transaction')
ok, err = db:exec('INSERT INTO t VALUES ($1, $2, NULL)', 1, 'dup')
assert(ok == nil and err:find('duplicate key', 1, true), err)
assert(db:exec('ROLLBACK'))
eq(db:exec('SELECT $1::int * 2 AS v', 21)[1][1], '42', 'then used after the rollback')
eq(db:exec('INSERT INTO t VALUES ($1, $2, NULL)', 5, 'five'), true, 'one that failed in Execute, used again')

-- DISCARD ALL, DEALLOCATE ALL, DEALLOCATE name: seen, and survived
local total = count(db)
assert(total > 5)
assert(db:exec('DISCARD ALL'))
eq(count(db), 0, 'DISCARD ALL dropped them all')
eq(db:exec(qa, 1)[1][1], 'one', 'after DISCARD ALL')
eq(count(db), 1, 'prepared again')
assert(db:exec('DEALLOCATE ALL'))
eq(db:exec(qa, 1)[1][1], 'one', 'after DEALLOCATE ALL')
eq(db:exec(qb, 2)[1][1], 'x', 'another')
assert(db:exec('DEALLOCATE ' .. held(db)[qa]))
eq(db:exec(qa, 1)[1][1], 'one', 'after DEALLOCATE of it')
eq(db:exec(qb, 2)[1][1], 'x', 'and the other, closed with it')
eq(count(db), 2, 'no statement left over')
-- unseen (the tag is DO's): the next exec finds its statement gone
assert(db:exec("DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$"))
eq(count(db), 0, 'gone behind the cache')
eq(db:exec(qa, 1)[1][1], 'one', 'made again outside a transaction')
assert(db:exec("DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$"))
assert(db:exec('BEGIN'))
ok, err = db:exec(qa, 1)
assert(ok == nil and err:find('does not exist', 1, true), err)
assert(db:exec('ROLLBACK'))
eq(db:exec(qa, 1)[1][1], 'one', 'inside one: the error, then prepared again')
eq(count(db), 1, 'one statement')

-- reset: a new session, a new cache
assert(db:reset())
eq(count(db), 0, 'a new session holds none')
eq(db:exec(qa, 1)[1][1], 'one', 'prepared in the new session')

-- many distinct statements stay bounded (the default size: 100)
for i = 1, 1000 do
	eq(db:exec('SELECT $1::int + ' .. i, 0)[1][1], tostring(i), 'distinct statement ' .. i)
end
eq(count(db), 100, 'at most 100 statements on the server')
db:close()

-- the off switch, and its checks
local off = assert(postgres.connect(info, { statement_cache = 0 }))
for _ = 1, 3 do eq(off:exec(qa, 1)[1][1], 'one', 'statement_cache = 0 works') end
eq(count(off), 0, 'and prepares nothing')
off:close()
checkerr('statement_cache must be a size or false, got -1', postgres.connect, info, { statement_cache = -1 })
checkerr('statement_cache must be a size or false, got true', postgres.connect, info, { statement_cache = true })
checkerr("unknown option 'statement_cahce'", postgres.connect, info, { statement_cahce = 1 })
checkerr('statement_cache must be a size or false, got 1.5', postgres.pool, info, { statement_cache = 1.5 })
checkerr("unknown option 'statement_cahce'", postgres.pool, info, { statement_cahce = 1 })

-- a pool: one cache per connection (pg_prepared_statements is per session)
local pool = postgres.pool(info, { size = 2, statement_cache = 10 })
local a, b = assert(pool:get()), assert(pool:get())
assert(a ~= b)
eq(a:exec(qa, 1)[1][1], 'one', 'on the first connection')
eq(count(b), 0, 'the second has none of it')
eq(b:exec(qa, 2)[1][1], 'two', 'prepared on the second too')
eq({ count(a), count(b) }, { 1, 1 }, 'one each')
pool:put(a)
pool:put(b)
for _ = 1, 20 do eq(pool:exec(qb, 3)[1][1], 'y', 'through pool:exec') end
a, b = assert(pool:get()), assert(pool:get())
assert(count(a) <= 2 and count(b) <= 2 and count(a) + count(b) >= 3, 'each prepared qb at most once')
pool:put(a)
pool:put(b)
pool:close()
local offpool = postgres.pool(info, { statement_cache = false })
eq(offpool:exec(qa, 1)[1][1], 'one', 'a pool without a cache')
a = assert(offpool:get())
eq(count(a), 0, 'prepares nothing')
offpool:put(a)
offpool:close()

-- queued connections take the options
local qdb = assert(queued.connect(info, { statement_cache = false }))
eq(qdb:exec(qa, 1)[1][1], 'one', 'queued, without a cache')
eq(count(qdb), 0, 'prepares nothing')
qdb:close()
qdb = assert(queued.connect(info))
eq({ qdb:exec(qa, 1)[1][1], qdb:exec(qa, 1)[1][1] }, { 'one', 'one' }, 'queued, cached')
eq(count(qdb), 1, 'one statement')
qdb:close()

plain:close()
S.stop(srv)
print('ok')
