-- hathaway middleware: app:use(f) hooks run in order around the routes
-- (before next() and after it), answer early by not calling next, see
-- 404s and 405s too, and compose with hathaway.cors (preflights, simple
-- requests, origins refused); app.not_found and app.method_not_allowed
-- replace the error pages (JSON ones here). Clients: curl and Python.
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local hathaway = require 'lem.hathaway'
local sh = common.sh

local app = hathaway.new()
local trail = {}
app:use(function(req, res, nxt)
	trail[#trail + 1] = 'a>' .. req.path
	nxt()
	trail[#trail + 1] = 'a<' .. tostring(res.status)
	res.headers['X-After'] = 'a'
end)
app:use(function(req, res, nxt)
	trail[#trail + 1] = 'b>'
	if req.headers['x-deny'] then
		res.status = 403
		res:add('denied')
		return
	end
	res.headers['X-Before'] = 'b'
	return nxt()
end)
app:use(hathaway.cors({ origins = { 'https://a.example' }, credentials = true, max_age = 600, expose = 'X-Before' }))
app:GET('/hello', function(req, res)
	trail[#trail + 1] = 'route'
	res:add('hello')
end)
app:POST('/json', function(req, res)
	res:add('posted')
end)
app.not_found = function(req, res)
	res.status = 404
	res.headers['Content-Type'] = 'application/json'
	res:add('{"error":"not found","path":%q}', req.path)
end
app.method_not_allowed = function(req, res)
	res.status = 405
	res.headers['Content-Type'] = 'application/json'
	res:add('{"error":"method not allowed"}')
end
local srv, _, url = common.serve(app.handler)

local function curl(args)
	local out = sh('curl -s -i ' .. args)
	local head, body = out:match('^(.-\r\n)\r\n(.*)$')
	assert(head, out)
	local h = {}
	for k, v in head:gmatch('\n([^:\r\n]+): ([^\r\n]*)') do
		h[k:lower()] = v
	end
	return tonumber(head:match('^HTTP/1.1 (%d+)')), h, body
end

-- Order: a before b before the route, a's after-part last.
local status, h, body = curl(url .. '/hello')
eq({ status, body, h['x-before'], h['x-after'] }, { 200, 'hello', 'b', 'a' }, 'through the chain')
eq(trail, { 'a>/hello', 'b>', 'route', 'a<nil' }, 'order')

-- Answering early: the route does not run, a's after-part does.
trail = {}
status, h, body = curl('-H "X-Deny: 1" ' .. url .. '/hello')
eq({ status, body, h['x-after'], h['x-before'] }, { 403, 'denied', 'a', nil }, 'early answer')
eq(trail, { 'a>/hello', 'b>', 'a<403' }, 'early order')

-- The error hooks: JSON 404 and 405, through the middleware too.
status, h, body = curl(url .. '/nope')
eq({ status, h['content-type'], body, h['x-after'] }, { 404, 'application/json', '{"error":"not found","path":"/nope"}', 'a' }, '404 hook')
status, h, body = curl('-X DELETE ' .. url .. '/json')
eq({ status, h['content-type'], body }, { 405, 'application/json', '{"error":"method not allowed"}' }, '405 hook')

-- CORS: a preflight from an allowed origin is answered here (204).
status, h, body = curl('-X OPTIONS -H "Origin: https://a.example" -H "Access-Control-Request-Method: POST" '
	.. '-H "Access-Control-Request-Headers: content-type, x-token" ' .. url .. '/json')
eq({ status, body }, { 204, '' }, 'preflight')
eq(h['access-control-allow-origin'], 'https://a.example', 'allow origin')
eq(h['access-control-allow-credentials'], 'true', 'credentials')
eq(h['access-control-allow-headers'], 'content-type, x-token', 'allow headers')
eq(h['access-control-max-age'], '600', 'max age')
eq(h['vary'], 'Origin', 'vary')
assert(h['access-control-allow-methods']:find('POST'), h['access-control-allow-methods'])
-- A simple request: the fields, and the route's answer.
status, h, body = curl('-H "Origin: https://a.example" ' .. url .. '/hello')
eq({ status, body, h['access-control-allow-origin'], h['access-control-expose-headers'] },
	{ 200, 'hello', 'https://a.example', 'X-Before' }, 'simple CORS')
-- Another origin, or none: no CORS fields (the browser refuses).
status, h = curl('-H "Origin: https://evil.example" ' .. url .. '/hello')
eq({ status, h['access-control-allow-origin'] }, { 200, nil }, 'origin refused')
status, h = curl(url .. '/hello')
eq(h['access-control-allow-origin'], nil, 'no origin')
-- A preflight from a refused origin goes on to the routes (405 here: no OPTIONS route).
eq(curl('-X OPTIONS -H "Origin: https://evil.example" -H "Access-Control-Request-Method: POST" ' .. url .. '/json'),
	405, 'refused preflight')

-- The same from Python's http.client.
local py = sh(([[python3 -c '
import http.client
c = http.client.HTTPConnection("127.0.0.1", %d)
c.request("OPTIONS", "/json", headers={"Origin": "https://a.example", "Access-Control-Request-Method": "PUT"})
r = c.getresponse(); r.read()
print(r.status, r.getheader("Access-Control-Allow-Origin"))
c.request("GET", "/missing")
r = c.getresponse()
print(r.status, r.read().decode())
']]):format(select(2, srv:getsockname())))
eq(py, '204 https://a.example\n404 {"error":"not found","path":"/missing"}\n', 'python')

-- cors() defaults: any origin, '*' without credentials; a function of the origin.
local any = hathaway.new()
any:use(hathaway.cors())
any:GET('/', function(req, res) res:add('x') end)
local fn = hathaway.new()
fn:use(hathaway.cors({ origins = function(o) return o:find('%.test$') ~= nil end }))
fn:GET('/', function(req, res) res:add('y') end)
local srv2, _, url2 = common.serve(any.handler)
local srv3, _, url3 = common.serve(fn.handler)
status, h = curl('-H "Origin: https://x.example" ' .. url2 .. '/')
eq({ h['access-control-allow-origin'], h['vary'] }, { '*', nil }, 'any origin')
status, h = curl('-H "Origin: https://b.test" ' .. url3 .. '/')
eq(h['access-control-allow-origin'], 'https://b.test', 'function allows')
status, h = curl('-H "Origin: https://b.example" ' .. url3 .. '/')
eq(h['access-control-allow-origin'], nil, 'function refuses')

-- next() twice raises (the route would run twice): a 500.
local twice = hathaway.new()
twice:use(function(req, res, nxt) nxt(); nxt() end)
twice:GET('/', function(req, res) res:add('once') end)
local srv4, _, url4 = common.serve(twice.handler)
eq(curl(url4 .. '/'), 500, 'next twice')

-- A middleware-only app (no routes): the middleware, then the 404 page.
local bare = hathaway.new()
local seen
bare:use(function(req, res, nxt) seen = req.path; return nxt() end)
local srv5, _, url5 = common.serve(bare.handler)
eq(curl(url5 .. '/x'), 404, 'bare 404')
eq(seen, '/x', 'bare middleware ran')

-- Misuse raises.
checkerr('function expected', app.use, app, 42)
checkerr('unknown option', hathaway.cors, { origin = '*' })
checkerr('option credentials: boolean expected', hathaway.cors, { credentials = 'yes' })
local ran = hathaway.new()
ran.server = srv
checkerr('app:use after app:run', ran.use, ran, function() end)

for _, s in ipairs({ srv, srv2, srv3, srv4, srv5 }) do
	s:close()
end
print('middleware ok')
