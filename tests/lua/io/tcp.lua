-- io.tcp: connect/listen over IPv4 and IPv6, '*' dual-stack as one server,
-- Server accept/autospawn/interrupt/close/busy, getpeer, cork, errors.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

-- Connection failures: the original's wording, and the reason.
local free = assert(io.tcp.listen4('127.0.0.1', 0))
local _, freeport = free:getsockname()
free:close()
eq({ io.tcp.connect('127.0.0.1', freeport) },
	{ nil, ("error connecting to '127.0.0.1:%d': Connection refused"):format(freeport) }, 'refused')
local r, err = io.tcp.connect('no-such-host.invalid', 80)
assert(r == nil and err:find("^error looking up 'no%-such%-host%.invalid:80': "), err)
checkerr("invalid family", io.tcp.connect, '127.0.0.1', 1, 'ipx')

-- listen errors: the address is taken.
local s4 = assert(io.tcp.listen4('127.0.0.1', 0, 5))
local ip, port = s4:getsockname()
eq(ip, '127.0.0.1', 'listen4 address')
local r2, err2 = io.tcp.listen6('::1', port)
if r2 then r2:close() end
local again, aerr = io.tcp.listen4('127.0.0.1', port)
eq(again, nil, 'address in use')
eq(aerr, ("error binding to '127.0.0.1:%d': Address already in use"):format(port), 'bind error text')

-- accept + getpeer (IPv4).
utils.spawn(function()
	local c = assert(io.tcp.connect('127.0.0.1', port, 'ipv4'))
	local pip, pport = c:getpeer()
	eq(pip, '127.0.0.1', 'client getpeer ip')
	eq(pport, port, 'client getpeer port')
	c:write('hi\n')
	c:close()
end)
local c = assert(s4:accept())
local pip, pport = c:getpeer()
eq(pip, '127.0.0.1', 'getpeer ip')
assert(type(pport) == 'number' and pport % 1 == 0 and pport > 0)
eq(c:read('*l'), 'hi', 'accepted stream reads')
assert(c:cork())
assert(c:write('corked'))
assert(c:uncork())
c:close()

-- Busy, interrupt, close wakes the acceptor.
local res = {}
utils.spawn(function() res[1], res[2] = s4:accept() end)
utils.yield()
eq(s4:busy(), true, 'busy while accepting')
eq({ s4:accept() }, { nil, 'busy' }, 'second acceptor')
eq(s4:interrupt(), true, 'interrupt')
utils.yield()
eq(res, { nil, 'interrupted' }, 'interrupted accept')
eq(s4:busy(), false, 'not busy after interrupt')
eq({ s4:interrupt() }, { nil, 'not busy' }, 'interrupt when idle')
res = {}
utils.spawn(function() res[1], res[2] = s4:accept() end)
utils.yield()
assert(s4:close())
utils.yield()
eq(res, { nil, 'interrupted' }, 'close wakes the acceptor')
eq(s4:closed(), true, 'closed()')
eq({ s4:accept() }, { nil, 'closed' }, 'accept after close')
eq({ s4:close() }, { nil, 'closed' }, 'second close')

-- Accept timeout.
local st = assert(io.tcp.listen('127.0.0.1', 0))
st:settimeout(0.02)
eq({ st:accept() }, { nil, 'timeout' }, 'accept timeout')
st:close()

-- '*' listens on IPv6 and IPv4 both, as one server; autospawn serves both.
local any = assert(io.tcp.listen('*', 0))
local _, aport = any:getsockname()
local served = {}
local done = 0
utils.spawn(function()
	eq({ any:autospawn(function(client)
		local line = client:read('*l')
		served[#served + 1] = line .. ' from ' .. (client:getpeer())
		client:write(line:upper(), '\n')
		client:close()
	end) }, { nil, 'interrupted' }, 'autospawn ends interrupted')
	done = done + 1
end)
local function ask(host, family, text)
	local s = assert(io.tcp.connect(host, aport, family))
	assert(s:write(text, '\n'))
	local answer = s:read('*l')
	s:close()
	return answer
end
eq(ask('127.0.0.1', 'ipv4', 'four'), 'FOUR', 'IPv4 client')
local has6 = io.tcp.listen6('::1', 0)
if has6 then
	has6:close()
	eq(ask('::1', 'ipv6', 'six'), 'SIX', 'IPv6 client')
	local found
	for _, v in ipairs(served) do if v == 'six from ::1' then found = true end end
	assert(found, 'IPv6 peer address')
end
-- Many clients at once: every pending connection is accepted.
local answers = 0
for i = 1, 50 do
	utils.spawn(function()
		if ask('127.0.0.1', nil, 'c' .. i) == 'C' .. i then answers = answers + 1 end
	end)
end
while answers < 50 do utils.yield() end
eq(any:busy(), true, 'busy while autospawning')
eq({ any:autospawn(print) }, { nil, 'busy' }, 'second autospawn')
any:close()
utils.yield()
eq(done, 1, 'autospawn returned')

-- listen6 on ::1 + getpeer over IPv6.
local s6 = io.tcp.listen6('::1', 0)
if s6 then
	local _, p6 = s6:getsockname()
	utils.spawn(function() local cc = assert(io.tcp.connect('::1', p6)); cc:write('x'); cc:close() end)
	local a6 = assert(s6:accept())
	eq(a6:getpeer(), '::1', 'IPv6 getpeer')
	eq(a6:read('*a'), 'x', 'IPv6 data')
	a6:close()
	s6:close()
end
