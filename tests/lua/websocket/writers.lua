-- lem.websocket's writers and payloads: two coroutines sending large
-- messages on one server WebSocket while the client is slow to read (their
-- writes wait for the kernel, and the reader answers pings meanwhile)
-- never interleave frames, and each one's messages keep their order; the
-- lem client and server echo every size around the unmasking's and the
-- UTF-8 check's chunks (16, 32, 64 bytes, the 4 KiB stack buffer), ASCII,
-- not ASCII, binary; invalid UTF-8 after a long ASCII run is refused
-- (1007), from one frame and across fragments.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'
local websocket = require 'lem.websocket'
local core = require 'lem.websocket.core'

local COUNT, SIZE = 16, 256 * 1024

local sock = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = sock:getsockname()
local srv = server.new(sock, function(req, res)
	local ws = assert(websocket.accept(req, res))
	if req.uri == '/two' then
		-- Two senders, 8 MiB each; this coroutine reads (and answers pings).
		local left = 2
		for _, name in ipairs({ 'A', 'B' }) do
			utils.spawn(function()
				for i = 0, COUNT - 1 do
					local head = name .. i .. ':'
					assert(ws:send(head .. name:rep(SIZE - #head), 'binary'))
				end
				left = left - 1
				if left == 0 then
					assert(ws:send('done'))
				end
			end)
		end
	end
	while true do
		local data, kind = ws:receive()
		if not data then
			return
		end
		ws:send(data, kind)
	end
end)
utils.spawn(function() srv:run() end)

-- Two writers, one slow reader: a Python client with a small receive
-- buffer (so that the senders' writes wait for the kernel) pings five
-- times, reads nothing for a while, then reads every frame and checks it.
local READER = [[
import os, socket, struct, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'GET /two HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
          b'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
buf = b''
def need(n):
    global buf
    while len(buf) < n:
        d = s.recv(65536)
        if not d:
            raise SystemExit('connection ended')
        buf += d
def take(n):
    global buf
    need(n)
    d, buf = buf[:n], buf[n:]
    return d
while b'\r\n\r\n' not in buf:
    need(len(buf) + 1)
head, buf = buf.split(b'\r\n\r\n', 1)
assert head.startswith(b'HTTP/1.1 101'), head
def masked(op, data):
    key = os.urandom(4)
    return bytes([0x80 | op, 0x80 | len(data)]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))
for i in range(5):
    s.sendall(masked(9, b'p%d' % i))
time.sleep(0.5)
seen, pongs, bad = {'A': 0, 'B': 0}, 0, 0
while True:
    b0, b1 = take(2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack('>H', take(2))[0]
    elif n == 127:
        n = struct.unpack('>Q', take(8))[0]
    op, data = b0 & 0x0f, take(n)
    if b0 & 0x80 == 0 or b1 & 0x80:
        bad += 1
    if op == 10:
        pongs += 1
    elif op == 1 and data == b'done':
        break
    else:
        name = chr(data[0])
        want = ('%s%d:' % (name, seen.get(name, 0))).encode()
        if name in seen and data == want + name.encode() * (SIZE - len(want)):
            seen[name] += 1
        else:
            bad += 1
s.sendall(masked(8, b'\x03\xe8'))
print('A %d B %d pongs %d bad %d' % (seen['A'], seen['B'], pongs, bad))
]]
local py = assert(io.spawn({ '/usr/bin/python3', '-c', 'SIZE = ' .. SIZE .. '\n' .. READER, tostring(port) },
	{ stdout = 'pipe' }))
eq(py.stdout:read('*a'), ('A %d B %d pongs 5 bad 0\n'):format(COUNT, COUNT), 'whole frames, in order, every pong')
eq(py:wait().status, 0, "python reader status")

-- Sizes around every chunk, both ways (the client masks, the server does
-- not): ASCII, a two-byte character at the end or in the middle, binary.
ws = assert(websocket.connect(('ws://127.0.0.1:%d/echo'):format(port)))
local bin = {}
for i = 0, 255 do
	bin[#bin + 1] = string.char(i)
end
bin = table.concat(bin):rep(300)
for _, n in ipairs({ 0, 1, 2, 3, 4, 5, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 100, 125, 126, 127,
	1000, 1024, 4095, 4096, 4097, 65535, 65536, 70000 }) do
	local ascii = ('abcdefghijklmnopqrstuvwxyz'):rep(math.floor(n / 26) + 1):sub(1, n)
	local texts = { ascii }
	if n >= 2 then
		texts[2] = ascii:sub(1, n - 2) .. '\xc3\xa9'
		texts[3] = ascii:sub(1, math.floor(n / 2) - 1) .. '\xc3\xa9' .. ascii:sub(math.floor(n / 2) + 2)
	end
	for k, t in ipairs(texts) do
		eq(#t, n, 'size')
		assert(ws:send(t))
		local got, kind = ws:receive()
		assert(got == t, ('text of %d bytes (%d) echoed as sent'):format(n, k))
		eq(kind, 'text', 'text')
	end
	local b = bin:sub(1, n)
	assert(ws:send(b, 'binary'))
	local got, kind = ws:receive()
	assert(got == b, ('binary of %d bytes echoed as sent'):format(n))
	eq(kind, 'binary', 'binary')
end
eq(ws:close(1000), true, 'close')

-- Invalid UTF-8 after a long ASCII run: refused with 1007.
local function raw()
	local c = assert(io.tcp.connect('127.0.0.1', port))
	assert(c:write('GET /raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
		.. 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'))
	eq(assert(c:read('HTTPResponse')).status, 101, 'raw upgrade')
	return c
end
local function refused(c, what)
	local fin, _, op, _, data = c:read('WebSocketFrame')
	eq({ fin, op, (core.parse_close(data)) }, { true, 8, 1007 }, what)
	c:close()
end
local long = ('a'):rep(100)
local c = raw()
assert(c:write(core.frame(1, true, long .. '\xff' .. long, true)))
refused(c, 'bad byte after 100 ASCII bytes')
c = raw()
assert(c:write(core.frame(1, true, long .. '\xed\xa0\x80', true)))
refused(c, 'surrogate after 100 ASCII bytes')
c = raw()
assert(c:write(core.frame(1, false, long .. '\xc3', true), core.frame(0, true, long, true)))
refused(c, 'character cut by a fragment and not finished')
c = raw()
assert(c:write(core.frame(1, false, long .. '\xc3', true), core.frame(0, true, '\xa9' .. long, true)))
local fin, _, op, _, data = c:read('WebSocketFrame')
eq({ fin, op, data }, { true, 1, long .. '\xc3\xa9' .. long }, 'character across fragments after ASCII')
c:close()

srv:close()
