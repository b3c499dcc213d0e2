-- read('*l', stop): a stop string longer than one byte stops at its first
-- byte, as in the original (no error); an empty one is misuse.
dofile('support.lua')
local io = require 'lem.io'

local srv = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = srv:getsockname()
local c = assert(io.tcp.connect('127.0.0.1', port))
local p = assert(srv:accept())
assert(c:write('one;two;three\n'))
eq(p:read('*l', ';;'), 'one', 'two-byte stop')
eq(p:read('*l', ';xyz'), 'two', 'longer stop')
checkerr("bad argument #2 to 'read'", function() local v = p:read('*l', '') return v end)
eq(p:read('*l'), 'three', 'default stop after')
c:close(); p:close(); srv:close()

local path = tmpdir() .. '/f'
local w = assert(io.open(path, 'w'))
assert(w:write('a,b\n'))
w:close()
local f = assert(io.open(path))
eq(f:read('*l', ',,'), 'a', 'File: first byte of the stop string')
f:close()
