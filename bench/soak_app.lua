-- The app bench/soak.sh runs: hathaway with a hello route, a body echo
-- and a streamed response, on 127.0.0.1:PORT (arg[1]).
local hathaway = require 'lem.hathaway'
local server = require 'lem.http.server'
hathaway.import()
GET('/', function(_, res)
	res:add('Hello, soak!\n')
end)
POST('/echo', function(req, res)
	local body, err = req:body()
	if not body then
		res.status = 400
		res:add('%s\n', tostring(err))
		return
	end
	res:add('%s', body)
end)
GET('/stream', function(_, res)
	for i = 1, 64 do
		res:write(('%04d '):format(i):rep(256), '\n')
	end
end)
server.timeout = 5
server.body_timeout = 10
assert(Hathaway('127.0.0.1', tonumber(arg[1]) or 20600))
