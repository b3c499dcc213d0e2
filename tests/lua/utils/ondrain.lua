-- utils.ondrain(f): the hooks run when a graceful stop starts, in the
-- order they were given, each in a coroutine of its own (one may
-- suspend without holding up the others), once; a hook given during the
-- stop runs at once; misuse raises.
dofile('support.lua')
local utils = require 'lem.utils'

checkerr("bad argument #1 to 'ondrain' (function expected, got nil)", utils.ondrain)
checkerr("bad argument #1 to 'ondrain' (function expected, got string)", utils.ondrain, 'f')

local ran = {}
local sleeper = utils.newsleeper()
utils.ondrain(function()
	ran[#ran + 1] = 'first'
	eq(utils.draining(), true, 'draining in a hook')
	sleeper:sleep(0.1)
	ran[#ran + 1] = 'first, after sleeping'
end)
utils.ondrain(function()
	ran[#ran + 1] = 'second'
end)
utils.newsleeper():sleep(0.01)
eq(ran, {}, 'no hook before the stop')

eq(utils.shutdown(5), true, 'the stop starts')
eq(ran, {}, 'hooks run in coroutines of their own, not inside shutdown')
utils.yield()
eq(ran, { 'first', 'second' }, 'both started, in order')
eq(utils.shutdown(5), false, 'a second shutdown')
utils.newsleeper():sleep(0.2)
eq(ran, { 'first', 'second', 'first, after sleeping' }, 'each ran once')

-- During the stop: at once (in a coroutine of its own).
local late
utils.ondrain(function() late = utils.draining() end)
utils.yield()
eq(late, true, 'a hook given during the stop')
