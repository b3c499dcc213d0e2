-- lem.io: files, streams, TCP and Unix servers, UDP sockets (native half: src/io/,
-- lem.io.core). See docs/io.md.
local core = require 'lem.io.core'
require 'lem.parsers'

local setmetatable, rawset, type, select, error = setmetatable, rawset, type, select, error

local M = {}

local Stream, File, Server = core.Stream, core.File, core.Server
M.Stream, M.File, M.Server = Stream, File, Server
M.Datagram = core.Datagram

-- obj:lines([fmt, ...]): an iterator of reads that ends at the first nil
-- ('closed', 'eof' or an error).
local function lines(self, fmt, ...)
	local n, a, b = select('#', ...), ...
	if fmt == nil then
		fmt = '*l'
	end
	return function()
		if n == 0 then
			return (self:read(fmt))
		end
		return (self:read(fmt, a, b))
	end
end
Stream.lines = lines
File.lines = lines

M.open = core.open
M.fromfd = core.fromfd
M.streamfile = core.streamfile
M.setbudget = core.setbudget
M.budget = core.budget

M.tcp = {
	connect = core.tcp_connect,
	listen = function(host, port, backlog)
		return core.tcp_listen(host, port, backlog)
	end,
	listen4 = function(host, port, backlog)
		return core.tcp_listen(host, port, backlog, 'ipv4')
	end,
	listen6 = function(host, port, backlog)
		return core.tcp_listen(host, port, backlog, 'ipv6')
	end,
}

M.udp = {
	bind = core.udp_bind,
	connect = core.udp_connect,
}

-- Name lookups on the loop (no pool thread): io.resolve(host [, family])
-- and io.resolver{servers = {...} [, timeout =, attempts =]}.
M.resolve = core.resolve
M.resolver = core.resolver
M.Resolver = core.Resolver

M.unix = {
	connect = core.unix_connect,
	listen = core.unix_listen,
}

-- io.stdin/stdout/stderr are made on first use: only then do fds 0-2 become
-- non-blocking (restored at exit), so print() keeps working until a script
-- asks for them.
local stdio = { stdin = 0, stdout = 1, stderr = 2 }
setmetatable(M, {
	__index = function(t, k)
		local fd = stdio[k]
		if fd == nil then
			return nil
		end
		local s = assert(core.stdio(fd))
		rawset(t, k, s)
		return s
	end,
})

local input, output

local function isobject(f)
	local mt = getmetatable(f)
	return mt ~= nil and (mt.__index == Stream or mt.__index == File)
end

-- io.input([file | path]) -> the default input
function M.input(f)
	if f ~= nil then
		if type(f) == 'string' then
			f = assert(M.open(f, 'r'))
		elseif not isobject(f) then
			error("bad argument #1 to 'input' (file or path expected)", 2)
		end
		input = f
	end
	if input == nil then
		input = M.stdin
	end
	return input
end

-- io.output([file | path]) -> the default output
function M.output(f)
	if f ~= nil then
		if type(f) == 'string' then
			f = assert(M.open(f, 'w'))
		elseif not isobject(f) then
			error("bad argument #1 to 'output' (file or path expected)", 2)
		end
		output = f
	end
	if output == nil then
		output = M.stdout
	end
	return output
end

local function pass(...)
	return ...
end

-- io.read(...): the default input's read (not a tail call, so that on
-- LuaJIT too a bad format is named as a call to 'read' with the script's
-- argument numbers).
function M.read(...)
	return pass(M.input():read(...))
end

-- io.write(...) -> the default output | nil, err
function M.write(...)
	local out = M.output()
	local ok, err = out:write(...)
	if not ok then
		return nil, err
	end
	return out
end

-- io.lines([path [, fmt, ...]]): lines of a file (closed at the end), or
-- of the default input.
function M.lines(path, ...)
	if path == nil then
		return lines(M.input(), ...)
	end
	local f = assert(M.open(path, 'r'))
	local n, a, b = select('#', ...), ...
	local fmt = a or '*l'
	return function()
		local v
		if n <= 1 then
			v = f:read(fmt)
		else
			v = f:read(fmt, b)
		end
		if v == nil and not f:closed() then
			f:close()
		end
		return v
	end
end

-- io.close([f]): close f or the default output.
function M.close(f)
	return (f or M.output()):close()
end

-- io.popen(cmd [, mode]) and io.spawn(argv [, options]): lem.process.
M.popen = require('lem.process').popen
M.spawn = require('lem.process').spawn

-- io.tls: TLS streams and servers (lem.io.tls, src/tls.rs).
M.tls = require 'lem.io.tls'

return M
