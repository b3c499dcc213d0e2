-- utils.spawn runs the new coroutine after its creator suspends or yields;
-- utils.yield lets every runnable coroutine run once, in FIFO order.
dofile('support.lua')
local utils = require 'lem.utils'

local log = {}
local function note(s) log[#log + 1] = s end

eq(utils.spawn(function(a, b) note('A ' .. a .. b) end, 1, 2), true, 'spawn returns')
utils.spawn(function()
	note('B1')
	utils.yield()
	note('B2')
	utils.yield()
	note('B3')
end)
utils.spawn(function()
	note('C1')
	utils.yield()
	note('C2')
end)
note('main before yield')
utils.yield()
note('main 1')
utils.yield()
note('main 2')
utils.yield()
note('main 3')
eq(log, {
	'main before yield', 'A 12', 'B1', 'C1',
	'main 1', 'B2', 'C2',
	'main 2', 'B3',
	'main 3',
}, 'run order')

-- spawn checks its argument
-- (Lua 5.4 names the function by where it is found: 'lem.utils.spawn';
-- LuaJIT says '?' when called through pcall)
checkerr("(function expected, got no value)", utils.spawn)
checkerr("bad argument #1 to 'spawn' (function expected, got no value)", function() utils.spawn() end)
checkerr("(function expected, got number)", utils.spawn, 42)

-- many spawns: all run, in order
local n, order = 10000, {}
for i = 1, n do utils.spawn(function() order[#order + 1] = i end) end
utils.yield()
eq(#order, n, 'all spawned ran')
for i = 1, n do assert(order[i] == i, 'spawn order at ' .. i) end

-- thisthread is the running coroutine
local main = utils.thisthread()
eq(type(main), 'thread', 'thisthread type')
eq(main, coroutine.running(), 'thisthread is coroutine.running()')
utils.spawn(function() assert(utils.thisthread() ~= main) end)
utils.yield()
print('ok')
