-- N WebSocket clients held open for SECS seconds, each sending a ping every
-- second (the pongs are taken by a receiving coroutine per connection), for
-- bench/ws_idle.sh. Prints when all are connected, and the pongs at the end.
--   lem bench/ws_idle_client.lua URL [N [SECS]]
local utils = require 'lem.utils'
local websocket = require 'lem.websocket'

local url, n, secs = arg[1], tonumber(arg[2]) or 1000, tonumber(arg[3]) or 20
local all = {}
for i = 1, n do
	all[i] = assert(websocket.connect(url))
end
print(('%d connected'):format(n))
_G.io.stdout:flush()
local done = 0
for i = 1, n do
	local ws = all[i]
	utils.spawn(function()
		ws:receive() -- pongs are dropped inside; returns at the close
	end)
	utils.spawn(function()
		local s = utils.newsleeper()
		for _ = 1, secs do
			assert(ws:ping('p'))
			s:sleep(1)
		end
		ws:close()
		done = done + 1
	end)
end
local s = utils.newsleeper()
while done < n do
	s:sleep(0.5)
end
print(('%d closed after %d s of pings'):format(n, secs))
