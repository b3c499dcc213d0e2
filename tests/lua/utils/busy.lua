-- Deadlines and cancels reach code that never suspends (docs/utils.md,
-- "Busy code"): a busy loop under utils.timeout, inside pcall, inside a
-- coroutine.wrap generator made before the deadline, in a metamethod, with
-- nested deadlines, a to-be-closed variable (5.4), and a cancelled task
-- that caught its cancel and computes on. Others still run after.
dofile('support.lua')
local utils = require 'lem.utils'
local unpack = table.unpack or unpack

local function spin() local x = 0 while true do x = x + 1 end end

eq({ utils.timeout(0.05, spin) }, { nil, 'timeout' }, 'busy loop')

-- pcall sees the timeout; catching it and returning gives the results.
local seen
eq({ utils.timeout(0.05, function()
	local ok, err = pcall(spin)
	seen = err
	return 'caught'
end) }, { 'caught' }, 'caught in pcall')
eq(seen, 'timeout', 'pcall saw timeout')

-- A handler that keeps computing after catching is stopped again.
eq({ utils.timeout(0.05, function()
	pcall(spin)
	spin()
end) }, { nil, 'timeout' }, 'cannot keep going')

-- A generator made before the deadline.
local gen = coroutine.wrap(spin)
eq({ utils.timeout(0.05, gen) }, { nil, 'timeout' }, 'generator made before')
-- One made inside.
eq({ utils.timeout(0.05, function() return coroutine.wrap(spin)() end) },
	{ nil, 'timeout' }, 'generator made inside')

-- A loop that ran hot before its deadline (on LuaJIT: compiled to a
-- trace then) is reached too.
local function count(n) local x = 0 for i = 1, n do x = x + i % 7 end return x end
count(1e6)
eq({ utils.timeout(0.05, count, 1e13) }, { nil, 'timeout' }, 'loop compiled before')

-- A metamethod.
local busy = setmetatable({}, { __index = function() spin() end })
eq({ utils.timeout(0.05, function() return busy.x end) }, { nil, 'timeout' }, 'metamethod')

-- Nested: the inner deadline is the nearer one; the outer goes on.
eq({ utils.timeout(5, function()
	local r = { utils.timeout(0.05, spin) }
	return unpack(r)
end) }, { nil, 'timeout' }, 'nested, inner fires')
eq({ utils.timeout(0.05, function()
	return utils.timeout(5, spin)
end) }, { nil, 'timeout' }, 'nested, outer fires')

-- To-be-closed variables run (5.4 syntax, so loaded from a string).
if _VERSION ~= 'Lua 5.1' then
	local closed
	local f = assert(load([[
		local spin, set = ...
		local x <close> = setmetatable({}, { __close = function() set() end })
		spin()
	]]))
	eq({ utils.timeout(0.05, f, spin, function() closed = true end) },
		{ nil, 'timeout' }, 'tbc')
	assert(closed, 'to-be-closed variable ran')
end

-- A cancelled task that catches the cancel and computes is stopped.
local after
local t = utils.task(function()
	local ok, err = pcall(function() utils.newsleeper():sleep(10) end)
	after = err
	spin()
end)
utils.newsleeper():sleep(0.02)
assert(t:cancel())
eq({ t:join() }, { nil, 'cancelled' }, 'cancelled busy task')
eq(after, 'cancelled', 'the task saw its cancel')

-- A task that cancels itself and then computes.
local t2 = utils.task(function(self_task)
	utils.yield()
	cancelme()
end)
function cancelme()
	t2:cancel()
	spin()
end
eq({ t2:join() }, { nil, 'cancelled' }, 'self-cancel')

-- Without a deadline, code runs unguarded and normally.
local n = 0
for i = 1, 1e6 do n = n + i end
eq(n, 500000500000, 'plain loop')
-- The loop is not hostage: another coroutine ran meanwhile.
local ticked = false
utils.spawn(function() ticked = true end)
eq({ utils.timeout(0.05, spin) }, { nil, 'timeout' }, 'again')
utils.yield()
assert(ticked, 'the other coroutine ran')
print('ok')
