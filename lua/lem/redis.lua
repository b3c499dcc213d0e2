-- lem.redis: a Redis client (RESP2) over lem.io streams. Replies are parsed
-- by the 'RedisReply' read format and commands encoded by lem.redis.core
-- (both in Rust, src/redis.rs). See docs/redis.md.
local io = require 'lem.io'
local utils = require 'lem.utils'
local core = require 'lem.redis.core'
local iopool = require 'lem.io.pool'

local setmetatable, type, error, select, tostring, pairs, ipairs, pcall = setmetatable, type, error, select, tostring, pairs, ipairs, pcall
local upper = string.upper
local encode, encodeall = core.encode, core.encodeall

local M = {}
local null = core.null
M.null = null

local Connection = {}
M.Connection = Connection

local function fail(self, msg)
	-- After a failed read or write the replies are out of step: the
	-- connection cannot be used any more.
	if not self.dead then
		self.dead = msg == 'timeout' and 'timeout' or 'closed'
		self.stream:close()
	end
end

-- Read one reply: value, or nil, msg, 'redis' for an error reply, or
-- nil, msg for a failure of the connection (which is then closed).
local function reply(self)
	local v, msg, kind = self.stream:read('RedisReply')
	if v == nil and kind ~= 'redis' then
		fail(self, msg)
		return nil, msg
	end
	return v, msg, kind
end


local function enter(self, sub)
	if self.dead then return 'closed' end
	if self.busy then return 'busy' end
	if self.subscribed and not sub then
		return 'connection is subscribed: only subscribe, unsubscribe and message are allowed'
	end
	self.busy = true
	return nil
end

local function send(self, bytes)
	local ok, err = self.stream:write(bytes)
	if not ok then
		fail(self, err)
		return nil, err
	end
	return true
end

-- Take the connection (enter) and send bytes; on failure the connection is
-- left free again. true, or nil, err.
local function start(self, bytes, sub)
	local e = enter(self, sub)
	if e then return nil, e end
	local ok, err = send(self, bytes)
	if not ok then
		self.busy = false
		return nil, err
	end
	return true
end

-- r:call(cmd, ...) -> reply, or nil, err. The usual case (a free, live,
-- unsubscribed connection) is written out here rather than through start
-- and reply: those calls were a fifth of a SET's instructions.
function Connection:call(cmd, ...)
	if cmd == nil and select('#', ...) == 0 then error("bad argument #1 to 'call' (command expected)", 2) end
	local bytes = encode(cmd, ...)
	if self.busy or self.dead or self.subscribed then
		local ok, err = start(self, bytes)
		if not ok then return nil, err end
	else
		self.busy = true
		local stream = self.stream
		local ok, err = stream:write(bytes)
		if not ok then
			self.busy = false
			fail(self, err)
			return nil, err
		end
	end
	local v, msg, kind = self.stream:read('RedisReply')
	self.busy = false
	if v == nil then
		if kind ~= 'redis' then fail(self, msg) end
		return nil, msg
	end
	return v
end

-- r:pipeline{ {cmd, ...}, ... } -> array of replies; an error reply is a
-- table {err = 'ERR ...'} in its place. nil, err if the connection fails.
function Connection:pipeline(cmds)
	if type(cmds) ~= 'table' then
		error("bad argument #1 to 'pipeline' (table expected, got " .. type(cmds) .. ')', 2)
	end
	local ok, bytes = pcall(encodeall, cmds)
	if not ok then error("bad argument #1 to 'pipeline' (" .. tostring(bytes) .. ')', 2) end
	local ok, err = start(self, bytes)
	if not ok then return nil, err end
	local out = {}
	for i = 1, #cmds do
		local v, msg, kind = reply(self)
		if v == nil then
			if kind ~= 'redis' then
				self.busy = false
				return nil, msg
			end
			v = { err = msg }
		end
		out[i] = v
	end
	self.busy = false
	return out
end

local function subscribe(self, cmd, name, ...)
	if select('#', ...) == 0 then error("bad argument #1 to '" .. name .. "' (channel expected)", 3) end
	local bytes = encode(cmd, ...)
	local ok, err = start(self, bytes, true)
	if not ok then return nil, err end
	-- One confirmation per channel.
	for _ = 1, select('#', ...) do
		local v, msg = reply(self)
		if v == nil then
			self.busy = false
			return nil, msg
		end
	end
	self.subscribed = true
	self.busy = false
	return true
end

function Connection:subscribe(...) return subscribe(self, 'SUBSCRIBE', 'subscribe', ...) end
function Connection:psubscribe(...) return subscribe(self, 'PSUBSCRIBE', 'psubscribe', ...) end

-- r:unsubscribe([ch, ...]) / r:punsubscribe: sent; their confirmations
-- come through r:message() as kind 'unsubscribe' / 'punsubscribe'.
local function unsubscribe(self, cmd, ...)
	if self.dead then return nil, 'closed' end
	return send(self, encode(cmd, ...))
end
function Connection:unsubscribe(...) return unsubscribe(self, 'UNSUBSCRIBE', ...) end
function Connection:punsubscribe(...) return unsubscribe(self, 'PUNSUBSCRIBE', ...) end

-- r:message() -> kind, channel, payload [, pattern] (suspends)
function Connection:message()
	if self.dead then return nil, self.dead end -- dead: false or the reason
	if self.busy then return nil, 'busy' end
	self.busy = true
	local v, msg = reply(self)
	self.busy = false
	if v == nil then return nil, msg end
	if type(v) ~= 'table' then return nil, 'unexpected reply in subscribed mode: ' .. tostring(v) end
	local kind = v[1]
	if kind == 'pmessage' then
		return kind, v[3], v[4], v[2]
	end
	if kind == 'unsubscribe' or kind == 'punsubscribe' then
		if v[3] == 0 then self.subscribed = false end
	end
	return kind, v[2], v[3]
