-- A Stream whose read hit the end of its input is closed, as in the
-- original: closed() is true, close() and getpeer() and write() return
-- nil, 'closed'. What was buffered before the end is still read.
local support = dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

local server = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = server:getsockname()
-- A connected pair: a (client side) and b (accepted side).
local function pair()
	return support.tcp_pair(server)
end

local function check_ended(s, what)
	eq(s:closed(), true, what .. ': closed()')
	eq({ s:getpeer() }, { nil, 'closed' }, what .. ': getpeer()')
	eq({ s:write('x') }, { nil, 'closed' }, what .. ': write()')
end

-- The end seen by a read that waited for it.
local a, b = pair()
assert(b:getpeer())
utils.spawn(function()
	utils.yield()
	a:write('hello\nrest')
	a:close()
end)
eq(b:read('*l'), 'hello', 'a line before the end')
eq(b:closed(), false, 'not closed before the end was seen')
eq({ b:read('*l') }, { nil, 'closed' }, 'no stop byte before the end')
check_ended(b, 'after a waiting read')
eq(b:read(), 'rest', 'what came before the end is still read')
eq({ b:read() }, { nil, 'closed' }, 'then closed')
eq({ b:close() }, { nil, 'closed' }, 'close() of an ended stream')

-- The end found at once (data and FIN already there).
a, b = pair()
a:write('abc')
a:close()
utils.yield()
eq(b:read('*a'), 'abc', "read('*a')")
check_ended(b, "after read('*a')")
eq({ b:read('*a') }, { nil, 'closed' }, "read('*a') after the end")
eq({ b:close() }, { nil, 'closed' }, 'close() after the end')

-- close() of an ended stream drops what it still buffered.
a, b = pair()
a:write('x\nleft over')
a:close()
eq(b:read('*l'), 'x', 'line')
eq({ b:read('*l') }, { nil, 'closed' }, 'the end')
eq({ b:close() }, { nil, 'closed' }, 'close')
eq({ b:read() }, { nil, 'closed' }, 'nothing left after close()')

-- A pipe: the end of a child's output.
local p = assert(io.popen('printf "out"', 'r'))
eq(p:read('*a'), 'out', 'popen output')
eq(p:closed(), true, 'popen stream closed at its end')
eq({ p:close() }, { nil, 'closed' }, 'popen close() after the end')

server:close()
