-- A WebSocket echo server on lem.http.server, for bench/ws.sh and
-- bench/autobahn.sh: every message goes back as it came (text or binary).
--   lem bench/ws_echo.lua [port [max_message]]
local io = require 'lem.io'
local server = require 'lem.http.server'
local websocket = require 'lem.websocket'

local port = tonumber(arg[1]) or 9001
local max = tonumber(arg[2]) or 64 * 1024 * 1024
local sock = assert(io.tcp.listen('127.0.0.1', port))
local srv = server.new(sock, function(req, res)
	local ws = websocket.accept(req, res, { max_message = max })
	if not ws then
		return
	end
	while true do
		local data, kind = ws:receive()
		if not data then
			return
		end
		if not ws:send(data, kind) then
			return
		end
	end
end)
print(('listening on ws://127.0.0.1:%d/'):format(select(2, sock:getsockname())))
_G.io.stdout:flush()
srv:run()
