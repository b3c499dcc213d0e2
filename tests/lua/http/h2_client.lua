-- lem.http.client over HTTP/2 against lem's own server: h2c by prior
-- knowledge (http2 = 'prior') and TLS where ALPN picks h2; the Response
-- API as over HTTP/1.1 (status, headers, version '2.0', body, chunks,
-- json, decoding), request bodies of every kind, fifty coroutines sharing
-- one connection, the server's stream limit respected, timeouts and the
-- deadline, a stream the server breaks off, a proxy's CONNECT tunnel,
-- client:close(), and the ways back to HTTP/1.1 (http2 = false, a server
-- whose ALPN says http/1.1, the caller's own alpn).
local support = dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'
local h2 = require 'lem.http.h2'
local client = require 'lem.http.client'

local ca, cert, key = support.certs()
local dir = tmpdir()
local sleep = function(t) utils.newsleeper():sleep(t) end

common.sh(("printf 'hello gzip' | gzip > %s/g.gz"):format(dir))

local open, most = 0, 0
local function handler(req, res)
	local p = req.path
	res.headers['Content-Type'] = 'text/plain'
	if p == '/info' then
		res:add('%s %s %s %s %s', req.version, req.method, req.uri, tostring(req.headers['x-test']),
			tostring(req.headers['user-agent']))
	elseif p == '/echo' then
		local body = assert(req:body())
		res.headers['X-Type'] = tostring(req.headers['content-type'])
		res[1] = #body .. ':' .. body:sub(1, 16)
	elseif p == '/big' then
		res[1] = ('b'):rep(300000)
	elseif p == '/gzip' then
		res.headers['Content-Encoding'] = 'gzip'
		res.file = dir .. '/g.gz'
	elseif p == '/json' then
		res.headers['Content-Type'] = 'application/json'
		res[1] = '{"a":[1,2]}'
	elseif p == '/slow' then
		open = open + 1
		most = math.max(most, open)
		sleep(0.05)
		open = open - 1
		res[1] = 'slow'
	elseif p == '/sleep' then
		sleep(1)
		res[1] = 'late'
	elseif p == '/redir' then
		res.status = 302
		res.headers.Location = '/info'
	elseif p == '/break' then
		assert(res:write(('p'):rep(1000)))
		error('broken on purpose')
	elseif p == '/trailers' then
		assert(res:write('with trailers'))
		res.trailers = { ['X-Sum'] = 'done' }
	elseif p == '/multi' then
		res.headers['Set-Cookie'] = 'a=1'
		res[1] = 'm'
	else
		res.status = 404
		res[1] = 'no'
	end
end

-- A server counting its connections, every one of them HTTP/2 by prior
-- knowledge.
local function h2c_server(opts)
	local l = assert(io.tcp.listen('127.0.0.1', 0))
	local srv = assert(server.new(l, handler, opts))
	srv.debug = function() end
	local _, port = l:getsockname()
	local counter = { n = 0, close = function() l:close() end }
	utils.spawn(function()
		l:autospawn(function(c)
			counter.n = counter.n + 1
			h2.serve(srv, c)
		end)
	end)
	return ('http://127.0.0.1:%d'):format(port), counter
end

-- Every client made below, closed at the end (their connections' server
-- sides wait for them otherwise).
local clients = {}
local function new(opts)
	local made = client.new(opts)
	clients[#clients + 1] = made
	return made
end

-- http2's values.
checkerr("http2 must be true, false or 'prior'", client.new, { http2 = 'yes' })
checkerr("http2 must be true, false or 'prior'", client.new, { http2 = 2 })
for _, v in ipairs({ true, false, 'prior' }) do
	assert(client.new({ http2 = v }))
end
checkerr("http2 must be", client.request, 'GET', 'http://127.0.0.1:1/', { http2 = {} })

-- h2c by prior knowledge.
local url, conns = h2c_server()
local c = new({ http2 = 'prior' })
local r = assert(c:get(url .. '/info?q=1'))
eq(r.status, 200, 'h2c: status')
eq(r.text, 'OK', 'h2c: text')
eq(r.version, '2.0', 'h2c: version')
eq(r.headers['content-type'], 'text/plain', 'h2c: headers')
eq(type(r.fields), 'table', 'h2c: fields')
eq(r:body(), '2.0 GET /info?q=1 nil lem', 'h2c: body')
eq(r:body(), '2.0 GET /info?q=1 nil lem', 'h2c: body again')
r = assert(c:request('GET', url .. '/info', { headers = { ['X-Test'] = 'yes', ['User-Agent'] = 'me', Connection = 'close' } }))
eq(r:body(), '2.0 GET /info yes me', 'h2c: the caller\'s fields, connection-specific ones left out')
r = assert(c:request('GET', url .. '/info', { query = { a = 1, b = 'x y' } }))
eq(r:body(), '2.0 GET /info?a=1&b=x%20y nil lem', 'h2c: query')

-- Request bodies: a string (larger than a window), a function, a File.
local big = ('x'):rep(300000)
r = assert(c:request('POST', url .. '/echo', { body = big }))
eq(r:body(), '300000:xxxxxxxxxxxxxxxx', 'h2c: string body')
local parts = { 'one ', 'two ', 'three' }
local i = 0
r = assert(c:request('PUT', url .. '/echo', { body = function()
	i = i + 1
	return parts[i]
end }))
eq(r:body(), '13:one two three', 'h2c: function body')
local f = assert(io.open(support.write_file('upload', ('u'):rep(100000)), 'r'))
r = assert(c:request('POST', url .. '/echo', { body = f }))
eq(r:body(), '100000:uuuuuuuuuuuuuuuu', 'h2c: File body')
f:close()
r = assert(c:request('POST', url .. '/echo', nil, ''))
eq(r:body(), '0:', 'h2c: empty body')
r = assert(c:request('POST', url .. '/echo', { json = { k = 'v' } }))
eq(r:body(), '9:{"k":"v"}', 'h2c: json body')
eq(r.headers['x-type'], 'application/json', 'h2c: json type')
-- The old positional form.
r = assert(c:request('POST', url .. '/echo', { ['Content-Type'] = 'text/x' }, 'abc'))
eq({ r:body(), r.headers['x-type'] }, { '3:abc', 'text/x' }, 'h2c: positional headers and body')

-- Responses: chunks, json, decoding, HEAD, 404, repeated fields.
local n, count = 0, 0
for piece in assert(c:get(url .. '/big')):chunks() do
	n, count = n + #piece, count + 1
end
eq(n, 300000, 'h2c: chunks')
assert(count > 1, 'chunks: in pieces')
eq(assert(c:get(url .. '/json')):json(), { a = { 1, 2 } }, 'h2c: json')
local ok, dres = c:download(url .. '/big', dir .. '/downloaded')
eq({ ok, dres.version, #assert(_G.io.open(dir .. '/downloaded')):read('*a') }, { true, '2.0', 300000 }, 'h2c: download')
-- A response left unread: the coroutine's next request drops its stream.
local unread = assert(c:get(url .. '/big'))
eq(assert(c:get(url .. '/info')):body(), '2.0 GET /info nil lem', 'h2c: after an unread response')
eq({ unread:body() }, { nil, 'dropped' }, 'h2c: the unread response was dropped')
r = assert(c:get(url .. '/gzip'))
eq({ r:body(), r.decoded }, { 'hello gzip', 'gzip' }, 'h2c: gzip decoded')
r = assert(new({ http2 = 'prior', decompress = false }):get(url .. '/gzip'))
eq(r.headers['content-encoding'], 'gzip', 'decompress = false: coded')
assert(r:body() ~= 'hello gzip', 'decompress = false: not decoded')
r = assert(c:request('HEAD', url .. '/big'))
eq({ r.status, r:body() }, { 200, '' }, 'h2c: HEAD')
r = assert(c:get(url .. '/nothing'))
eq({ r.status, r:body() }, { 404, 'no' }, 'h2c: 404')
r = assert(c:get(url .. '/trailers'))
eq({ r:body(), r.trailers }, { 'with trailers', { ['x-sum'] = 'done' } }, 'h2c: trailers')
r = assert(c:get(url .. '/info'))
eq({ r:body() ~= nil, r.trailers }, { true, nil }, 'h2c: no trailers')
r = assert(c:get(url .. '/multi'))
eq(r.headers['set-cookie'], 'a=1', 'h2c: set-cookie')
r:body()
r = assert(new({ http2 = 'prior', redirects = 1 }):get(url .. '/redir'))
eq({ r.status, r:body(), r.url }, { 200, '2.0 GET /info nil lem', url .. '/info' }, 'h2c: redirect followed')
-- client.request, one shot.
local res, body = client.request('GET', url .. '/info', { http2 = 'prior' })
eq({ res.version, body }, { '2.0', '2.0 GET /info nil lem' }, 'client.request over h2c')

-- A stream the server breaks off halfway (RST_STREAM): the request or
-- its body fails (whether the head was seen first is the network's
-- business), naming the host.
local got, err = c:get(url .. '/break')
if got then
	r = got
	got, err = r:body()
	eq(r.error, err, 'broken stream: resp.error')
end
eq(got, nil, 'broken stream: no body')
assert(err:find("HTTP/2 error from '127.0.0.1:%d+': stream error received"), err)

-- One connection per client so far: c's, and those of the three clients
-- made for decompress = false, redirects and client.request.
eq(conns.n, 4, 'h2c: one connection per client')

-- Fifty coroutines at once: one connection, each its own stream.
local url2, conns2 = h2c_server()
local c2 = new({ http2 = 'prior' })
local done, bodies = 0, {}
for k = 1, 50 do
	utils.spawn(function()
		local resp = assert(c2:get(url2 .. '/info?' .. k))
		bodies[k] = assert(resp:body())
		done = done + 1
	end)
end
while done < 50 do
	sleep(0.01)
end
for k = 1, 50 do
	eq(bodies[k], '2.0 GET /info?' .. k .. ' nil lem', 'multiplexed ' .. k)
end
eq(conns2.n, 1, 'fifty coroutines: one connection')

-- The server's limit on streams at once: requests wait for a slot.
local url3, conns3 = h2c_server({ max_streams = 3 })
local c3 = new({ http2 = 'prior' })
done = 0
for _ = 1, 12 do
	utils.spawn(function()
		eq(assert(c3:get(url3 .. '/slow')):body(), 'slow', 'limited stream')
		done = done + 1
	end)
end
while done < 12 do
	sleep(0.01)
end
eq(conns3.n, 1, 'max_streams: one connection')
assert(most >= 2 and most <= 3, 'at most 3 streams at once, saw ' .. most)

-- Timeouts: each read, and the whole request.
local ct = new({ http2 = 'prior', timeout = 0.2 })
eq({ ct:get(url .. '/sleep') }, { nil, 'timeout' }, 'h2c: timeout')
eq(assert(ct:get(url .. '/info')):body(), '2.0 GET /info nil lem', 'h2c: the connection goes on after a timeout')
local cd = new({ http2 = 'prior', deadline = 0.2 })
eq({ cd:get(url .. '/sleep') }, { nil, 'timeout' }, 'h2c: deadline')

-- close(): no new request on the connection; a later one makes another.
local before = conns.n
eq(assert(c:get(url .. '/info')):body(), '2.0 GET /info nil lem', 'before close')
eq(conns.n, before, 'before close: the same connection')
c:close()
eq(assert(c:get(url .. '/info')):body(), '2.0 GET /info nil lem', 'after close')
eq(conns.n, before + 1, 'after close: a new connection')

-- Nobody there.
local dead = support.free_port()
got, err = new({ http2 = 'prior' }):get(('http://127.0.0.1:%d/'):format(dead))
eq(got, nil, 'refused')
eq(err, ("error connecting to '127.0.0.1:%d': Connection refused"):format(dead), 'refused: message')

-- Prior knowledge where the server does not speak HTTP/2 (it answers the
-- preface as a bad HTTP/1.1 request and closes), or says nothing at all.
local h1 = assert(server.new(assert(io.tcp.listen('127.0.0.1', 0)), handler, { h2c = false }))
local _, h1port = h1:getsockname()
utils.spawn(function() h1:run() end)
got, err = new({ http2 = 'prior' }):get(('http://127.0.0.1:%d/info'):format(h1port))
eq(got, nil, 'prior knowledge, HTTP/1.1 server')
assert(err:find(("^error connecting to '127.0.0.1:%d': "):format(h1port)), err)
h1:close()
local mute = assert(io.tcp.listen('127.0.0.1', 0))
local _, mport = mute:getsockname()
utils.spawn(function()
	mute:autospawn(function(s)
		s:read('*a')
		s:close()
	end)
end)
eq({ new({ http2 = 'prior', timeout = 0.2 }):get(('http://127.0.0.1:%d/'):format(mport)) },
	{ nil, ("error connecting to '127.0.0.1:%d': timeout"):format(mport) }, 'prior knowledge, a mute server')
mute:close()

-- Without http2 = 'prior', http:// is HTTP/1.1 (the server speaks both).
local plain = common.serve(handler)
local _, pport = plain:getsockname()
r = assert(new():get(('http://127.0.0.1:%d/info'):format(pport)))
eq({ r.version, r:body() }, { '1.1', '1.1 GET /info nil lem' }, 'http:// without prior: HTTP/1.1')
plain:close()

-- TLS: ALPN picks h2.
local tl = assert(io.tls.listen('127.0.0.1', 0, { cert = cert, key = key }))
local tsrv = assert(server.new(tl, handler))
local _, tport = tl:getsockname()
local tconns = 0
utils.spawn(function()
	tl:autospawn(function(s, alpn)
		tconns = tconns + 1
		if alpn == 'h2' then
			h2.serve(tsrv, s)
		else
			s:close()
		end
	end)
end)
local turl = ('https://localhost:%d'):format(tport)
local tc = new({ tls = { cafile = ca } })
r = assert(tc:get(turl .. '/info'))
eq({ r.version, r:body() }, { '2.0', '2.0 GET /info nil lem' }, 'TLS: h2 by ALPN')
r = assert(tc:request('POST', turl .. '/echo', { body = big }))
eq(r:body(), '300000:xxxxxxxxxxxxxxxx', 'TLS: body')
done = 0
for k = 1, 20 do
	utils.spawn(function()
		eq(assert(tc:get(turl .. '/info?' .. k)):body(), '2.0 GET /info?' .. k .. ' nil lem', 'TLS multiplexed')
		done = done + 1
	end)
end
while done < 20 do
	sleep(0.01)
end
eq(tconns, 1, 'TLS: one connection')

-- Through a proxy's CONNECT tunnel (a small one here): h2 end to end.
local pl = assert(io.tcp.listen('127.0.0.1', 0))
local _, pxport = pl:getsockname()
local tunnels, asked = 0, nil
local function pump(from, to)
	while true do
		local data = from:read()
		if not data or not to:write(data) then
			break
		end
	end
	from:close()
	to:close()
end
utils.spawn(function()
	pl:autospawn(function(s)
		local line = assert(s:read('*l'))
		asked = line:match('^CONNECT (%S+)')
		repeat
			local h = s:read('*l')
		until not h or h == '' or h == '\r'
		local host, p = asked:match('^(.+):(%d+)$')
		local up = assert(io.tcp.connect(host == 'localhost' and '127.0.0.1' or host, tonumber(p)))
		tunnels = tunnels + 1
		assert(s:write('HTTP/1.1 200 Connection established\r\n\r\n'))
		utils.spawn(pump, up, s)
		pump(s, up)
	end)
end)
local pc = new({ tls = { cafile = ca }, proxy = ('http://127.0.0.1:%d'):format(pxport) })
done = 0
for k = 1, 5 do
	utils.spawn(function()
		local resp = assert(pc:get(turl .. '/info?' .. k))
		eq({ resp.version, resp:body() }, { '2.0', '2.0 GET /info?' .. k .. ' nil lem' }, 'h2 through a proxy')
		done = done + 1
	end)
end
while done < 5 do
	sleep(0.01)
end
eq({ tunnels, asked }, { 1, 'localhost:' .. tport }, 'h2 through a proxy: one tunnel')
pc:close()
tc:close()
tl:close()

-- The same server through lem.http.server's own loop: http2 = false and
-- the caller's alpn keep to HTTP/1.1.
local t2 = assert(server.new(assert(io.tls.listen('127.0.0.1', 0, { cert = cert, key = key })), handler))
local _, t2port = t2:getsockname()
utils.spawn(function() t2:run() end)
local t2url = ('https://localhost:%d'):format(t2port)
r = assert(new({ tls = { cafile = ca } }):get(t2url .. '/info'))
eq({ r.version, r:body() }, { '2.0', '2.0 GET /info nil lem' }, 'srv:run: h2')
r = assert(new({ tls = { cafile = ca }, http2 = false }):get(t2url .. '/info'))
eq({ r.version, r:body() }, { '1.1', '1.1 GET /info nil lem' }, 'http2 = false: HTTP/1.1')
r = assert(new({ tls = { cafile = ca, alpn = { 'http/1.1' } } }):get(t2url .. '/info'))
eq({ r.version, r:body() }, { '1.1', '1.1 GET /info nil lem' }, "the caller's alpn")
t2:close()

-- A server whose ALPN answer is http/1.1: the client falls back, and keeps
-- to it (its connections pooled as ever), also for many coroutines at once.
local t11 = assert(server.new(assert(io.tls.listen('127.0.0.1', 0, { cert = cert, key = key, alpn = { 'http/1.1' } })), handler))
local _, t11port = t11:getsockname()
utils.spawn(function() t11:run() end)
local t11url = ('https://localhost:%d'):format(t11port)
local c11 = new({ tls = { cafile = ca } })
done = 0
for k = 1, 10 do
	utils.spawn(function()
		local resp = assert(c11:get(t11url .. '/info?' .. k))
		eq({ resp.version, resp:body() }, { '1.1', '1.1 GET /info?' .. k .. ' nil lem' }, 'ALPN fallback')
		done = done + 1
	end)
end
while done < 10 do
	sleep(0.01)
end
r = assert(c11:get(t11url .. '/info'))
eq(r.version, '1.1', 'ALPN fallback: later requests')
r:body()
local kept, reused = c11:connect('https', 'localhost', t11port)
eq(reused, true, 'ALPN fallback: connections pooled')
kept:close()
c11:close()
t11:close()

for _, made in ipairs(clients) do
	made:close()
end
pl:close()
conns.close()
conns2.close()
conns3.close()
