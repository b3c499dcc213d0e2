-- lem.redis.queued: connections whose calls wait their turn instead of
-- failing with 'busy' (as lem.postgres.queued). r:lock() hands out the raw
-- connection for several calls in a row (MULTI ... EXEC, WATCH); r:unlock()
-- gives it back.

local redis = require 'lem.redis'
local utils = require 'lem.utils'

local newturn = utils.newturn
local setmetatable, select, pcall, error, type = setmetatable, select, pcall, error, type
local upper = string.upper
local unpack = table.unpack or unpack

local M = setmetatable({}, { __index = redis })

local Connection = {}
M.Connection = Connection

-- queued.connect(host, port | unixpath [, options]) -> Connection | nil, err
function M.connect(...)
	local r, err = redis.connect(...)
	if not r then return nil, err end
	return setmetatable({ conn = r, turn = newturn() }, Connection)
end

-- r:lock() -> the raw connection, once every earlier caller unlocked it.
function Connection:lock()
	self.turn:take()
	return self.conn
end

-- r:unlock(): the next caller in line gets the connection.
function Connection:unlock()
	self.turn:give()
end

local function pack(...)
	return { n = select('#', ...), ... }
end

local function queued(self, name, ...)
	local r = self:lock()
	local res = pack(pcall(r[name], r, ...))
	self:unlock()
	if not res[1] then error(res[2], 3) end
	return unpack(res, 2, res.n)
end

for _, name in ipairs { 'call', 'pipeline', 'settimeout' } do
	Connection[name] = function(self, ...) return queued(self, name, ...) end
end

-- r:close(): at once (a call under way fails).
function Connection:close()
	return self.conn:close()
end

function Connection:closed()
	return self.conn:closed()
end

-- Any other name is a command: r:get(k) is r:call('GET', k), in turn.
local commands = {}
Connection.__index = function(_, name)
	local m = Connection[name]
	if m ~= nil then return m end
	if type(name) ~= 'string' then return nil end
	local f = commands[name]
	if f == nil then
		local cmd = upper(name)
		f = function(self, ...) return queued(self, 'call', cmd, ...) end
		commands[name] = f
	end
	return f
end

return M
