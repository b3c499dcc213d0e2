-- hathaway.static's cache of open files: a file replaced, removed,
-- truncated or swapped for a link while it is kept is served correctly
-- (the kept file whole, never the link's target, never a byte past the
-- file's end, and the new state once the validity time is over); the
-- cache stays within its count of descriptors; many concurrent requests
-- for one file (HTTP/1.1 over many connections, HTTP/2 multiplexed on one,
-- with ranges) all get whole, identical bodies. The options are checked.
local support = dofile('support.lua')
local exec, shell_quote = support.exec, support.shell_quote
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local hathaway = require 'lem.hathaway'
local utils = require 'lem.utils'
local sh, raw = common.sh, common.raw

local tmp = tmpdir()
local root = tmp .. '/root'
assert(exec(([[
set -e
mkdir -p %s/many
cd %s
printf 'secret' > ../secret
head -c 1048576 /dev/urandom > big.bin
head -c 4096 /dev/urandom > four.bin
for i in $(seq 1 40); do printf "file $i" > many/$i.txt; head -c 20000 /dev/zero >> many/$i.txt; done
]]):format(root, root)) == 0)

local function slurp(path)
	local f = assert(io.open(path, 'rb'))
	local s = f:read('a')
	f:close()
	return s
end

local function wait(seconds)
	utils.newsleeper():sleep(seconds)
end

-- Kept "forever" (so a change is certainly seen from the cache), kept
-- briefly (so a change is certainly seen after a wait), bounded, and off.
local SHORT = 0.2
local app = hathaway.new()
app:GETM('^/long/(.*)$', hathaway.static(root, { cache_valid = 1e6 }))
app:GETM('^/short/(.*)$', hathaway.static(root, { cache_valid = SHORT }))
app:GETM('^/four/(.*)$', hathaway.static(root, { cache = 4 }))
app:GETM('^/none/(.*)$', hathaway.static(root, { cache = 0 }))
app:GETM('^/dots/(.*)$', hathaway.static(root, { cache = 0, cache_valid = 0, dotfiles = true }))
local port, url, stop = common.serve_app(app)

-- curl -> status, headers (lower-cased names), body.
local function get(path, opts)
	return common.curl(url .. path, opts)
end

local function put(name, data)
	local f = assert(io.open(root .. '/' .. name .. '.new', 'wb'))
	f:write(data)
	f:close()
	assert(os.rename(root .. '/' .. name .. '.new', root .. '/' .. name))
end

-- Replaced by a rename: the kept file is the old one, whole, with its own
-- validators; after the validity time, the new one.
put('r.txt', 'the first version')
for _, p in ipairs({ '/long/', '/short/' }) do
	eq(select(3, get(p .. 'r.txt')), 'the first version', p .. ' first')
end
local _, h1 = get('/long/r.txt')
put('r.txt', 'the second, longer version')
local status, h, body = get('/long/r.txt')
eq({ status, body, h['etag'], h['content-length'] }, { 200, 'the first version', h1['etag'], '17' },
	'kept: the old file, whole')
wait(SHORT * 2)
status, h, body = get('/short/r.txt')
eq({ status, body, h['content-length'] }, { 200, 'the second, longer version', '26' }, 'after the validity time')
assert(h['etag'] ~= h1['etag'], 'a new ETag')
eq(select(3, get('/none/r.txt')), 'the second, longer version', 'no cache: the new file at once')
-- A conditional request on the old validator is not answered 304 for
-- the new file.
eq(get('/short/r.txt', '-H ' .. shell_quote('If-None-Match: ' .. h1['etag'])), 200, 'old ETag, new file')

-- Removed: still the kept (open) file, then a 404.
put('gone.txt', 'here')
eq(select(3, get('/long/gone.txt')), 'here', 'gone: kept')
eq(select(3, get('/short/gone.txt')), 'here', 'gone: short')
assert(os.remove(root .. '/gone.txt'))
eq(select(3, get('/long/gone.txt')), 'here', 'removed: the kept file')
wait(SHORT * 2)
eq(get('/short/gone.txt'), 404, 'removed: 404 after the validity time')
-- ... and a 404 is not kept: the file made again is found at once.
put('gone.txt', 'back')
eq(select(3, get('/short/gone.txt')), 'back', 'a missing file is not kept')

-- Truncated in place while kept (same inode, the kept size is larger):
-- never a byte past the file's end, and the connection closes after the
-- short body (its Content-Length cannot be kept), so a second request
-- on it is not answered from the wrong bytes.
local big = slurp(root .. '/big.bin')
put('t.bin', big)
eq(select(3, get('/long/t.bin')) == big, true, 't.bin whole')
eq(select(3, get('/short/t.bin')) == big, true, 't.bin whole (short)')
assert(exec('truncate -s 10 ' .. shell_quote(root .. '/t.bin')) == 0)
local req = 'GET /long/t.bin HTTP/1.1\r\nHost: x\r\n\r\n'
local out = raw(port, req .. req)
local head, rest = out:match('^(.-\r\n\r\n)(.*)$')
assert(head and head:find('^HTTP/1.1 200') and head:find('\r\nContent%-Length: 1048576\r\n'), out:sub(1, 300))
eq({ #rest, rest == big:sub(1, 10) }, { 10, true }, 'truncated: the 10 bytes there are, then the end')
-- Ranges past the new end, and HTTP/2 (reads at offsets), the same.
out = raw(port, 'GET /long/t.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=5-99999\r\n\r\n')
head, rest = out:match('^(.-\r\n\r\n)(.*)$')
assert(head:find('^HTTP/1.1 206'), head)
eq(rest, big:sub(6, 10), 'a range across the new end')
out = raw(port, 'GET /long/t.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=500-999\r\n\r\n')
eq(out:match('\r\n\r\n(.*)$'), '', 'a range past the new end: no bytes')
-- (HTTP/2 resets the stream: curl may see the reset before the bytes.)
local h2 = sh(('curl -s --http2-prior-knowledge -o /dev/null -w "%%{size_download}" %s/long/t.bin'):format(url))
assert(tonumber(h2) <= 10, 'HTTP/2: no more than the 10 bytes there are: ' .. h2)
wait(SHORT * 2)
status, h, body = get('/short/t.bin')
eq({ status, h['content-length'], body }, { 200, '10', big:sub(1, 10) }, 'truncated: after the validity time')
-- Grown back while kept: no more than the kept size.
assert(exec(('cat %s >> %s'):format(shell_quote(root .. '/big.bin'), shell_quote(root .. '/t.bin'))) == 0)
status, h, body = get('/short/t.bin')
assert(status == 200 and tonumber(h['content-length']) == #body and #body >= 10, 'grown: ' .. tostring(#body))

-- A small file is kept as its bytes: truncated in place while kept, its
-- old bytes whole (ranges and HEAD of them too); after the validity time,
-- the new ones.
put('s.txt', 'small and whole')
eq(select(3, get('/long/s.txt')), 'small and whole', 's.txt')
eq(select(3, get('/short/s.txt')), 'small and whole', 's.txt (short)')
assert(exec('truncate -s 5 ' .. shell_quote(root .. '/s.txt')) == 0)
status, h, body = get('/long/s.txt')
eq({ status, h['content-length'], body }, { 200, '15', 'small and whole' }, 'kept bytes: the old file whole')
status, h, body = get('/long/s.txt', "-H 'Range: bytes=6-8'")
eq({ status, h['content-range'], body }, { 206, 'bytes 6-8/15', 'and' }, 'a range of kept bytes')
status, h, body = get('/long/s.txt', '-I')
eq({ status, h['content-length'], body }, { 200, '15', '' }, 'HEAD of kept bytes')
wait(SHORT * 2)
eq(select(3, get('/short/s.txt')), 'small', 'the truncated small file after the validity time')

-- Swapped for a link out of the root while kept: the kept file (never
-- the secret), and after the validity time a refusal.
put('swap.txt', 'inside')
eq(select(3, get('/long/swap.txt')), 'inside', 'swap: kept')
eq(select(3, get('/short/swap.txt')), 'inside', 'swap: short')
assert(os.remove(root .. '/swap.txt'))
assert(exec(('ln -s ../secret %s'):format(shell_quote(root .. '/swap.txt'))) == 0)
eq(select(3, get('/long/swap.txt')), 'inside', 'swapped: the kept file, not the secret')
wait(SHORT * 2)
status, h, body = get('/short/swap.txt')
eq({ status, body:find('secret') }, { 404, nil }, 'swapped: refused after the validity time')
eq(get('/none/swap.txt'), 404, 'swapped: refused without the cache')
-- A dotfile made a link to a directory, a fifo: refused, not kept.
assert(exec(('ln -s .. %s && mkfifo %s'):format(shell_quote(root .. '/.up'), shell_quote(root .. '/fifo'))) == 0)
eq(get('/dots/.up/secret'), 404, 'a link up, under dotfiles')
eq(get('/short/fifo'), 404, 'a fifo')

-- Bounded: 40 files (each larger than what is kept as bytes, so each
-- kept one is a descriptor) through a cache of 4 hold at most 4
-- descriptors; no cache holds none.
local function open_files()
	-- The server is this process: the shell's parent.
	return tonumber(sh("ls -l /proc/$PPID/fd | grep -c '/many/' || true"))
end
for i = 1, 40 do
	eq(select(3, get('/four/many/' .. i .. '.txt')), 'file ' .. i .. ('\0'):rep(20000), 'many ' .. i)
end
local n = open_files()
assert(n >= 1 and n <= 4, 'a cache of 4 holds ' .. n .. ' files')
for i = 1, 40 do
	get('/none/many/' .. i .. '.txt')
end
eq(open_files(), n, 'cache = 0 keeps none')

-- Slow readers: 40 connections asking for a 16 MB file and reading none
-- of it. Others are still served; kept, the file is one descriptor
-- however many answers are in flight; not kept, one each, all closed once
-- the readers go.
assert(exec(('head -c 16777216 /dev/zero > %s'):format(shell_quote(root .. '/many/slow.bin'))) == 0)
local function slow_readers(path)
	local cs = {}
	for i = 1, 40 do
		cs[i] = assert(require('lem.io').tcp.connect('127.0.0.1', port))
		assert(cs[i]:write('GET ' .. path .. ' HTTP/1.1\r\nHost: x\r\n\r\n'))
	end
	return cs
end
local function settle(want, what)
	for _ = 1, 200 do
		if open_files() == want then
			return
		end
		wait(0.05)
	end
	eq(open_files(), want, what)
end
-- (Kept first: requests that miss at once open it each.)
eq(sh('curl -s -o /dev/null -w "%{size_download}" ' .. url .. '/long/many/slow.bin'), '16777216', 'slow.bin')
local readers = slow_readers('/long/many/slow.bin')
eq(select(3, get('/long/r.txt')), 'the first version', 'served beside slow readers')
settle(n + 1, 'kept: one descriptor for 40 answers')
for _, c in ipairs(readers) do
	c:close()
end
readers = slow_readers('/none/many/slow.bin')
settle(n + 41, 'not kept: one descriptor an answer')
for _, c in ipairs(readers) do
	c:close()
end
settle(n + 1, 'closed with their connections')

-- A handler collected: what it kept goes with it.
do
	local other = hathaway.new()
	other:GETM('^/(.*)$', hathaway.static(root, { cache_valid = 1e6 }))
	local srv2, _, url2 = common.serve(other.handler)
	eq(sh('curl -s -o /dev/null -w "%{size_download}" ' .. url2 .. '/many/slow.bin'), '16777216', 'another handler')
	eq(sh('curl -s ' .. url2 .. '/r.txt'), 'the second, longer version', 'another handler, a small file')
	settle(n + 2, 'kept by both')
	srv2:close()
end
for _ = 1, 200 do
	collectgarbage()
	if open_files() == n + 1 then
		break
	end
	wait(0.05)
end
eq(open_files(), n + 1, 'a collected handler keeps nothing')

-- Many concurrent requests for the same files, each body whole.
local py = tmp .. '/many.py'
local f = assert(io.open(py, 'w'))
f:write([[
import http.client, sys, threading
port, path, want = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], 'rb').read()
bad = []
def run():
    c = http.client.HTTPConnection('127.0.0.1', port)
    for _ in range(20):
        c.request('GET', path)
        r = c.getresponse()
        body = r.read()
        if r.status != 200 or body != want:
            bad.append((r.status, len(body)))
    c.close()
ts = [threading.Thread(target=run) for _ in range(32)]
for t in ts: t.start()
for t in ts: t.join()
print('bad', len(bad), bad[:3])
]])
f:close()
for _, name in ipairs({ 'four.bin', 'big.bin' }) do
	for _, p in ipairs({ '/short/', '/long/' }) do
		eq(sh(('python3 %s %d %s %s'):format(py, port, p .. name, root .. '/' .. name)), 'bad 0 []\n',
			'32 connections x 20 requests of ' .. p .. name)
	end
end
-- HTTP/2: 40 streams at once on one connection (python-h2), whole files
-- and ranges, read at offsets in pieces that interleave.
py = tmp .. '/h2many.py'
f = assert(io.open(py, 'w'))
f:write([==[
import socket, sys
import h2.connection, h2.events, h2.config
port, path, want = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], 'rb').read()
s = socket.create_connection(('127.0.0.1', port))
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
c.increment_flow_control_window(2**30)
expect, got, done = {}, {}, set()
for i in range(40):
    sid = c.get_next_available_stream_id()
    h = [(':method', 'GET'), (':path', path), (':scheme', 'http'), (':authority', 'x')]
    first, last = (i * 7919) % (len(want) // 2), len(want) - 1 - i * 13
    if i % 2:
        h.append(('range', 'bytes=%d-%d' % (first, last)))
        expect[sid] = want[first:last + 1]
    else:
        expect[sid] = want
    c.send_headers(sid, h, end_stream=True)
    got[sid] = []
s.sendall(c.data_to_send())
while len(done) < len(expect):
    data = s.recv(1 << 20)
    if not data:
        break
    for e in c.receive_data(data):
        if isinstance(e, h2.events.DataReceived):
            got[e.stream_id].append(e.data)
            c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
            done.add(e.stream_id)
    s.sendall(c.data_to_send())
bad = [sid for sid in expect if b''.join(got[sid]) != expect[sid]]
print('streams', len(done), 'bad', len(bad))
]==])
f:close()
for _, p in ipairs({ '/long/', '/short/', '/none/' }) do
	eq(sh(('/usr/bin/python3 -B %s %d %s %s'):format(py, port, p .. 'big.bin', root .. '/big.bin')), 'streams 40 bad 0\n',
		'HTTP/2: 40 streams of ' .. p .. 'big.bin')
end

-- The options.
checkerr('unknown option cach', hathaway.static, root, { cach = 1 })
checkerr('option cache: number expected', hathaway.static, root, { cache = '1' })
checkerr('option cache: a count of files expected, got -1', hathaway.static, root, { cache = -1 })
checkerr('option cache: a count of files expected, got 1.5', hathaway.static, root, { cache = 1.5 })
checkerr('option cache_valid: seconds between 0 and 1e9 expected, got -1', hathaway.static, root, { cache_valid = -1 })
checkerr('option cache_valid: seconds between 0 and 1e9 expected, got ' .. tostring(0 / 0), hathaway.static, root,
	{ cache_valid = 0 / 0 })
checkerr('option cache: a count of files expected, got ' .. tostring(math.huge), hathaway.static, root,
	{ cache = math.huge })
checkerr('option cache_valid: seconds between 0 and 1e9 expected', hathaway.static, root, { cache_valid = math.huge })

stop()
print('static cache ok')
