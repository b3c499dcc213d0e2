-- lem.websocket against Python's websockets: a Python client against a
-- lem server (subprotocols, Origin, text, binary, 400 KiB of UTF-8,
-- fragments cut inside a character, ping, close from either side), and the
-- lem client against a Python server.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'
local websocket = require 'lem.websocket'

local PY = '/usr/bin/python3'

-- The lem echo server.
local sock = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = sock:getsockname()
local closes = {}
local srv = server.new(sock, function(req, res)
	local ws = assert(websocket.accept(req, res, { protocols = { 'superchat', 'chat' } }))
	while true do
		local data, kind, code, reason = ws:receive()
		if not data then
			closes[#closes + 1] = { kind, code, reason }
			return
		end
		if data == 'origin?' then
			data = req.headers.origin
		elseif data == 'header?' then
			data = req.headers['x-test']
		elseif data == 'close-me' then
			eq(ws:close(4002, 'server says bye'), true, 'server close')
			closes[#closes + 1] = { 'server closed' }
			return
		end
		assert(ws:send(data, kind))
	end
end)
utils.spawn(function() srv:run() end)

local py = assert(io.spawn({ PY, 'data/ws_peer.py', 'client', 'ws://127.0.0.1:' .. port .. '/chat' }, { stdout = 'pipe' }))
eq(py.stdout:read('*a'), 'ok\n', 'python client')
eq(py:wait().status, 0, 'python client status')
eq(closes[1], { 'closed', 4001, 'bye from python' }, 'close seen by the server')
eq(closes[2], { 'server closed' }, 'server closed')
eq(#closes, 4, 'two deflate connections')
srv:close()

-- The lem client against a Python server.
local pys = assert(io.spawn({ PY, 'data/ws_peer.py', 'server' }, { stdout = 'pipe' }))
local pport = assert(tonumber(pys.stdout:read('*l')))
local ok, err = pcall(function()
	local url = 'ws://127.0.0.1:' .. pport .. '/some/path?q=1'
	local ws = assert(websocket.connect(url, { protocols = { 'v1', 'v3' }, headers = { ['X-Test'] = 'hdr' } }))
	eq(ws.protocol, 'v1', 'protocol chosen by the server')
	assert(ws:send('protocol?'))
	eq({ ws:receive() }, { 'v1', 'text' }, 'protocol as the server saw it')
	assert(ws:send('header?'))
	eq({ ws:receive() }, { 'hdr', 'text' }, 'extra header')
	assert(ws:send('path?'))
	eq({ ws:receive() }, { '/some/path?q=1', 'text' }, 'path')
	local blob = ('\0\1\2\255'):rep(1 << 18)
	assert(ws:send(blob, 'binary'))
	eq({ ws:receive() }, { blob, 'binary' }, '1 MiB binary echo')
	local text = ('żółw '):rep(10000)
	assert(ws:send(text))
	eq({ ws:receive() }, { text, 'text' }, 'UTF-8 echo')
	-- Python's ping is answered by receive, which then gets the message.
	assert(ws:send('ping-me'))
	eq({ ws:receive() }, { 'pinged', 'text' }, 'after a ping')
	assert(ws:ping('hi'))
	assert(ws:send('after ping'))
	eq({ ws:receive() }, { 'after ping', 'text' }, 'pong skipped')
	eq(ws:closed(), false, 'open')
	eq(ws._deflate ~= nil, true, 'deflate negotiated with python')
	eq(ws:close(1000, 'done'), true, 'client close')
	eq(ws:closed(), true, 'closed')
	eq({ ws:receive() }, { nil, 'closed', 1000, 'done' }, 'receive after close')
	eq({ ws:send('x') }, { nil, 'closed' }, 'send after close')
	eq({ ws:close() }, { nil, 'closed' }, 'close twice')
	ws = assert(websocket.connect(url, { deflate = false }))
	eq(ws._deflate, nil, 'deflate = false')
	assert(ws:send(text))
	eq({ ws:receive() }, { text, 'text' }, 'uncompressed echo')
	ws:close()

	-- The server closes.
	ws = assert(websocket.connect('ws://127.0.0.1:' .. pport .. '/'))
	eq(ws.protocol, nil, 'no protocol offered')
	assert(ws:send('close-me'))
	eq({ ws:receive() }, { nil, 'closed', 4003, 'python says bye' }, 'closed by the server')
	eq(ws:closed(), true, 'closed by the server')

	-- A protocol the client did not offer is refused: the server offers
	-- none of ours, so it chooses none, which is fine.
	ws = assert(websocket.connect('ws://127.0.0.1:' .. pport .. '/', { protocols = { 'v9' } }))
	eq(ws.protocol, nil, 'no common protocol')
	ws:close()
end)
pys:kill()
pys:wait()
assert(ok, err)
