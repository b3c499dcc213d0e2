-- hathaway.static: files beneath a root, and nothing else. Traversal in
-- every encoding (raw and %-encoded dots, slashes and backslashes,
-- double encoding, NUL, overlong UTF-8, absolute paths), symbolic links
-- out of the root (refused unless allowed), dotfiles, MIME types, ETag and
-- Last-Modified with 304s, single ranges (206, 416, ignored ones), HEAD,
-- and the index (off by default). Clients: curl and raw requests, with
-- the server in this process.
local support = dofile('support.lua')
local exec, shell_quote = support.exec, support.shell_quote
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local hathaway = require 'lem.hathaway'
local sh, raw = common.sh, common.raw

local tmp = tmpdir()
local root = tmp .. '/root'
assert(exec(([[
set -e
mkdir -p %s/sub %s/site %s/dir
cd %s
printf 'hello, static\n' > a.txt
printf '<p>b</p>' > sub/b.html
printf 'index' > site/index.html
printf 'secret' > ../secret
printf 'dot' > .env
printf '' > empty.css
head -c 4096 /dev/urandom > four.bin
ln -s ../secret out
ln -s /etc/hostname abs
ln -s a.txt in
ln -s .. up
mkfifo pipe
]]):format(root, root, root, root)) == 0)

local app = hathaway.new()
app:GETM('^/static/(.*)$', hathaway.static(root))
app:GETM('^/follow/(.*)$', hathaway.static(root, { symlinks = true }))
app:GETM('^/site/(.*)$', hathaway.static(root .. '/site', { index = 'index.html', max_age = 60 }))
app:GETM('^/dots/(.*)$', hathaway.static(root, { dotfiles = true }))
local port, url, stop = common.serve_app(app)

-- curl -> status, headers (lower-cased names), body.
local function get(path, opts)
	return common.curl(url .. path, opts)
end

