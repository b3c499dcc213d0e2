-- wss://: lem.websocket over a lem.http.server on io.tls.listen, the lem
-- client verifying a CA made at test time (and refusing without it), in
-- insecure mode, and over a Unix socket server (accept works on any
-- lem Server).
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'
local websocket = require 'lem.websocket'

local ca, cert, key = dofile('support.lua').certs()

local function echo(req, res)
	local ws = assert(websocket.accept(req, res))
	while true do
		local data, kind = ws:receive()
		if not data then
			return
		end
		ws:send(data, kind)
	end
end

local tls = assert(io.tls.listen('127.0.0.1', 0, { cert = cert, key = key }))
local _, port = tls:getsockname()
local srv = server.new(tls, echo)
utils.spawn(function() srv:run() end)

local url = ('wss://localhost:%d/secure'):format(port)
local ws = assert(websocket.connect(url, { cafile = ca }))
local big = ('secret '):rep(100000)
assert(ws:send(big))
eq({ ws:receive() }, { big, 'text' }, 'echo over TLS')
assert(ws:send('\0\1', 'binary'))
eq({ ws:receive() }, { '\0\1', 'binary' }, 'binary over TLS')
eq(ws:close(1000), true, 'close over TLS')

local bad, err = websocket.connect(url)
eq(bad, nil, 'unknown issuer refused')
assert(type(err) == 'string', 'an error message')
ws = assert(websocket.connect(('wss://127.0.0.1:%d/'):format(port), { insecure = true, deflate = false }))
assert(ws:send('insecure'))
eq({ ws:receive() }, { 'insecure', 'text' }, 'insecure mode')
ws:close()
srv:close()

-- Over a Unix socket server: the client side is a raw Unix stream with a
-- hand-made upgrade.
local path = tmpdir() .. '/ws.sock'
local usock = assert(io.unix.listen(path))
local usrv = server.new(usock, echo)
utils.spawn(function() usrv:run() end)
local c = assert(io.unix.connect(path))
assert(c:write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
	.. 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'))
eq(assert(c:read('HTTPResponse')).status, 101, 'upgrade over a Unix socket')
local core = require 'lem.websocket.core'
assert(c:write(core.frame(1, true, 'unix', true)))
local fin, _, op, _, data = c:read('WebSocketFrame')
eq({ fin, op, data }, { true, 1, 'unix' }, 'echo over a Unix socket')
c:close()
usrv:close()
