-- utils.task: join with results, errors and timeouts; cancel before start,
-- while suspended, while runnable and of itself; status through a task's
-- life; several joiners; cancel of a task that is joining another; a
-- cancelled coroutine that catches the error cannot keep suspending;
-- argument errors.
dofile('support.lua')
local utils = require 'lem.utils'

local forever = utils.newsleeper()

-- Results, and status through a task's life.
local s = utils.newsleeper()
local t = utils.task(function(a, b)
	s:sleep()
	return a + b, nil, 'x'
end, 1, 2)
eq(t:status(), 'running', 'not started yet')
utils.yield()
eq(t:status(), 'suspended', 'sleeping')
assert(s:wakeup())
eq(t:status(), 'running', 'woken, not yet run')
eq({ t:join() }, { true, 3, nil, 'x' }, 'results')
eq(select('#', t:join()), 4, 'result count, twice')
eq(t:status(), 'done', 'done')
eq({ t:cancel() }, { nil, 'not running' }, 'cancel after the end')
eq({ utils.task(function() end):join() }, { true }, 'no results')

-- An error is kept for join, and the process goes on.
local e = {}
t = utils.task(function() error(e) end)
eq({ t:join() }, { nil, e }, 'error value')
eq(t:status(), 'failed', 'failed')
t = utils.task(function() error('boom') end)
local _, err = t:join()
assert(err:find('task.lua:%d+: boom'), err)

-- join with a timeout: the task goes on.
t = utils.task(function() s:sleep() return 'late' end)
eq({ t:join(0.02) }, { nil, 'timeout' }, 'join timeout')
eq(t:status(), 'suspended', 'still there')
s:wakeup()
eq({ t:join(5) }, { true, 'late' }, 'join after a timeout')

-- Several joiners get the same results.
t = utils.task(function() s:sleep() return 7 end)
local got = {}
for i = 1, 3 do
	utils.spawn(function() got[i] = { t:join() } end)
end
utils.yield()
s:wakeup()
eq({ t:join() }, { true, 7 }, 'main joiner')
utils.yield()
eq(got, { { true, 7 }, { true, 7 }, { true, 7 } }, 'every joiner')

-- Cancel before it starts: f never runs.
local ran = false
t = utils.task(function() ran = true end)
eq(t:cancel(), true, 'cancel')
eq({ t:join() }, { nil, 'cancelled' }, 'join cancelled')
eq(ran, false, 'never ran')
eq(t:status(), 'cancelled', 'status cancelled')

