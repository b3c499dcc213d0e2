-- A TLS connection costs one descriptor, as a plain one does (its Stream
-- reads and writes the session over the socket itself; there was a relay
-- through a socket pair, 3 descriptors), and gives it back when closed: a
-- connection the server closes while the peer keeps its side open costs
-- the server nothing afterwards (the relay kept 2 until the peer went
-- away).
dofile('support.lua')
local io = require 'lem.io'
local lfs = require 'lem.lfs'
local utils = require 'lem.utils'

local dir = tmpdir()
assert(os.execute(([[
cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -keyout key.pem -out cert.pem >/dev/null 2>&1]]):format(dir)))

local function fds()
	local n = 0
	for _ in lfs.dir('/proc/self/fd') do
		n = n + 1
	end
	return n
end

-- Until fds() is n, for at most 5 s (the relays end on the loop's next
-- turns); returns the last count.
local function settle(n)
	local sleeper = utils.newsleeper()
	local got = fds()
	for _ = 1, 500 do
		if got == n then
			break
		end
		sleeper:sleep(0.01)
		got = fds()
	end
	return got
end

local server = assert(io.tls.listen('127.0.0.1', 0, { cert = dir .. '/cert.pem', key = dir .. '/key.pem' }))
local _, port = server:getsockname()
local closed = 0
utils.spawn(function()
	server:autospawn(function(c)
		eq(c:read('*l'), 'hi', 'request')
		assert(c:write('bye\n'))
		c:close()
		closed = closed + 1
	end)
end)

local base = fds()
local N = 20
local clients = {}
for i = 1, N do
	clients[i] = assert(io.tls.connect('127.0.0.1', port, { insecure = true }))
end
-- N live connections: a socket on each side each (the server's handlers
-- wait for the request meanwhile).
eq(settle(base + 2 * N), base + 2 * N, 'descriptors of live connections')
for i = 1, N do
	local c = clients[i]
	assert(c:write('hi\n'))
	eq(c:read('*l'), 'bye', 'answer')
end
while closed < N do
	utils.yield()
end
-- Each client costs its socket; the server's side of each connection
-- nothing.
eq(settle(base + N), base + N, 'descriptors after the server closed')
for _, c in ipairs(clients) do
	c:close()
end
eq(settle(base), base, 'descriptors after the clients closed')
server:close()
