-- Sizes from a script are never trusted for an allocation: a huge read(n)
-- on a File reads what there is (growing as data arrives) instead of
-- aborting the process; what cannot be a size is an argument error.
dofile('support.lua')
local io = require 'lem.io'

local path = tmpdir() .. '/ten'
local w = assert(io.open(path, 'w'))
assert(w:write('0123456789'))
assert(w:close())

for _, n in ipairs({ 2 ^ 40, 1e18, math.maxinteger or 2 ^ 53, 2 ^ 31 }) do
	local f = assert(io.open(path, 'r'))
	eq({ f:read(n) }, { nil, 'eof' }, 'read(' .. string.format('%.0f', n) .. ') of a 10-byte file')
	eq(f:read(), '0123456789', 'nothing lost after a huge read')
	f:close()
end

local f = assert(io.open(path, 'r'))
checkerr("bad argument #1 to 'read' (invalid format)", function() local v = f:read(-1) return v end)
checkerr("bad argument #1 to 'read' (number has no integer representation)", function() local v = f:read(1.5) return v end)
checkerr("bad argument #1 to 'read' (number has no integer representation)", function() local v = f:read(math.huge) return v end)
checkerr("bad argument #1 to 'read' (number has no integer representation)", function() local v = f:read(0 / 0) return v end)
eq(f:read(4), '0123', 'still reads after refusals')
f:close()

-- The same on a Stream.
local srv = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = srv:getsockname()
local c = assert(io.tcp.connect('127.0.0.1', port))
local p = assert(srv:accept())
assert(c:write('abc'))
c:close()
eq({ p:read(2 ^ 40) }, { nil, 'closed' }, 'huge stream read')
checkerr("bad argument #1 to 'read' (invalid format)", function() local v = p:read(-5) return v end)
p:close()
srv:close()
