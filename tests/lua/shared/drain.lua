-- A graceful stop closes lem.shared's subscriptions: a waiting receive
-- gets nil, 'closed', the messages already queued are still received
-- first, a subscription made during the stop is closed from the start,
-- and no subscriber keeps the process alive (the grace here is longer
-- than the test's deadline).
dofile('support.lua')
local shared = require 'lem.shared'
local utils = require 'lem.utils'

local sub = shared.subscribe('news')
local other = shared.subscribe('news')
local idle = shared.subscribe('quiet')
assert(shared.publish('news', 'one'))
assert(shared.publish('news', 'two'))
eq(sub:receive(), 'one', 'before the stop')
local waiting = utils.task(function() return idle:receive() end)
utils.yield()
eq(waiting:status(), 'suspended', 'a receive waits')

eq(utils.shutdown(120), true)
eq({ waiting:join() }, { true, nil, 'closed' }, 'the waiting receive')
eq(sub:receive(), 'two', 'what was queued before the stop')
eq({ sub:receive() }, { nil, 'closed' }, 'then closed')
eq(other:receive(), 'one')
eq(other:receive(), 'two')
eq({ other:receive(5) }, { nil, 'closed' })
eq(shared.publish('news', 'three'), true, 'publishing still works')
eq({ sub:receive() }, { nil, 'closed' }, 'nothing more arrives')
local late = shared.subscribe('news')
eq({ late:receive() }, { nil, 'closed' }, 'a subscription made during the stop')
