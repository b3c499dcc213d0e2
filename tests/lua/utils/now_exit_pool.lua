-- now/updatenow, exit, poolconfig.
dofile('support.lua')
local utils = require 'lem.utils'

local now = utils.now()
eq(type(now), 'number', 'now is a number')
assert(math.abs(now - os.time()) < 5, 'now is wall-clock seconds')
-- cached per loop iteration: unchanged without a suspension
local x = 0
for i = 1, 1e5 do x = x + i end
eq(utils.now(), now, 'now is cached')
local later = utils.updatenow()
assert(later >= now, 'updatenow moves forward')
eq(utils.now(), later, 'now after updatenow')

-- poolconfig checks its arguments and accepts sane ones
utils.poolconfig(1, 0, 4)
-- (Lua 5.4 names the function by where it is found: 'lem.utils.poolconfig')
local unpack = table.unpack or unpack
local function badarg(n, msg, ...)
	local args, nargs = { ... }, select('#', ...)
	checkerr('bad argument #' .. n .. " to 'poolconfig' " .. msg, function()
		utils.poolconfig(unpack(args, 1, nargs))
	end)
end
badarg(1, '(number expected, got string)', 'x', 1, 2)
badarg(1, '(delay must be a non-negative number of seconds)', -1, 1, 2)
badarg(3, '(max must be at least 1)', 1, 0, 0)
badarg(2, '(min must not be larger than max)', 1, 5, 2)
badarg(2, '(number expected, got no value)', 1)
print('ok')
