-- utils.suspend parks until utils.resume(co, ...) hands it values.
dofile('support.lua')
local utils = require 'lem.utils'

local parked
local got
utils.spawn(function()
	parked = utils.thisthread()
	got = table.pack(utils.suspend())
end)
utils.yield()
assert(parked, 'spawned coroutine ran')
eq(utils.resume(parked, 'a', nil, 'c'), true, 'resume returns true')
utils.yield()
eq(got, { n = 3, 'a', nil, 'c' }, 'values passed through resume')

-- Resuming a coroutine that is not suspended (running, finished, or
-- never a lem coroutine) fails softly.
eq({ utils.resume(utils.thisthread()) }, { nil, 'not suspended' }, 'resume self')
eq({ utils.resume(parked) }, { nil, 'not suspended' }, 'resume finished')
eq({ utils.resume(coroutine.create(print)) }, { nil, 'not suspended' }, 'resume foreign')
checkerr("bad argument #1 to 'resume' (thread expected, got no value)", function() utils.resume() end)

-- A coroutine sleeping on a sleeper is not 'suspended': only its sleeper
-- wakes it.
local s = utils.newsleeper()
local sleeping
utils.spawn(function() sleeping = utils.thisthread(); s:sleep() end)
utils.yield()
eq({ utils.resume(sleeping) }, { nil, 'not suspended' }, 'resume a sleeper')
s:wakeup()

-- A bare coroutine.yield() in a lem coroutine parks it like suspend().
local bare, bare_got
utils.spawn(function() bare = utils.thisthread(); bare_got = coroutine.yield() end)
utils.yield()
eq(utils.resume(bare, 'v'), true, 'resume after bare yield')
utils.yield()
eq(bare_got, 'v', 'bare yield got the value')

-- Coroutines parked in suspend() or in sleep() without a timeout do not keep
-- the process alive: this script ends although both stay parked.
utils.spawn(utils.suspend)
utils.spawn(function() utils.newsleeper():sleep() end)
print('ok')
