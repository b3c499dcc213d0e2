-- A 100 MB transfer over loopback TCP: sent with the kernel's sendfile,
-- received with read() and written to a File; checksums must match.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

local dir = tmpdir()
local src, dst = dir .. '/src', dir .. '/dst'
local SIZE = 100 * 1000 * 1000
assert(os.execute(('head -c %d /dev/urandom > %s'):format(SIZE, src)))

local server = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = server:getsockname()

local sent
utils.spawn(function()
	local c = assert(io.tcp.connect('127.0.0.1', port))
	local f = assert(io.open(src))
	sent = assert(c:sendfile(f, SIZE))
	f:close()
	c:close()
end)

local c = assert(server:accept())
local out = assert(io.open(dst, 'w'))
local total = 0
while true do
	local data, err = c:read()
	if not data then
		eq(err, 'closed', 'end of transfer')
		break
	end
	total = total + #data
	assert(out:write(data))
end
out:close()
c:close()
eq(sent, SIZE, 'sendfile count')
eq(total, SIZE, 'bytes received')
local function sum(p)
	return assert(_G.io.popen('sha256sum < ' .. p)):read('*l')
end
eq(sum(dst), sum(src), 'checksum')

-- sendfile with an offset, and of a closed file.
local small = dir .. '/small'
local f = assert(io.open(small, 'w'))
f:write('0123456789')
f:close()
f = assert(io.open(small))
utils.spawn(function()
	local s = assert(io.tcp.connect('127.0.0.1', port))
	eq(s:sendfile(f, 4, 3), 4, 'sendfile with offset')
	f:close()
	eq({ s:sendfile(f, 1) }, { nil, 'closed' }, 'sendfile of a closed file')
	s:close()
end)
c = assert(server:accept())
eq(c:read('*a'), '3456', 'offset data')
c:close()
server:close()
