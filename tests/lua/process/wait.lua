-- proc:wait() suspends until the child ends while other coroutines run;
-- deaths by signal; several waiters; kill after the end; no zombies, even
-- for children nobody waits for.
dofile('support.lua')
local process = require 'lem.process'
local signal = require 'lem.signal'
local utils = require 'lem.utils'
local procs = dofile('process/data/procs.lua')

-- the loop runs on while a wait is in flight
local ticks, done = 0, false
utils.spawn(function()
	while not done do
		ticks = ticks + 1
		utils.yield()
	end
end)
local p = assert(process.spawn { 'sleep', '0.2' })
eq(p:wait(), { pid = p.pid, rpid = p.pid, type = 'exited', status = 0 }, 'sleep exited')
assert(ticks > 10, 'other coroutines ran during wait: ' .. ticks)
done = true

-- killed by a signal: by name, number and default
p = assert(process.spawn { 'sleep', '30' })
eq(p:kill(), true, 'kill')
eq(p:wait(), { pid = p.pid, rpid = p.pid, type = 'signaled', signal = signal.lookup('TERM'), coredumped = false }, 'SIGTERM')
p = assert(process.spawn { 'sleep', '30' })
-- (not SIGINT: a shell's background jobs start with it ignored)
assert(p:kill('SIGUSR1'))
eq(p:wait().signal, signal.lookup('USR1'), 'SIGUSR1')
p = assert(process.spawn { 'sleep', '30' })
assert(p:kill(9))
eq(p:wait().signal, 9, 'SIGKILL')
-- wait again: the same answer at once
eq(p:wait().signal, 9, 'wait twice')
-- kill after the end: the pid is not ours any more
eq({ p:kill() }, { nil, 'No such process' }, 'kill after the end')
eq({ p:kill('NOPE') }, { nil, 'unknown signal' }, 'unknown signal')

-- several coroutines waiting on one child all get its end
p = assert(process.spawn { 'sh', '-c', 'sleep 0.1; exit 9' })
local got, n = {}, 3
for i = 1, n do
	utils.spawn(function()
		got[i] = p:wait().status
	end)
end
eq(p:wait().status, 9, 'main waiter')
while #got < n do utils.yield() end
eq(got, { 9, 9, 9 }, 'every waiter')

-- a child nobody waits for, whose object is collected, is reaped anyway
local children = procs.watch_children()
local pid
do
	local q = assert(process.spawn { 'sh', '-c', 'exit 0' })
	pid = q.pid
end
collectgarbage()
collectgarbage()
eq(children:ended(pid).status, 0, 'ended')
eq(procs.children()[pid], nil, 'reaped without a wait')
children:stop()

-- many children at once
local list = {}
for i = 1, 20 do
	list[i] = assert(process.spawn { 'sh', '-c', 'exit ' .. i })
end
for i = 1, 20 do
	eq(list[i]:wait().status, i, 'child ' .. i)
end
procs.no_zombies('at the end')