end

function Connection:settimeout(s)
	self.timeout = s
	return self.stream:settimeout(s)
end

function Connection:close()
	if self.dead == 'closed' and self.stream:closed() then return nil, 'closed' end
	self.dead = 'closed'
	return self.stream:close()
end

function Connection:closed()
	return self.dead ~= false
end

-- Any other name is a command: r:set(k, v) is r:call('SET', k, v).
local commands = {}
Connection.__index = function(_, name)
	local m = Connection[name]
	if m ~= nil then return m end
	if type(name) ~= 'string' then return nil end
	local f = commands[name]
	if f == nil then
		local cmd = upper(name)
		f = function(self, ...) return self:call(cmd, ...) end
		commands[name] = f
	end
	return f
end

local CONNECT_OPTIONS = { timeout = true, password = true, user = true, db = true, tls = true }

-- Raises for an unknown option or a bad tls table (at the script's call:
-- level 3 from here).
local function check_options(options, fname, argn, extra)
	for k in pairs(options) do
		if not CONNECT_OPTIONS[k] and not (extra and extra[k]) then
			error(("bad argument #%d to '%s' (unknown option '%s')"):format(argn, fname, tostring(k)), 3)
		end
	end
	if options.tls ~= nil then
		local msg = io.tls.check(options.tls)
		if msg then
			error(("bad argument #%d to '%s' (%s)"):format(argn, fname, msg), 3)
		end
	end
end

local function open(host, port, options)
	local stream, err
	if port then
		if options.tls then
			stream, err = io.tls.connect(host, port, options.tls)
		else
			stream, err = io.tcp.connect(host, port)
		end
	else
		if options.tls then
			return nil, 'tls over a Unix socket is not supported'
		end
		stream, err = io.unix.connect(host)
	end
	if not stream then return nil, err end
	-- Bulk strings up to redis's own limit; the parser refuses larger ones
	-- from their header.
	stream:setlimit(core.max_bulk + 65536)
	local self = setmetatable({ stream = stream, dead = false, busy = false, subscribed = false, timeout = false }, Connection)
	if options.timeout ~= nil then self:settimeout(options.timeout) end
	if options.password ~= nil then
		local ok, e
		if options.user ~= nil then
			ok, e = self:call('AUTH', options.user, options.password)
		else
			ok, e = self:call('AUTH', options.password)
		end
		if not ok then
			self:close()
			return nil, e
		end
	end
	if options.db ~= nil then
		local ok, e = self:call('SELECT', options.db)
		if not ok then
			self:close()
			return nil, e
		end
	end
	return self
end

-- The arguments of connect and pool: host, port (nil for a Unix socket),
-- options.
local function where(fname, host, port, options)
	if type(host) ~= 'string' then
		error(("bad argument #1 to '%s' (string expected, got %s)"):format(fname, type(host)), 3)
	end
	local argn = 3
	if type(port) == 'table' then
		port, options, argn = nil, port, 2
	end
	options = options or {}
	if type(options) ~= 'table' then
		error(("bad argument #%d to '%s' (table expected, got %s)"):format(argn, fname, type(options)), 3)
	end
	return port, options, argn
end

-- redis.connect(host, port | unixpath [, options]) -> Connection, or nil, err
function M.connect(host, port, options)
	local argn
	port, options, argn = where('connect', host, port, options)
	check_options(options, 'connect', argn)
	return open(host, port, options)
end

-- the pool ------------------------------------------------------------------

-- lem.io.pool's methods, copied (the manual's test and a reader see them here).
local Pool = {}
for k, v in pairs(iopool.Pool) do Pool[k] = v end
M.Pool = Pool

-- A pooled connection serves another call unless it died, is subscribed
-- or was left inside a call.
local function usable(r)
	return not (r.dead or r.busy or r.subscribed)
end

-- A call may be made again when the idle connection turned out closed by
-- the server (not after a timeout: the command may have run).
local function stale(r)
	return r.dead == 'closed'
end

-- redis.pool(host, port | unixpath [, {size =, password =, user =, db =,
-- timeout =, tls =}]) -> Pool (lem.io.pool's): connections made when
-- needed, at most size (default 10) at once.
function M.pool(host, port, options)
	local argn
	port, options, argn = where('pool', host, port, options)
	check_options(options, 'pool', argn, { size = true })
	local size = options.size or 10
	if type(size) ~= 'number' or size < 1 or size % 1 ~= 0 then
		error(("bad argument #%d to 'pool' (size must be a positive integer)"):format(argn), 2)
	end
	local pool = iopool.new {
		size = size, usable = usable, stale = stale,
		open = function() return open(host, port, options) end,
	}
	return setmetatable(pool, Pool)
end

local function call(r, ...) return r:call(...) end
local function pipeline(r, cmds) return r:pipeline(cmds) end

function Pool:call(...) return self:run(call, ...) end
function Pool:pipeline(cmds) return self:run(pipeline, cmds) end

-- Any other name is a command, as on a connection.
local pool_commands = {}
Pool.__index = function(_, name)
	local m = Pool[name]
	if m ~= nil then return m end
	if type(name) ~= 'string' then return nil end
	local f = pool_commands[name]
	if f == nil then
		local cmd = upper(name)
		f = function(self, ...) return self:run(call, cmd, ...) end
		pool_commands[name] = f
	end
	return f
end

return M
