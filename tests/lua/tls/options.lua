-- The one TLS options shape: a self-signed server certificate given as
-- cafile is trusted (io.tls, lem.http.client, lem.websocket, curl for
-- comparison), errors in words, mutual TLS against openssl s_server
-- (which asks for a client certificate), and unknown option names raising
-- in every module that takes a tls table.
local support = dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'
local client = require 'lem.http.client'
local websocket = require 'lem.websocket'
local redis = require 'lem.redis'
local postgres = require 'lem.postgres'

-- A self-signed certificate (openssl marks it a CA, basicConstraints
-- CA:TRUE: webpki alone refuses it as a server's).
local dir = tmpdir()
assert(support.exec(([[
cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout self.key -out self.pem >/dev/null 2>&1]]):format(dir)) == 0)
local self_cert, self_key = dir .. '/self.pem', dir .. '/self.key'

local function handler(req, res)
	if req.headers.upgrade then
		local ws = assert(websocket.accept(req, res))
		local data, kind = ws:receive()
		if data then ws:send(data, kind) end
		return
	end
	res.headers['Content-Type'] = 'text/plain'
	res:add('hello ' .. req.path)
end
local tls = assert(io.tls.listen('127.0.0.1', 0, { cert = self_cert, key = self_key }))
local _, port = tls:getsockname()
local srv = server.new(tls, handler)
utils.spawn(function() srv:run() end)

-- curl trusts it.
local curl = assert(io.spawn({ 'curl', '-s', '--cacert', self_cert, ('https://localhost:%d/curl'):format(port) },
	{ stdout = 'pipe' }))
eq(curl.stdout:read('*a'), 'hello /curl', 'curl with the self-signed certificate as CA')
curl:wait()

-- So does lem: the raw stream, the HTTP client, a WebSocket.
local s, alpn = io.tls.connect('localhost', port, { cafile = self_cert })
assert(s, alpn)
s:close()
local c = client.new { tls = { cafile = self_cert } }
local res = assert(c:get(('https://localhost:%d/a'):format(port)))
eq(res:body(), 'hello /a', 'the HTTP client trusts the self-signed certificate')
c:close()
res = assert(client.request('GET', ('https://127.0.0.1:%d/b'):format(port), { tls = { cafile = self_cert } }))
eq(res:body(), 'hello /b', 'the one-shot call with tls, by IP')
local ws = assert(websocket.connect(('wss://localhost:%d/ws'):format(port), { tls = { cafile = self_cert } }))
assert(ws:send('over wss'))
eq(ws:receive(), 'over wss', 'websocket with tls = {cafile = ...}')
ws:close()
-- The older top-level form still works.
ws = assert(websocket.connect(('wss://localhost:%d/ws'):format(port), { cafile = self_cert }))
ws:close()

-- The name is still checked.
local r, err = io.tls.connect('127.0.0.1', port, { cafile = self_cert, sni = 'example.org' })
eq(r, nil, 'name mismatch')
eq(err, ("tls error with '127.0.0.1:%d': certificate name mismatch"):format(port), 'mismatch in words')
-- ... unless verify_name = false (PostgreSQL's verify-ca).
r = assert(io.tls.connect('127.0.0.1', port, { cafile = self_cert, sni = 'example.org', verify_name = false }))
r:close()
-- Without the file: refused, in words.
r, err = io.tls.connect('localhost', port, { cafile = support.certs() })
eq(r, nil, 'another CA')
assert(err:find("^tls error with 'localhost:%d+': certificate"), err)
eq(err:match(': (.*)$'), "certificate is a CA's, not a server's (name the file in cafile to trust it)", 'in words')

-- Mutual TLS: openssl s_server asks for a certificate signed by ca.
local ca, cert, key = support.certs()
local mport = support.free_port()
local proc = assert(io.spawn({ 'openssl', 's_server', '-quiet', '-accept', tostring(mport),
	'-cert', cert, '-key', key, '-CAfile', ca, '-Verify', '1', '-verify_return_error', '-www' },
	{ stdout = 'null', stderr = 'null' }))
local sleeper = utils.newsleeper()
for _ = 1, 200 do
	local t = io.tcp.connect('127.0.0.1', mport)
	if t then t:close() break end
	sleeper:sleep(0.02)
end
local murl = ('https://localhost:%d/'):format(mport)
c = client.new { tls = { cafile = ca, cert = cert, key = key } }
res = assert(c:get(murl))
eq(res.status, 200, 'the HTTP client with a client certificate')
assert(res:body():find('Verify return code: 0', 1, true), 'the server checked the certificate')
c:close()
c = client.new { tls = { cafile = ca } }
r, err = c:get(murl)
if r then r, err = r:body() end
eq(r, nil, 'no client certificate: refused')
assert(tostring(err):find('the server requires a client certificate', 1, true), tostring(err))
c:close()
proc:kill()
proc:wait()

-- Unknown names and wrong types raise, naming the option.
checkerr("unknown tls option 'cafil'", io.tls.connect, 'localhost', port, { cafil = 'x' })
checkerr("tls option 'insecure' must be a boolean", io.tls.connect, 'localhost', port, { insecure = 'yes' })
checkerr("tls option 'key' without 'cert'", io.tls.connect, 'localhost', port, { key = 'k' })
checkerr("tls option 'alpn' must be a list of strings", io.tls.connect, 'localhost', port, { alpn = 'h2' })
checkerr("unknown tls option 'cafil'", client.new, { tls = { cafil = 'x' } })
checkerr("unknown option 'cafile'", client.new, { cafile = 'x' })
checkerr("unknown option 'timout'", client.new, { timout = 1 })
checkerr("unknown tls option 'cafil'", websocket.connect, 'wss://localhost:1/', { tls = { cafil = 'x' } })
checkerr("unknown option 'timout'", websocket.connect, 'wss://localhost:1/', { timout = 1 })
checkerr("unknown tls option 'cafil'", redis.connect, 'localhost', 1, { tls = { cafil = 'x' } })
checkerr("unknown tls option 'cafil'", postgres.connect, 'host=localhost', { tls = { cafil = 'x' } })
checkerr("unknown option 'tsl'", postgres.connect, 'host=localhost', { tsl = {} })
-- A file that is not there is an I/O failure, not a raise.
r, err = io.tls.connect('localhost', port, { cafile = dir .. '/nothere.pem' })
eq(r, nil, 'missing cafile')
assert(err:find('nothere.pem'), err)
r, err = io.tls.connect('localhost', port, { cafile = self_cert, cert = dir .. '/nothere.pem' })
eq(r, nil, 'missing cert')
assert(err:find('nothere.pem'), err)
srv:close()
print('tls options ok')
