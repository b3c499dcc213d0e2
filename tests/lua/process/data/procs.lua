-- Helpers for the process and signal tests: this process's pid and its
-- children as /proc shows them (to find zombies). Load with
-- dofile('process/data/procs.lua'); returns a table.
local M = {}

-- This process's pid.
function M.mypid()
	local f = assert(io.open('/proc/self/stat'))
	local pid = tonumber(f:read('*l'):match('^(%d+)'))
	f:close()
	return pid
end

-- { [pid] = state letter } of the children of this process.
function M.children()
	local me = M.mypid()
	local found = {}
	for name in require('lem.lfs').dir('/proc') do
		if name:match('^%d+$') then
			local f = io.open('/proc/' .. name .. '/stat')
			local line = f and f:read('*l')
			if f then f:close() end
			if line then
				-- pid (comm) state ppid ...: comm may hold spaces and parens
				local state, ppid = line:match('^%d+ %(.*%) (%a) (%d+)')
				if tonumber(ppid) == me then
					found[tonumber(name)] = state
				end
			end
		end
	end
	return found
end

-- Asserts that no child of this process is a zombie.
function M.no_zombies(what)
	for pid, state in pairs(M.children()) do
		assert(state ~= 'Z', (what or '') .. ': zombie child ' .. pid)
	end
end

-- Whether the signal numbered n is caught (SigCgt in /proc/self/status).
function M.caught(n)
	local f = assert(io.open('/proc/self/status'))
	local s = f:read('*a')
	f:close()
	local hex = assert(s:match('SigCgt:%s*(%x+)'))
	-- bit n-1 of a 64-bit mask, from the hex digit that holds it
	local digit = tonumber(hex:sub(#hex - math.floor((n - 1) / 4), #hex - math.floor((n - 1) / 4)), 16)
	return math.floor(digit / 2 ^ ((n - 1) % 4)) % 2 == 1
end

-- A SIGCHLD watcher: watcher:ended(pid) suspends until that child has
-- ended (and been reaped), and returns its event. Start it before the
-- children it is asked about.
function M.watch_children()
	local signal = require 'lem.signal'
	local utils = require 'lem.utils'
	local ended, sleeper, awaited = {}, utils.newsleeper(), nil
	local function handler(_, ev)
		if ev.type == 'exited' or ev.type == 'signaled' then
			ended[ev.pid] = ev
			if ev.pid == awaited then
				sleeper:wakeup()
			end
		end
	end
	assert(signal.register('SIGCHLD', handler))
	local w = {}
	function w:ended(pid)
		if not ended[pid] then
			awaited = pid
			assert(select(2, sleeper:sleep(10)) == nil, 'child ' .. pid .. ' did not end')
			awaited = nil
		end
		return ended[pid]
	end
	function w:stop()
		assert(signal.unregister('SIGCHLD', handler))
	end
	return w
end

return M
