-- lem.http.server and hathaway under load from wrk: every request answered
-- with a 2xx, no socket errors, keep-alive connections reused.
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'

for _, mode in ipairs({ '', 'hathaway' }) do
	local port, url = common.spawn_app(mode)
	-- 32 connections for 1 s: well past one request per connection.
	local out = common.run(('wrk -t1 -c32 -d1s %s/hello 2>&1'):format(url))
	local requests = tonumber(out:match('(%d+) requests in'))
	assert(requests and requests > 100, 'wrk ran (' .. mode .. '):\n' .. out)
	assert(not out:find('Socket errors', 1, true), 'socket errors (' .. mode .. '):\n' .. out)
	assert(not out:find('Non%-2xx'), 'non-2xx answers (' .. mode .. '):\n' .. out)
	eq(common.quit(url), 'bye\n', 'server still answers after the load (' .. mode .. ')')
	assert(port)
end
print('ok')
