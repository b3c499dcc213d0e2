-- Signals sent by a real kill from a child reach every handler, each in
-- its own coroutine; unregistering the last handler restores the default
-- action.
dofile('support.lua')
local signal = require 'lem.signal'
local process = require 'lem.process'
local utils = require 'lem.utils'
local procs = dofile('process/data/procs.lua')

local USR1 = signal.lookup('USR1')
local sleeper = utils.newsleeper()
local calls, expected = {}, 2
local function handler(name)
	return function(signum, extra)
		calls[#calls + 1] = { name = name, signum = signum, extra = extra, co = utils.thisthread() }
		if #calls == expected then
			sleeper:wakeup()
		end
	end
end
-- Wait until the handlers have been called `expected` times (they may run
-- before we get here: while spawn waits for the child to start, say).
local function await_calls()
	if #calls < expected then
		eq(select(2, sleeper:sleep(10)), nil, 'woken by the handlers, not the timeout')
	end
end
local a, b = handler('a'), handler('b')
assert(not procs.caught(USR1), 'not caught before register')
eq(signal.register('SIGUSR1', a), true, 'register a')
eq(signal.register('usr1', b), true, 'register b')
assert(procs.caught(USR1), 'caught after register')

-- the child signals its parent
local p = assert(process.spawn { 'sh', '-c', 'kill -USR1 $PPID' })
await_calls()
eq(#calls, 2, 'both handlers ran')
eq(calls[1].name, 'a', 'in registration order')
eq(calls[2].name, 'b', 'in registration order')
eq(calls[1].signum, USR1, 'signum')
eq(calls[1].extra, nil, 'no event table for USR1')
assert(calls[1].co ~= calls[2].co, 'each handler in its own coroutine')
assert(calls[1].co ~= utils.thisthread(), 'not in the main coroutine')
eq(p:wait().status, 0, 'kill ran')

-- a signal to ourselves, with one handler left
eq(signal.unregister('SIGUSR1', a), true, 'unregister a')
assert(procs.caught(USR1), 'still caught with one handler')
calls, expected = {}, 1
assert(signal.kill(procs.mypid(), 'USR1'))
await_calls()
eq(#calls, 1, 'only b')
eq(calls[1].name, 'b', 'b')

eq(signal.unregister('SIGUSR1', b), true, 'unregister b')
assert(not procs.caught(USR1), 'default action restored')

-- the default action of SIGUSR1 is to terminate: a child lem proves it
local script = tmpdir() .. '/victim.lua'
local f = assert(io.open(script, 'w'))
f:write([[
local signal = require 'lem.signal'
local f = function() end
assert(signal.register('USR1', f))
assert(signal.unregister('USR1', f))
signal.kill(tonumber(io.open('/proc/self/stat'):read('*l'):match('^%d+')), 'USR1')
require('lem.utils').newsleeper():sleep(5)
os.exit(0)
]])
f:close()
local victim = assert(process.spawn { arg[-1], script })
local ev = victim:wait()
eq(ev.type, 'signaled', 'the victim died of the signal')
eq(ev.signal, USR1, 'by SIGUSR1')
