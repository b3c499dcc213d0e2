-- lem.signal: Lua handlers for OS signals. The OS side (installing and
-- removing handlers, turning deliveries into coroutines, reaping lem's
-- children) is lem.signal.core (src/signal.rs); this half keeps the lists
-- of handlers. See docs/signal.md.

local core = require 'lem.signal.core'
local utils = require 'lem.utils'

local type, error, format = type, error, string.format
local spawn, lookup = utils.spawn, core.lookup
local SIGTERM = lookup('TERM')

local M = {}

-- signum -> { fn, ... }, in registration order; absent when empty (then
-- the OS handler is off).
local handlers = {}

-- SIGTERM asks the process to stop: the script's handlers run, and once
-- all of them have returned a graceful stop starts (utils.shutdown),
-- unless one of them returned false. (A handler that raises ends the
-- process, as an error that no coroutine catches does.)
local function terminate(list, signum)
	local left, keep = #list, false
	for i = 1, #list do
		local f = list[i]
		spawn(function()
			if f(signum) == false then
				keep = true
			end
			left = left - 1
			if left == 0 and not keep then
				utils.shutdown()
			end
		end)
	end
end

-- Every delivery runs this in a new coroutine; each handler gets its own.
core.sethandler(function(signum, event)
	local list = handlers[signum]
	if list and signum == SIGTERM then
		terminate(list, signum)
	elseif list then
		for i = 1, #list do
			spawn(list[i], signum, event)
		end
	end
end)

-- The number of a signal given by name ('SIGINT', 'int') or number; nil
-- if unknown; raises for other types.
local function signum(sig, arg, fname)
	local t = type(sig)
	if t == 'number' then
		return lookup(sig) and sig or nil
	elseif t == 'string' then
		return lookup(sig)
	end
	error(format("bad argument #%d to '%s' (signal name or number expected, got %s)",
		arg, fname, sig == nil and 'no value' or t), 3)
end

-- signal.lookup('SIGTERM') -> 15; signal.lookup(15) -> 'SIGTERM'; nil if
-- unknown.
M.lookup = lookup

-- signal.register(sig, fn) -> true | nil, err: call fn(signum [, event]) in
-- a new coroutine on each delivery.
function M.register(sig, fn)
	local n = signum(sig, 1, 'register')
	if type(fn) ~= 'function' then
		error(format("bad argument #2 to 'register' (function expected, got %s)",
			fn == nil and 'no value' or type(fn)), 2)
	end
	if not n then
		return nil, 'unknown signal'
	end
	local list = handlers[n]
	if not list then
		local ok, err = core.watch(n)
		if not ok then
			return nil, err
		end
		list = {}
		handlers[n] = list
	end
	list[#list + 1] = fn
	return true
end

-- signal.unregister(sig, fn) -> true | nil, err: removing the last handler
-- gives the signal its default action (SIG_DFL; SIGPIPE stays ignored).
function M.unregister(sig, fn)
	local n = signum(sig, 1, 'unregister')
	if not n then
		return nil, 'unknown signal'
	end
	local list = handlers[n]
	if not list then
		return true
	end
	for i = 1, #list do
		if list[i] == fn then
			table.remove(list, i)
			break
		end
	end
	if #list == 0 then
		handlers[n] = nil
		return core.unwatch(n)
	end
	return true
end

-- signal.kill(pid [, sig]) -> true | nil, err: send sig (default SIGTERM;
-- 0 only checks that pid exists).
function M.kill(pid, sig)
	local n
	if sig == nil then
		n = lookup('TERM')
	elseif sig == 0 then
		n = 0
	else
		n = signum(sig, 2, 'kill')
		if not n then
			return nil, 'unknown signal'
		end
	end
	return core.kill(pid, n)
end

return M
