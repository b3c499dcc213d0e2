-- srv.access_log: entries to a function (every field), lines to a file in
-- the common log format and as JSON lines (checked by Python's json),
-- to io.stderr of a child process, for ordinary, file, HEAD, streamed,
-- 304/404/500 answers and odd targets; misuse raises from srv:run(); and
-- under lem -w 2 with 2,000 requests of long targets from Python threads,
-- every line of the shared file is whole and each request has one.
local support = dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local server = require 'lem.http.server'
local log = require 'lem.http.log'
local utils = require 'lem.utils'
local sh, shell_quote = common.sh, support.shell_quote
local tmp = tmpdir()

local function handler(req, res)
	if req.path == '/file' then
		res.file = support.write_file('f.txt', '12345')
	elseif req.path == '/stream' then
		res:write('ab')
		res:write('cd')
	elseif req.path == '/boom' then
		error('boom')
	elseif req.path == '/304' then
		res.status = 304
	else
		res:add('hello')
	end
end

-- A function: the entries themselves.
local entries = {}
local srv, port, url = common.serve(handler)
srv.access_log = function(e) entries[#entries + 1] = e end
sh(('curl -s -o /dev/null %s/a -o /dev/null %s/file -o /dev/null %s/stream -o /dev/null %s/boom -o /dev/null -I %s/a'):format(url, url, url, url, url))
srv:close()
eq(#entries, 5, 'entries')
local e = entries[1]
eq({ e.method, e.target, e.version, e.status, e.bytes, e.peer }, { 'HEAD', '/a', '1.1', 200, 0, '127.0.0.1' }, 'HEAD entry')
assert(type(e.duration) == 'number' and e.duration >= 0 and type(e.time) == 'number', 'duration, time')
assert(math.abs(e.time - os.time()) < 3600, 'time is unix time')
-- curl -I applies to all its URLs: all HEADs. Now GETs.
entries = {}
srv, port, url = common.serve(handler)
srv.access_log = function(e) entries[#entries + 1] = e end
sh(('curl -s -o /dev/null %s/a -o /dev/null %s/file -o /dev/null %s/stream -o /dev/null %s/boom -o /dev/null %s/304'):format(url, url, url, url, url))
sh(('curl -s -o /dev/null --path-as-is %s'):format(shell_quote(url .. '/odd%22"?q=\\x')))
local got = {}
for i, x in ipairs(entries) do
	got[i] = { x.method, x.target, x.status, x.bytes }
end
eq(got, {
	{ 'GET', '/a', 200, 5 }, { 'GET', '/file', 200, 5 }, { 'GET', '/stream', 200, nil },
	{ 'GET', '/boom', 500, #'<html><head><title>Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>\n' },
	{ 'GET', '/304', 304, 0 }, { 'GET', '/odd%22"?q=\\x', 200, 5 },
}, 'GET entries')
-- A function that raises is reported; requests go on.
srv.access_log = function() error('log hook broke') end
eq(sh('curl -s ' .. url .. '/a'), 'hello', 'raising log function')
srv:close()

-- The formats.
local entry = { time = 1796633948.5, peer = '::1', method = 'GET', target = '/a b"\\\1\128', version = '1.1', status = 200, bytes = 12, duration = 0.25 }
eq(log.common(entry), '::1 - - [07/Dec/2026:08:59:08 +0000] "GET /a b\\x22\\x5C\\x01\\x80 HTTP/1.1" 200 12 0.250000\n', 'common')
eq(log.json(entry), '{"time":1796633948.500,"peer":"::1","method":"GET","target":"/a b\\u0022\\u005c\\u0001\\u0080",'
	.. '"version":"1.1","status":200,"bytes":12,"duration":0.250000}\n', 'json')
entry.bytes, entry.peer = nil, nil
assert(log.common(entry):find('^%- %- %- .* 200 %- 0%.250000\n$'), log.common(entry))
assert(log.json(entry):find('"peer":null,.*"bytes":null,'), log.json(entry))

-- A file, in each format: one line per request, read back by Python.
for _, fmt in ipairs({ 'common', 'json' }) do
	local path = tmp .. '/access.' .. fmt
	srv, port, url = common.serve(handler)
	srv.access_log, srv.access_log_format = path, fmt
	for i = 1, 20 do
		sh('curl -s -o /dev/null ' .. url .. '/n' .. i)
	end
	srv:close()
	-- The writer runs in its own coroutine: wait for its lines.
	local lines
	for _ = 1, 200 do
		lines = {}
		local f = _G.io.open(path)
		for line in f and f:lines() or function() end do
			lines[#lines + 1] = line
		end
		if f then f:close() end
		if #lines >= 20 then break end
		utils.newsleeper():sleep(0.05)
	end
	eq(#lines, 20, fmt .. ' lines')
	if fmt == 'common' then
		for i, line in ipairs(lines) do
			assert(line:find('^127%.0%.0%.1 %- %- %[%d%d/%a%a%a/%d%d%d%d:%d%d:%d%d:%d%d %+0000%] "GET /n' .. i
				.. ' HTTP/1%.1" 200 5 %d+%.%d+$'), line)
		end
	else
		local out = sh('python3 -c ' .. shell_quote([[
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(len(rows), sorted(set(r["status"] for r in rows)), rows[3]["target"], rows[3]["bytes"], rows[3]["peer"])
]]) .. ' ' .. path)
		eq(out, '20 [200] /n4 5 127.0.0.1\n', 'json lines')
	end
end

-- io.stderr, in a child process.
local script = support.write_file('child.lua', [[
local server = require 'lem.http.server'
local io = require 'lem.io'
local utils = require 'lem.utils'
local srv = assert(server.new('127.0.0.1', 0, function(req, res) res:add('x') end))
srv.access_log = io.stderr
local _, port = srv:getsockname()
utils.spawn(function() srv:run() end)
local p = io.popen('curl -s http://127.0.0.1:' .. port .. '/from-child')
p:read('*a')
p:close()
srv:close()
]])
local _, err, code = support.lem(shell_quote(script))
eq(code, 0, 'child')
assert(err:find('^127%.0%.0%.1 %- %- %[.-%] "GET /from%-child HTTP/1%.1" 200 1 [%d.]+\n$'), err)

-- Misuse raises from run().
for _, bad in ipairs({ { 42 }, { 'x', 'xml' }, { {} } }) do
	local s = assert(server.new('127.0.0.1', 0, handler))
	s.access_log, s.access_log_format = bad[1], bad[2]
	local ok, msg = pcall(s.run, s)
	assert(not ok and msg:find('bad argument'), tostring(msg))
	s:close()
end

-- lem -w 2: two processes append to one file; 2,000 requests with long
-- targets (lines near 2 KB, so batches of two fill a 4 KB write) from 8
-- Python threads; every line parses and each request has its own.
local wport = support.free_port()
local wlog = tmp .. '/workers.log'
local pid = sh(('%s -w 2 http/data/logapp.lua %d %s >%s/w.out 2>%s/w.err & echo $!'):format(
	shell_quote(arg[-1]), wport, wlog, tmp, tmp)):match('%d+')
local out = sh('python3 -c ' .. shell_quote([[
import http.client, sys, threading, time
port = int(sys.argv[1])
for _ in range(200):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port); c.request("GET", "/ready"); c.getresponse().read(); break
    except OSError:
        time.sleep(0.05)
workers = set()
def run(t):
    for i in range(250):
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("GET", "/t%d-%d-" % (t, i) + "x" * 2000)
        r = c.getresponse(); r.read(); workers.add(r.getheader("X-Worker")); c.close()
ts = [threading.Thread(target=run, args=(t,)) for t in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sorted(workers))
]]) .. ' ' .. wport)
assert(os.execute('kill -TERM ' .. pid))
-- The supervisor ends once both workers have: wait for it.
sh(('while kill -0 %s 2>/dev/null; do sleep 0.05; done'):format(pid))
eq(out, "['1', '2']\n", 'both workers answered')
out = sh('python3 -c ' .. shell_quote([[
import json, sys
seen = set()
n = 0
for line in open(sys.argv[1], "rb"):
    assert line.endswith(b"\n"), line[:80]
    r = json.loads(line)
    n += 1
    if r["target"] != "/ready":
        assert r["target"].endswith("x" * 2000) and r["status"] == 200 and r["bytes"] == 2, r["target"][:40]
        seen.add(r["target"][:20])
print(len(seen))
]]) .. ' ' .. wlog)
eq(out, '2000\n', 'one whole line per request')
print('access log ok')
