-- lem.redis against a real redis-server: every reply type, nulls, binary
-- values, large values, SELECT, AUTH, error replies, pipelines, pub/sub,
-- timeouts, busy, and a server killed mid-call.
dofile('support.lua')
local utils = require 'lem.utils'
local S = dofile('redis/data/server.lua')
local redis = S.redis
local null = redis.null

local srv = S.start()
local r = assert(redis.connect('127.0.0.1', srv.port))

-- reply types
eq(r:call('PING'), 'PONG', 'status')
eq(r:set('k', 'v'), 'OK', 'set as method')
eq(r:get('k'), 'v', 'bulk')
eq(r:incr('n'), 1, 'integer')
eq(r:incrby('n', -5), -4, 'negative integer')
assert(r:get('missing') == null, 'null bulk is redis.null')
assert(type(null) ~= 'nil' and null ~= false, 'null is a value')
eq(r:call('RPUSH', 'l', 'a', 'b', 'c'), 3, 'rpush')
eq(r:lrange('l', 0, -1), { 'a', 'b', 'c' }, 'array')
eq(r:lrange('nol', 0, -1), {}, 'empty array')
assert(r:call('BLPOP', 'nol', 0.05) == null, 'null array is redis.null')
local mg = r:mget('k', 'missing', 'k')
eq(#mg, 3, 'mget')
assert(mg[1] == 'v' and mg[2] == null and mg[3] == 'v', 'null inside array')
r:hset('h', 'f1', 'x', 'f2', 'y')
local h = r:hgetall('h')
eq(#h, 4, 'hgetall')
-- nested arrays and an error inside one (EXEC)
eq(r:multi(), 'OK', 'multi')
eq(r:incr('n'), 'QUEUED', 'queued')
eq(r:lpush('k', 'x'), 'QUEUED', 'queued wrong type')
eq(r:lrange('l', 0, 0), 'QUEUED', 'queued array')
local ex = r:exec()
eq(ex[1], -3, 'exec integer')
assert(type(ex[2]) == 'table' and ex[2].err:match('^WRONGTYPE'), 'error inside array')
eq(ex[3], { 'a' }, 'nested array')
-- error replies
local v, err = r:call('NOSUCHCOMMAND', 'x')
assert(v == nil and err:match('^ERR unknown command'), tostring(err))
v, err = r:lpush('k', 'x')
assert(v == nil and err:match('^WRONGTYPE'), tostring(err))
eq(r:ping(), 'PONG', 'usable after an error reply')
-- numbers as arguments
eq(r:set('f', 1.5), 'OK', 'float arg')
eq(r:get('f'), '1.5', 'float back')
checkerr('string or number expected', r.call, r, 'SET', 'a', {})

-- binary-safe values
local bin = 'a\r\nb\0c\r\n\0\r\n$3\r\n*1\r\n'
eq(r:set(bin, bin), 'OK', 'binary set')
eq(r:get(bin), bin, 'binary get')
local all = {}
for i = 0, 255 do all[#all + 1] = string.char(i) end
all = table.concat(all)
r:set('all', all)
eq(r:get('all'), all, 'every byte')

-- large values
local big = string.rep('0123456789abcdef', 1048576) -- 16 MiB
eq(r:set('big', big), 'OK', 'big set')
local got = r:get('big')
eq(#got, #big, 'big length')
assert(got == big, 'big value')
eq(r:strlen('big'), 16 * 1048576, 'strlen')
r:del('big')

-- pipelines of 10,000 commands
local cmds = {}
for i = 1, 10000 do cmds[i] = { 'SET', 'p' .. i, i } end
local res = assert(r:pipeline(cmds))
eq(#res, 10000, 'pipeline replies')
for i = 1, 10000 do assert(res[i] == 'OK') end
cmds = {}
for i = 1, 10000 do cmds[i] = { 'GET', 'p' .. i } end
res = assert(r:pipeline(cmds))
for i = 1, 10000 do assert(res[i] == tostring(i), 'pipeline get ' .. i) end
res = assert(r:pipeline { { 'PING' }, { 'LPUSH', 'k', 'x' }, { 'GET', 'nope' }, { 'ECHO', 'e' } })
eq(res[1], 'PONG', 'pipeline 1')
assert(type(res[2]) == 'table' and res[2].err:match('^WRONGTYPE'), 'pipeline error element')
assert(res[3] == null, 'pipeline null')
eq(res[4], 'e', 'pipeline after error')
eq(r:pipeline {}, {}, 'empty pipeline')
checkerr('command 2 is not an array', r.pipeline, r, { { 'PING' }, 'PING' })

-- SELECT through options, Unix socket
local u = assert(redis.connect(srv.sock, { db = 3 }))
eq(u:set('only3', 'yes'), 'OK', 'unix set')
eq(r:get('only3'), null, 'other db')
eq(r:select(3), 'OK', 'select')
eq(r:get('only3'), 'yes', 'same db')
r:select(0)
v, err = redis.connect(srv.sock, { db = 99 })
assert(v == nil and err:match('^ERR'), 'bad db: ' .. tostring(err))

-- A call needs a command.
checkerr("bad argument #1 to 'call' (command expected)", u.call, u)
checkerr("bad argument #1 to 'call' (command expected)", u.call, u, nil)

-- busy: one caller at a time
local done
utils.spawn(function() done = { u:call('BLPOP', 'never', 0.2) } end)
utils.newsleeper():sleep(0.02)
v, err = u:ping()
eq({ v, err }, { nil, 'busy' }, 'busy')
while not done do utils.newsleeper():sleep(0.01) end
assert(done[1] == null, 'blpop timed out on the server')

-- timeout: the connection is closed afterwards (replies out of step)
u:settimeout(0.1)
v, err = u:call('BLPOP', 'never', 5)
eq({ v, err }, { nil, 'timeout' }, 'timeout')
v, err = u:ping()
eq({ v, err }, { nil, 'closed' }, 'closed after timeout')
u:close()
local t = assert(redis.connect('127.0.0.1', srv.port, { timeout = 5 }))
eq(t:ping(), 'PONG', 'timeout option')
t:close()

-- pub/sub between two connections
local sub = assert(redis.connect('127.0.0.1', srv.port))
assert(sub:subscribe('ch1', 'ch2'))
assert(sub:psubscribe('news.*'))
v, err = sub:get('k')
assert(v == nil and err:match('subscribed'), 'commands refused while subscribed')
eq(r:publish('ch1', 'hello'), 1, 'publish')
eq({ sub:message() }, { 'message', 'ch1', 'hello' }, 'message')
r:publish('news.x', 'a\0b')
eq({ sub:message() }, { 'pmessage', 'news.x', 'a\0b', 'news.*' }, 'pmessage')
-- a message that arrives while the reader waits
utils.spawn(function() r:publish('ch2', 'later') end)
eq({ sub:message() }, { 'message', 'ch2', 'later' }, 'waited message')
sub:close()

-- AUTH with requirepass
local srv2 = S.start({ '--requirepass', 's3cret' })
v, err = redis.connect('127.0.0.1', srv2.port, { password = 'wrong' })
assert(v == nil and err:match('WRONGPASS') or err:match('invalid'), tostring(err))
local a = assert(redis.connect('127.0.0.1', srv2.port, { password = 's3cret', db = 1 }))
eq(a:ping(), 'PONG', 'authenticated')
local na = assert(redis.connect('127.0.0.1', srv2.port))
v, err = na:ping()
assert(v == nil and err:match('^NOAUTH'), tostring(err))

-- the server killed mid-call: nil, err, and the script goes on
utils.spawn(function()
	utils.newsleeper():sleep(0.1)
	S.stop(srv2)
end)
v, err = a:call('BLPOP', 'never', 10)
assert(v == nil and type(err) == 'string', 'killed: ' .. tostring(err))
v, err = a:ping()
eq({ v, err }, { nil, 'closed' }, 'closed after the server died')
v, err = redis.connect('127.0.0.1', srv2.port)
assert(v == nil, 'no server')

r:close()
eq({ r:close() }, { nil, 'closed' }, 'close twice')
S.stop(srv)
print('ok')
