-- lem.http.client after a server restart: four kept connections all die
-- at once (the server closes every connection it holds), and the next
-- request goes past every dead one to a new connection instead of
-- failing; a request whose body cannot be sent again is not retried.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local client = require 'lem.http.client'

local server = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = server:getsockname()
local held, accepted = {}, 0
utils.spawn(function()
	server:autospawn(function(c)
		accepted = accepted + 1
		held[c] = true
		while true do
			local req = c:read('HTTPRequest')
			if not req then break end
			local n = tonumber(req.headers['content-length'])
			if n and n > 0 then c:read(n) end
			-- Slow enough that four callers need four connections.
			utils.newsleeper():sleep(0.02)
			if not c:write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok') then break end
		end
		held[c] = nil
		c:close()
	end)
end)
local function restart()
	for c in pairs(held) do c:close() end
	utils.newsleeper():sleep(0.05)
end

local url = ('http://127.0.0.1:%d/'):format(port)
local c = client.new { pool = 8 }
local done, n = utils.newsleeper(), 0
for _ = 1, 4 do
	utils.spawn(function()
		local resp = assert(c:get(url))
		eq(resp:body(), 'ok', 'a first request')
		n = n + 1
		if n == 4 then done:wakeup() end
	end)
end
done:sleep()
eq(accepted, 4, 'four connections kept')

restart()
local resp, err = c:get(url)
assert(resp, 'a request after the restart failed: ' .. tostring(err))
eq(resp:body(), 'ok', 'answered on a new connection')
eq(accepted, 5, 'past the four dead ones, one new connection')

-- A body from a function cannot be sent again: the failure is the caller's.
restart()
local sent = false
resp, err = c:request('POST', url, { body = function()
	if sent then return nil end
	sent = true
	return 'data'
end })
eq(resp, nil, 'a streamed body is not sent twice')
eq(type(err), 'string', 'with the error')
c:close()
server:close()
print('client restart ok')
