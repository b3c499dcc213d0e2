-- lem.utils: the original's functions (native, from lem.utils.core), and
-- lem's tasks and deadlines built on what the scheduler offers there:
-- spawnthread (spawn, returning the coroutine), cancel(co) (the task's
-- pending or next suspending call raises 'cancelled'), parked(co), and
-- deadline(seconds) / undeadline(id) (past a deadline the running task's
-- suspending calls raise 'timeout' until its frame ends).

local core = require 'lem.utils.core'

local M = {}
for _, name in ipairs { 'spawn', 'yield', 'newsleeper', 'newturn', 'thisthread',
	'suspend', 'resume', 'now', 'updatenow', 'exit', 'poolconfig', 'worker', 'draining',
	'stall', 'memlimit', 'memory' } do
	M[name] = core[name]
end

local spawnthread, cancel, parked = core.spawnthread, core.cancel, core.parked
local deadline, undeadline = core.deadline, core.undeadline
local thisthread, newsleeper = core.thisthread, core.newsleeper
local doomtext, DOOM = core.doomtext, core.DOOM
local error, pcall, xpcall, select, setmetatable, type, tostring =
	error, pcall, xpcall, select, setmetatable, type, tostring
local unpack = table.unpack or unpack
local traceback = debug.traceback
local stderr = io.stderr
local newproxy = newproxy

local function check_function(f, arg, fname)
	if type(f) ~= 'function' then
		error(("bad argument #%d to '%s' (function expected, got %s)")
			:format(arg, fname, type(f)), 3)
	end
end

-- A task is a table: co (its coroutine, until it ends), cancelled (cancel
-- was called), joiners (the sleepers of coroutines in join), and once it
-- ends state ('done', 'failed', 'cancelled') with res ({n = n, ...}, its
-- results) or err, and for a failure report (printed if it is collected
-- before anyone joined it).
local Task = {}
Task.__index = Task

local function unjoined(info)
	if not info.joined then
		stderr:write('lem: a task failed and was never joined: ', info.tb, '\n')
	end
end

-- Print a failure nobody joined when the task is collected (tables have no
-- __gc on LuaJIT: a proxy does it there).
local function report_later(t, tb)
	local info = { tb = tb }
	if newproxy then
		local p = newproxy(true)
		getmetatable(p).__gc = function() unjoined(info) end
		info.proxy = p
	else
		setmetatable(info, { __gc = unjoined })
	end
	t.report = info
end

-- xpcall's handler: the error with its traceback, in a box so any value
-- can be an error.
local function boxed(e)
	return { err = e, tb = traceback(tostring(e), 2) }
end

local function wake_joiners(t)
	local j = t.joiners
	if j then
		t.joiners = nil
		for i = 1, #j do j[i]:wakeup() end
	end
end

local function ended(t, ok, ...)
	if ok and (...) == DOOM then
		-- f tail-called a suspending call that was cancelled (see
		-- catcher below).
		return ended(t, false, { err = doomtext() or 'cancelled' })
	end
	t.co = nil
	if ok then
		if t.cancelled then
			t.state = 'cancelled'
		else
			t.state = 'done'
			local n = select('#', ...)
			if n > 0 then t.res = { n = n, ... } end
		end
	else
		local box = ...
		if t.cancelled and box.err == 'cancelled' then
			t.state = 'cancelled'
		else
			t.state = 'failed'
			t.err = box.err
			report_later(t, box.tb)
		end
	end
	wake_joiners(t)
end

local function run(t, f, ...)
	if t.cancelled then
		-- Cancelled before it started: f never runs.
		t.co = nil
		t.state = 'cancelled'
		return wake_joiners(t)
	end
	return ended(t, xpcall(f, boxed, ...))
end
-- Where a cancel cannot raise inside the call (a bare coroutine.yield(), or
-- LuaJIT, which raises at the first instruction after it), a call that f
-- tail-called returns straight here: run takes the doom as a value then
-- rather than raising outside xpcall. So does utils.timeout.
core.catcher(run)

function M.task(f, ...)
	check_function(f, 1, 'task')
	local t = setmetatable({}, Task)
	t.co = spawnthread(run, t, f, ...)
	return t
end

local function results(t)
	local state = t.state
	if state == 'done' then
		local res = t.res
		if res then return true, unpack(res, 1, res.n) end
		return true
	elseif state == 'failed' then
		if t.report then t.report.joined = true end
		return nil, t.err
	end
	return nil, 'cancelled'
end

function Task:join(timeout)
	if timeout ~= nil and type(timeout) ~= 'number' then
		error(("bad argument #1 to 'join' (number expected, got %s)"):format(type(timeout)), 2)
	end
	if not self.state then
		if self.co == thisthread() then
			error('a task cannot join itself', 2)
		end
		local s = newsleeper()
		local j = self.joiners
		if not j then
			j = {}
			self.joiners = j
		end
		j[#j + 1] = s
		s:sleep(timeout)
		if not self.state then
			for i = #j, 1, -1 do
				if j[i] == s then table.remove(j, i) break end
			end
			return nil, 'timeout'
		end
	end
	return results(self)
end

function Task:cancel()
	if self.state then return nil, 'not running' end
	self.cancelled = true
	cancel(self.co)
	return true
end

function Task:status()
	if self.state then return self.state end
	if self.co ~= thisthread() and parked(self.co) then return 'suspended' end
	return 'running'
end

local function timed(id, ok, ...)
	if ok and (...) == DOOM then
		local err = doomtext() or 'cancelled'
		if undeadline(id) and err == 'timeout' then return nil, 'timeout' end
		error(err, 0)
	end
	local passed = undeadline(id)
	if ok then return ... end
	local err = ...
	if passed and err == 'timeout' then return nil, 'timeout' end
	error(err, 0)
end

function M.timeout(seconds, f, ...)
	if type(seconds) ~= 'number' then
		error(("bad argument #1 to 'timeout' (number expected, got %s)")
			:format(type(seconds)), 2)
	end
	check_function(f, 2, 'timeout')
	return timed(deadline(seconds), pcall(f, ...))
end
core.catcher(M.timeout)

-- The functions utils.ondrain was given, in order, until a stop runs them.
local drainhooks = {}
local core_shutdown, spawn, draining = core.shutdown, core.spawn, core.draining

-- utils.shutdown([grace]) -> started: the Rust half closes servers and
-- idle connections; then each drain hook runs in a coroutine of its own.
function M.shutdown(grace)
	local started = core_shutdown(grace)
	if started then
		local hooks = drainhooks
		drainhooks = {}
		for i = 1, #hooks do
			spawn(hooks[i])
		end
	end
	return started
end

-- utils.ondrain(f): run f() in a coroutine of its own when a graceful stop
-- starts (at once if one is under way).
function M.ondrain(f)
	check_function(f, 1, 'ondrain')
	if draining() then
		spawn(f)
	else
		drainhooks[#drainhooks + 1] = f
	end
end

return M
