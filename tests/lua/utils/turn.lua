-- utils.newturn: a free turn is taken without yielding, waiters get it
-- first come first served, a waiter that is cancelled or times out leaves
-- the line, give without a holder is nil, 'not taken', misuse raises.
dofile('support.lua')
local utils = require 'lem.utils'

local turn = utils.newturn()

-- Free: taken at once (nothing else runs meanwhile), given back.
local ran = false
utils.spawn(function() ran = true end)
eq(turn:take(), true, 'take a free turn')
eq(ran, false, 'a free take does not yield')
eq(turn:give(), true, 'give')
eq({ turn:give() }, { nil, 'not taken' }, 'give a free turn')

-- Held: the waiters get it in the order they came, one at a time.
assert(turn:take())
local order, holding = {}, 0
for i = 1, 4 do
	utils.spawn(function()
		eq(turn:take(), true, 'take ' .. i)
		holding = holding + 1
		order[#order + 1] = i
		eq(holding, 1, 'one holder at a time')
		utils.yield()
		holding = holding - 1
		turn:give()
	end)
end
utils.yield()
eq(order, {}, 'waiters wait while the turn is held')
turn:give()
-- Someone who asks after the turn was given back comes last.
local late = false
utils.spawn(function()
	turn:take()
	late = #order
	turn:give()
end)
for _ = 1, 20 do utils.yield() end
eq(order, { 1, 2, 3, 4 }, 'first come first served')
eq(late, 4, 'a later take waits for the earlier ones')

-- A waiter that is cancelled, or whose deadline passes, leaves the line:
-- the turn goes to the next one still waiting.
assert(turn:take())
local got = {}
local cancelled = utils.task(function()
	turn:take()
	got[#got + 1] = 'cancelled'
	turn:give()
end)
local timed = utils.task(function()
	return utils.timeout(0.01, function()
		turn:take()
		got[#got + 1] = 'timed'
		turn:give()
	end)
end)
utils.spawn(function()
	turn:take()
	got[#got + 1] = 'last'
	turn:give()
end)
utils.yield()
cancelled:cancel()
eq({ cancelled:join() }, { nil, 'cancelled' }, 'cancelled waiter')
eq({ timed:join() }, { true, nil, 'timeout' }, 'timed-out waiter')
turn:give()
for _ = 1, 10 do utils.yield() end
eq(got, { 'last' }, 'the turn skips waiters that went away')
eq(turn:take(), true, 'free again')
assert(turn:give())

-- Misuse raises Lua's string errors.
checkerr("bad argument #1 to 'take'", turn.take, nil)
checkerr("bad argument #1 to 'give'", turn.give, {})
