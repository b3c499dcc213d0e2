-- utils.poolconfig takes any sizes a script gives without aborting the
-- process: a delay too long for the clock means "never", and what cannot
-- be a size is an argument error.
dofile('support.lua')
local utils = require 'lem.utils'
local lfs = require 'lem.lfs'

utils.poolconfig(1e300, 0, 4)
assert(lfs.attributes('.'), 'the pool still works')
utils.poolconfig(0.5, 1, math.maxinteger or 2 ^ 53)
assert(lfs.attributes('.'), 'a huge max')
checkerr("bad argument #1 to 'poolconfig'", function() utils.poolconfig(-1, 0, 4) end)
checkerr("bad argument #1 to 'poolconfig'", function() utils.poolconfig(0 / 0, 0, 4) end)
checkerr("bad argument #1 to 'poolconfig'", function() utils.poolconfig(math.huge, 0, 4) end)
checkerr("bad argument #2 to 'poolconfig' (number has no integer representation)", function() utils.poolconfig(1, 0.5, 4) end)
checkerr("bad argument #3 to 'poolconfig'", function() utils.poolconfig(1, 0, 0) end)
utils.poolconfig(10, 0, 4)
