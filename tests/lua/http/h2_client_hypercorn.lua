-- lem.http.client over HTTP/2 against Hypercorn (Debian
-- python3-hypercorn, an ASGI server on python-h2), http/data/h2_asgi.py:
-- over TLS where ALPN picks h2 and in cleartext by prior knowledge; many
-- coroutines on one connection (the app sees one client port), bodies
-- both ways.
local support = dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local client = require 'lem.http.client'

local ca, cert, key = support.certs()
local sleep = function(t) utils.newsleeper():sleep(t) end

-- Start Hypercorn on a free port: its process and port, once it listens.
local function hypercorn(tls)
	local port = support.free_port()
	local cmd = ('/usr/bin/python3 -B http/data/h2_asgi.py %d'):format(port)
	if tls then
		cmd = cmd .. ' ' .. cert .. ' ' .. key
	end
	local p = assert(io.popen(cmd))
	for _ = 1, 200 do
		local s = io.tcp.connect('127.0.0.1', port)
		if s then
			s:close()
			return p, port
		end
		sleep(0.05)
	end
	error('hypercorn did not start')
end

local function together(n, f)
	local done = 0
	for k = 1, n do
		utils.spawn(function()
			f(k)
			done = done + 1
		end)
	end
	while done < n do
		sleep(0.01)
	end
end

for _, tls in ipairs({ true, false }) do
	local what = tls and 'hypercorn over TLS' or 'hypercorn, h2c'
	local proc, port = hypercorn(tls)
	local base = tls and ('https://localhost:%d'):format(port) or ('http://127.0.0.1:%d'):format(port)
	local c = client.new(tls and { tls = { cafile = ca } } or { http2 = 'prior' })
	local r = assert(c:get(base .. '/hello'))
	eq({ r.status, r.version, r.headers['content-type'], r:body() }, { 200, '2.0', 'text/plain', 'hello from hypercorn' },
		what)
	eq(assert(c:get(base .. '/version')):body(), '2', what .. ': the app saw HTTP/2')
	local first = assert(c:get(base .. '/client')):body()
	local ports = {}
	together(30, function(k)
		ports[assert(c:get(base .. '/client')):body()] = true
		local body = ('%d'):format(k):rep(10000)
		eq(assert(c:request('POST', base .. '/echo', { body = body })):body(), body, what .. ': echo')
	end)
	eq(ports, { [first] = true }, what .. ': one connection')
	assert(c:get(base .. '/quit')):body()
	c:close()
	proc:read('*a')
	proc:close()
end

-- http2 = false: HTTP/1.1 to the same kind of server.
local proc, port = hypercorn(true)
local c = client.new({ tls = { cafile = ca }, http2 = false })
local r = assert(c:get(('https://localhost:%d/version'):format(port)))
eq({ r.version, r:body() }, { '1.1', '1.1' }, 'hypercorn: http2 = false')
assert(c:get(('https://localhost:%d/quit'):format(port))):body()
c:close()
proc:read('*a')
proc:close()
