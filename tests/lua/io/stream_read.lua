-- Stream read formats, write, lines, busy, close and timeouts over a real
-- loopback TCP connection.
local support = dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

local server = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = server:getsockname()

-- A connected pair: a (client side) and b (accepted side).
local function pair()
	return support.tcp_pair(server)
end

local a, b = pair()

-- write: many strings in order, one call; read formats.
eq(a:write('one\n', 'two\r\n', 'th', 'ree|four', '12345', 'x'), true, 'write')
eq(a:write(), true, 'write of nothing')
eq(b:read('*l'), 'one', 'line')
eq(b:read('*l'), 'two\r', "a '\\r' before the stop byte is kept")
eq(b:read('*l', '|'), 'three', 'custom stop byte')
eq(b:read(4), 'four', 'read(n)')
eq(b:read(0), '', 'read(0)')
eq(b:read(), '12345x', 'read() returns what is buffered')

-- Reads that must wait: the writer comes later.
utils.spawn(function()
	a:write('par')
	utils.yield()
	a:write('tial line\nand more')
end)
eq(b:read('*l'), 'partial line', 'line assembled from two writes')
eq(b:read(8), 'and more', 'count across waits')

-- Argument errors raise Lua's own wording.
checkerr("bad argument #1 to 'read' (invalid format)", function() b:read('nosuch') end)
checkerr("invalid format", b.read, b, {})
checkerr("bad argument #2 to 'write' (string expected, got table)", function() a:write('x', {}) end)

-- A second concurrent reader gets 'busy'; closing wakes the waiter.
local woke = {}
utils.spawn(function() woke[1], woke[2] = b:read('*l') end)
utils.yield()
eq({ b:read() }, { nil, 'busy' }, 'second reader')
eq({ b:read('*l') }, { nil, 'busy' }, 'second reader, other format')
assert(b:close())
utils.yield()
eq(woke, { nil, 'closed' }, 'close wakes the reader')
eq({ b:read() }, { nil, 'closed' }, 'read after close')
eq({ b:write('x') }, { nil, 'closed' }, 'write after close')
eq({ b:close() }, { nil, 'closed' }, 'second close')
eq(b:closed(), true, 'closed()')
eq(a:closed(), false, 'peer still open')

-- The peer's close: pending data is still delivered, then 'closed'.
a:close()
a, b = pair()
a:write('last words')
a:close()
eq({ b:read('*l') }, { nil, 'closed' }, 'no stop byte before EOF')
eq(b:read(), 'last words', 'buffered data survives')
eq({ b:read() }, { nil, 'closed' }, 'then closed')
b:close()

-- '*a' reads until the peer closes.
a, b = pair()
utils.spawn(function()
	for i = 1, 10 do a:write(('%d,'):format(i)); utils.yield() end
	a:close()
end)
eq(b:read('*a'), '1,2,3,4,5,6,7,8,9,10,', "read('*a')")
eq({ b:read('*a') }, { nil, 'closed' }, "read('*a') at the end: the end closed the stream")
b:close()

-- Timeouts: the call returns nil, 'timeout'; buffered input is kept and
-- the stream stays usable.
a, b = pair()
assert(b:settimeout(0.05))
a:write('no newline yet')
eq({ b:read('*l') }, { nil, 'timeout' }, 'timeout')
a:write(' ... now\n')
eq(b:read('*l'), 'no newline yet ... now', 'data kept across a timeout')
-- The stream's read timer is reused: it fires again, each time after the
-- whole timeout of its own read.
eq({ b:read('*l') }, { nil, 'timeout' }, 'second timeout')
assert(b:settimeout(0.3))
utils.spawn(function() utils.newsleeper():sleep(0.15); a:write('in time\n') end)
eq(b:read('*l'), 'in time', 'read before the timeout')
utils.spawn(function() utils.newsleeper():sleep(0.2); a:write('again in time\n') end)
eq(b:read('*l'), 'again in time', 'the timer restarts for each read')
eq({ b:read('*l') }, { nil, 'timeout' }, 'timeout after reads in time')
-- A deadline earlier than the one the timer was last set for is kept.
assert(b:settimeout(1))
utils.spawn(function() utils.newsleeper():sleep(0.02); a:write('soon\n') end)
eq(b:read('*l'), 'soon', 'read with the timer set for a second')
assert(b:settimeout(0.02))
local t0 = utils.now()
eq({ b:read('*l') }, { nil, 'timeout' }, 'a shorter timeout')
assert(utils.now() - t0 < 0.25, 'the shorter timeout fired first')
assert(b:settimeout(nil))
utils.spawn(function() utils.newsleeper():sleep(0.05); a:write('late\n') end)
eq(b:read('*l'), 'late', 'no timeout after settimeout(nil)')

-- The buffer limit: a line longer than the limit fails, the stream stays
-- consistent and the data can still be read.
assert(b:setlimit(16))
a:write(('x'):rep(40))
eq({ b:read('*l') }, { nil, 'line too long' }, 'limit')
eq(#b:read(40), 40, 'the long data is still there, read(n) is not limited')
a:write('short\n')
eq(b:read('*l'), 'short', 'usable after the limit error')
checkerr("bad argument #1 to 'setlimit'", function() b:setlimit(0) end)

-- lines()
utils.spawn(function()
	a:write('l1\nl2\n', 'l3\n')
	a:close()
end)
local got = {}
for line in b:lines() do got[#got + 1] = line end
eq(got, { 'l1', 'l2', 'l3' }, 'lines')
b:close()

-- Writing to a closed peer: 'closed', never SIGPIPE.
a, b = pair()
b:close()
local r, err
for _ = 1, 100 do
	r, err = a:write(('y'):rep(65536))
	if not r then break end
end
eq({ r, err }, { nil, 'closed' }, 'write to a closed peer')
a:close()

-- A writer waiting on a full socket: timeout, then close wakes it.
a, b = pair()
a:settimeout(0.05)
local chunk = ('w'):rep(1024 * 1024)
local wr, werr
for _ = 1, 64 do
	wr, werr = a:write(chunk)
	if not wr then break end
end
eq({ wr, werr }, { nil, 'timeout' }, 'write timeout on a full socket')
a:settimeout(nil)
local wres = {}
utils.spawn(function() wres = { a:write(chunk) } end)
utils.yield()
eq({ a:write('x') }, { nil, 'busy' }, 'second writer busy')
assert(a:close())
utils.yield()
eq(wres, { nil, 'closed' }, 'close wakes the writer')
b:close()

-- Outside a coroutine that may yield, a read that would wait raises.
a, b = pair()
local ok, msg = pcall(table.sort, { 1, 2 }, function() b:read('*l'); return false end)
assert(not ok and msg:find('outside a lem coroutine'), msg)
a:write('not busy\n')
eq(b:read('*l'), 'not busy', 'a refused suspension leaves nothing busy')
a:close()
b:close()
server:close()
