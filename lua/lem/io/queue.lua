-- lem.io.queue: many coroutines writing whole messages to one stream. See
-- docs/io-queue.md.
local utils = require 'lem.utils'

local newturn = utils.newturn
local setmetatable, type, error = setmetatable, type, error

local M = {}

local QStream = {}
QStream.__index = QStream
M.Stream = QStream -- LEM's name: scripts add methods to it
M.QStream = QStream

-- wrap(stream): writes wait their turn (first come, first served: a
-- utils.newturn()) instead of getting 'busy'.
function M.wrap(stream)
	local t = type(stream)
	if t ~= 'userdata' and t ~= 'table' then
		error(("bad argument #1 to 'wrap' (stream expected, got %s)"):format(stream == nil and 'no value' or t), 2)
	end
	return setmetatable({ stream = stream, turn = newturn() }, QStream)
end

function QStream:write(...)
	local turn = self.turn
	turn:take()
	local ok, err = self.stream:write(...)
	-- The stream goes to the next waiting writer, if any.
	turn:give()
	return ok, err
end

function QStream:close()
	return self.stream:close()
end

function QStream:closed()
	return self.stream:closed()
end

-- Everything else reaches the stream itself.
for _, name in ipairs({ 'read', 'lines', 'cork', 'uncork', 'getpeer', 'sendfile' }) do
	QStream[name] = function(self, ...)
		local s = self.stream
		return s[name](s, ...)
	end
end

-- Method calls, not a tail call, so that a bad argument is named as the
-- script's own call (`bad argument #1 to 'settimeout'`).
function QStream:settimeout(t)
	local ok, err = self.stream:settimeout(t)
	return ok, err
end

function QStream:setlimit(n)
	local ok, err = self.stream:setlimit(n)
	return ok, err
end

return M
