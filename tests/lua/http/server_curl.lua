-- lem.http.server against curl: HTTP/1.0 and 1.1, keep-alive reuse,
-- Connection: close, Expect: 100-continue, HEAD, a large POST, 204,
-- res.file (and 404 when missing), Date/Server/Content-Length, streaming,
-- and a handler that raises (500, then the server keeps serving).
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local run = common.run

local port, url = common.spawn_app()

-- A plain GET: status line, the fields the server fills in, the body.
local out = run('curl -s -i ' .. url .. '/hello%20world')
assert(out:find('^HTTP/1.1 200 OK\r\n'), out)
assert(out:find('\r\nContent%-Length: 21\r\n'), out)
assert(out:find('\r\nDate: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT\r\n'), out)
assert(out:find('\r\nServer: lem\r\n'), out)
assert(out:find('\r\n\r\nHello, /hello world!\n$'), out)

-- Keep-alive: three requests over one connection (curl says it reused).
out = run(('curl -sv %s/a %s/b %s/c 2>&1'):format(url, url, url))
local _, reused = out:gsub('Re%-using existing connection', '')
eq(reused, 2, 'connections reused')
assert(out:find('Hello, /c!'), out)

-- Connection: close is honoured.
out = run(('curl -sv -H "Connection: close" %s/x %s/y 2>&1'):format(url, url))
assert(not out:find('Re%-using'), out)
assert(out:find('< Connection: close'), out)

-- HTTP/1.0: answered, then closed.
out = run('curl -s -i --http1.0 ' .. url .. '/info')
assert(out:find('^HTTP/1.1 200 OK'), out)
assert(out:find('Connection: close'), out)
assert(out:find('GET /info /info 1.0\n'), out)

-- HTTP/1.0 with keep-alive.
out = run(('curl -sv --http1.0 -H "Connection: keep-alive" %s/a %s/b 2>&1'):format(url, url))
assert(out:find('Re%-using existing connection'), out)

-- HEAD: the length of the GET body, no body.
out = run('curl -s -I ' .. url .. '/hello')
assert(out:find('^HTTP/1.1 200 OK'), out)
assert(out:find('Content%-Length: 15\r\n'), out)
assert(out:find('\r\n\r\n$'), out)

-- No body: 204 without Content-Length.
out = run('curl -s -i ' .. url .. '/empty')
assert(out:find('^HTTP/1.1 204 No Content\r\n'), out)
assert(not out:find('Content%-Length'), out)

-- Query strings and escapes: path decoded, uri kept.
out = run('curl -s "' .. url .. '/info?a=1%20b"')
eq(out, 'GET /info?a=1%20b /info 1.1\n', 'info')

-- A large POST (curl sends Expect: 100-continue past 1 MiB... and for
-- any body with -H): echoed back.
local dir = tmpdir()
local big = dir .. '/big'
local f = assert(_G.io.open(big, 'wb'))
local chunk = ('0123456789abcdef'):rep(4096)
for _ = 1, 15 do
	f:write(chunk)
end
f:close()
out = run(('curl -s -o %s/got --data-binary @%s -w "%%{http_code}" %s/echo'):format(dir, big, url))
eq(out, '200', 'large POST status')
eq(run(('cmp %s %s/got && echo same'):format(big, dir)), 'same\n', 'echoed body')

-- Expect: 100-continue explicitly: curl sees the interim response.
out = run(('curl -sv -H "Expect: 100-continue" --data-binary hello %s/echo 2>&1'):format(url))
assert(out:find('< HTTP/1.1 100 Continue'), out)
assert(out:find('\nhello$'), out)

-- Unknown expectation: 417.
out = run(('curl -s -o /dev/null -w "%%{http_code}" -H "Expect: something" -d x %s/echo'):format(url))
eq(out, '417', 'unknown Expect')

-- Over the limit: req:body(maxsize) says oversized.
out = run(('curl -s -o /dev/null -w "%%{http_code}" -H "X-Max: 3" -d 12345 %s/echo'):format(url))
eq(out, '413', 'oversized body')

-- Chunked request body.
out = run(('curl -s -H "Transfer-Encoding: chunked" --data-binary hello-chunked %s/echo'):format(url))
eq(out, 'hello-chunked', 'chunked request body')

-- res.file is sent with sendfile; a missing file is a 404.
eq(run('curl -s ' .. url .. '/file'), 'hello file\n', 'file body')
eq(run('curl -s -o /dev/null -w "%{http_code}" ' .. url .. '/missing'), '404', 'missing file')

-- A streamed response: chunked transfer coding.
out = run('curl -s -i ' .. url .. '/stream')
assert(out:find('Transfer%-Encoding: chunked'), out)
assert(out:find('\r\n\r\npart 1\npart 2\npart 3\n$'), out)
eq(run('curl -s --http1.0 ' .. url .. '/stream'), 'part 1\npart 2\npart 3\n', 'streamed to 1.0')

-- A handler that raises: 500, logged, and the server goes on.
out = run('curl -s -i ' .. url .. '/raise')
assert(out:find('^HTTP/1.1 500 Internal Server Error'), out)
eq(run('curl -s ' .. url .. '/after'), 'Hello, /after!\n', 'served after a 500')

eq(common.quit(url), 'bye\n', 'quit')
local log = assert(_G.io.open(dir .. '/app.err')):read('*a')
assert(log:find('raised on purpose'), log)
assert(log:find('stack traceback'), log)
