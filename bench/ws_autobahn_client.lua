-- The lem WebSocket client for Autobahn's fuzzingserver (bench/autobahn.sh):
-- asks for the number of cases, runs each one echoing every message, then
-- has the server write its reports.
--   lem bench/ws_autobahn_client.lua [url]   (default ws://127.0.0.1:9002)
local websocket = require 'lem.websocket'

local base = arg[1] or 'ws://127.0.0.1:9002'
local agent = 'lem'

local ws = assert(websocket.connect(base .. '/getCaseCount'))
local count = assert(tonumber((ws:receive())))
ws:close()

for case = 1, count do
	local c, err = websocket.connect(('%s/runCase?case=%d&agent=%s'):format(base, case, agent), { max_message = 64 * 1024 * 1024 })
	if c then
		while true do
			local data, kind = c:receive()
			if not data then
				break
			end
			if not c:send(data, kind) then
				break
			end
		end
	else
		print(('case %d: %s'):format(case, err))
	end
end

ws = assert(websocket.connect(base .. '/updateReports?agent=' .. agent))
ws:receive()
print(('%d cases run'):format(count))
