-- lem.io.queue exports its class as Stream (LEM's name): a method added to
-- it reaches every wrapped stream.
dofile('support.lua')
local io = require 'lem.io'
local queue = require 'lem.io.queue'

local srv = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = srv:getsockname()
local c = assert(io.tcp.connect('127.0.0.1', port))
local peer = assert(srv:accept())

assert(queue.Stream, 'queue.Stream exported')
local w = queue.wrap(c)
assert(getmetatable(w) == queue.Stream, 'a wrapped stream has queue.Stream as metatable')
assert(rawequal(queue.Stream.__index, queue.Stream), 'queue.Stream is its own __index')
function queue.Stream:printf(fmt, ...)
	return self:write(fmt:format(...))
end
assert(w:printf('%d-%s\n', 42, 'x'))
eq(peer:read('*l'), '42-x', 'printf through the queue')
c:close(); peer:close(); srv:close()
