-- Sleepers: timeouts, wakeup with values, busy, not sleeping.
dofile('support.lua')
local utils = require 'lem.utils'

local s = utils.newsleeper()

-- A timeout returns nil, 'timeout' no earlier than asked.
local t0 = utils.updatenow()
local a, b = s:sleep(0.05)
local dt = utils.updatenow() - t0
eq({ a, b }, { nil, 'timeout' }, 'sleep timeout')
assert(dt >= 0.05, 'slept only ' .. dt)
assert(dt < 5, 'slept far too long: ' .. dt)

-- t <= 0 yields once and times out.
local ran = false
utils.spawn(function() ran = true end)
eq({ s:sleep(0) }, { nil, 'timeout' }, 'sleep(0)')
assert(ran, 'sleep(0) let others run')
eq({ s:sleep(-1) }, { nil, 'timeout' }, 'sleep(-1)')

-- wakeup hands over any values, nil included, and returns true.
utils.spawn(function() eq(s:wakeup('x', nil, 3), true, 'wakeup returns') end)
local r = table.pack(s:sleep())
eq(r, { n = 3, 'x', nil, 3 }, 'values from wakeup')

-- Waking before the timeout: the timer is cancelled and the sleep returns
-- the values, not a timeout.
utils.spawn(function() s:wakeup('early') end)
eq({ s:sleep(10) }, { 'early' }, 'woken before timeout')

-- Nobody sleeping.
eq({ s:wakeup() }, { nil, 'not sleeping' }, 'wakeup without sleeper')

-- A second sleeper on the same object is busy.
local results = {}
utils.spawn(function() results.first = { s:sleep() } end)
utils.spawn(function() results.second = { s:sleep() } end)
utils.yield()
eq(results.second, { nil, 'busy' }, 'second sleeper')
s:wakeup(1)
utils.yield()
eq(results.first, { 1 }, 'first sleeper woken')

-- After a timeout the sleeper is free again, and a late wakeup finds
-- nobody.
eq({ s:sleep(0.01) }, { nil, 'timeout' }, 'timeout again')
eq({ s:wakeup() }, { nil, 'not sleeping' }, 'late wakeup')

-- Many sleepers with different timeouts wake in deadline order.
local order = {}
for i = 5, 1, -1 do
	utils.spawn(function()
		utils.newsleeper():sleep(i * 0.01)
		order[#order + 1] = i
	end)
end
s:sleep(0.2)
eq(order, { 1, 2, 3, 4, 5 }, 'deadline order')

-- Argument errors.
checkerr("bad argument #1 to 'sleep' (number expected, got string)", function() s:sleep('x') end)
checkerr("bad argument #1 to 'sleep' (lem.Sleeper expected, got table)", function() s.sleep({}) end)
print('ok')
