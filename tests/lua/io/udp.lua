-- io.udp: Datagram sockets. Echo over IPv4 and IPv6, datagrams cut to
-- maxsize, ICMP port unreachable surfacing on a connected socket,
-- timeouts, 'busy', close waking a receiver, options, multicast
-- membership and argument errors.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

-- The class, as io.Stream's.
local a = assert(io.udp.bind('127.0.0.1', 0))
eq(getmetatable(a), io.Datagram, 'metatable')
eq(io.Datagram.__index, io.Datagram, '__index')
eq(type(a:fileno()), 'number', 'fileno')
eq(a:closed(), false, 'closed')

-- An echo between two sockets, for each family.
for _, host in ipairs({ '127.0.0.1', '::1' }) do
	local srv = assert(io.udp.bind(host, 0))
	local ip, port = srv:getsockname()
	eq(ip, host, 'getsockname ip')
	assert(port > 0)
	local done = false
	utils.spawn(function()
		for _ = 1, 3 do
			local data, h, p = assert(srv:recvfrom())
			assert(srv:sendto(data:upper(), h, p))
		end
		done = true
	end)
	local cli = assert(io.udp.connect(host, port))
	local cip, cport = cli:getsockname()
	eq(cip, host, 'client ip')
	for _, msg in ipairs({ 'hello', '', ('x'):rep(60000) }) do
		assert(cli:send(msg))
		eq(cli:recv(), msg:upper(), 'echo over ' .. host)
	end
	assert(done)
	-- A connected socket takes datagrams from its peer only; recvfrom
	-- tells the sender.
	local other = assert(io.udp.bind(host, 0))
	assert(other:sendto('not the peer', host, cport))
	assert(srv:sendto('from peer', host, cport))
	local data, h, p = cli:recvfrom()
	eq({ data, h, p }, { 'from peer', host, port }, 'recvfrom')
	other:close()
	cli:close()
	srv:close()
end

-- '*': any address; IPv4 and IPv6 peers both reach it, and it answers
-- each in its own family.
local any = assert(io.udp.bind('*', 0))
local _, anyport = any:getsockname()
for _, host in ipairs({ '127.0.0.1', '::1' }) do
	local c = assert(io.udp.bind(host, 0))
	assert(c:sendto('hi', host, anyport))
	local data, h, p = assert(any:recvfrom())
	eq({ data, h }, { 'hi', host }, 'wildcard from ' .. host)
	assert(any:sendto('back', h, p))
	eq(c:recv(), 'back', 'wildcard answer to ' .. host)
	c:close()
end
any:close()

-- Names are looked up.
local named = assert(io.udp.bind('localhost', 0))
local nip, nport = named:getsockname()
local nc = assert(io.udp.connect('localhost', nport))
assert(nc:send('by name'))
eq(named:recv(), 'by name', 'by name')
local _, ncport = nc:getsockname()
assert(named:sendto('sendto by name', 'localhost', ncport))
eq(nc:recv(), 'sendto by name', 'sendto by name')
nc:close()
named:close()
local bad, err = io.udp.connect('no-such-host.invalid', 9)
eq(bad, nil, 'unknown name')
assert(err:find("^error looking up 'no%-such%-host.invalid:9'"), err)

-- A datagram longer than maxsize is cut; the rest is gone.
local r = assert(io.udp.bind('127.0.0.1', 0))
local _, rport = r:getsockname()
local s = assert(io.udp.connect('127.0.0.1', rport))
assert(s:send('0123456789'))
assert(s:send('abc'))
eq(r:recv(4), '0123', 'cut to maxsize')
eq(r:recv(4), 'abc', 'the next datagram whole')
-- The largest datagram there is, received with the default maxsize.
local big = ('y'):rep(65507)
assert(s:send(big))
eq(r:recv(), big, 'largest')
-- Too long to send.
local ok, serr = s:send(('z'):rep(70000))
eq({ ok, serr }, { nil, 'Message too long' }, 'too long')

