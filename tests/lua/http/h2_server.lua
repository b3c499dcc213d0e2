-- HTTP/2 on lem.http.server with the handler API unchanged: curl over TLS
-- (ALPN 'h2', the default offer of io.tls.listen) and in cleartext by
-- prior knowledge, nghttp multiplexing streams over one connection, bodies
-- both ways (larger than a window), streamed responses with trailers,
-- res.file, HEAD, a handler that raises, and the options that turn HTTP/2
-- off (alpn, h2c = false) while HTTP/1.1 keeps working.
local support = dofile('support.lua')
local write_file = support.write_file
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'

local ca, cert, key = support.certs()
local dir = tmpdir()
local file = write_file('h2file.txt', ('0123456789'):rep(10000))

local order = {}
local function handler(req, res)
	local p = req.path
	if p == '/info' then
		res.headers['Content-Type'] = 'text/plain'
		res:add('%s %s %s %s', req.version, req.method, req.uri, tostring(req.headers['x-test']))
	elseif p == '/echo' then
		local body = assert(req:body())
		res[1] = #body .. ':' .. body:sub(1, 8)
	elseif p == '/small' then
		local body, err = req:body(10)
		res[1] = tostring(body) .. ' ' .. tostring(err)
	elseif p == '/stream' then
		res.headers['x-kind'] = 'streamed'
		assert(res:write('a'))
		assert(res:write('b', 'c'))
		assert(res:write(('z'):rep(100000)))
		res.trailers = { ['x-sum'] = 'done' }
	elseif p == '/file' then
		res.file = file
	elseif p == '/badstatus' then
		res.status = 'fine'
	elseif p == '/badheaders' then
		res.headers = 5
	elseif p == '/badvalue' then
		res.headers['x-evil'] = 'a\r\nset-cookie: b'
	elseif p == '/dir' then
		res.file = dir
	elseif p == '/missing' then
		res.file = dir .. '/no such file'
	elseif p == '/empty' then
		res.headers.date = 'then'
	elseif p == '/parts' then
		res[1] = 'n='
		res[2] = 42
		res.status = 201
	elseif p == '/cookies' then
		res:cookie('a', '1')
		res:cookie('b', '2')
		res.headers['X-List'] = { 'x', 3 }
		res[1] = 'two'
	elseif p == '/raise' then
		error('on purpose')
	elseif p == '/slow' then
		utils.newsleeper():sleep(0.3)
		order[#order + 1] = 'slow'
		res[1] = 'slow'
	elseif p == '/fast' then
		order[#order + 1] = 'fast'
		res[1] = 'fast'
	else
		res.status = 404
		res[1] = 'no'
	end
end

-- Cleartext: prior knowledge.
local srv, _, url = common.serve(handler)
local function curl(args)
	return common.sh('curl -s --http2-prior-knowledge ' .. args)
end
eq(curl(url .. '/info?q=1 -H "X-Test: yes"'), '2.0 GET /info?q=1 yes', 'h2c: req fields')
eq(curl(url .. '/info -w " %{http_version}"'), '2.0 GET /info nil 2', 'h2c: curl saw HTTP/2')
local big = write_file('big', ('x'):rep(300000))
eq(curl('--data-binary @' .. big .. ' ' .. url .. '/echo'), '300000:xxxxxxxx', 'h2c: a body larger than a window')
eq(curl('--data-binary 01234567890123 ' .. url .. '/small'), 'nil oversized', 'h2c: req:body(max)')
local out = common.sh('curl -sv --http2-prior-knowledge ' .. url .. '/stream 2>&1 >' .. dir .. '/streamed')
assert(out:find('< x%-kind: streamed'), out)
assert(out:find('< x%-sum: done'), 'trailers: ' .. out)
eq(#assert(_G.io.open(dir .. '/streamed')):read('*a'), 100003, 'streamed body')
local got = curl(url .. '/file')
eq(#got, 100000, 'res.file: length')
assert(got == ('0123456789'):rep(10000), 'res.file')
out = curl('-I ' .. url .. '/file')
assert(out:find('^HTTP/2 200') and out:find('content%-length: 100000'), out)
for _, bad in ipairs { '/badstatus', '/badheaders', '/badvalue' } do
	eq(curl(url .. bad .. ' -w " %{http_code}" -o /dev/null'), ' 500', 'a response left wrong: 500 (' .. bad .. ')')
end
eq(curl(url .. '/dir -w " %{http_code}" -o /dev/null'), ' 404', 'res.file a directory: 404 before any head')
eq(curl(url .. '/missing -w " %{http_code}" -o /dev/null'), ' 404', 'res.file missing: 404')
eq(curl(url .. '/raise -w "%{http_code}" -o /dev/null'), '500', 'a handler that raises: 500')
out = curl('-D - ' .. url .. '/empty')
assert(out:find('^HTTP/2 204') and out:find('date: then') and not out:find('content%-length'), 'no body: 204: ' .. out)
out = curl('-D - ' .. url .. '/parts')
assert(out:find('^HTTP/2 201') and out:find('content%-length: 4') and out:find('n=42$'), 'parts: ' .. out)
out = curl('-I ' .. url .. '/parts')
assert(out:find('content%-length: 4') and not out:find('n=42'), 'HEAD: ' .. out)
out = curl('-D - ' .. url .. '/cookies')
assert(out:find('set%-cookie: a=1') and out:find('set%-cookie: b=2'), 'a list: one field each: ' .. out)
assert(out:find('x%-list: x\r\n') and out:find('x%-list: 3\r\n'), out)
eq(curl(url .. '/nowhere -w " %{http_code}"'), 'no 404', 'status')

-- Streams run side by side: the fast one answers while the slow one sleeps.
out = common.sh(('nghttp -n -s %s/slow %s/fast 2>&1'):format(url, url))
assert(out:find('200%s+%d+%s+/slow') and out:find('200%s+%d+%s+/fast'), out)
eq(order, { 'fast', 'slow' }, 'streams are concurrent')

-- HTTP/1.1 still on the same server.
eq(common.sh('curl -s --http1.1 ' .. url .. '/info'), '1.1 GET /info nil', 'HTTP/1.1 beside h2c')
srv:close()

-- h2c = false: the preface gets HTTP/1.1's 505.
local off = assert(server.new(assert(io.tcp.listen('127.0.0.1', 0)), handler, { h2c = false }))
local _, offport = off:getsockname()
utils.spawn(function() off:run() end)
local answer = common.raw(offport, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
assert(answer:find('^HTTP/1.1 505'), answer)
off:close()
checkerr('unknown option', function() server.new(assert(io.tcp.listen('127.0.0.1', 0)), handler, { h2 = 1 }) end)

-- TLS: curl offers h2 and http/1.1; the server picks h2.
local tsrv = server.new(assert(io.tls.listen('127.0.0.1', 0, { cert = cert, key = key })), handler)
local _, tport = tsrv:getsockname()
utils.spawn(function() tsrv:run() end)
local turl = ('https://localhost:%d'):format(tport)
local function tcurl(args)
	return common.sh(('curl -s --cacert %s %s'):format(ca, args))
end
eq(tcurl(turl .. '/info -w " %{http_version}"'), '2.0 GET /info nil 2', 'TLS: h2 by ALPN')
eq(tcurl('--data-binary @' .. big .. ' ' .. turl .. '/echo'), '300000:xxxxxxxx', 'TLS: body')
assert(tcurl(turl .. '/file') == ('0123456789'):rep(10000), 'TLS: res.file')
eq(tcurl(turl .. '/stream'):sub(1, 4), 'abcz', 'TLS: streamed')
eq(tcurl('--http1.1 ' .. turl .. '/info'), '1.1 GET /info nil', 'TLS: HTTP/1.1 by ALPN')
order = {}
out = common.sh(('nghttp -n -s %s/slow %s/fast 2>&1'):format(turl, turl))
assert(out:find('/slow') and out:find('/fast'), out)
eq(order, { 'fast', 'slow' }, 'TLS: streams are concurrent')
local s, alpn = assert(io.tls.connect('localhost', tport, { cafile = ca, alpn = { 'h2' } }))
eq(alpn, 'h2', 'io.tls.connect sees h2 picked')
s:close()
tsrv:close()

-- alpn = {'http/1.1'}: no h2 offered, curl falls back to HTTP/1.1.
local t11 = server.new(assert(io.tls.listen('127.0.0.1', 0, { cert = cert, key = key, alpn = { 'http/1.1' } })), handler)
local _, t11port = t11:getsockname()
utils.spawn(function() t11:run() end)
eq(tcurl(('https://localhost:%d/info'):format(t11port)), '1.1 GET /info nil', 'alpn without h2')
t11:close()
