-- The web toolkit over HTTP/2, as over HTTP/1.1: hathaway routes and
-- middleware, req.query, req.cookies and signed cookies, req:form(),
-- req:multipart(), repeated request fields, res:cookie() twice (two set-cookie fields), a list in
-- res.headers, hathaway.static with Range, 304 and HEAD, and
-- srv.access_log entries for HTTP/2 streams; curl by prior knowledge.
local support = dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local io = require 'lem.io'
local utils = require 'lem.utils'
local hathaway = require 'lem.hathaway'

local dir = support.tmpdir()
local root = dir .. '/www'
assert(os.execute('mkdir -p ' .. root))
local page = ('<p>static</p>\n'):rep(1000)
local f = assert(_G.io.open(root .. '/page.html', 'w'))
f:write(page)
f:close()
local SECRET = 'h2 toolkit key'

local app = hathaway.new()
local seen = {}
app:use(function(req, _, nxt)
	seen[#seen + 1] = req.version .. ' ' .. req.path
	nxt()
end)
app:GET('/query', function(req, res)
	local q = req.query
	res:add('%s|%s,%s|%s', tostring(q.a), tostring(q.b[1]), tostring(q.b[2]), tostring(q.flag))
end)
app:GET('/login', function(_, res)
	res:cookie('sid', 'user7', { sign = SECRET, httponly = true })
	res:cookie('theme', 'dark')
	res.headers['X-List'] = { 'one', 'two' }
	res:add('ok')
end)
app:GET('/mixed', function(req, res)
	res.headers['Set-Cookie'] = 'a=1'
	res.headers['set-cookie'] = { 'b=2', 'c=3' }
	if req.query.whole then
		res:add('ok')
	else
		-- Streamed: its head is built in Lua (h2.lua's fields), not by st:send.
		assert(res:write('ok'))
	end
end)
app:GET('/accept', function(req, res)
	res:add(req.headers.accept)
end)
app:GET('/whoami', function(req, res)
	res:add('%s %s', tostring(req:cookie('sid', SECRET)), tostring(req.cookies.theme))
end)
app:POST('/form', function(req, res)
	local t = assert(req:form())
	res:add('%s %s', t.name, t.n)
end)
app:POST('/upload', function(req, res)
	local parts = assert(req:multipart())
	local out = {}
	for part in parts do
		out[#out + 1] = ('%s=%d'):format(part.name, #assert(part:body()))
	end
	res:add('%s %s', table.concat(out, ','), tostring(parts.error))
end)
app:GETM('^/static/(.*)$', hathaway.static(root))

local sock = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = sock:getsockname()
local url = ('http://127.0.0.1:%d'):format(port)
local entries = {}
local srv = assert(require('lem.http.server').new(sock, app.handler))
srv.access_log = function(e) entries[#entries + 1] = e end
utils.spawn(function() srv:run() end)

local function curl(args)
	return common.sh('curl -s --http2-prior-knowledge ' .. args)
end

eq(curl("'" .. url .. "/query?a=1&b=x&b=y%20z&flag'"), '1|x,y z|true', 'req.query over HTTP/2')
local head = curl('-D - -o /dev/null ' .. url .. '/login')
local cookies = {}
for v in head:gmatch('set%-cookie: ([^\r\n]*)') do cookies[#cookies + 1] = v end
eq(#cookies, 2, 'two set-cookie fields: ' .. head)
assert(cookies[1]:find('^sid=user7%.') and cookies[1]:find('HttpOnly'), cookies[1])
eq(cookies[2], 'theme=dark', 'the plain cookie')
assert(head:find('x%-list: one\r\nx%-list: two\r\n'), 'a list in res.headers: ' .. head)
local sid = cookies[1]:match('^sid=([^;]*)')
-- Two keys that differ only in case are one field name: every value goes,
-- on a streamed response as on a whole one.
for _, target in ipairs({ '/mixed', '/mixed?whole' }) do
	head = curl("-D - -o /dev/null '" .. url .. target .. "'")
	cookies = {}
	for v in head:gmatch('set%-cookie: ([^\r\n]*)') do cookies[#cookies + 1] = v end
	table.sort(cookies)
	eq(cookies, { 'a=1', 'b=2', 'c=3' }, target .. ": 'Set-Cookie' and 'set-cookie' keys both sent: " .. head)
end
eq(curl(("-H 'Cookie: sid=%s; theme=dark' %s/whoami"):format(sid, url)), 'user7 dark', 'signed cookie verified')
eq(curl(("-H 'Cookie: sid=user7.forged; theme=light' %s/whoami"):format(url)), 'nil light', 'a forged one is nil')
eq(curl("-H 'Accept: text/html' -H 'Accept: application/json' " .. url .. '/accept'), 'text/html, application/json',
	'a repeated field keeps every value, as on HTTP/1.1')
eq(curl('--data "name=Ada%20L&n=3" ' .. url .. '/form'), 'Ada L 3', 'req:form() over HTTP/2')
local big = support.write_file('big.bin', ('u'):rep(200000))
eq(curl('-F note=hello -F file=@' .. big .. ' ' .. url .. '/upload'), 'note=5,file=200000 nil',
	'req:multipart() over HTTP/2, a part larger than a window')

-- Static files.
local got = curl(url .. '/static/page.html')
assert(got == page, 'static file body')
head = curl('-D - -o /dev/null ' .. url .. '/static/page.html')
local etag = assert(head:match('etag: ([^\r\n]*)'), head)
eq(curl('-r 3-9 ' .. url .. '/static/page.html'), page:sub(4, 10), 'Range')
eq(curl(("-o /dev/null -w '%%{http_code}' -H 'If-None-Match: %s' %s/static/page.html"):format(etag, url)), '304',
	'304 on a matching ETag')
eq(curl("-o /dev/null -w '%{http_code}' " .. url .. '/static/..%2f..%2fetc%2fpasswd'), '400',
	'traversal refused over HTTP/2 too')
head = curl('-I ' .. url .. '/static/page.html')
assert(head:find('^HTTP/2 200') and head:find('content%-length: ' .. #page), head)

srv:close()
eq(seen[1], '2.0 /query', 'middleware saw the HTTP/2 request')
-- The access log: every stream answered, with its status and bytes.
local by = {}
for _, e in ipairs(entries) do
	eq(e.version, '2.0', 'entry version')
	eq(e.peer, '127.0.0.1', 'entry peer')
	by[e.target] = by[e.target] or e
end
eq(by['/static/page.html'].bytes, #page, 'entry bytes: the static file')
eq(by['/static/page.html'].status, 200, 'entry status')
eq(by['/login'].bytes, 2, 'entry bytes: a body of parts')
eq(#entries, #seen, 'one entry per request')
print('h2 toolkit ok')
