-- Helpers for the HTTP tests: run real clients without blocking the loop,
-- and start servers on a free loopback port.
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'

local M = {}

-- sh(cmd) -> stdout of `/bin/sh -c cmd` (read on the loop, so servers in
-- this process keep serving meanwhile).
function M.sh(cmd)
	local s = assert(io.popen(cmd))
	local out = assert(s:read('*a'))
	s:close()
	return out
end

-- serve(handler [, host]) -> srv, port, url: a server running in its own
-- coroutine until srv:close().
function M.serve(handler, host)
	host = host or '127.0.0.1'
	local srv = assert(server.new(host, 0, handler))
	local _, port = srv:getsockname()
	utils.spawn(function()
		srv:run()
	end)
	local h = host:find(':') and '[' .. host .. ']' or host
	return srv, port, ('http://%s:%d'):format(h, port)
end

-- serve_app(app) -> port, url, stop: a hathaway app running in its own
-- coroutine on a free loopback port; stop() closes its server and waits
-- for app:run to return.
function M.serve_app(app)
	local sock = assert(io.tcp.listen('127.0.0.1', 0))
	local _, port = sock:getsockname()
	local done
	utils.spawn(function()
		app:run(sock)
		done = true
	end)
	return port, ('http://127.0.0.1:%d'):format(port), function()
		app.server:close()
		while not done do
			utils.yield()
		end
	end
end

-- curl(url [, opts]) -> status, headers (lower-cased names), body: one
-- HTTP/1.1 request by curl, the path sent as it is.
function M.curl(url, opts)
	local out = M.sh(('curl -s -i --path-as-is %s \'%s\''):format(opts or '', (url:gsub("'", "'\\''"))))
	local head, body = out:match('^(.-\r\n)\r\n(.*)$')
	assert(head, url .. ': ' .. out)
	local status = tonumber(head:match('^HTTP/1.1 (%d+)'))
	local h = {}
	for k, v in head:gmatch('\n([^:\r\n]+): ([^\r\n]*)') do
		h[k:lower()] = v
	end
	return status, h, body
end

-- raw(port, data [, host]) -> everything the server answers before it
-- closes (or the first read error).
function M.raw(port, data, host)
	local c = assert(io.tcp.connect(host or '127.0.0.1', port))
	assert(c:write(data))
	local out = c:read('*a')
	c:close()
	return out
end

-- spawn_app([args]) -> port, url: start http/data/app.lua in a child lem
-- process (its port comes back through a fifo). End it with quit(url).
function M.spawn_app(args, env)
	local dir = os.getenv('LEM_TEST_TMP')
	local fifo = dir .. '/port' .. tostring(M.napps or 0)
	M.napps = (M.napps or 0) + 1
	assert(os.execute('mkfifo ' .. fifo))
	assert(os.execute(('%s %s http/data/app.lua %s %s 2>>%s/app.err &'):format(
		env or '', arg[-1], fifo, args or '', dir)))
	local f = assert(_G.io.open(fifo))
	local port = assert(tonumber(f:read('*l')), 'app.lua did not start')
	f:close()
	return port, ('http://127.0.0.1:%d'):format(port)
end

-- run(cmd) -> stdout of a blocking shell command (the server under test
-- runs in another process).
function M.run(cmd)
	local p = assert(_G.io.popen(cmd))
	local out = p:read('*a')
	p:close()
	return out
end

function M.quit(url)
	return M.run('curl -s ' .. url .. '/quit')
end

return M
