-- lem.http.client over HTTP/2 against another implementation: an origin
-- on python3-h2's state machine (http/data/h2_origin.py), in cleartext by
-- prior knowledge and over TLS with ALPN. Multiplexing within the
-- server's SETTINGS_MAX_CONCURRENT_STREAMS over one connection, a body
-- larger than the client's window both ways, and a server that misbehaves:
-- GOAWAY after a response (the next request goes on a new connection),
-- GOAWAY with streams past its last one (sent again), RST_STREAM
-- REFUSED_STREAM (sent again) and INTERNAL_ERROR (an error naming the
-- host), a connection that dies mid-body.
local support = dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local client = require 'lem.http.client'

local ca, cert, key = support.certs()
local sleep = function(t) utils.newsleeper():sleep(t) end

-- The origin's process and port.
local function origin(max_streams, tls)
	local cmd = ('/usr/bin/python3 -B http/data/h2_origin.py %d'):format(max_streams)
	if tls then
		cmd = cmd .. ' ' .. cert .. ' ' .. key
	end
	local p = assert(io.popen(cmd))
	local port = assert(tonumber(p:read('*l')), 'h2_origin.py did not start')
	return p, port
end

-- Run f(k) in n coroutines at once and wait for them all.
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

local proc, port = origin(4)
local url = ('http://127.0.0.1:%d'):format(port)
local where = '127.0.0.1:' .. port
local c = client.new({ http2 = 'prior' })

local r = assert(c:get(url .. '/hello'))
eq({ r.status, r.version, r.headers['content-type'], r:body() }, { 200, '2.0', 'text/plain', 'hello from python' },
	'python-h2: a request')

-- Thirty coroutines, four streams at a time, one connection.
together(30, function()
	eq(assert(c:get(url .. '/slow')):body(), 'slow', 'python-h2: multiplexed')
end)
local stats = assert(c:get(url .. '/stats')):body()
local conns, most = stats:match('^conns=(%d+) max=(%d+)$')
eq(conns, '1', 'python-h2: one connection (' .. stats .. ')')
assert(tonumber(most) >= 2 and tonumber(most) <= 4, 'python-h2: within the server\'s limit (' .. stats .. ')')

-- Bodies larger than the windows.
eq(#assert(c:get(url .. '/big')):body(), 200000, 'python-h2: a large response')
r = assert(c:request('POST', url .. '/echo', { body = ('e'):rep(100000) }))
eq({ r.headers['x-length'], #r:body() }, { '100000', 100000 }, 'python-h2: a large request')

-- GOAWAY after a response: the next request makes a new connection.
eq(assert(c:get(url .. '/conn')):body(), '1', 'python-h2: connection 1')
eq(assert(c:get(url .. '/goaway')):body(), 'bye', 'python-h2: answered before its GOAWAY')
sleep(0.05)
eq(assert(c:get(url .. '/conn')):body(), '2', 'python-h2: after GOAWAY, a new connection')

-- GOAWAY whose last stream is the first: the streams after it were not
-- processed and are sent again on a new connection.
local cg = client.new({ http2 = 'prior' })
local got = {}
utils.spawn(function() got.first = assert(cg:get(url .. '/slow')):body() end)
utils.spawn(function() got.second = assert(cg:get(url .. '/slow')):body() end)
sleep(0.05)
got.third = assert(cg:get(url .. '/goaway-now')):body()
while not (got.first and got.second) do
	sleep(0.01)
end
eq(got, { first = 'slow', second = 'slow', third = 'retried' }, 'python-h2: streams past GOAWAY sent again')
eq(assert(cg:get(url .. '/conn')):body(), '4', 'python-h2: on the new connection')
cg:close()

-- RST_STREAM REFUSED_STREAM: sent again; INTERNAL_ERROR: an error.
eq(assert(c:get(url .. '/refuse')):body(), 'accepted after a refusal', 'python-h2: refused, sent again')
local res, err = c:get(url .. '/reset')
eq(res, nil, 'python-h2: reset')
eq(err, ("HTTP/2 error from '%s': stream error received: unexpected internal error encountered"):format(where),
	'python-h2: reset, the message')

-- The connection dies mid-body: the body fails; the next request makes a
-- new connection.
r = assert(c:get(url .. '/die'))
eq(r.headers['content-length'], '100000', 'python-h2: dying, the head')
res, err = r:body()
eq(res, nil, 'python-h2: died mid-body')
assert(err:find("^HTTP/2 error from '" .. where:gsub('%.', '%%.') .. "'"), err)
eq(assert(c:get(url .. '/conn')):body(), '5', 'python-h2: after the death, a new connection')

-- A timeout while the server takes its time.
local ct = client.new({ http2 = 'prior', timeout = 0.05 })
eq({ ct:get(url .. '/slow') }, { nil, 'timeout' }, 'python-h2: timeout')
ct:close()

c:close()
assert(client.new({ http2 = 'prior' }):get(url .. '/quit'))
proc:read('*a')
proc:close()

-- TLS, the server offering only h2 by ALPN.
proc, port = origin(100, true)
local tc = client.new({ tls = { cafile = ca } })
r = assert(tc:get(('https://localhost:%d/hello'):format(port)))
eq({ r.version, r:body() }, { '2.0', 'hello from python' }, 'python-h2 over TLS')
together(10, function(k)
	r = assert(tc:request('POST', ('https://localhost:%d/echo'):format(port), { body = ('%d'):format(k) }))
	eq(r:body(), tostring(k), 'python-h2 over TLS: multiplexed')
end)
eq(assert(tc:get(('https://localhost:%d/stats'):format(port))):body():match('conns=%d+'), 'conns=1',
	'python-h2 over TLS: one connection')
assert(tc:get(('https://localhost:%d/quit'):format(port)))
tc:close()
proc:read('*a')
proc:close()
