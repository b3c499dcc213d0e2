-- A TLS Stream reads and writes through its session (src/io/tls_io.rs):
-- 20 MB echoed with the writer and the reader running at once, sendfile
-- (read and encrypted, not the kernel's), and read timeouts.
local io = require 'lem.io'
local utils = require 'lem.utils'
dofile('support.lua')
local dir = tmpdir()
assert(os.execute(([[
cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -keyout key.pem -out cert.pem >/dev/null 2>&1]]):format(dir)))
local server = assert(io.tls.listen('127.0.0.1', 0, { cert = dir .. '/cert.pem', key = dir .. '/key.pem' }))
local _, port = server:getsockname()
local garbled = false
local f = assert(_G.io.open(dir .. '/big', 'wb')); local blob = {}
for i = 1, 5 * 1024 do blob[i] = ('%07d\n'):format(i):rep(128) end
local content = table.concat(blob); f:write(content); f:close()
utils.spawn(function()
	server:autospawn(function(c)
		local what = c:read('*l')
		if what == 'echo' then
			local n = tonumber(c:read('*l'))
			local got = 0
			while got < n do
				local d = assert(c:read())
				got = got + #d
				assert(c:write(d))
			end
		elseif what == 'file' then
			local file = assert(io.open(dir .. '/big'))
			eq(c:sendfile(file, file:size()), #content, 'sendfile over TLS')
		elseif what == 'garbage' then
			-- A record that does not decrypt: the read fails, it does
			-- not hang or spin.
			local r, err = c:read('*l')
			eq(r, nil, 'garbage read')
			eq(err, "cannot decrypt peer's message", 'garbage error')
			garbled = true
		elseif what == 'slow' then
			c:settimeout(0.2)
			eq({ c:read('*l') }, { nil, 'timeout' }, 'a timed read')
		end
		c:close()
	end)
end)
-- echo 20 MB, writer and reader concurrently
local c = assert(io.tls.connect('127.0.0.1', port, { insecure = true }))
-- The TCP socket's peer and cork, as on a plain stream.
eq({ c:getpeer() }, { '127.0.0.1', port }, 'getpeer')
eq(c:cork(), true, 'cork')
eq(c:uncork(), true, 'uncork')
local N = 20 * 1024 * 1024
assert(c:write('echo\n', N, '\n'))
local chunk = ('abcdefgh'):rep(8192)
utils.spawn(function()
	local sent = 0
	while sent < N do assert(c:write(chunk)); sent = sent + #chunk end
end)
local got = assert(c:read(N))
eq(#got, N, 'echoed')
assert(got == chunk:rep(math.floor(N / #chunk)), 'echoed bytes')
c:close()
c = assert(io.tls.connect('127.0.0.1', port, { insecure = true }))
assert(c:write('file\n'))
local all = assert(c:read('*a'))
assert(all == content, 'the file over TLS')
c:close()
-- A client that sends a bogus record after its first line.
local script = dir .. '/garbage.py'
local f = assert(_G.io.open(script, 'w'))
f:write([[
import socket, ssl, sys, os, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1]))))
s.sendall(b'garbage\n')
os.write(s.fileno(), b'\x17\x03\x03\x00\x10' + b'x' * 16)
time.sleep(2)
]])
f:close()
local py = io.popen(('python3 %s %d'):format(script, port))
local sleeper = utils.newsleeper()
for _ = 1, 400 do
	if garbled then
		break
	end
	sleeper:sleep(0.01)
end
assert(garbled, 'the bogus record was read')
py:close()
c = assert(io.tls.connect('127.0.0.1', port, { insecure = true }))
assert(c:write('slow\n'))
eq(c:read('*a'), '', 'closed after the timeout')
c:close()
server:close()
