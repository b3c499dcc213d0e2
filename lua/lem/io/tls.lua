-- lem.io.tls: TLS streams and servers (native half: src/tls.rs,
-- lem.io.tls.core), reached as io.tls. A TLS connection is an ordinary
-- Stream; a TLS server behaves like a Server (accept, autospawn, close...),
-- so lem.http.server and hathaway run on it unchanged.
local core = require 'lem.io.tls.core'

local setmetatable, require, type, error = setmetatable, require, type, error

local M = {}

-- io.tls.connect(host, port [, options]) -> Stream, alpn | nil, err.
-- options, the one shape every module that connects takes as its `tls`
-- option: cafile (PEM roots instead of the system trust store; a
-- certificate in it is also trusted as it is, so a self-signed server's own
-- file works), cert and key (a client certificate, mutual TLS; key defaults
-- to the cert file), sni (the name to verify and send), alpn ({'h2',
-- 'http/1.1'}), insecure (true: no verification, for tests), verify_name
-- (false: check the chain but not the name). Any other name raises.
function M.connect(host, port, options)
	return core.connect(host, port, options)
end

-- io.tls.check(options) -> nil | message: what is wrong with a TLS options
-- table (nil for none). Modules that take one inside their own options use
-- it to raise under their own name.
M.check = core.check

-- Raises "bad argument #argn to 'fname' (message)" for a bad table, at
-- the caller's caller (the script's call of fname).
local function checkarg(options, fname, argn)
	local msg = core.check(options)
	if msg then
		error(("bad argument #%d to '%s' (%s)"):format(argn, fname, msg), 3)
	end
end

-- io.tls.upgrade(stream, host [, options]) -> Stream, alpn | nil, err:
-- the client's handshake on a connected TCP stream, which is closed (the
-- TLS Stream takes its socket over). For protocols that switch to TLS
-- midway; nothing may be buffered on the stream.
function M.upgrade(stream, host, options)
	checkarg(options, 'upgrade', 3)
	local fd = stream:fileno()
	if not fd then return nil, 'closed' end
	local s, alpn = core.upgrade(fd, host, options)
	stream:close()
	return s, alpn
end

local Server = {}
Server.__index = Server
M.Server = Server

-- Handshake on an accepted TCP stream; returns the TLS Stream.
local function wrap(ctx, c)
	local fd = c:fileno()
	local s, err = ctx:wrap(fd)
	c:close()
	return s, err
end

-- io.tls.listen(host, port, {cert = file, key = file [, alpn = {...}]})
-- -> Server | nil, err. alpn: the protocols offered (default {'h2',
-- 'http/1.1'}; false: none).
function M.listen(host, port, options)
	local io = require 'lem.io'
	if type(options) ~= 'table' or type(options.cert) ~= 'string' or type(options.key) ~= 'string' then
		error("bad argument #3 to 'listen' (table with cert and key file names expected)", 2)
	end
	-- The socket first: a bad port raises before any file is read.
	local sock, err = io.tcp.listen(host, port, options.backlog)
	if not sock then
		return nil, err
	end
	-- HTTP/2 and HTTP/1.1 unless told otherwise (false: no ALPN).
	local alpn = options.alpn
	if alpn == nil then
		alpn = { 'h2', 'http/1.1' }
	elseif alpn == false then
		alpn = {}
	end
	local ctx
	ctx, err = core.context(options.cert, options.key, (table.unpack or unpack)(alpn))
	if not ctx then
		sock:close()
		return nil, err
	end
	return setmetatable({ sock = sock, ctx = ctx }, Server)
end

-- server:accept() -> Stream | nil, err (a failed handshake is an error)
function Server:accept()
	local c, err = self.sock:accept()
	if not c then
		return nil, err
	end
	return wrap(self.ctx, c)
end

-- server:autospawn(handler): handler(stream, alpn) for each completed
-- handshake (alpn: the protocol ALPN picked, or nil).
function Server:autospawn(handler)
	local ctx = self.ctx
	return self.sock:autospawn(function(c)
		local fd = c:fileno()
		local s, alpn = ctx:wrap(fd)
		c:close()
		if s then
			return handler(s, alpn)
		end
	end)
end

-- A method call, not a tail call, so that a bad argument is named as the
-- script's own call.
function Server:settimeout(t)
	local ok, err = self.sock:settimeout(t)
	return ok, err
end

for _, name in ipairs({ 'close', 'closed', 'interrupt', 'busy', 'getsockname' }) do
	Server[name] = function(self, ...)
		local sock = self.sock
		return sock[name](sock, ...)
	end
end

return M
