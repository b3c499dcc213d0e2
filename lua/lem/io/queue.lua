-- lem.io.queue: many coroutines writing whole messages to one stream. See
-- LEM-API.md "lem.io.queue".
local utils = require 'lem.utils'

local thisthread, suspend, resume = utils.thisthread, utils.suspend, utils.resume
local setmetatable, type, error = setmetatable, type, error

local M = {}

local QStream = {}
QStream.__index = QStream
M.Stream = QStream -- LEM's name: scripts add methods to it
M.QStream = QStream

-- wrap(stream): writes wait their turn (first come, first served) instead
-- of getting 'busy'. Waiting writers are kept in slots first..last.
function M.wrap(stream)
	local t = type(stream)
	if t ~= 'userdata' and t ~= 'table' then
		error(("bad argument #1 to 'wrap' (stream expected, got %s)"):format(stream == nil and 'no value' or t), 2)
	end
	return setmetatable({ stream = stream, busy = false, first = 1, last = 0 }, QStream)
end

function QStream:write(...)
	if self.busy then
		local last = self.last + 1
		self.last = last
		self[last] = thisthread()
		suspend()
	end
	self.busy = true
	local ok, err = self.stream:write(...)
	-- Hand the stream to the next waiting writer, if any still waits.
	while self.first <= self.last do
		local i = self.first
		local co = self[i]
		self[i] = nil
		self.first = i + 1
		if resume(co) then
			return ok, err
		end
	end
	self.busy = false
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
