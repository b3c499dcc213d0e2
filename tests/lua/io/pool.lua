-- lem.io.pool over real TCP connections to an echo server of our own:
-- reuse, the size bound and its waiters, open failures, unusable
-- connections, the retry past every stale idle connection, raising calls,
-- close, and the options.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local iopool = require 'lem.io.pool'

-- The server echoes lines; 'bye' closes every connection it holds.
local server = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = server:getsockname()
local held, accepted = {}, 0
utils.spawn(function()
	server:autospawn(function(c)
		accepted = accepted + 1
		held[c] = true
		for line in c:lines() do
			if line == 'bye' then
				for o in pairs(held) do o:close() end
				return
			end
			if not c:write(line, '\n') then break end
		end
		held[c] = nil
		c:close()
	end)
end)

local opened = 0
local function open()
	opened = opened + 1
	return io.tcp.connect('127.0.0.1', port)
end
local function echo(c, s)
	local ok, err = c:write(s, '\n')
	if not ok then return nil, err end
	return c:read('*l')
end
-- Close every connection the server holds, from outside the pools.
local function restart()
	local raw = assert(io.tcp.connect('127.0.0.1', port))
	assert(raw:write('bye\n'))
	eq({ raw:read('*l') }, { nil, 'closed' }, 'the server closed them')
	utils.newsleeper():sleep(0.05)
end
local function stale(_, err) return err == 'closed' or err == 'Connection reset by peer' end

-- Reuse: one connection serves calls one after another.
local pool = iopool.new { size = 2, open = open, stale = stale }
eq(pool:run(echo, 'a'), 'a', 'a call')
eq(pool:run(echo, 'b'), 'b', 'a second call')
eq(opened, 1, 'the second call reused the first connection')
local c, reused = pool:acquire()
eq(reused, true, 'acquire gives the idle connection')
pool:release(c)

-- The bound: 10 coroutines, 2 connections at most, every call answered.
local answers = 0
local done = utils.newsleeper()
for i = 1, 10 do
	utils.spawn(function()
		eq(pool:run(echo, 'n' .. i), 'n' .. i, 'a call under load')
		answers = answers + 1
		if answers == 10 then done:wakeup() end
	end)
end
done:sleep()
eq(opened, 2, 'at most size connections were opened')
eq(pool.count, 2, 'count')

-- A server that closed every idle connection (a restart): the call goes
-- past both dead ones and answers on a new connection.
eq(#pool.idle, 2, 'two idle connections')
restart()
opened = 0
eq(pool:run(echo, 'after'), 'after', 'no call lost to dead idle connections')
eq(opened >= 1, true, 'a new connection was made')

-- Without stale(), the failure is the caller's.
local plain = iopool.new { open = open }
eq(plain:run(echo, 'x'), 'x', 'plain pool works')
restart()
local r, err = plain:run(echo, 'y')
eq(r, nil, 'the dead idle connection fails the call')
eq(type(err), 'string', 'with its error')
eq(plain:run(echo, 'z'), 'z', 'and is not kept')

-- usable(): a connection it refuses is closed, not kept.
local refuse = false
local picky = iopool.new { open = open, usable = function(k) return not refuse and not k:closed() end }
local k = assert(picky:acquire())
refuse = true
picky:release(k)
eq(k:closed(), true, 'an unusable connection is closed when given back')
eq(picky.count, 0, 'and frees its place')
refuse = false

-- open() failing: nil, err, and a waiter is not left asleep.
local bad = iopool.new { size = 1, open = function() return nil, 'no server at 127.0.0.1:1' end }
eq({ bad:acquire() }, { nil, 'no server at 127.0.0.1:1' }, 'open error')
eq(bad.count, 0, 'a failed open takes no place')

-- A raising call gives its connection back and the error goes on.
checkerr('boom', pool.run, pool, function() error('boom', 0) end)
eq(pool.count <= 2, true, 'the connection came back')
eq(pool:run(echo, 'still'), 'still', 'the pool still works')

-- close(): waiters and later calls get 'closed'; a connection in use
-- closes when given back.
local one = iopool.new { size = 1, open = open }
local inuse = assert(one:acquire())
local waited
utils.spawn(function() waited = { one:acquire() } end)
utils.yield()
eq(one:close(), true, 'close')
utils.yield()
eq(waited, { nil, 'closed' }, 'a waiter gets closed')
eq({ one:acquire() }, { nil, 'closed' }, 'acquire after close')
eq({ one:run(echo, 'q') }, { nil, 'closed' }, 'run after close')
one:release(inuse)
eq(inuse:closed(), true, 'given back after close: closed')
eq({ one:close() }, { nil, 'closed' }, 'close twice')

-- Options.
checkerr("unknown option 'sise'", iopool.new, { sise = 1, open = open })
checkerr('open must be a function, got nil', iopool.new, {})
checkerr('usable must be a function, got number', iopool.new, { open = open, usable = 1 })
checkerr('size must be a positive integer', iopool.new, { open = open, size = 0 })
checkerr('size must be a positive integer', iopool.new, { open = open, size = 1.5 })
checkerr('table expected, got no value', iopool.new)

pool:close()
picky:close()
plain:close()
server:close()
print('io pool ok')
