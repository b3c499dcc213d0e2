-- Upgrade: h2c (RFC 7540 §3.2) on lem.http.server: curl --http2 and
-- nghttp -u against http://, python-h2's own upgrading client, the
-- HTTP2-Settings values applied before the client's SETTINGS frame, an
-- upgrade on the second request of a keep-alive connection; and the cases
-- served over HTTP/1.1 or refused: a bad HTTP2-Settings (400), a request
-- with a body, a missing token, h2c = false, TLS.
local support = dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'

local ca, cert, key = support.certs()

local function handler(req, res)
	if req.path == '/hundred' then
		res[1] = ('x'):rep(100)
		return
	end
	local body = req.method == 'POST' and assert(req:body()) or ''
	res:add('%s %s %s %s%s', req.version, req.method, req.uri, tostring(req.headers['x-test']), body)
end

local srv, port, url = common.serve(handler)

-- curl --http2 on http:// asks for the upgrade; the second URL goes on
-- the same connection, as stream 3.
local out = common.sh(('curl -sv --http2 -H "X-Test: yes" %s/info?a %s/info?b 2>&1'):format(url, url))
assert(out:find('> Upgrade: h2c', 1, true), out)
assert(out:find('< HTTP/1.1 101 Switching Protocols', 1, true), out)
assert(out:find('2.0 GET /info?a yes', 1, true), 'stream 1 is the upgraded request: ' .. out)
assert(out:find('2.0 GET /info?b yes', 1, true), out)
assert(out:find('Using Stream ID: 3', 1, true), 'the next request on stream 3: ' .. out)
assert(not out:find('Connection #1', 1, true), 'one connection: ' .. out)

-- nghttp's upgrade (it sends PRIORITY frames for stream 1 and others).
out = common.sh(('nghttp -u %s/info 2>&1'):format(url))
eq(out, '2.0 GET /info nil', 'nghttp -u')
out = common.sh(('nghttp -uv %s/info 2>&1'):format(url))
assert(out:find('HTTP Upgrade success', 1, true), out)
assert(out:find('recv HEADERS frame <length=%d+, flags=0x04, stream_id=1>'), 'the answer on stream 1: ' .. out)

-- python-h2's own upgrading client, then a request of its own.
local py = '/usr/bin/python3 -B http/data/h2c_upgrade.py %s %d 2>&1'
out = common.sh(py:format('lib', port))
eq(out, 'HTTP/1.1 101 Switching Protocols\n1 200 2.0 GET /info nil\n3 200 2.0 GET /info?again nil\n',
	'python-h2: stream 1, then 3')

-- HTTP2-Settings applies before the SETTINGS frame after the preface,
-- and the client gets one ACK, for the frame.
out = common.sh(py:format('window', port))
eq(out, 'HTTP/1.1 101 Switching Protocols\nstream 1 200\nfirst data 10\ntotal 100\nacks 1\n',
	"HTTP2-Settings' INITIAL_WINDOW_SIZE")

-- The second request of a keep-alive connection.
out = common.sh(py:format('second', port))
eq(out, 'HTTP/1.1 200 OK 1.1 GET /info nil\nHTTP/1.1 101 Switching Protocols\nstream 1 2.0 GET /info?second nil\n',
	'an upgrade after an HTTP/1.1 request')

-- A bad HTTP2-Settings: 400, not an upgrade.
local function ask(settings, extra)
	return common.raw(port, 'GET /info HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n'
		.. 'Upgrade: h2c\r\n' .. settings .. (extra or '') .. '\r\n')
end
for what, field in pairs {
	['not base64url'] = 'HTTP2-Settings: !!!!\r\n',
	['not a whole number of settings'] = 'HTTP2-Settings: AAMAAA\r\n',
	['a bad value'] = 'HTTP2-Settings: AAIAAAAC\r\n', -- ENABLE_PUSH 2
	['two of them'] = 'HTTP2-Settings: AAMAAABk\r\nHTTP2-Settings: AAMAAABk\r\n',
	['none'] = '',
} do
	out = ask(field)
	assert(out:find('^HTTP/1.1 400 '), what .. ': ' .. out)
end
-- Empty is a valid list of no settings.
do
	local c = assert(io.tcp.connect('127.0.0.1', port))
	assert(c:write('GET /info HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n'
		.. 'Upgrade: h2c\r\nHTTP2-Settings: \r\n\r\n'))
	eq(c:read('*l'), 'HTTP/1.1 101 Switching Protocols\r', 'an empty HTTP2-Settings')
	c:close()
end

-- Served over HTTP/1.1: a body, a Connection without HTTP2-Settings, a
-- target that is not a path, HTTP/1.0.
out = common.sh(('curl -s --http2 --data-binary abc %s/post -w " %%{http_version}"'):format(url))
eq(out, '1.1 POST /post nilabc 1.1', 'an upgrade with a body: HTTP/1.1')
out = common.raw(port, 'GET /info HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, close\r\n'
	.. 'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n')
assert(out:find('^HTTP/1.1 200 ') and out:find('1.1 GET /info nil$'), 'without the token: ' .. out)
out = common.raw(port, ('GET %s/info HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings, close\r\n'
	.. 'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n'):format(url))
assert(out:find('^HTTP/1.1 200 '), 'absolute form: ' .. out)
out = common.raw(port, 'GET /info HTTP/1.0\r\nConnection: Upgrade, HTTP2-Settings\r\n'
	.. 'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n')
assert(out:find('^HTTP/1.1 200 ') and out:find('1.0 GET /info nil$'), 'HTTP/1.0: ' .. out)
-- Upgrade: websocket is no h2c upgrade.
out = common.raw(port, 'GET /info HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n'
	.. 'Upgrade: websocket\r\nHTTP2-Settings: AAMAAABk\r\nConnection: close\r\n\r\n')
assert(out:find('^HTTP/1.1 200 '), 'another protocol: ' .. out)
srv:close()

-- h2c = false: served over HTTP/1.1.
local off = assert(server.new(assert(io.tcp.listen('127.0.0.1', 0)), handler, { h2c = false }))
local _, offport = off:getsockname()
utils.spawn(function() off:run() end)
out = common.sh(('curl -s --http2 http://127.0.0.1:%d/info -w " %%{http_version}"'):format(offport))
eq(out, '1.1 GET /info nil 1.1', 'h2c = false')
off:close()

-- Over TLS, Upgrade: h2c means nothing (ALPN is the way): HTTP/1.1.
local tsrv = server.new(assert(io.tls.listen('127.0.0.1', 0, { cert = cert, key = key })), handler)
local _, tport = tsrv:getsockname()
utils.spawn(function() tsrv:run() end)
out = common.sh(('curl -s --http1.1 --cacert %s -H "Connection: Upgrade, HTTP2-Settings" -H "Upgrade: h2c" '
	.. '-H "HTTP2-Settings: AAMAAABk" https://localhost:%d/info -w " %%{http_version}"'):format(ca, tport))
eq(out, '1.1 GET /info nil 1.1', 'TLS: no upgrade')
tsrv:close()
