-- A failed task collected before anyone joined it prints its traceback;
-- a joined one does not. Neither ends the process.
local utils = require 'lem.utils'
local t = utils.task(function() error('joined failure') end)
assert(not t:join())
t = nil
utils.task(function() error('nobody joined me') end)
utils.yield()
collectgarbage()
collectgarbage()
print('still running')
