-- lem.parsers: the lookup table and newreader over a stream's readp.
dofile('support.lua')
local io = require 'lem.io'
local parsers = require 'lem.parsers'
local utils = require 'lem.utils'

for _, name in ipairs({ '*l', '*a', 'l', 'a', 'available', 'count' }) do
	eq(type(parsers.lookup[name]), 'userdata', 'lookup ' .. name)
end
eq(parsers.lookup.nosuch, nil, 'unknown format')

local server = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = server:getsockname()
local a
utils.spawn(function() a = assert(io.tcp.connect('127.0.0.1', port)) end)
local b = assert(server:accept())
while not a do utils.yield() end

local read = parsers.newreader(io.Stream.readp)
a:write('first line\n', 'abcdef', 'x;y;rest')
eq(read(b, '*l'), 'first line', 'newreader line')
eq(read(b, 3), 'abc', 'newreader count')
eq(read(b, '*l', 'f'), 'de', 'newreader stop byte')
eq(b:readp(parsers.lookup['*l'], ';'), 'x', 'readp with a lookup value')
eq(b:readp(parsers.lookup.count, 2), 'y;', 'readp count')
eq(read(b), 'rest', 'newreader available')
checkerr('invalid format', read, b, 'nosuch')
checkerr('invalid format', b.readp, b, 'nosuch')
-- A light userdata that is not a lookup value is refused.
checkerr('invalid format', function() return b:readp(io.Stream) end)

-- The same formats on files.
local path = tmpdir() .. '/p'
local f = assert(io.open(path, 'w'))
f:write('k=v;line\n')
f:close()
f = assert(io.open(path))
local fread = parsers.newreader(io.File.readp)
eq(fread(f, '*l', '='), 'k', 'file newreader stop byte')
eq(f:readp(parsers.lookup['*l'], ';'), 'v', 'file readp')
eq(fread(f, '*a'), 'line\n', 'file newreader *a')
f:close()
a:close()
b:close()
server:close()
