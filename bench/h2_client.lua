-- The lem side of bench/h2_client.sh: N GET requests to an h2c server
-- (prior knowledge) on PORT from CONC coroutines sharing one client, so
-- one HTTP/2 connection; prints requests per second.
-- usage: lem bench/h2_client.lua PORT N CONC
local utils = require 'lem.utils'
local client = require 'lem.http.client'

local port, n, conc = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
local url = ('http://127.0.0.1:%d/'):format(port)
local c = client.new({ http2 = 'prior' })
local left, running = n, conc
local start = utils.now()
for _ = 1, conc do
	utils.spawn(function()
		while left > 0 do
			left = left - 1
			local res = assert(c:get(url))
			assert(res:body() == 'Hello, World!\n')
		end
		running = running - 1
	end)
end
while running > 0 do
	utils.newsleeper():sleep(0.01)
end
utils.updatenow()
print(math.floor(n / (utils.now() - start)))
c:close()
