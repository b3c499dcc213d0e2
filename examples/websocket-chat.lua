#!/usr/bin/env lem
-- A WebSocket chat on hathaway: GET / serves a page whose script opens a
-- WebSocket to /chat; every message a client sends is echoed to it as
-- "you: ..." and broadcast to the others as "NAME: ...".
--   lem examples/websocket-chat.lua [port [host]]   (port 0: any free port)
local hathaway = require 'lem.hathaway'
local websocket = require 'lem.websocket'
hathaway.import()

local PAGE = [[
<!DOCTYPE html>
<html><head><meta charset="UTF-8"><title>lem chat</title></head>
<body>
<h1>lem chat</h1>
<ul id="log"></ul>
<form id="form"><input id="text" autocomplete="off"><button>Send</button></form>
<script>
const log = document.getElementById('log');
function show(text) {
	const li = document.createElement('li');
	li.textContent = text;
	log.appendChild(li);
}
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/chat');
ws.onopen = () => { document.title = 'lem chat: connected'; };
ws.onmessage = (e) => { show(e.data); };
ws.onclose = (e) => { show('closed: ' + e.code); };
document.getElementById('form').onsubmit = (e) => {
	e.preventDefault();
	const t = document.getElementById('text');
	ws.send(t.value);
	t.value = '';
};
</script>
</body></html>
]]

GET('/', function(_, res)
	res.headers['Content-Type'] = 'text/html; charset=UTF-8'
	res:add(PAGE)
end)

-- The open WebSockets, each with its name.
local clients = {}
local count = 0

GET('/chat', function(req, res)
	local ws = websocket.accept(req, res, { max_message = 64 * 1024 })
	if not ws then
		return -- a 400 or 426 was answered
	end
	count = count + 1
	local name = 'guest' .. count
	clients[ws] = name
	ws:send('welcome, ' .. name)
	while true do
		local text, kind = ws:receive()
		if not text then
			break
		end
		if kind == 'text' then
			ws:send('you: ' .. text)
			for other in pairs(clients) do
				if other ~= ws then
					-- Sends wait their turn on each WebSocket, so many
					-- handlers may broadcast at once.
					other:send(name .. ': ' .. text)
				end
			end
		end
	end
	clients[ws] = nil
end)

-- Listen first, so that port 0 (any free port) prints the port it got.
local port, host = tonumber(arg[1]) or 8080, arg[2] or '127.0.0.1'
local sock = assert(require('lem.io').tcp.listen(host, port))
local _, bound = sock:getsockname()
print(('listening on http://%s:%d/'):format(host, bound))
io.stdout:flush() -- for a parent reading our stdout through a pipe
Hathaway(sock)
