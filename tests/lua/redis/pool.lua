-- redis.pool and lem.redis.queued against a real redis-server: many
-- coroutines sharing a pool or one queued connection (no 'busy'), the
-- pool's size bound, a server restarted mid-load costing no call, options
-- checked, and redis over TLS with a client certificate (mutual TLS).
local support = dofile('support.lua')
local utils = require 'lem.utils'
local io = require 'lem.io'
local S = dofile('redis/data/server.lua')
local redis = S.redis
local queued = require 'lem.redis.queued'

local srv = S.start()

-- A plain connection shared by three coroutines: the others are 'busy'.
local r = assert(redis.connect('127.0.0.1', srv.port))
local function together(n, f)
	local left, results = n, {}
	local done = utils.newsleeper()
	for i = 1, n do
		utils.spawn(function()
			results[i] = { f(i) }
			left = left - 1
			if left == 0 then done:wakeup() end
		end)
	end
	done:sleep()
	return results
end
local res = together(3, function(i) return r:call('SET', 'k' .. i, i) end)
local busy = 0
for _, v in ipairs(res) do if v[2] == 'busy' then busy = busy + 1 end end
eq(busy, 2, 'a shared plain connection is busy for two of three')
r:close()

-- A queued connection: every call waits its turn.
local q = assert(queued.connect('127.0.0.1', srv.port))
res = together(20, function(i) return q:set('q' .. i, i) end)
for i = 1, 20 do eq(res[i][1], 'OK', 'queued set ' .. i) end
res = together(20, function(i) return q:get('q' .. i) end)
for i = 1, 20 do eq(res[i][1], tostring(i), 'queued get ' .. i) end
eq(q:call('PING'), 'PONG', 'queued call')
eq(q:pipeline { { 'INCR', 'qn' }, { 'INCR', 'qn' } }, { 1, 2 }, 'queued pipeline')
-- lock/unlock: a transaction in a row.
local raw = q:lock()
raw:multi(); raw:incr('qn'); local ex = raw:exec()
q:unlock()
eq(ex, { 3 }, 'a transaction under lock')
assert(not q:closed(), 'queued open')
q:close()
assert(q:closed(), 'queued closed')
eq(select(2, q:get('q1')), 'closed', 'queued call after close')

-- A pool: 50 coroutines, 4 connections.
local p = redis.pool('127.0.0.1', srv.port, { size = 4 })
res = together(50, function(i) return p:set('p' .. i, i) end)
for i = 1, 50 do eq(res[i][1], 'OK', 'pool set ' .. i) end
res = together(50, function(i) return p:get('p' .. i) end)
for i = 1, 50 do eq(res[i][1], tostring(i), 'pool get ' .. i) end
eq(p.count, 4, 'the pool made no more than its size')
eq(p:pipeline { { 'SET', 'a', 1 }, { 'GET', 'a' } }, { 'OK', '1' }, 'pool pipeline')
eq(p:call('PING'), 'PONG', 'pool call')
local v, err = p:call('NOSUCH')
assert(v == nil and err:match('^ERR unknown command'), tostring(err))
eq(p:ping(), 'PONG', 'pool after an error reply')
-- get/put by hand.
local c = assert(p:acquire())
eq(c:ping(), 'PONG', 'a connection out of the pool')
p:release(c)

-- The server restarts mid-load: the pooled connections all die, and no
-- call made once it is back fails (the workers hold off while it is down).
local port = srv.port
local failed, calls, after = 0, 0, 0
local stop, down, paused = false, false, 0
local load = together(1, function()
	local workers = 0
	local done, held = utils.newsleeper(), utils.newsleeper()
	for w = 1, 8 do
		workers = workers + 1
		utils.spawn(function()
			while not stop do
				if down then
					paused = paused + 1
					if paused == 8 then held:wakeup() end
					while down do utils.newsleeper():sleep(0.01) end
					paused = paused - 1
				end
				local ok, e = p:incr('restart' .. w)
				calls = calls + 1
				if not ok then failed = failed + 1; print('failed: ' .. tostring(e)) end
				utils.yield()
			end
			workers = workers - 1
			if workers == 0 then done:wakeup() end
		end)
	end
	local sl = utils.newsleeper()
	sl:sleep(0.1)
	down = true
	held:sleep()
	S.stop(srv)
	srv = S.start(nil, port)
	local before = calls
	down = false
	sl:sleep(0.1)
	after = calls - before
	stop = true
	done:sleep()
	return true
end)
assert(load[1][1])
assert(after > 8, 'calls made after the restart: ' .. after)
eq(failed, 0, 'calls failed across a restart (of ' .. calls .. ')')
p:close()
eq(select(2, p:acquire()), 'closed', 'a closed pool')
eq(select(2, p:get('a')), 'closed', 'a command on a closed pool')
eq(p.count, 0, 'a closed pool keeps nothing')

-- Unix socket pool.
local up = redis.pool(srv.sock)
eq(up:ping(), 'PONG', 'unix pool')
up:close()

-- Options are checked.
checkerr("unknown option 'timout'", redis.connect, '127.0.0.1', srv.port, { timout = 1 })
checkerr("unknown option 'sise'", redis.pool, '127.0.0.1', srv.port, { sise = 1 })
checkerr('size must be a positive integer', redis.pool, '127.0.0.1', srv.port, { size = 0 })
checkerr("unknown tls option 'cafil'", redis.connect, '127.0.0.1', srv.port, { tls = { cafil = 'x' } })
checkerr("unknown option 'x'", queued.connect, '127.0.0.1', srv.port, { x = 1 })
S.stop(srv)

-- Redis over TLS, which asks for a client certificate.
local ca, cert, key = support.certs()
local tport = support.free_port()
local proc = assert(io.spawn({ 'redis-server', '--port', '0', '--tls-port', tostring(tport),
	'--bind', '127.0.0.1', '--tls-cert-file', cert, '--tls-key-file', key,
	'--tls-ca-cert-file', ca, '--save', '', '--appendonly', 'no', '--dir', tmpdir() },
	{ stdout = 'null', stderr = 'null' }))
local sleeper = utils.newsleeper()
for _ = 1, 200 do
	local s = io.tcp.connect('127.0.0.1', tport)
	if s then s:close() break end
	sleeper:sleep(0.02)
end
local t = assert(redis.connect('localhost', tport, { tls = { cafile = ca, cert = cert, key = key } }))
eq(t:ping(), 'PONG', 'redis over mutual TLS')
t:close()
local tp = redis.pool('localhost', tport, { tls = { cafile = ca, cert = cert, key = key }, size = 2 })
res = together(10, function(i) return tp:set('t' .. i, i) end)
for i = 1, 10 do eq(res[i][1], 'OK', 'tls pool set ' .. i) end
tp:close()
-- Without the client certificate the server refuses: the error says so.
local nt, terr = redis.connect('localhost', tport, { tls = { cafile = ca } })
if nt then
	-- TLS 1.3: the refusal comes with the first reply.
	nt, terr = nt:ping()
end
eq(nt, nil, 'no client certificate')
assert(type(terr) == 'string', tostring(terr))
proc:kill()
proc:wait()
print('redis pool ok')
