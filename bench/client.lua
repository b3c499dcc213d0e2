-- lem.http.client's speed, for bench/client.sh: `lem bench/client.lua URL
-- [N [C]]`. C coroutines (default 64) share one client and send N GET
-- requests in all (default 200,000), each reading the whole body; prints
-- `requests<TAB>seconds<TAB>requests per second`.
local utils = require 'lem.utils'
local client = require 'lem.http.client'

local url = assert(arg[1], 'usage: lem bench/client.lua URL [N [C]]')
local N = tonumber(arg[2]) or 200000
local C = tonumber(arg[3]) or 64
local c = client.new { pool = C }

local left, running, failed = N, C, 0
local done = utils.newsleeper()
local t0 = utils.updatenow()
for _ = 1, C do
	utils.spawn(function()
		while left > 0 do
			left = left - 1
			local resp, err = c:get(url)
			if resp then
				resp, err = resp:body()
			end
			if not resp then
				failed = failed + 1
				io.stderr:write('request failed: ', tostring(err), '\n')
			end
		end
		running = running - 1
		if running == 0 then done:wakeup() end
	end)
end
done:sleep()
local dt = utils.updatenow() - t0
c:close()
if failed > 0 then
	io.stderr:write(failed, ' requests failed\n')
	os.exit(1)
end
print(('%d\t%.3f\t%.0f'):format(N, dt, N / dt))