-- The plain case: type, length, validators, ranges offered.
local status, h, body = get('/static/a.txt')
eq({ status, body }, { 200, 'hello, static\n' }, 'a.txt')
eq(h['content-type'], 'text/plain; charset=utf-8', 'MIME by extension')
eq(h['content-length'], '14', 'length')
eq(h['accept-ranges'], 'bytes', 'Accept-Ranges')
assert(h['etag']:match('^"[%x-]+"$'), h['etag'])
assert(h['last-modified']:match('^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$'), h['last-modified'])
local etag, lastmod = h['etag'], h['last-modified']
eq(select(3, get('/static/sub/b.html')), '<p>b</p>', 'subdir')
eq(select(2, get('/static/sub/b.html'))['content-type'], 'text/html; charset=utf-8', 'html')
eq(select(2, get('/static/four.bin'))['content-type'], 'application/octet-stream', 'unknown type')
status, h, body = get('/static/empty.css')
eq({ status, h['content-length'], body, h['content-type'] }, { 200, '0', '', 'text/css; charset=utf-8' }, 'empty file')
local four = sh('cat ' .. root .. '/four.bin')
status, h, body = get('/static/four.bin')
eq({ status, #body, body == four }, { 200, 4096, true }, '4 KB binary')
eq(get('/static//sub//./b.html'), 200, 'empty and . segments')

-- HEAD: the fields of the GET, no body.
status, h, body = get('/static/a.txt', '-I')
eq({ status, h['content-length'], h['etag'], body }, { 200, '14', etag, '' }, 'HEAD')

-- Other methods: 405 with Allow (when routed to the handler).
local post = hathaway.new()
post:POSTM('^/(.*)$', hathaway.static(root))
local psrv, _, purl = common.serve(post.handler)
local out = sh('curl -s -i -X POST ' .. purl .. '/a.txt')
assert(out:find('^HTTP/1.1 405') and out:find('\r\nAllow: GET, HEAD\r\n'), out)
psrv:close()

-- Traversal: every spelling of .. and / that decodes to one, refused;
-- none may give the secret or /etc/hostname.
local hostname = sh('cat /etc/hostname')
for _, path in ipairs({
	'/static/../secret', '/static/../../../etc/hostname',
	'/static/..%2fsecret', '/static/..%2F..%2F..%2Fetc%2Fhostname',
	'/static/%2e%2e/secret', '/static/%2E%2E%2Fsecret', '/static/.%2e/secret',
	'/static/sub/../../secret', '/static/sub/%2e%2e/%2e%2e/secret',
	'/static/..%5csecret', '/static/..\\secret', '/static/sub%5c..%5c..%5csecret',
	'/static/%252e%252e/secret', '/static/%252e%252e%252fsecret', '/static/..%252fsecret',
	'/static/%c0%ae%c0%ae/secret', '/static/%c0%ae%c0%ae%c0%afsecret', '/static/%e0%80%ae%e0%80%ae/secret',
	'/static/a.txt%00.html', '/static/%00', '/static/%2fetc%2fhostname', '/static//etc/hostname',
	'/static/out', '/static/abs', '/static/up/secret', '/static/up/root/a.txt',
	'/static/.env', '/static/sub/.', '/static/pipe', '/static/sub', '/static/', '/static/nothing',
}) do
	status, h, body = get(path)
	assert(status == 400 or status == 404, path .. ': ' .. tostring(status))
	assert(not body:find('secret') and (hostname == '' or not body:find(hostname, 1, true)), path .. ': ' .. body)
end
-- The raw forms (no client normalizing anything).
for _, target in ipairs({ '/static/../secret', '/static/./../secret', '/static/..%2f..%2fetc/hostname' }) do
	out = raw(port, 'GET ' .. target .. ' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
	assert(out:find('^HTTP/1.1 40[04]') and not out:find('secret\n?$'), target .. ': ' .. out)
end
eq(get('/static/..%2fsecret'), 400, '..%2f is a bad request')
eq(get('/static/out'), 404, 'a link out of the root')
-- symlinks = true follows links (.. itself stays refused).
eq({ select(1, get('/follow/out')), select(3, get('/follow/out')) }, { 200, 'secret' }, 'symlinks = true')
eq(get('/follow/../secret'), 400, '.. with symlinks = true')
eq(get('/follow/%2fetc%2fhostname'), 404, 'absolute with symlinks = true')
eq({ select(1, get('/static/in')), select(3, get('/static/in')) }, { 200, 'hello, static\n' }, 'a link inside')
eq({ select(1, get('/dots/.env')), select(3, get('/dots/.env')) }, { 200, 'dot' }, 'dotfiles = true')

-- Conditional requests: 304 with the validators and no body.
local function cond(header)
	return get('/static/a.txt', '-H ' .. shell_quote(header))
end
status, h, body = cond('If-None-Match: ' .. etag)
eq({ status, body, h['etag'], h['content-length'] }, { 304, '', etag, nil }, 'If-None-Match')
eq(cond('If-None-Match: W/' .. etag), 304, 'weak comparison')
eq(cond('If-None-Match: "x", ' .. etag .. ' , "y"'), 304, 'in a list')
eq(cond('If-None-Match: *'), 304, '*')
eq(cond('If-None-Match: "other"'), 200, 'another tag')
eq(cond('If-Modified-Since: ' .. lastmod), 304, 'If-Modified-Since the same')
eq(cond('If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT'), 200, 'modified since')
eq(cond('If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT'), 304, 'a later date')
eq(cond('If-Modified-Since: yesterday'), 200, 'a date we cannot read')
-- If-None-Match wins over If-Modified-Since.
eq(get('/static/a.txt', '-H \'If-None-Match: "x"\' -H ' .. shell_quote('If-Modified-Since: ' .. lastmod)), 200, 'INM first')
eq(hathaway._parse_date('Sun, 06 Nov 1994 08:49:37 GMT'), 784111777, 'parse_date')
eq(hathaway._parse_date('Thu, 29 Feb 2024 23:59:59 GMT'), 1709251199, 'parse_date leap')

-- Ranges: one range gets 206 and Content-Range; unsatisfiable 416.
local function range(r, extra)
	return get('/static/a.txt', '-H ' .. shell_quote('Range: ' .. r) .. ' ' .. (extra or ''))
end
status, h, body = range('bytes=0-4')
eq({ status, body, h['content-range'], h['content-length'] }, { 206, 'hello', 'bytes 0-4/14', '5' }, '0-4')
status, h, body = range('bytes=7-')
eq({ status, body, h['content-range'] }, { 206, 'static\n', 'bytes 7-13/14' }, '7-')
status, h, body = range('bytes=-3')
eq({ status, body, h['content-range'] }, { 206, 'ic\n', 'bytes 11-13/14' }, '-3')
status, h, body = range('bytes=-100')
eq({ status, #body, h['content-range'] }, { 206, 14, 'bytes 0-13/14' }, 'suffix past the start')
status, h, body = range('bytes=10-1000000000000000000000')
eq({ status, body, h['content-range'] }, { 206, 'tic\n', 'bytes 10-13/14' }, 'last past the end')
status, h, body = range('bytes=13-13')
eq({ status, body }, { 206, '\n' }, 'last byte')
status, h, body = range('bytes=14-')
eq({ status, h['content-range'], body }, { 416, 'bytes */14', '' }, 'first at the end')
eq(range('bytes=99999999999999999999-'), 416, 'huge first')
eq(range('bytes=-0'), 416, 'empty suffix')
eq(get('/static/empty.css', "-H 'Range: bytes=0-'"), 416, 'range of an empty file')
-- Ignored: several ranges, other units, nonsense, a reversed range.
for _, r in ipairs({ 'bytes=0-1,3-4', 'items=0-1', 'bytes=x-y', 'bytes=5-2', 'bytes=-', 'bytes 0-1' }) do
	status, h, body = range(r)
	eq({ status, #body }, { 200, 14 }, r)
end
-- If-Range: the range only while the validator holds.
eq(range('bytes=0-4', '-H ' .. shell_quote('If-Range: ' .. etag)), 206, 'If-Range etag')
eq(range('bytes=0-4', '-H ' .. shell_quote('If-Range: ' .. lastmod)), 206, 'If-Range date')
eq(range('bytes=0-4', "-H 'If-Range: \"old\"'"), 200, 'If-Range stale')
-- A range of the binary file, by curl's own -r.
status, h, body = get('/static/four.bin', '-r 1000-1999')
eq({ status, body == four:sub(1001, 2000) }, { 206, true }, 'binary range')
-- HEAD with a Range: the whole file's fields.
eq(range('bytes=0-4', '-I'), 200, 'HEAD ignores Range')

-- The index: off by default (404 for a directory), on when asked, with a
-- redirect to the slash.
eq(get('/static/site/'), 404, 'no index by default')
status, h, body = get('/site/')
eq({ status, body, h['content-type'], h['cache-control'] }, { 200, 'index', 'text/html; charset=utf-8', 'max-age=60' }, 'index')
status, h = get('/site')
eq(status, 404, '/site is no route')
local app2 = hathaway.new()
app2:GETM('^/(.*)$', hathaway.static(root, { index = 'index.html' }))
local srv2, _, url2 = common.serve(app2.handler)
out = sh('curl -s -i ' .. url2 .. '/site?x=1')
assert(out:find('^HTTP/1.1 301') and out:find('\r\nLocation: /site/%?x=1\r\n'), out)
out = sh('curl -s -i ' .. url2 .. '/dir/')
assert(out:find('^HTTP/1.1 404'), out)
srv2:close()

-- Keep-alive across file answers, 304s and 416s on one connection.
out = sh(('curl -sv --path-as-is %s/static/a.txt -H %s %s/static/a.txt %s/static/four.bin %s/static/../x 2>&1'):format(
	url, shell_quote('If-None-Match: ' .. etag), url, url, url))
local _, reused = out:gsub('Re%-using existing connection', '')
eq(reused, 3, 'connection reused')

-- Misuse raises.
checkerr('string expected', hathaway.static, 1)
checkerr('unknown option', hathaway.static, root, { indx = 'x' })
checkerr('option index: string expected', hathaway.static, root, { index = true })

stop()
print('static ok')
