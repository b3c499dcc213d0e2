-- lem.websocket against hand-made bytes over raw lem TCP sockets: bad
-- upgrades (400, 426), unmasked frames, a length of 2^63 and one past
-- max_message (refused from the head, nothing sent after it), reserved
-- opcodes and bits, bad UTF-8 (also across fragments), fragments with a
-- ping between them, stray continuations, bad close frames, a client that
-- vanishes mid-frame, the closing handshake from the client, a masked frame
-- from a server, timeouts and misuse (core.read and core.send given what is
-- not a Stream or a turn).
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local queue = require 'lem.queue'
local server = require 'lem.http.server'
local websocket = require 'lem.websocket'
local core = require 'lem.websocket.core'

-- The server: every receive's results go into `seen`, and every accept
-- failure too. /small has max_message = 1000.
local seen = queue.new()
local sock = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = sock:getsockname()
local srv = server.new(sock, function(req, res)
	local opts = req.uri == '/small' and { max_message = 1000 } or nil
	local ws, err = websocket.accept(req, res, opts)
	if not ws then
		seen:put({ 'refused', err })
		return
	end
	while true do
		local r = { ws:receive() }
		seen:put(r)
		if r[1] == nil then
			return
		end
		if r[1] == 'echo' then
			ws:send('echo')
		end
	end
end)
utils.spawn(function() srv:run() end)

local function raw_request(head)
	local c = assert(io.tcp.connect('127.0.0.1', port))
	assert(c:write(head))
	return c, assert(c:read('HTTPResponse'))
end

local KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
local function upgrade(path, extra)
	return raw_request('GET ' .. (path or '/') .. ' HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'
		.. 'Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: ' .. KEY .. '\r\n'
		.. 'Sec-WebSocket-Version: 13\r\n' .. (extra or '') .. '\r\n')
end

