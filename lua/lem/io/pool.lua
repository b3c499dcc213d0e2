-- lem.io.pool: connections shared by many coroutines, each call made on
-- one checked out for it. lem.postgres and lem.redis build their pools on
-- it. See docs/io-pool.md.
local utils = require 'lem.utils'

local setmetatable, type, error, pcall, select, pairs, ipairs, tostring =
	setmetatable, type, error, pcall, select, pairs, ipairs, tostring
local remove = table.remove
local unpack = table.unpack or unpack
local format = string.format

local M = {}

local Pool = {}
Pool.__index = Pool
M.Pool = Pool

local OPTIONS = { size = true, open = true, usable = true, stale = true }

-- pool.new{size =, open =, usable =, stale =} -> Pool.
--   open() -> connection | nil, err: makes a connection.
--   usable(c) -> bool: c may serve another call (default: not c:closed()).
--   stale(c, err) -> bool: the call that failed with err on c, which was
--     idle in the pool, may be made again on another (default: never).
-- Every field of the pool is set (false for none), so that a subclass
-- whose __index answers unknown names (lem.redis) never sees one.
function M.new(opts)
	if type(opts) ~= 'table' then
		error(format("bad argument #1 to 'new' (table expected, got %s)", opts == nil and 'no value' or type(opts)), 2)
	end
	for k in pairs(opts) do
		if not OPTIONS[k] then
			error(format("bad argument #1 to 'new' (unknown option '%s')", tostring(k)), 2)
		end
	end
	local size = opts.size or 10
	if type(size) ~= 'number' or size < 1 or size % 1 ~= 0 then
		error("bad argument #1 to 'new' (size must be a positive integer)", 2)
	end
	for _, name in ipairs { 'open', 'usable', 'stale' } do
		local f = opts[name]
		if name == 'open' and f == nil or f ~= nil and type(f) ~= 'function' then
			error(format("bad argument #1 to 'new' (%s must be a function, got %s)", name, type(f)), 2)
		end
	end
	return setmetatable({
		size = size, count = 0, idle = {}, waiting = {}, ended = false,
		_open = opts.open,
		_usable = opts.usable or function(c) return not c:closed() end,
		_stale = opts.stale or function() return false end,
	}, Pool)
end

-- Wake the first waiter (to make a connection of its own).
local function wake(self)
	local s = remove(self.waiting, 1)
	if s then s:wakeup(false) end
end

-- pool:acquire() -> connection, reused | nil, err: an idle connection
-- (reused is true), a new one while there are fewer than size, or the
-- next one given back; nil, 'closed' once the pool is closed.
function Pool:acquire()
	while true do
		if self.ended then return nil, 'closed' end
		local idle = self.idle
		local c = idle[#idle]
		if c then
			idle[#idle] = nil
			if self._usable(c) then return c, true end
			c:close()
			self.count = self.count - 1
		elseif self.count < self.size then
			self.count = self.count + 1
			local err
			c, err = self._open()
			if not c then
				self.count = self.count - 1
				wake(self)
				return nil, err
			end
			return c, false
		else
			local s = utils.newsleeper()
			self.waiting[#self.waiting + 1] = s
			local got = s:sleep()
			if got then return got, true end
		end
	end
end

-- pool:release(c): give a connection back. One that is not usable, or
-- given back after pool:close(), is closed and frees its place.
function Pool:release(c)
	if self.ended or not self._usable(c) then
		c:close()
		self.count = self.count - 1
		wake(self)
		return
	end
	local waiting = self.waiting
	while #waiting > 0 do
		if remove(waiting, 1):wakeup(c) then return end
	end
	self.idle[#self.idle + 1] = c
end

local function pack(...)
	return { n = select('#', ...), ... }
end

-- pool:run(f, ...) -> what f(c, ...) returns, on a connection checked out
-- for the call and given back after it (also when f raises: the error
-- goes on). A call that fails (nil, err) on a connection that was idle,
-- when stale(c, err) says so (the server restarted or dropped it), is
-- made again on the next one: every idle connection may be dead after a
-- restart, so at most size + 1 tries, the last on a new connection.
function Pool:run(f, ...)
	local tries = self.size + 1
	for attempt = 1, tries do
		local c, reused = self:acquire()
		if not c then return nil, reused end
		local res = pack(pcall(f, c, ...))
		self:release(c)
		if not res[1] then error(res[2], 0) end
		if not (reused and res[2] == nil and attempt < tries and self._stale(c, res[3])) then
			return unpack(res, 2, res.n)
		end
	end
end

-- pool:close() -> true | nil, 'closed': close the idle connections; those
-- in use close when given back, and calls after this fail with 'closed'.
function Pool:close()
	if self.ended then return nil, 'closed' end
	self.ended = true
	for _, c in ipairs(self.idle) do c:close() end
	self.count = self.count - #self.idle
	self.idle = {}
	for _, s in ipairs(self.waiting) do s:wakeup(false) end
	self.waiting = {}
	return true
end

return M
