-- lem.http.client against lem.http.server (in this process) and against
-- Python's http.server: get, keep-alive reuse, body() for Content-Length,
-- chunked and read-until-close, request() with a method, headers and a
-- body, download, IPv6 literals, errors.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'
local client = require 'lem.http.client'

-- Parsing URLs.
eq({ client.parseurl('http://example.org') }, { 'http', 'example.org', 80, '/', 'example.org' }, 'plain')
eq({ client.parseurl('HTTPS://[::1]:8443/a?b#c') }, { 'https', '::1', 8443, '/a?b', '[::1]:8443' }, 'ipv6')
eq({ client.parseurl('http://h:80?q') }, { 'http', 'h', 80, '/?q', 'h' }, 'default port')
eq(client.parseurl('ftp://x/'), nil, 'scheme')

local conns = 0
local function handler(req, res)
	if req.path == '/stream' then
		res:write('one,')
		res:write('two')
		return
	end
	res.headers['X-Method'] = req.method
	res.headers['Set-Cookie'] = 'a=1'
	res:add('%s %s %s', req.method, req.path, req:body() or '')
end
for _, host in ipairs({ '127.0.0.1', '::1' }) do
	local sock = assert(io.tcp.listen(host, 0))
	local _, port = sock:getsockname()
	local srv = assert(server.new(sock, function(req, res)
		return handler(req, res)
	end))
	utils.spawn(function()
		local s = sock
		s:autospawn(function(c)
			conns = conns + 1
			server.serve(srv, c)
		end)
	end)
	local base = host:find(':') and ('http://[%s]:%d'):format(host, port) or ('http://%s:%d'):format(host, port)
	conns = 0
	local c = client.new()
	for i = 1, 3 do
		local res = assert(c:get(base .. '/p' .. i))
		eq(res.status, 200, 'status')
		eq(res.text, 'OK', 'text')
		eq(res.headers['x-method'], 'GET', 'header')
		eq(res:body(), 'GET /p' .. i .. ' ', 'body')
	end
	eq(conns, 1, 'one connection for three gets')
	local res = assert(c:request('PUT', base .. '/put', { ['X-Test'] = 'y' }, 'data'))
	eq(res:body(), 'PUT /put data', 'put')
	res = assert(c:get(base .. '/stream'))
	eq(res.headers['transfer-encoding'], 'chunked', 'chunked')
	eq(res:body(), 'one,two', 'chunked body')
	res = assert(c:request('HEAD', base .. '/x'))
	eq(res:body(), '', 'HEAD body')
	eq(conns, 1, 'still one connection')
	local file = tmpdir() .. '/dl'
	assert(c:download(base .. '/dl', file))
	eq(assert(_G.io.open(file)):read('*a'), 'GET /dl ', 'download')
	c:close()
	sock:close()
end

-- Against Python's http.server (HTTP/1.0: read until close).
local dir = tmpdir()
local f = assert(_G.io.open(dir .. '/page.txt', 'w'))
f:write('from python\n')
f:close()
local py, pypid = assert(io.popen(('cd %s && exec python3 -u -m http.server -b 127.0.0.1 0 2>&1'):format(dir)))
local line = assert(py:read('*l'))
local pport = assert(tonumber(line:match('port (%d+)')), line)
local c = client.new({ timeout = 10 })
local res = assert(c:get(('http://127.0.0.1:%d/page.txt'):format(pport)))
eq(res.status, 200, 'python status')
eq(res:body(), 'from python\n', 'python body')
res = assert(c:get(('http://127.0.0.1:%d/nope'):format(pport)))
eq(res.status, 404, 'python 404')
assert(res:body())
c:close()

-- Errors: refused connection, bad URL.
local free = assert(io.tcp.listen4('127.0.0.1', 0))
local _, fport = free:getsockname()
free:close()
local r, err = client.new():get(('http://127.0.0.1:%d/'):format(fport))
eq(r, nil, 'refused')
assert(err:find('error connecting'), err)
-- A malformed URL is misuse: it raises, at the caller's line.
local e = checkerr("bad argument #1 to 'get' (invalid url)", function() local c = client.new() local r = c:get('nonsense') return r end)
assert(e:find('^http/client.lua:%d+: '), e)
checkerr("bad argument #1 to 'get' (invalid url)", function() local c = client.new() local r = c:get('http://127.0.0.1:99999/') return r end)
checkerr("bad argument #1 to 'get' (invalid url)", function() local c = client.new() local r = c:get('ftp://x/') return r end)
checkerr("bad argument #1 to 'get' (string expected, got no value)", function() local c = client.new() local r = c:get() return r end)
checkerr("bad argument #2 to 'request' (invalid url)", function() local c = client.new() local r = c:request('GET', 'notaurl') return r end)
checkerr("bad argument #1 to 'download' (invalid url)", function() local c = client.new() local r = c:download('x', 'y') return r end)
checkerr("bad argument #2 to 'request' (invalid url)", function() local r = client.request('GET', 'notaurl') return r end)

os.execute('kill ' .. pypid)
py:close()
