-- lem.postgres against a real PostgreSQL cluster started by the test: the
-- original lem-postgres's behaviours one by one (results, NULLs, several
-- statements, parameters, prepare/run, COPY, errors, busy, closed,
-- interrupted, reset), authentication (trust, SCRAM-SHA-256, MD5,
-- password), URLs, large and binary values, LISTEN/NOTIFY, timeouts, the
-- queued variant, a pool shared by 100 coroutines, and the server killed
-- mid-query.
dofile('support.lua')
local utils = require 'lem.utils'
local postgres = require 'lem.postgres'
local queued = require 'lem.postgres.queued'
local S = dofile('postgres/data/server.lua')

local srv = S.start()
local sockinfo = ('host=%s port=%d user=postgres dbname=postgres'):format(srv.dir, srv.port)
local db = assert(postgres.connect(sockinfo))
assert(getmetatable(db) == postgres.Connection, 'postgres.Connection is the metatable')

-- commands and results
eq(db:exec('CREATE TABLE t (id int PRIMARY KEY, name text, note text)'), true, 'a command')
eq(db:exec("INSERT INTO t VALUES (1, 'one', NULL), (2, '', 'x')"), true, 'insert')
eq(db:exec('INSERT INTO t VALUES ($1, $2, $3)', 3, 'three', nil), true, 'parameters')
local r = assert(db:exec('SELECT id, name, note FROM t ORDER BY id'))
eq(r[0], { 'id', 'name', 'note' }, 'column names at 0')
eq(#r, 3, 'rows')
eq({ r[1][1], r[1][2], r[1][3] }, { '1', 'one', nil }, 'strings, NULL as nil')
eq(r[2][2], '', 'an empty string')
eq(r[3][3], nil, 'a nil parameter is NULL')
eq(r[1].n, 3, 'the column count in n')
local a, b = db:exec('SELECT 1 AS x; UPDATE t SET note = note; SELECT $$two$$ AS y')
eq({ a[0][1], a[1][1], b[0][1], b[1][1] }, { 'x', '1', 'y', 'two' }, 'several statements: several results')
r = assert(db:exec('SELECT $1::int + $2::int AS s, $3::bool AS b', 40, '2', true))
eq({ r[1][1], r[1][2] }, { '42', 't' }, 'numbers, strings and booleans as parameters')
eq(#assert(db:exec('SELECT * FROM t WHERE false')), 0, 'no rows')

-- errors are the server's messages, and the connection goes on
local ok, err = db:exec('SELEC 1')
assert(ok == nil and err:find('^ERROR:  syntax error at or near "SELEC"'), err)
ok, err = db:exec("INSERT INTO t VALUES (1, 'again', NULL)")
assert(ok == nil and err:find('duplicate key value violates unique constraint "t_pkey"', 1, true)
	and err:find('DETAIL:  Key (id)=(1) already exists.', 1, true), err)
ok, err = db:exec('SELECT $1::int', 'nope')
assert(ok == nil and err:find('invalid input syntax for type integer', 1, true), err)
eq(db:exec('SELECT 1')[1][1], '1', 'usable after errors')
checkerr('string expected', db.exec, db, 42)
checkerr('string, number, boolean or nil expected', db.exec, db, 'SELECT $1', {})
eq(db:exec('SELECT 2')[1][1], '2', 'usable after a misuse')

-- prepare and run
eq(db:prepare('byid', 'SELECT name FROM t WHERE id = $1'), true, 'prepare')
eq(db:run('byid', 1)[1][1], 'one', 'run')
eq(db:run('byid', 2)[1][1], '', 'run again')
ok, err = db:run('nosuch', 1)
assert(ok == nil and err:find('prepared statement "nosuch" does not exist', 1, true), err)
ok, err = db:prepare('bad', 'SELEC')
assert(ok == nil and err:find('syntax error', 1, true), err)

-- large and binary values
local big = string.rep('0123456789abcdef', 1048576)
eq(db:exec('INSERT INTO t VALUES (10, $1, NULL)', big), true, '16 MiB in')
eq(db:exec('SELECT name FROM t WHERE id = 10')[1][1] == big, true, '16 MiB out')
local all = {}
for i = 0, 255 do all[#all + 1] = string.char(i) end
all = table.concat(all)
local hex = all:gsub('.', function(c) return ('%02x'):format(c:byte()) end)
r = assert(db:exec("SELECT encode(decode($1, 'hex'), 'hex') AS h, length(decode($1, 'hex')) AS n", hex))
eq({ r[1][1], r[1][2] }, { hex, '256' }, 'every byte through bytea')
eq(db:exec("SELECT 'héllo, 世界' AS s")[1][1], 'héllo, 世界', 'UTF-8')

-- COPY: 100,000 rows in, then out
eq(db:exec('CREATE TABLE c (i int, s text)'), true, 'copy table')
eq(db:exec('COPY c FROM STDIN'), true, 'COPY FROM STDIN')
eq({ db:exec('SELECT 1') }, { nil, 'busy' }, 'busy during a COPY')
local chunk = {}
for i = 1, 100000 do
	chunk[#chunk + 1] = i .. '\trow ' .. i .. '\n'
	if #chunk == 1000 then
		assert(db:put(table.concat(chunk)))
		chunk = {}
	end
end
eq(db:done(), true, 'done')
eq(db:exec('SELECT count(*), sum(i) FROM c')[1], { '100000', '5000050000', n = 2 }, 'copied in')
eq(db:exec('COPY c TO STDOUT'), true, 'COPY TO STDOUT')
local n, last = 0, nil
while true do
	local line = assert(db:get())
	if line == true then break end
	n, last = n + 1, line
end
eq({ n, last }, { 100000, '100000\trow 100000\n' }, 'copied out')
eq(db:exec('COPY c FROM STDIN'), true, 'a COPY to abort')
assert(db:put('1\tx\n'))
ok, err = db:done('changed my mind')
assert(ok == nil and err:find('changed my mind', 1, true), err)
ok, err = db:exec('COPY c FROM STDIN')
assert(db:put('not a number\tx\n'))
ok, err = db:done()
assert(ok == nil and err:find('invalid input syntax for type integer', 1, true), err)
eq({ db:put('x') }, { nil, 'not in COPY FROM STDIN' }, 'put outside COPY')
eq({ db:get() }, { nil, 'not in COPY TO STDOUT' }, 'get outside COPY')
eq(db:exec('SELECT count(*) FROM c')[1][1], '100000', 'aborted COPYs added nothing')

-- busy and interrupted
local results = {}
utils.spawn(function() results.slow = { db:exec('SELECT pg_sleep(0.2)') } end)
utils.yield()
eq({ db:exec('SELECT 1') }, { nil, 'busy' }, 'busy')
utils.newsleeper():sleep(0.4)
eq(#results.slow, 1, 'the slow query ended')
utils.spawn(function() results.cut = { db:exec('SELECT pg_sleep(5)') } end)
utils.newsleeper():sleep(0.1)
eq(db:closed(), false, 'closed() while open')
eq(db:close(), true, 'close')
eq(db:closed(), true, 'closed() after close')
utils.yield()
eq(results.cut, { nil, 'interrupted' }, 'a query cut by close')
eq({ db:close() }, { nil, 'already closed' }, 'close twice')
eq({ db:exec('SELECT 1') }, { nil, 'closed' }, 'exec after close')
eq(db:reset(), true, 'reset reconnects')
eq(db:exec('SELECT 3')[1][1], '3', 'after reset')

-- authentication over TCP, and URLs
eq(db:exec([[CREATE ROLE lem LOGIN PASSWORD 'secret';
	SET password_encryption = 'md5'; CREATE ROLE lemmd5 LOGIN PASSWORD 'secret';
	CREATE ROLE lempw LOGIN PASSWORD 'secret']]), true, 'roles')
for _, user in ipairs { 'lem', 'lemmd5', 'lempw' } do
	local c = assert(postgres.connect(('host=127.0.0.1 port=%d user=%s password=secret dbname=postgres')
		:format(srv.port, user)))
	eq(c:exec('SELECT current_user')[1][1], user, 'logged in as ' .. user)
	c:close()
	ok, err = postgres.connect(('host=127.0.0.1 port=%d user=%s password=wrong dbname=postgres')
		:format(srv.port, user))
	assert(not ok and err:find('password authentication failed for user "' .. user .. '"', 1, true), err)
	ok, err = postgres.connect(('host=127.0.0.1 port=%d user=%s dbname=postgres'):format(srv.port, user))
	assert(not ok and err == 'fe_sendauth: no password supplied', err)
end
local u = assert(postgres.connect(('postgresql://lem:s%%65cret@127.0.0.1:%d/postgres?application_name=t1')
	:format(srv.port)))
eq(u:exec('SELECT current_setting($$application_name$$)')[1][1], 't1', 'URL with a parameter')
u:close()
u = assert(postgres.connect(("host='%s' port = %d user=postgres"):format(srv.dir, srv.port)))
u:close()
ok, err = postgres.connect('host=127.0.0.1 port=1 user=x')
assert(not ok and err:find('error connecting', 1, true), err)
ok, err = postgres.connect("host='unterminated")
assert(not ok and err:find('unterminated', 1, true), err)
ok, err = postgres.connect(('sslmode=require host=127.0.0.1 port=%d user=postgres'):format(srv.port))
eq({ ok, err }, { nil, 'server does not support SSL, but SSL was required' }, 'require without TLS')
checkerr('string expected', postgres.connect, nil)

-- LISTEN / NOTIFY between two connections
local l = assert(postgres.connect(sockinfo))
eq(l:listen('news'), true, 'listen')
local got
utils.spawn(function() got = { l:notification() } end)
utils.yield()
assert(db:exec("NOTIFY news, 'hello'"))
utils.newsleeper():sleep(0.1)
eq({ got[1], got[2], type(got[3]) }, { 'news', 'hello', 'number' }, 'notification')
assert(db:exec("SELECT pg_notify('news', 'one'), pg_notify('news', 'two')"))
eq(l:exec('SELECT 1')[1][1], '1', 'a query while notifications come')
eq({ l:notification() }, { 'news', 'one', got[3] }, 'a queued notification')
eq(select(2, l:notification()), 'two', 'the next one')

-- a timeout closes the connection
l:settimeout(0.1)
eq({ l:exec('SELECT pg_sleep(1)') }, { nil, 'timeout' }, 'timeout')
eq({ l:exec('SELECT 1') }, { nil, 'closed' }, 'closed after a timeout')

-- queued: 50 coroutines on one connection wait their turn
local q = assert(queued.connect(sockinfo))
local done, bad = 0, {}
for i = 1, 50 do
	utils.spawn(function()
		local res, e = q:exec('SELECT $1::int * 2, pg_sleep(0.001)', i)
		if res and res[1][1] == tostring(2 * i) then done = done + 1 else bad[#bad + 1] = e end
	end)
end
local raw = q:lock()
eq(raw:exec('SELECT 5')[1][1], '5', 'lock gives the raw connection')
q:unlock()
while done + #bad < 50 do utils.newsleeper():sleep(0.01) end
eq({ done, bad[1] }, { 50, nil }, 'queued calls')
q:close()

-- a pool shared by 100 coroutines
local pool = postgres.pool(sockinfo, { size = 10 })
done, bad = 0, {}
for i = 1, 100 do
	utils.spawn(function()
		local res, e = pool:exec('SELECT $1::int', i)
		if res and res[1][1] == tostring(i) then done = done + 1 else bad[#bad + 1] = e end
	end)
end
while done + #bad < 100 do utils.newsleeper():sleep(0.01) end
eq({ done, bad[1] }, { 100, nil }, 'pool calls')
assert(pool.count <= 10, pool.count)
local p1 = assert(pool:get())
pool:put(p1)
eq(pool:get(), p1, 'get returns the connection put back')
pool:put(p1)

-- the server killed mid-query: nil, err, the process goes on, and the pool
-- recovers once the server is back
local killed
utils.spawn(function() killed = { db:exec('SELECT pg_sleep(10)') } end)
utils.newsleeper():sleep(0.2)
S.kill(srv)
for _ = 1, 100 do
	if killed then break end
	utils.newsleeper():sleep(0.02)
end
assert(killed and killed[1] == nil and type(killed[2]) == 'string', 'the query failed')
eq({ db:exec('SELECT 1') }, { nil, 'closed' }, 'closed after the server died')
ok, err = pool:exec('SELECT 1')
assert(ok == nil, 'a pool call while the server is down fails')
S.launch(srv)
local back
for _ = 1, 20 do
	back = pool:exec('SELECT 7')
	if back then break end
end
eq(back and back[1][1], '7', 'the pool recovered')
eq(db:reset(), true, 'reset after the restart')
eq(db:exec('SELECT count(*) FROM c')[1][1], '100000', 'the data survived')
db:close()
pool:close()
S.stop(srv)