-- Cancel while suspended: the call raises 'cancelled', pcall handlers run,
-- and every later suspension raises again.
local trail = {}
t = utils.task(function()
	local ok, err = pcall(function() forever:sleep() end)
	trail[#trail + 1] = err
	-- (Through a Lua function, not a tail call: on LuaJIT a suspending C
	-- function handed to pcall itself, or tail-called, raises in the caller;
	-- see docs/deviations.md.)
	ok, err = pcall(function() utils.yield() end)
	trail[#trail + 1] = err
	ok, err = pcall(function() local r = forever:sleep(0) return r end)
	trail[#trail + 1] = err
	ok, err = pcall(function() local r = utils.suspend() return r end)
	trail[#trail + 1] = err
	return 'caught it'
end)
utils.yield()
eq(t:cancel(), true, 'cancel a sleeper')
eq({ t:join() }, { nil, 'cancelled' }, 'a task that caught it is still cancelled')
eq(trail, { 'cancelled', 'cancelled', 'cancelled', 'cancelled' }, 'every suspension raised')

-- Cancel while runnable (woken with a value, not yet run): the value is
-- delivered, its next suspension raises. Woken with nothing to lose, the
-- call raises at once.
local step
t = utils.task(function()
	step = s:sleep()
	forever:sleep()
	step = 'never'
end)
utils.yield()
s:wakeup('woke')
t:cancel()
eq({ t:join() }, { nil, 'cancelled' }, 'runnable cancel')
eq(step, 'woke', 'value delivered, next suspension raised')
t = utils.task(function()
	step = 'started'
	s:sleep()
	step = 'never'
end)
utils.yield()
s:wakeup()
t:cancel()
eq({ t:join() }, { nil, 'cancelled' }, 'runnable cancel, nothing to deliver')
eq(step, 'started', 'the sleep raised')

-- A task that cancels itself.
t = utils.task(function()
	utils.thisthread()
	local me = assert(_G.me)
	me:cancel()
	utils.yield()
	error('not reached')
end)
_G.me = t
eq({ t:join() }, { nil, 'cancelled' }, 'self cancel')
_G.me = nil

-- Another error raised after the cancel fails the task.
t = utils.task(function()
	pcall(function() forever:sleep() end)
	error('other', 0)
end)
utils.yield()
t:cancel()
eq({ t:join() }, { nil, 'other' }, 'another error after cancel')
eq(t:status(), 'failed', 'failed after cancel')

-- Cancel of a task that is joining another: the joined task goes on.
local inner = utils.task(function() s:sleep() return 'inner' end)
local outer = utils.task(function() return inner:join() end)
utils.yield()
eq(outer:status(), 'suspended', 'joining')
outer:cancel()
eq({ outer:join() }, { nil, 'cancelled' }, 'joiner cancelled')
eq(inner:status(), 'suspended', 'joined task goes on')
s:wakeup()
eq({ inner:join() }, { true, 'inner' }, 'joined task ends')

-- Cancel inside a user coroutine (coroutine.wrap) inside the task.
trail = {}
t = utils.task(function()
	local gen = coroutine.wrap(function()
		local ok, err = pcall(function() forever:sleep() end)
		trail[#trail + 1] = 'inner ' .. tostring(err)
		coroutine.yield('after')
	end)
	local r = gen()
	trail[#trail + 1] = r
	forever:sleep()
end)
utils.yield()
t:cancel()
eq({ t:join() }, { nil, 'cancelled' }, 'cancel through coroutine.wrap')
eq(trail, { 'inner cancelled', 'after' }, 'raised inside the user coroutine')

-- A bare coroutine.yield() in a task parks it as utils.suspend does; a
-- cancel raises there too.
t = utils.task(function() coroutine.yield() end)
utils.yield()
eq(t:status(), 'suspended', 'bare yield')
t:cancel()
eq({ t:join() }, { nil, 'cancelled' }, 'bare yield cancelled')

-- utils.resume no longer resumes a cancelled suspension.
local co
t = utils.task(function()
	co = utils.thisthread()
	return utils.suspend()
end)
utils.yield()
t:cancel()
eq({ utils.resume(co, 1) }, { nil, 'not suspended' }, 'resume after cancel')
eq({ t:join() }, { nil, 'cancelled' }, 'suspend cancelled')

-- A task cannot join itself; arguments are checked.
t = utils.task(function() return _G.self_task:join() end)
_G.self_task = t
local ok, jerr = t:join()
eq(ok, nil, 'self join fails')
assert(jerr:find('a task cannot join itself', 1, true), jerr)
checkerr("bad argument #1 to 'task' (function expected, got nil)", utils.task)
checkerr("bad argument #1 to 'join' (number expected, got string)", function() t:join('x') end)

-- Lua 5.4: to-be-closed variables close when a cancel unwinds them.
if _VERSION == 'Lua 5.4' then
	local closed = false
	t = utils.task(load([[
		local forever, mark = ...
		local x <close> = setmetatable({}, { __close = function() mark() end })
		forever:sleep()
	]]), forever, function() closed = true end)
	utils.yield()
	t:cancel()
	eq({ t:join() }, { nil, 'cancelled' }, 'tbc task')
	eq(closed, true, 'to-be-closed variable closed')
end
print('ok')
