-- SIGCHLD handlers get an event table for every child lem starts (spawned
-- or popen'ed): exit statuses, deaths by signal, stops and continues; no
-- zombie is left behind.
dofile('support.lua')
local signal = require 'lem.signal'
local process = require 'lem.process'
local utils = require 'lem.utils'
local procs = dofile('process/data/procs.lua')

local CHLD, TERM = signal.lookup('CHLD'), signal.lookup('TERM')
local events = {} -- pid -> list of events
local sleeper, want = utils.newsleeper(), nil
local function count()
	local n = 0
	for _, list in pairs(events) do n = n + #list end
	return n
end
local function handler(signum, ev)
	eq(signum, CHLD, 'signum')
	eq(ev.pid, ev.rpid, 'pid and rpid')
	local list = events[ev.pid] or {}
	events[ev.pid] = list
	list[#list + 1] = ev
	if want and count() >= want then
		want = nil
		sleeper:wakeup()
	end
end
local function await(n)
	if count() < n then
		want = n
		assert(select(2, sleeper:sleep(10)) == nil, 'timed out waiting for SIGCHLD events')
	end
end
assert(signal.register('SIGCHLD', handler))

-- exit 3
local p3 = assert(process.spawn { 'sh', '-c', 'exit 3' })
await(1)
eq(events[p3.pid], { { pid = p3.pid, rpid = p3.pid, type = 'exited', status = 3 } }, 'exit 3 event')

-- killed by SIGTERM
local sl = assert(process.spawn { 'sleep', '30' })
assert(signal.kill(sl.pid, 'TERM'))
await(2)
eq(events[sl.pid], { { pid = sl.pid, rpid = sl.pid, type = 'signaled', signal = TERM, coredumped = false } }, 'SIGTERM event')

-- stopped, continued, then killed
local st = assert(process.spawn { 'sleep', '30' })
assert(st:kill('STOP'))
await(3)
eq(events[st.pid][1].type, 'stopped', 'stopped')
eq(events[st.pid][1].signal, signal.lookup('STOP'), 'stop signal')
assert(st:kill('CONT'))
await(4)
eq(events[st.pid][2], { pid = st.pid, rpid = st.pid, type = 'continued' }, 'continued')
assert(st:kill('KILL'))
await(5)
eq(events[st.pid][3].type, 'signaled', 'killed')
eq(events[st.pid][3].signal, signal.lookup('KILL'), 'by SIGKILL')

-- a popen child is reported too
local s, pid = assert(process.popen('echo hi; exit 7'))
eq(s:read('*a'), 'hi\n', 'popen output')
await(6)
eq(events[pid][1].type, 'exited', 'popen child exited')
eq(events[pid][1].status, 7, 'popen child status')

-- the wait()s still see each end, once each
eq(p3:wait().status, 3, 'wait after the handler saw it')
eq(sl:wait().signal, TERM, 'wait on the killed one')

-- several handlers all see each event
local second = {}
local function h2(_, ev) second[#second + 1] = ev end
assert(signal.register('SIGCHLD', h2))
local p5 = assert(process.spawn { 'sh', '-c', 'exit 5' })
await(7)
while #second < 1 do utils.yield() end
eq(second[1].pid, p5.pid, 'second handler saw it')
eq(second[1].status, 5, 'second handler status')
assert(signal.unregister('SIGCHLD', h2))

procs.no_zombies('after everything')
eq(count(), 7, 'no extra events')
assert(signal.unregister('SIGCHLD', handler))