-- Bad upgrades.
local c, res = raw_request('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
eq(res.status, 426, 'no Upgrade')
eq(res.headers.upgrade, 'websocket', '426 names the protocol')
eq(seen:get(), { 'refused', 'not a websocket upgrade' }, 'refusal')
c:close()
c, res = raw_request('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
	.. 'Sec-WebSocket-Key: ' .. KEY .. '\r\nSec-WebSocket-Version: 8\r\n\r\n')
eq(res.status, 426, 'old version')
eq(res.headers['sec-websocket-version'], '13', '426 names version 13')
eq(seen:get(), { 'refused', 'websocket version 8 not supported' }, 'version refusal')
c:close()
c, res = raw_request('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
	.. 'Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n')
eq(res.status, 400, 'bad key')
eq(seen:get(), { 'refused', 'bad Sec-WebSocket-Key short' }, 'key refusal')
c:close()
c, res = raw_request('POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
	.. 'Sec-WebSocket-Key: ' .. KEY .. '\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n')
eq(res.status, 400, 'POST')
eq(seen:get(), { 'refused', 'websocket upgrade with method POST' }, 'method refusal')
c:close()
c, res = raw_request('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'
	.. 'Sec-WebSocket-Key: ' .. KEY .. '\r\nSec-WebSocket-Version: 13\r\n\r\n')
eq(res.status, 400, 'no Connection: Upgrade')
seen:get()
c:close()

-- A good upgrade: the RFC's example key.
c, res = upgrade()
eq(res.status, 101, 'switching')
eq(res.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', 'accept key')

local function masked(op, data, fin, rsv)
	return core.frame(op, fin ~= false, data, true, rsv)
end

-- Read the server's next frame: its opcode and payload (a close: its code).
local function server_frame(conn)
	local fin, rsv, op, m, data = conn:read('WebSocketFrame')
	assert(fin ~= nil, rsv)
	eq(m, false, 'server frames are not masked')
	if op == 8 then
		return op, (core.parse_close(data))
	end
	return op, data
end

-- Expect the server to close with `code`, its handler to see it, and the
-- connection to end.
local function expect_close(conn, code, what)
	local op, got = server_frame(conn)
	eq({ op, got }, { 8, code }, what .. ': close frame')
	local r = seen:get()
	eq({ r[1], r[2], r[3] }, { nil, 'closed', code }, what .. ': handler')
	eq({ conn:read() }, { nil, 'closed' }, what .. ': connection ends')
	conn:close()
end

-- Fragments with a ping between them; the pong comes at once.
assert(c:write(masked(1, 'frag', false), masked(9, 'ping!'), masked(0, 'mented \xe2\x82', false), masked(0, '\xac')))
eq({ server_frame(c) }, { 10, 'ping!' }, 'pong between fragments')
eq(seen:get(), { 'fragmented €', 'text' }, 'joined across a split character')
assert(c:write(masked(2, '\0\1', false), masked(0, '\2', true)))
eq(seen:get(), { '\0\1\2', 'binary' }, 'binary fragments')
assert(c:write(masked(1, 'echo')))
eq(seen:get(), { 'echo', 'text' }, 'echo asked')
eq({ server_frame(c) }, { 1, 'echo' }, 'echoed unmasked')
-- Client closes: the server answers with the same code and ends the TCP
-- connection.
assert(c:write(masked(8, core.close_payload(4000, 'client bye'))))
eq({ server_frame(c) }, { 8, 4000 }, 'close echoed')
eq(seen:get(), { nil, 'closed', 4000, 'client bye' }, 'handler sees the close')
eq({ c:read() }, { nil, 'closed' }, 'server ends the connection')
c:close()

-- Protocol errors, each on a fresh connection.
local function case(bytes, code, what, path)
	if os.getenv("WSDEBUG") then print(what) end
	local conn = upgrade(path)
	assert(conn:write(bytes))
	expect_close(conn, code, what)
end
case(core.frame(1, true, 'plain', false), 1002, 'unmasked client frame')
case('\x82\xff\x80\0\0\0\0\0\0\0' .. '\1\2\3\4', 1002, 'length 2^63')
case('\x82\xff\x3f\xff\xff\xff\xff\xff\xff\xff' .. '\1\2\3\4', 1009, 'length 2^62, nothing sent after the head')
case('\x82\xff\0\0\0\0\0\0\4\0' .. '\1\2\3\4', 1009, 'past max_message from the head', '/small')
case(masked(1, ('x'):rep(600), false) .. masked(0, ('y'):rep(600)), 1009, 'fragments past max_message', '/small')
case(masked(3, 'x'), 1002, 'reserved opcode')
case(masked(11, 'x'), 1002, 'reserved control opcode')
case(masked(1, 'x', true, 4), 1002, 'RSV1 without an extension')
case(masked(9, ('p'):rep(126)), 1002, 'long ping')
case(masked(9, 'p', false), 1002, 'fragmented ping')
case(masked(1, 'bad \xff utf8'), 1007, 'bad UTF-8')
case(masked(1, '\xed\xa0\x80'), 1007, 'surrogate')
case(masked(1, 'ok \xe2', false) .. masked(0, '\x28'), 1007, 'bad UTF-8 across fragments')
case(masked(1, 'ends \xe2\x82'), 1007, 'unfinished character at the end')
case(masked(0, 'x'), 1002, 'continuation outside a message')
case(masked(1, 'a', false) .. masked(1, 'b'), 1002, 'new message inside a fragmented one')
case(masked(8, '\3'), 1002, 'close frame of one byte')
case(masked(8, '\3\237'), 1002, 'close code 1005 on the wire')
case(masked(8, '\3\231'), 1002, 'close code 999')
case(masked(8, '\3\232\xff'), 1007, 'close reason not UTF-8')

-- permessage-deflate: negotiated when offered (past an unknown offer); a
-- compression bomb stops at max_message (1009); bytes that are no
-- deflate stream close with 1007; a window under 15 bits is declined.
local DEFLATE = 'Sec-WebSocket-Extensions: x-unknown, permessage-deflate; client_max_window_bits\r\n'
c, res = upgrade('/small', DEFLATE)
eq(res.headers['sec-websocket-extensions'], 'permessage-deflate', 'deflate accepted')
local tx, rx = core.deflate(false, false), core.deflate(false, false)
assert(c:write(masked(1, tx:compress('echo'), true, 4)))
eq(seen:get(), { 'echo', 'text' }, 'compressed message')
local _, zrsv, zop, _, zdata = c:read('WebSocketFrame')
eq({ zrsv, zop, rx:decompress(zdata, true, 100) }, { 4, 1, 'echo' }, 'compressed answer')
assert(c:write(masked(1, tx:compress('bomb' .. ('\0'):rep(1 << 20)), true, 4)))
expect_close(c, 1009, 'compression bomb')
c = upgrade('/', DEFLATE)
assert(c:write(masked(2, '\255\255\255\255', true, 4)))
expect_close(c, 1007, 'not a deflate stream')
c, res = upgrade('/', 'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n')
eq(res.headers['sec-websocket-extensions'], nil, 'small window declined')
assert(c:write(masked(1, 'x', true, 4)))
expect_close(c, 1002, 'RSV1 once deflate was declined')

-- A client that vanishes mid-frame: the handler sees 1006.
c = upgrade()
assert(c:write(masked(2, ('z'):rep(1000)):sub(1, 500)))
c:close()
local r = seen:get()
eq({ r[1], r[2], r[3] }, { nil, 'closed', 1006 }, 'vanished mid-frame')

-- A close without code: answered with an empty close frame.
c = upgrade()
assert(c:write(masked(8, '')))
local fin, rsv, op, m, data = c:read('WebSocketFrame')
eq({ fin, rsv, op, m, data }, { true, 0, 8, false, '' }, 'empty close answered empty')
eq(seen:get(), { nil, 'closed', 1005, '' }, 'no status code')
c:close()

-- The lem client against a raw server that masks its frames.
local rawsock = assert(io.tcp.listen('127.0.0.1', 0))
local _, rawport = rawsock:getsockname()
utils.spawn(function()
	local s = assert(rawsock:accept())
	local req = assert(s:read('HTTPRequest'))
	local key = req.headers['sec-websocket-key']
	assert(s:write('HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: '
		.. core.accept_key(key) .. '\r\n\r\n', core.frame(1, true, 'masked!', true)))
	-- The client's close frame, then the end.
	local _, _, op = s:read('WebSocketFrame')
	eq(op, 8, 'client closes the bad server')
	s:close()
end)
local ws = assert(websocket.connect('ws://127.0.0.1:' .. rawport .. '/'))
r = { ws:receive() }
eq({ r[1], r[2], r[3] }, { nil, 'closed', 1002 }, 'masked frame from a server')
rawsock:close()

-- Timeouts and misuse, over a lem client.
ws = assert(websocket.connect('ws://127.0.0.1:' .. port .. '/'))
ws:settimeout(0.05)
eq({ ws:receive() }, { nil, 'timeout' }, 'receive timeout')
assert(ws:send('echo'))
eq(seen:get(), { 'echo', 'text' }, 'still open after a timeout')
eq({ ws:receive() }, { 'echo', 'text' }, 'and usable')
checkerr("bad argument #1 to 'send' (string expected, got no value)", ws.send, ws)
checkerr("bad argument #2 to 'send' (invalid option 'bogus')", ws.send, ws, 'x', 'bogus')
checkerr("bad argument #1 to 'ping' (longer than 125 bytes)", ws.ping, ws, ('x'):rep(126))
checkerr('invalid close code', ws.close, ws, 1005)
checkerr('invalid close code', ws.close, ws, 999)
checkerr('longer than 123 bytes', ws.close, ws, 1000, ('x'):rep(124))
checkerr("bad argument #1 to 'connect' (ws:// or wss:// url expected)", websocket.connect, 'http://x/')
-- The Rust half takes only Streams and turns: anything else (a table with
-- a Stream's metatable, a file, a string) is refused as the Stream methods
-- refuse it, not read as one.
local fake = setmetatable({}, getmetatable(io.stdin))
local file = assert(_G.io.open('support.lua'))
for _, v in ipairs({ fake, file, 'x' }) do
	checkerr('lem.Stream expected', core.read, v)
	checkerr('lem.Stream expected', core.send, v, nil, 1, 'x')
end
file:close()
local raw = assert(io.tcp.connect('127.0.0.1', port))
checkerr('lem.Turn expected', core.send, raw, fake, 1, 'x')
checkerr('lem.Turn expected', core.send, raw, raw, 1, 'x')
raw:close()
checkerr('max_message must be a positive integer', websocket.connect, 'ws://x/', { max_message = 0 })
eq(ws:close(1001), true, 'close')
eq(seen:get(), { nil, 'closed', 1001, '' }, 'server saw 1001')
checkerr('protocol x y is not a token', websocket.connect, 'ws://127.0.0.1:' .. port .. '/', { protocols = { 'x y' } })
srv:close()
