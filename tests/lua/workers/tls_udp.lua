-- lem -w 2 with a TLS server (io.tls.listen, brokered like io.tcp.listen)
-- and a UDP socket bound with reuseport in each worker: both workers
-- answer on both.
local support = dofile('support.lua')
local utils = require 'lem.utils'
local io = require 'lem.io'

local _, cert, key = support.certs()
local tport, uport = support.free_port(), nil
do
	local u = assert(io.udp.bind('127.0.0.1', 0))
	_, uport = u:getsockname()
	u:close()
end
local script = support.write_file('app.lua', ([[
local utils = require 'lem.utils'
local io = require 'lem.io'
local id = utils.worker()
local tls = assert(io.tls.listen('127.0.0.1', %d, { cert = '%s', key = '%s' }))
local udp = assert(io.udp.bind('127.0.0.1', %d, true))
utils.spawn(function()
	while true do
		local data, host, port = udp:recvfrom()
		if not data then break end
		udp:sendto('udp ' .. id, host, port)
	end
end)
utils.spawn(function() require('lem.signal').register('TERM', function() udp:close() end) end)
print('ready')
tls:autospawn(function(c)
	c:write('tls ' .. id .. '\n')
	c:close()
end)
]]):format(tport, cert, key, uport))
local p = assert(io.spawn({ arg[-1], '-w', '2', script }, { stdout = 'pipe' }))
eq(p.stdout:read('*l'), 'ready', 'a worker started')
eq(p.stdout:read('*l'), 'ready', 'both workers started')

local seen = {}
for _ = 1, 300 do
	local c = assert(io.tls.connect('127.0.0.1', tport, { insecure = true }))
	local line = assert(c:read('*l'))
	c:close()
	seen[line] = true
	if seen['tls 1'] and seen['tls 2'] then break end
end
assert(seen['tls 1'] and seen['tls 2'], 'both workers answered over TLS')
for _ = 1, 300 do
	local u = assert(io.udp.connect('127.0.0.1', uport))
	assert(u:send('hi'))
	local got = utils.timeout(0.5, u.recv, u)
	u:close()
	if got then seen[got] = true end
	if seen['udp 1'] and seen['udp 2'] then break end
end
assert(seen['udp 1'] and seen['udp 2'], 'both workers answered over UDP')
assert(p:kill('TERM'))
local how = assert(p:wait())
eq({ how.type, how.status }, { 'exited', 0 }, 'exit after SIGTERM')
