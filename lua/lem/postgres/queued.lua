-- lem.postgres.queued: connections whose calls wait their turn instead of
-- failing with 'busy' (the original's lem.postgres.queued). db:lock()
-- hands out the raw connection for several calls in a row; db:unlock()
-- gives it back.

local postgres = require 'lem.postgres'
local utils = require 'lem.utils'

local newturn = utils.newturn
local setmetatable, select, pcall, error = setmetatable, select, pcall, error
local unpack = table.unpack or unpack

local M = setmetatable({}, { __index = postgres })

local Connection = {}
Connection.__index = Connection
M.Connection = Connection

-- queued.connect(conninfo [, options]) -> Connection | nil, err (options
-- as postgres.connect's)
function M.connect(conninfo, options)
	local db, err = postgres.connect(conninfo, options)
	if not db then return nil, err end
	return setmetatable({ db = db, turn = newturn() }, Connection)
end

-- db:lock() -> the raw connection, once every earlier caller unlocked it.
function Connection:lock()
	self.turn:take()
	return self.db
end

-- db:unlock(): the next caller in line gets the connection (unlocking a
-- connection nobody locked does nothing).
function Connection:unlock()
	self.turn:give()
end

local function pack(...)
	return { n = select('#', ...), ... }
end

for _, name in ipairs { 'exec', 'prepare', 'run', 'put', 'done', 'get', 'reset',
	'listen', 'notification', 'settimeout' } do
	Connection[name] = function(self, ...)
		local db = self:lock()
		local r = pack(pcall(db[name], db, ...))
		self:unlock()
		if not r[1] then error(r[2], 2) end
		return unpack(r, 2, r.n)
	end
end

-- db:close(): at once, interrupting a call under way ('interrupted').
function Connection:close()
	return self.db:close()
end

function Connection:closed()
	return self.db:closed()
end

return M
