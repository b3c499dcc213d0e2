-- lem.http.client beyond the original, against a lem server over
-- loopback: unknown options raise, a pool shared by coroutines, redirects
-- (relative, 303 -> GET, the cap), gzip decoding, resp:chunks(), download
-- streaming (and strict), a whole-request deadline, and a refused
-- connection's reason.
local support = dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'
local client = require 'lem.http.client'

-- gzip of 'hello, gzip\n' made by gzip(1) now, so the test needs no table.
local function gzip(text)
	local path = support.write_file('plain.txt', text)
	assert(support.exec('gzip -kf ' .. path) == 0)
	local f = assert(_G.io.open(path .. '.gz', 'rb'))
	local z = f:read('*a')
	f:close()
	return z
end
local zipped = gzip('hello, gzip\n')
local big = string.rep('0123456789abcdef', 64 * 1024) -- 1 MiB

local conns = {}
local srv = assert(server.new('127.0.0.1', 0, function(req, res)
	conns[req.client] = true
	local p = req.path
	if p == '/hello' then
		res:add('hello %s', req.method)
	elseif p == '/uri' then
		res:add('%s', req.uri)
	elseif p == '/moved' then
		res.status = 301
		res.headers['Location'] = 'hello'
	elseif p == '/seeother' then
		res.status = 303
		res.headers['Location'] = '/hello'
	elseif p == '/loop' then
		res.status = 302
		res.headers['Location'] = '/loop'
	elseif p == '/gzip' then
		eq(req.headers['accept-encoding'] and req.headers['accept-encoding']:find('gzip') ~= nil, true,
			'the client asked for gzip')
		res.headers['Content-Encoding'] = 'gzip'
		res:add(zipped)
	elseif p == '/big' then
		res:add(big)
	elseif p == '/missing' then
		res.status = 404
		res:add('no such thing')
	elseif p == '/slow' then
		res:write('head and a part\n')
		utils.newsleeper():sleep(1.5)
		res:write('too late\n')
	end
end))
local _, port = srv.server:getsockname()
utils.spawn(function() srv:run() end)
local base = ('http://127.0.0.1:%d'):format(port)

-- Unknown option names raise.
checkerr('timout', client.new, { timout = 1 })

local c = client.new()

-- The query option: a table encoded as lem.http.form encodes (keys sorted,
-- a list once per value, true the name alone), added after any query the
-- URL has; a string as it is; a value form cannot encode raises.
local function uri(url, q)
	return assert(assert(c:request('GET', url, { query = q })):body())
end
eq(uri(base .. '/uri', { b = { 'x y', 2 }, a = 'é&', flag = true }), '/uri?a=%C3%A9%26&b=x%20y&b=2&flag', 'query table')
eq(uri(base .. '/uri?k=1#frag', { n = 3 }), '/uri?k=1&n=3', 'query added to the URL\'s own, fragment dropped')
eq(uri(base .. '/uri', 'raw=a+b'), '/uri?raw=a+b', 'query string as it is')
eq(uri(base .. '/uri', {}), '/uri', 'empty query table')
checkerr("bad argument #3 to 'request' (query: field \"on\" is a boolean)", c.request, c, 'GET', base .. '/uri',
	{ query = { on = false } })
checkerr("bad argument #3 to 'request' (query: a table key)", c.request, c, 'GET', base .. '/uri',
	{ query = { [{}] = 1 } })
-- Many coroutines on one client share its pool: fewer connections than
-- requests.
local done = 0
for _ = 1, 8 do
	utils.spawn(function()
		for _ = 1, 5 do
			local resp = assert(c:get(base .. '/hello'))
			eq(assert(resp:body()), 'hello GET', 'pooled body')
		end
		done = done + 1
	end)
end
while done < 8 do utils.newsleeper():sleep(0.01) end
local n = 0
for _ in pairs(conns) do n = n + 1 end
assert(n <= 8, 'at most one connection per coroutine: ' .. n)

-- Redirects: off by default, followed when asked, relative, 303 -> GET,
-- a cap.
local resp = assert(c:get(base .. '/moved'))
eq(resp.status, 301, 'a redirect as it is by default')
resp:body()
local r = client.new { redirects = 3 }
resp = assert(r:get(base .. '/moved'))
eq({ resp.status, assert(resp:body()) }, { 200, 'hello GET' }, 'relative redirect followed')
resp = assert(r:request('POST', base .. '/seeother', { body = 'x' }))
eq(assert(resp:body()), 'hello GET', '303 turns a POST into a GET')
local ok, err = r:get(base .. '/loop')
if ok then
	eq(ok.status, 302, 'past the cap the last redirect is returned')
else
	assert(tostring(err):find('redirect'), err)
end

-- gzip asked for and decoded.
resp = assert(c:get(base .. '/gzip'))
eq(assert(resp:body()), 'hello, gzip\n', 'gzip decoded')

-- chunks() gives the body in pieces that add up.
resp = assert(c:get(base .. '/big'))
local parts, total = 0, {}
for piece in resp:chunks() do
	parts = parts + 1
	total[#total + 1] = piece
end
assert(parts > 1, 'a 1 MiB body comes in several pieces')
eq(#table.concat(total), #big, 'chunks add up')

-- download streams to the file; strict refuses a 404 without the file.
local file = support.tmpdir() .. '/big.out'
assert(c:download(base .. '/big', file))
local f = assert(_G.io.open(file, 'rb'))
eq(#f:read('*a'), #big, 'downloaded')
f:close()
local missing = support.tmpdir() .. '/missing.out'
assert(c:download(base .. '/missing', missing), 'a 404 is true as the original')
ok, err = c:download(base .. '/missing', missing .. '2', { strict = true })
eq(ok, nil, 'strict download of a 404')
assert(err:find('404'), err)
eq(_G.io.open(missing .. '2'), nil, 'strict: no file')

-- A whole-request deadline, where the server sends its head at once and
-- the rest too late: each read alone would have passed.
local d = client.new { deadline = 0.3, timeout = 10 }
ok, err = d:get(base .. '/slow')
if ok then
	ok, err = ok:body()
end
eq({ ok, err }, { nil, 'timeout' }, 'deadline over the whole request')

-- A refused connection says why.
local closed = support.free_port()
ok, err = client.new():get(('http://127.0.0.1:%d/'):format(closed))
eq(ok, nil, 'refused')
assert(err:find('refused', 1, true), err)

c:close()
r:close()
d:close()
srv:close()
print('ok')
