-- io.resolve and io.resolver against a real DNS server started here
-- (dnsmasq on a loopback port with its own hosts file): A, AAAA, CNAME
-- chains, NXDOMAIN, families, a server that never answers (timeout), 1,000
-- concurrent lookups; io.tcp.connect and io.udp through names; the system
-- resolver with /etc/hosts; argument errors.
local support = dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

local dir = tmpdir()
local lines = { '10.1.2.3 host.lemtest', 'fd00::1 host.lemtest', '10.9.9.9 v4only.lemtest',
	'fd00::6 v6only.lemtest' }
for i = 1, 1000 do
	lines[#lines + 1] = ('10.%d.%d.1 h%d.lemtest'):format(math.floor(i / 256), i % 256, i)
end
local hosts = support.write_file('hosts', table.concat(lines, '\n') .. '\n')

-- dnsmasq on a free port: a port free for UDP may still be taken for TCP
-- (by another test's connections), and then dnsmasq exits at once: try
-- another port.
local proc, port, r, found
for _ = 1, 10 do
	local probe = assert(io.udp.bind('127.0.0.1', 0))
	_, port = probe:getsockname()
	probe:close()
	proc = assert(io.spawn({ 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null',
		'--no-resolv', '--no-hosts', '--addn-hosts=' .. hosts, '--listen-address=127.0.0.1',
		'--bind-interfaces', '--port=' .. port, '--local=/lemtest/', '--pid-file=',
		'--user=root', '--cname=alias1.lemtest,alias2.lemtest', '--cname=alias2.lemtest,host.lemtest',
		'--cache-size=0' }, { stderr = 'null' }))
	local ended = false
	utils.spawn(function() proc:wait() ended = true end)
	r = io.resolver { servers = { '127.0.0.1:' .. port }, timeout = 0.2, attempts = 1 }
	-- Wait until dnsmasq answers, or has ended.
	for _ = 1, 100 do
		found = r:resolve('host.lemtest')
		if found or ended then break end
		utils.newsleeper():sleep(0.05)
	end
	if found then break end
	if not ended then proc:kill() end
	proc = nil
end
assert(proc, 'dnsmasq did not come up')
r = io.resolver { servers = { '127.0.0.1:' .. port }, timeout = 1 }
eq(getmetatable(r), io.Resolver, 'class')

local function sorted(t)
	table.sort(t)
	return t
end
eq(sorted(found), { '10.1.2.3', 'fd00::1' }, 'A and AAAA')
eq(r:resolve('host.lemtest', 'ipv4'), { '10.1.2.3' }, 'A only')
eq(r:resolve('host.lemtest', 'ipv6'), { 'fd00::1' }, 'AAAA only')
eq(r:resolve('host.lemtest', 'any')[1], 'fd00::1', 'IPv6 first')
eq(r:resolve('v4only.lemtest'), { '10.9.9.9' }, 'A record only')
eq(r:resolve('v6only.lemtest'), { 'fd00::6' }, 'AAAA record only')
eq(sorted(r:resolve('alias1.lemtest')), { '10.1.2.3', 'fd00::1' }, 'CNAME chain')
eq({ r:resolve('nope.lemtest') }, { nil, "error looking up 'nope.lemtest': Name or service not known" }, 'NXDOMAIN')
eq({ r:resolve('v4only.lemtest', 'ipv6') }, { nil, "error looking up 'v4only.lemtest': Name or service not known" },
	'no address of that family')
eq(r:resolve('10.0.0.7'), { '10.0.0.7' }, 'a literal is not looked up')
eq(r:resolve('[::1]'), { '::1' }, 'a bracketed literal')

-- 1,000 concurrent lookups of distinct names.
local results, left = {}, 1000
for i = 1, 1000 do
	utils.spawn(function()
		results[i] = r:resolve('h' .. i .. '.lemtest', 'ipv4')
		left = left - 1
	end)
end
while left > 0 do utils.newsleeper():sleep(0.01) end
for i = 1, 1000 do
	eq(results[i], { ('10.%d.%d.1'):format(math.floor(i / 256), i % 256) }, 'lookup ' .. i)
end

-- A server that never answers: a timeout after `timeout` seconds.
local mute = assert(io.udp.bind('127.0.0.1', 0))
local _, mport = mute:getsockname()
local silent = io.resolver { servers = { '127.0.0.1:' .. mport }, timeout = 0.2, attempts = 1 }
local t0 = utils.updatenow()
local none, err = silent:resolve('host.lemtest')
eq(none, nil, 'no answer')
assert(err:find('no answer from the name servers', 1, true), err)
local took = utils.updatenow() - t0
assert(took >= 0.15 and took < 5, took)
-- A deadline or a cancel interrupts a lookup.
eq({ utils.timeout(0.05, function() return silent:resolve('x.lemtest') end) }, { nil, 'timeout' }, 'deadline')
mute:close()

-- The system resolver: /etc/hosts.
local lh = assert(io.resolve('localhost'))
local has = {}
for _, a in ipairs(lh) do has[a] = true end
assert(has['127.0.0.1'] or has['::1'], 'localhost from /etc/hosts')
eq(io.resolve('127.0.0.1'), { '127.0.0.1' }, 'system literal')
local nx, nerr = io.resolve('no-such-host.invalid')
eq(nx, nil, 'invalid name')
eq(type(nerr), 'string', 'message')

-- TCP and UDP through names (and happy eyeballs: 'localhost' may give ::1
-- first, where nothing listens).
local srv = assert(io.tcp.listen('127.0.0.1', 0))
local _, sport = srv:getsockname()
utils.spawn(function() local c = srv:accept() c:write('hi') c:close() end)
local c = assert(io.tcp.connect('localhost', sport))
eq(c:read('*a'), 'hi', 'connect through a name')
c:close()
srv:close()
local u = assert(io.udp.bind('127.0.0.1', 0))
local _, uport = u:getsockname()
local v = assert(io.udp.bind('127.0.0.1', 0))
assert(v:sendto('dgram', 'localhost', uport))
eq(u:recv(), 'dgram', 'sendto a name')

checkerr('servers must be an array', io.resolver, {})
checkerr("servers must be an array", io.resolver, { servers = { 'not an ip' } })
checkerr('timeout must be a positive number', io.resolver, { servers = { '127.0.0.1' }, timeout = -1 })
checkerr('invalid family', io.resolve, 'localhost', 'ipx')
checkerr('bad argument #1', io.resolve)

proc:kill()
proc:wait()
print('ok')
