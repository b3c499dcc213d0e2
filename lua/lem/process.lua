-- lem.process: child processes without a shell, whose end can be awaited
-- (io.spawn), and io.popen. The native half is lem.process.core
-- (src/process.rs); lem reaps every child it starts.

local core = require 'lem.process.core'
local lookup = require('lem.signal.core').lookup

local type, error, format, setmetatable, require = type, error, string.format, setmetatable, require

local M = {}

local Process = {}
Process.__index = Process
M.Process = Process

-- proc:wait() -> event | nil, err: suspends until the child ends; the
-- event is the SIGCHLD table (type 'exited' with status, or 'signaled'
-- with signal and coredumped).
function Process:wait()
	return self.child:wait()
end

-- proc:kill([sig]) -> true | nil, err: sig by name or number, default
-- SIGTERM.
function Process:kill(sig)
	local n = sig
	if sig == nil then
		n = lookup('TERM')
	elseif type(sig) == 'string' then
		n = lookup(sig)
		if not n then
			return nil, 'unknown signal'
		end
	elseif type(sig) ~= 'number' then
		error(format("bad argument #1 to 'kill' (signal name or number expected, got %s)", type(sig)), 2)
	end
	return self.child:kill(n)
end

local stdio_modes = { inherit = 'inherit', null = 'null', pipe = 'pipe', [true] = 'pipe', [false] = 'inherit' }

local function argerror(arg, msg)
	error(format("bad argument #%d to 'spawn' (%s)", arg, msg), 3)
end

-- io.spawn(argv [, options]) -> process | nil, err
--
-- argv = { program, args... } (the program is looked up in PATH when it
-- has no '/'); options: env (a table that replaces the environment), cwd,
-- and stdin/stdout/stderr = 'inherit' (default) | 'null' | 'pipe' (or
-- true). The process has pid, the piped Streams stdin/stdout/stderr, and
-- wait() and kill().
function M.spawn(argv, options)
	if type(argv) ~= 'table' then
		argerror(1, 'table expected, got ' .. (argv == nil and 'no value' or type(argv)))
	end
	if argv[1] == nil then
		argerror(1, 'argv is empty: no program to run')
	end
	for i = 1, #argv do
		if type(argv[i]) ~= 'string' then
			argerror(1, format('argv[%d] is a %s, not a string', i, type(argv[i])))
		end
	end
	local o = options or {}
	if type(o) ~= 'table' then
		argerror(2, 'table expected, got ' .. type(o))
	end
	if o.env ~= nil then
		if type(o.env) ~= 'table' then
			argerror(2, 'env must be a table')
		end
		for k, v in pairs(o.env) do
			if type(k) ~= 'string' or type(v) ~= 'string' then
				argerror(2, 'env must map strings to strings')
			end
		end
	end
	if o.cwd ~= nil and type(o.cwd) ~= 'string' then
		argerror(2, 'cwd must be a string')
	end
	local modes = {}
	for i, name in ipairs { 'stdin', 'stdout', 'stderr' } do
		local v = o[name]
		local m = stdio_modes[v == nil and 'inherit' or v]
		if not m then
			argerror(2, format("%s must be 'inherit', 'null' or 'pipe'", name))
		end
		modes[i] = m
	end
	local child, pid, stdin, stdout, stderr = core.spawn(argv, o.env, o.cwd, modes[1], modes[2], modes[3])
	if not child then
		return nil, pid
	end
	-- Streams get their Lua methods from lem.io (required here, not at
	-- the top: lem.io requires this module).
	require 'lem.io'
	return setmetatable({
		pid = pid,
		stdin = stdin,
		stdout = stdout,
		stderr = stderr,
		child = child,
	}, Process)
end

-- io.popen(cmd [, mode]) -> stream, pid | nil, err: `/bin/sh -c cmd` with
-- its stdout ('r', default), its stdin ('w') or both ('rw', a socket pair)
-- on the stream.
function M.popen(cmd, mode)
	local stream, pid = core.popen(cmd, mode)
	if stream then
		require 'lem.io'
	end
	return stream, pid
end

return M
