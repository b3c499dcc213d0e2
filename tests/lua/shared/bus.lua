-- shared.publish / shared.subscribe in one process: delivery to every
-- subscription of the channel (and none other), order, receive's timeout,
-- a waiting receive woken by a publish, overflow counted by dropped(),
-- close, busy, and the errors.
dofile('support.lua')
local shared = require 'lem.shared'
local utils = require 'lem.utils'

checkerr('string expected', shared.publish)
checkerr('channel must be 1 to 255 bytes', shared.publish, '', 'x')
checkerr('channel must be 1 to 255 bytes', shared.subscribe, ('c'):rep(256))
checkerr('string expected', shared.publish, 'c', nil)
checkerr('message longer than 1 MiB', shared.publish, 'c', ('x'):rep(1 << 20))
checkerr("unknown option 'size'", shared.subscribe, 'c', { size = 1 })
checkerr('queue must be a number from 1', shared.subscribe, 'c', { queue = 0 })
checkerr('table expected', shared.subscribe, 'c', 5)

eq(shared.publish('a', 'before anyone listens'), true)
local a1 = shared.subscribe('a')
local a2 = shared.subscribe('a')
local b = shared.subscribe('b')
eq({ a1:receive(0) }, { nil, 'timeout' }, 'what came before is not theirs')
checkerr('timeout must not be negative', a1.receive, a1, -1)
checkerr('lem.shared.Subscription expected', a1.receive, {})

for i = 1, 100 do assert(shared.publish('a', 'm' .. i)) end
shared.publish('b', 'for b')
for i = 1, 100 do eq(a1:receive(), 'm' .. i) end
for i = 1, 100 do eq(a2:receive(1), 'm' .. i) end
eq(b:receive(), 'for b')
eq({ b:receive(0.01) }, { nil, 'timeout' })
shared.publish('a', 'with a NUL\0inside')
eq(a1:receive(), 'with a NUL\0inside')
eq(a2:receive(), 'with a NUL\0inside')

-- A waiting receive is woken by a publish from another coroutine; a
-- second receive at once is busy.
local got
local t = utils.task(function() got = { a1:receive(5) } end)
utils.yield()
eq({ a1:receive() }, { nil, 'busy' })
shared.publish('a', 'wake up')
t:join()
eq(got, { 'wake up' })
eq(a2:receive(), 'wake up')

-- Big messages.
local big = ('x'):rep(500000)
shared.publish('b', big)
eq(b:receive(), big)

-- Overflow: a queue of 3 keeps the first 3 and counts the rest.
local small = shared.subscribe('s', { queue = 3 })
for i = 1, 10 do shared.publish('s', tostring(i)) end
eq(small:receive(), '1')
eq(small:receive(), '2')
eq(small:receive(), '3')
eq({ small:receive(0) }, { nil, 'timeout' })
eq(small:dropped(), 7)
eq(a1:dropped(), 0)

-- The ring wraps many times over: nothing is lost while every message is
-- read in time.
for i = 1, 2000 do
	shared.publish('b', ('%d %s'):format(i, ('y'):rep(4000)))
	eq(b:receive():match('^%d+'), tostring(i))
end
eq(b:dropped(), 0)

-- close: a waiting receive ends with 'closed'; later ones too.
local t2 = utils.task(function() return b:receive() end)
utils.yield()
eq(b:close(), true)
eq({ t2:join() }, { true, nil, 'closed' })
eq({ b:receive() }, { nil, 'closed' })
eq(b:close(), true)
shared.publish('b', 'nobody')
a1:close()
a2:close()
small:close()
print('ok')