-- Datagrams queued together, from two senders: a receive takes several
-- from the kernel at once, and each receive after it still gets the next
-- in order, with its sender, cut to its own maxsize (not the first's).
local s2 = assert(io.udp.connect('127.0.0.1', rport))
local _, sport = s:getsockname()
local _, s2port = s2:getsockname()
for i = 1, 20 do
	assert((i % 2 == 0 and s2 or s):send(('%02d'):format(i) .. ('.'):rep(i * 100)))
end
for i = 1, 20 do
	local max = i % 3 == 0 and 3 or nil
	local data, host, port = r:recvfrom(max)
	local want = ('%02d'):format(i) .. ('.'):rep(i * 100)
	eq(data, max and want:sub(1, 3) or want, 'queued datagram ' .. i)
	eq({ host, port }, { '127.0.0.1', i % 2 == 0 and s2port or sport }, 'sender of ' .. i)
end
-- Taken from the kernel but not yet received: gone with the socket.
local r2 = assert(io.udp.bind('127.0.0.1', 0))
local _, r2port = r2:getsockname()
for i = 1, 5 do
	assert(s:sendto(tostring(i), '127.0.0.1', r2port))
end
eq(r2:recv(), '1', 'first of five')
eq(r2:close(), true, 'close with datagrams kept')
eq({ r2:recv() }, { nil, 'closed' }, 'kept datagrams go with the socket')
s2:close()

-- ICMP port unreachable on a connected socket: the next recv (or send)
-- fails with the system's text.
local gone = assert(io.udp.bind('127.0.0.1', 0))
local _, goneport = gone:getsockname()
gone:close()
local c = assert(io.udp.connect('127.0.0.1', goneport))
assert(c:send('anyone?'))
eq({ c:recv() }, { nil, 'Connection refused' }, 'ICMP unreachable (recv)')
-- Again: the error is reported once per ICMP message.
assert(c:send('anyone?'))
eq({ c:recvfrom() }, { nil, 'Connection refused' }, 'ICMP unreachable again')
-- The socket stays usable.
c:settimeout(0)
eq({ c:recv() }, { nil, 'timeout' }, 'no error left')
-- A receive that waits is woken by the error too (epoll says EPOLLERR
-- alone), each time, and then waits for data again.
c:settimeout(5)
for i = 1, 2 do
	local got
	utils.spawn(function() got = { c:recv() } end)
	utils.yield()
	eq(got, nil, 'the receive waits ' .. i)
	assert(c:send('anyone?'))
	local sl = utils.newsleeper()
	while not got do sl:sleep(0.001) end
	eq(got, { nil, 'Connection refused' }, 'a waiting receive woken by the ICMP error ' .. i)
end
c:close()

-- Timeouts: a receive that runs out returns nil, 'timeout', and the
-- socket stays usable.
r:settimeout(0.05)
eq({ r:recv() }, { nil, 'timeout' }, 'timeout')
eq({ r:recvfrom() }, { nil, 'timeout' }, 'timeout recvfrom')
r:settimeout(0)
eq({ r:recv() }, { nil, 'timeout' }, 'timeout 0')
assert(s:send('after'))
r:settimeout(5)
eq(r:recv(), 'after', 'usable after a timeout')
r:settimeout(nil)
checkerr("bad argument #1 to 'settimeout' (timeout must be a number of seconds)", function() local v = r:settimeout(-1) return v end)
checkerr("bad argument #1 to 'settimeout' (timeout must be a number of seconds)", function() local v = r:settimeout(0 / 0) return v end)

-- One receiver at a time; close wakes the one waiting.
local woke
utils.spawn(function()
	woke = { r:recv() }
end)
utils.yield()
eq({ r:recv() }, { nil, 'busy' }, 'busy')
eq({ r:recvfrom() }, { nil, 'busy' }, 'busy recvfrom')
assert(s:send('to the first'))
while woke == nil do
	utils.yield()
end
eq(woke, { 'to the first' }, 'the first receiver got it')
woke = nil
utils.spawn(function()
	woke = { r:recvfrom() }
end)
utils.yield()
eq(r:close(), true, 'close')
eq({ r:close() }, { nil, 'closed' }, 'close twice')
eq(r:closed(), true, 'closed()')
while woke == nil do
	utils.yield()
end
eq(woke, { nil, 'closed' }, 'close wakes the receiver')
eq({ r:recv() }, { nil, 'closed' }, 'recv after close')
eq({ r:send('x') }, { nil, 'closed' }, 'send after close')
eq({ r:sendto('x', '127.0.0.1', 9) }, { nil, 'closed' }, 'sendto after close')
eq({ r:getsockname() }, { nil, 'closed' }, 'getsockname after close')
eq({ r:fileno() }, { nil, 'closed' }, 'fileno after close')
eq({ r:setoption('broadcast', true) }, { nil, 'closed' }, 'setoption after close')
s:close()

-- An unconnected socket has no peer for send.
local u = assert(io.udp.bind('127.0.0.1', 0))
eq({ u:send('x') }, { nil, 'Destination address required' }, 'send unconnected')
-- IPv6 destinations from an IPv4 socket.
local fok, ferr = u:sendto('x', '::1', 9)
eq(fok, nil, 'IPv6 from IPv4')
eq(type(ferr), 'string')

-- Options.
eq(u:setoption('broadcast', true), true, 'broadcast on')
assert(u:sendto('to all', '255.255.255.255', 9) or true)
eq(u:setoption('broadcast', false), true, 'broadcast off')
eq(u:setoption('reuseport', true), true, 'reuseport')
-- Two sockets sharing a port: both asked for it when binding.
local p1 = assert(io.udp.bind('127.0.0.1', 0, true))
local _, shared = p1:getsockname()
local p2 = assert(io.udp.bind('127.0.0.1', shared, true))
local _, shared2 = p2:getsockname()
eq(shared2, shared, 'reuseport shares the port')
local taken, terr = io.udp.bind('127.0.0.1', shared)
eq(taken, nil, 'without reuseport')
assert(terr:find('Address already in use'), terr)
p1:close()
p2:close()

-- Multicast membership (joining needs no multicast route; lo here has no
-- MULTICAST flag, so datagrams to the group are not tested).
local m = assert(io.udp.bind('0.0.0.0', 0))
eq(m:join('239.255.42.1', '127.0.0.1'), true, 'join v4 on lo')
eq(m:leave('239.255.42.1', '127.0.0.1'), true, 'leave v4')
local lok, lerr = m:leave('239.255.42.1', '127.0.0.1')
eq(lok, nil, 'leave twice')
eq(type(lerr), 'string')
local jok, jerr = m:join('239.255.42.2')
assert(jok == true or type(jerr) == 'string', 'join v4 default iface')
if jok then
	assert(m:leave('239.255.42.2'))
end
eq({ m:join('127.0.0.1') }, { nil, 'Invalid argument' }, 'not a group')
m:close()
local m6 = assert(io.udp.bind('::', 0))
eq(m6:join('ff02::1:3', 'lo'), true, 'join v6 on lo')
eq(m6:leave('ff02::1:3', 1), true, 'leave v6 by index')
m6:close()

-- Argument errors.
for _, bad in ipairs({ 99999, 65536, -1, 1.5, '99999', 'http', '' }) do
	checkerr("bad argument #2 to 'bind' (invalid port)", io.udp.bind, '127.0.0.1', bad)
	checkerr("bad argument #2 to 'connect' (invalid port)", io.udp.connect, '127.0.0.1', bad)
	checkerr("bad argument #3 to 'sendto' (invalid port)", function() local v = u:sendto('x', '127.0.0.1', bad) return v end)
end
checkerr("bad argument #1 to 'bind' (string expected, got nil)", io.udp.bind, nil, 0)
checkerr("bad argument #1 to 'sendto' (string expected, got nil)", function() local v = u:sendto(nil, '127.0.0.1', 9) return v end)
for _, bad in ipairs({ 0, -1, 1.5, 65536, 2 ^ 40, math.huge }) do
	checkerr("bad argument #1 to 'recv'", function() local v = u:recv(bad) return v end)
	checkerr("bad argument #1 to 'recvfrom'", function() local v = u:recvfrom(bad) return v end)
end
checkerr("bad argument #1 to 'recv' (maxsize must be between 1 and 65535)", function() local v = u:recv(0) return v end)
checkerr("bad argument #1 to 'setoption' (invalid option 'nodelay')", function() local v = u:setoption('nodelay', true) return v end)
checkerr("bad argument #2 to 'setoption' (boolean expected, got no value)", function() local v = u:setoption('broadcast') return v end)
checkerr("bad argument #1 to 'join' (invalid group address)", function() local v = u:join('not an address') return v end)
checkerr("bad argument #2 to 'join' (invalid interface address)", function() local v = u:join('239.1.1.1', 'lo') return v end)
checkerr("bad argument #2 to 'join' (invalid interface)", function() local v = u:join('ff02::1', 'no-such-if') return v end)
checkerr("bad argument #1 to 'recv' (lem.Datagram expected, got table)", function() local v = io.Datagram.recv({}) return v end)
u:close()
