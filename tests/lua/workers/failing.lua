-- lem -w: a script that fails at start is retried with a back-off, then
-- the supervisor gives up with status 1 (it does not loop); each failure
-- is reported with the worker's number and its traceback.
local support = dofile('support.lua')
local utils = require 'lem.utils'

local bad = support.write_file('bad.lua', [[
local function start() error('broken at start') end
start()
]])
local t0 = utils.updatenow()
local out, err, code = support.lem('-w 2 --grace 1 ' .. bad)
local took = utils.updatenow() - t0
eq(code, 1, 'exit status')
eq(out, '', 'stdout')
-- (LuaJIT shortens long chunk names: only the file's name is sure.)
assert(err:find('worker 1: [^\n]*bad%.lua:1: broken at start'), err)
assert(err:find('stack traceback:', 1, true), err)
assert(err:find('worker 1 %(pid %d+%) exited with status 1'), err)
assert(err:find('starting worker 1 again in 0.1 s', 1, true), err)
assert(err:find('starting worker 1 again in 0.8 s', 1, true), err)
assert(err:find('ended 5 times in a row before it served; giving up', 1, true), err)
-- 0.1 + 0.2 + 0.4 + 0.8 s of back-off before the fifth failure.
assert(took >= 1.5, took)
