-- A test server, run as a child process by the HTTP tests:
--   lem http/data/app.lua FIFO [hathaway|tls CERT KEY]
-- writes its port to FIFO, serves the routes below, and exits at GET /quit
-- (or after 60 s, so a failed test never leaves it behind).
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'

local fifo, mode = arg[1], arg[2]
server.debug = function(where, err)
	_G.io.stderr:write('debug: ', where, ' ', tostring(err), '\n')
end

local srv
local function handler(req, res)
	local path = req.path
	if path == '/quit' then
		res:add('bye\n')
		srv:close()
		return
	elseif path == '/echo' then
		local body, err = req:body(tonumber(req.headers['x-max']))
		if not body then
			res.status = err == 'oversized' and 413 or 400
			res:add('%s\n', err)
			return
		end
		res.headers['Content-Type'] = 'application/octet-stream'
		res:add('%s', body)
		return
	elseif path == '/info' then
		res.headers['Content-Type'] = 'text/plain'
		res:add('%s %s %s %s\n', req.method, req.uri, req.path, req.version)
		return
	elseif path == '/empty' then
		return
	elseif path == '/file' then
		res.file = arg[0]:gsub('app%.lua$', 'hello.txt')
		return
	elseif path == '/missing' then
		res.file = '/nonexistent/file'
		return
	elseif path == '/raise' then
		error('raised on purpose')
	elseif path == '/stream' then
		res.headers['Content-Type'] = 'text/plain'
		for i = 1, 3 do
			assert(res:write('part ', tostring(i), '\n'))
		end
		return
	end
	res.headers['Content-Type'] = 'text/plain'
	res:add('Hello, %s!\n', path)
end

local sock
if mode == 'tls' then
	sock = assert(io.tls.listen('127.0.0.1', 0, { cert = arg[3], key = arg[4] }))
else
	sock = assert(io.tcp.listen('127.0.0.1', 0))
end
srv = assert(server.new(sock, handler))
srv.timeout = tonumber(os.getenv('APP_TIMEOUT') or '') or 30
srv.max_body = 1024 * 1024
local _, port = sock:getsockname()
local f = assert(_G.io.open(fifo, 'w'))
f:write(port, '\n')
f:close()

local watchdog = utils.newsleeper()
utils.spawn(function()
	if watchdog:sleep(60) == nil then
		_G.io.stderr:write('app.lua: still running after 60 s\n')
		utils.exit(1)
	end
end)
srv:run()
-- Open connections finish their responses; then the process ends.
watchdog:wakeup(true)
