-- lem.http.client against nginx: gzip bodies (chunked) decoded by default
-- and left coded when the caller asked for the coding, redirects (relative,
-- absolute, 303, a loop), many coroutines on one client sharing its pool,
-- and a 50 MB download streamed to a file with the peak RSS measured.
local S = dofile('support.lua')
local exec, write_file, free_port = S.exec, S.write_file, S.free_port
local io = require 'lem.io'
local utils = require 'lem.utils'
local client = require 'lem.http.client'

local dir = tmpdir()
local port = free_port()
os.execute(('mkdir -p %s/www %s/tmp'):format(dir, dir))
local text = ('All work and no play makes Jack a dull boy.\n'):rep(2000)
write_file('www/hello.txt', text)
-- 50 MB that gzip cannot shrink (and nginx does not try: not a gzip_type).
assert(exec(('head -c 52428800 /dev/urandom > %s/www/big.bin'):format(dir)) == 0)
write_file('nginx.conf', ([[
worker_processes 1;
master_process off;
daemon off;
pid @P@/nginx.pid;
error_log @P@/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path @P@/tmp;
  proxy_temp_path @P@/tmp;
  fastcgi_temp_path @P@/tmp;
  uwsgi_temp_path @P@/tmp;
  scgi_temp_path @P@/tmp;
  default_type application/octet-stream;
  types { text/plain txt; }
  gzip on;
  gzip_min_length 1;
  gzip_types text/plain;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:@PORT@;
    root @P@/www;
    location = /r1 { return 301 /r2; }
    location = /r2 { return 302 http://127.0.0.1:@PORT@/hello.txt; }
    location = /loop { return 301 /loop; }
    location = /see { return 303 hello.txt; }
  }
}
]]):gsub('@P@', dir):gsub('@PORT@', tostring(port)))
local ngx, ngxpid = assert(io.popen(('exec nginx -p %s -c %s/nginx.conf 2>&1'):format(dir, dir)))
-- Ready when it accepts.
for _ = 1, 500 do
	local s = io.tcp.connect('127.0.0.1', port)
	if s then
		s:close()
		break
	end
	utils.newsleeper():sleep(0.01)
end
local base = ('http://127.0.0.1:%d'):format(port)

-- A 50 MB download streams to the file: the peak RSS grows far less.
local function hwm()
	local f = assert(_G.io.open('/proc/self/status'))
	local kb = tonumber(f:read('*a'):match('VmHWM:%s*(%d+)'))
	f:close()
	return kb * 1024
end
local before = hwm()
local file = dir .. '/big.copy'
local dc = client.new()
local ok, dres = dc:download(base .. '/big.bin', file)
eq(ok, true, 'download')
eq(dres.status, 200, 'download status')
local grew = hwm() - before
print(('50 MB download: peak RSS %.1f MB before, grew %.1f MB'):format(before / 1e6, grew / 1e6))
assert(grew < 20e6, 'the body was held in memory: ' .. grew)
assert(exec(('cmp -s %s/www/big.bin %s'):format(dir, file)) == 0, 'same bytes')
dc:close()

-- gzip asked for by the client and decoded; the body came chunked.
local c = client.new()
local res = assert(c:get(base .. '/hello.txt'))
eq(res.status, 200, 'status')
eq(res.headers['content-encoding'], 'gzip', 'nginx gzipped it')
eq(res.headers['transfer-encoding'], 'chunked', 'chunked')
eq(res.decoded, 'gzip', 'decoded')
eq(res:body(), text, 'gzip body decoded')
-- The caller asked for gzip itself: the coded bytes, as before.
res = assert(c:request('GET', base .. '/hello.txt', { ['Accept-Encoding'] = 'gzip' }))
local coded = assert(res:body())
eq(res.decoded, nil, 'not decoded')
assert(#coded < #text / 10 and coded:sub(1, 2) == '\31\139', 'gzip bytes')
-- decompress = true decodes it even then; false never asks.
local cd = client.new { decompress = true }
res = assert(cd:request('GET', base .. '/hello.txt', { headers = { ['Accept-Encoding'] = 'gzip' } }))
eq(res:body(), text, 'decompress = true')
cd:close()
local cf = client.new { decompress = false }
res = assert(cf:get(base .. '/hello.txt'))
eq(res.headers['content-encoding'], nil, 'not asked, not coded')
eq(res:body(), text, 'plain body')
cf:close()
-- chunks(): pieces of at most 64 KiB, decoded.
res = assert(c:get(base .. '/hello.txt'))
local parts = {}
for p in res:chunks() do
	assert(#p <= 65536)
	parts[#parts + 1] = p
end
eq(table.concat(parts), text, 'chunks')
eq(res:body(), nil, 'body after chunks')

-- Redirects: off by default; followed when asked.
res = assert(c:get(base .. '/r1'))
eq(res.status, 301, 'returned as is')
eq(res.headers.location, base .. '/r2', 'nginx made it absolute')
assert(res:body())
local cr = client.new { redirects = 5 }
res = assert(cr:get(base .. '/r1'))
eq({ res.status, res.url }, { 200, base .. '/hello.txt' }, 'two redirects followed')
eq(res:body(), text, 'redirected body')
res = assert(cr:request('POST', base .. '/see', { body = 'data' }))
eq({ res.status, res.method, res.url }, { 200, 'GET', base .. '/hello.txt' }, '303: GET')
assert(res:body())
eq({ cr:get(base .. '/loop') }, { nil, 'too many redirects (more than 5)' }, 'a loop')
cr:close()

-- 64 coroutines on one client: the pool hands out one connection each.
local cp = client.new { pool = 64 }
local left, bad = 64, 0
for _ = 1, 64 do
	utils.spawn(function()
		for _ = 1, 20 do
			local r = cp:get(base .. '/hello.txt')
			if not (r and r:body() == text) then
				bad = bad + 1
			end
		end
		left = left - 1
	end)
end
while left > 0 do
	utils.newsleeper():sleep(0.01)
end
eq(bad, 0, 'concurrent requests')
local idle = 0
for _, list in pairs(cp._idle) do
	idle = idle + #list
end
assert(idle >= 1 and idle <= 64, 'idle connections kept: ' .. idle)
cp:close()

-- The original's download saves a 404 page and says true; strict does not.
eq((c:download(base .. '/nope', dir .. '/nope')), true, '404 saved')
assert(_G.io.open(dir .. '/nope')):close()
eq({ c:download(base .. '/nope', dir .. '/strict', { strict = true }) }, { nil, 'status 404 Not Found' }, 'strict')
eq(_G.io.open(dir .. '/strict'), nil, 'no file')
c:close()

os.execute('kill ' .. ngxpid)
ngx:close()
