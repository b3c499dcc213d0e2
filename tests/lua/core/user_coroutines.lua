-- A suspending call inside the user's own coroutine.wrap/create works: the
-- whole chain suspends, others run, and no internal marker ever leaks.
dofile('support.lua')
local utils = require 'lem.utils'

local q = require('lem.queue').new()

-- a generator that waits for values from a queue
local gen = coroutine.wrap(function()
	while true do
		local v = q:get()
		if v == nil then return 'done' end
		coroutine.yield(v * 10)
	end
end)
utils.spawn(function()
	for i = 1, 3 do
		utils.newsleeper():sleep(0.001)
		q:put(i)
	end
	q:put(nil)
end)
eq({ gen(), gen(), gen(), gen() }, { 10, 20, 30, 'done' }, 'generator values')

-- coroutine.resume sees only the user's own yields and returns
local co = coroutine.create(function(a)
	local b = coroutine.yield(a + 1)
	eq({ utils.newsleeper():sleep(0.001) }, { nil, 'timeout' }, 'inner sleep')
	local c = coroutine.yield(b * 2)
	return 'end', c
end)
eq({ coroutine.resume(co, 1) }, { true, 2 }, 'first resume')
eq({ coroutine.resume(co, 5) }, { true, 10 }, 'second resume (slept inside)')
eq(coroutine.status(co), 'suspended', 'status')
eq({ coroutine.resume(co, 'c') }, { true, 'end', 'c' }, 'last resume')
eq(coroutine.status(co), 'dead', 'dead')
eq({ coroutine.resume(co) }, { false, 'cannot resume dead coroutine' }, 'resume dead')

-- errors inside, after a suspension
local bad = coroutine.create(function() utils.yield(); error('inner boom', 0) end)
eq({ coroutine.resume(bad) }, { false, 'inner boom' }, 'error through resume')
local badw = coroutine.wrap(function() utils.yield(); error({ 'tbl' }) end)
local ok, e = pcall(badw)
eq({ ok, e }, { false, { 'tbl' } }, 'error value through wrap')
local badws = coroutine.wrap(function() utils.yield(); error('str', 0) end)
local ok2, e2 = pcall(badws)
eq(ok2, false, 'wrap string error')
assert(e2:find('str', 1, true), e2)

-- nested three deep
local function deep(n)
	if n == 0 then
		utils.newsleeper():sleep(0.001)
		return 'bottom'
	end
	return coroutine.wrap(function() return deep(n - 1) end)()
end
eq(deep(3), 'bottom', 'nested wraps')

-- thisthread inside a user coroutine names the lem coroutine that runs it
local me = utils.thisthread()
coroutine.wrap(function() eq(utils.thisthread(), me, 'thisthread in wrap') end)()

-- a user coroutine may yield the same values the marker could be confused with
local plain = coroutine.wrap(function() coroutine.yield(nil); coroutine.yield(false); return true end)
eq({ plain(), plain(), plain() }, { nil, false, true }, 'nil/false yields')
print('ok')
