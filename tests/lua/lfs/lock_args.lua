-- lfs.lock/unlock want a File and a mode 'r' or 'w': anything else is an
-- argument error (not "attempt to call a nil value").
dofile('support.lua')
local io = require 'lem.io'
local lfs = require 'lem.lfs'

checkerr("bad argument #1 to 'lock' (file expected, got string)", function() local r = lfs.lock('x', 'w') return r end)
checkerr("bad argument #1 to 'lock' (file expected, got no value)", function() local r = lfs.lock() return r end)
checkerr("bad argument #1 to 'unlock' (file expected, got number)", function() local r = lfs.unlock(5) return r end)
local f = assert(io.open(tmpdir() .. '/f', 'w'))
checkerr("bad argument #2 to 'lock' (invalid option)", function() local r = lfs.lock(f, 'x') return r end)
checkerr("bad argument #2 to 'lock' (invalid option)", function() local r = lfs.lock(f) return r end)
assert(lfs.lock(f, 'w'))
assert(lfs.unlock(f))
f:close()
