-- Without -w, a script whose SIGTERM handler returns anything but false
-- still stops on SIGTERM: once its handlers have returned, a graceful stop
-- starts (servers close, the process ends with status 0). A handler that
-- returns false keeps it running.
local support = dofile('support.lua')
local utils = require 'lem.utils'
local signal = require 'lem.signal'

-- A server whose SIGTERM handler only logs (and suspends a moment first):
-- it stops.
local script = support.write_file('logs.lua', [[
local utils, signal = require 'lem.utils', require 'lem.signal'
local srv = assert(require('lem.io').tcp.listen('127.0.0.1', 0))
signal.register('TERM', function()
	utils.newsleeper():sleep(0.05)
	print('handler', utils.draining())
end)
signal.register('TERM', function() print('second handler') end)
utils.spawn(function() print('run', srv:autospawn(function() end)) end)
utils.newsleeper():sleep(0.05)
local pid = _G.io.open('/proc/self/stat'):read('*a'):match('^%d+')
os.execute('kill -TERM ' .. pid)
]])
local out, errs, code = support.lem(script)
eq(code, 0, 'exit status: ' .. errs)
eq(out, 'second handler\nhandler\tfalse\nrun\tnil\tinterrupted\n', 'the stop starts after the handlers')
eq(errs, '', 'stderr')

-- A handler that raises ends the process, as any error no coroutine
-- catches does.
script = support.write_file('raises.lua', [[
local utils, signal = require 'lem.utils', require 'lem.signal'
local srv = assert(require('lem.io').tcp.listen('127.0.0.1', 0))
signal.register('TERM', function() error('handler broke') end)
utils.spawn(function() print('run', srv:autospawn(function() end)) end)
utils.newsleeper():sleep(0.05)
local pid = _G.io.open('/proc/self/stat'):read('*a'):match('^%d+')
os.execute('kill -TERM ' .. pid)
]])
out, errs, code = support.lem(script)
eq(code, 1, 'exit status after a failing handler')
assert(errs:find('raises.lua:3: handler broke', 1, true), errs)

-- Here: a handler that returns false keeps the process running.
local got = 0
local sleeper = utils.newsleeper()
local function keep()
	got = got + 1
	sleeper:wakeup()
	return false
end
local function log() end
signal.register('TERM', log)
signal.register('TERM', keep)
local pid = _G.io.open('/proc/self/stat'):read('*a'):match('^%d+')
assert(os.execute('kill -TERM ' .. pid))
if got == 0 then sleeper:sleep(10) end
eq(got, 1, 'the handler ran')
utils.yield()
utils.newsleeper():sleep(0.05)
eq(utils.draining(), false, 'no stop when a handler returned false')
signal.unregister('TERM', keep)
signal.unregister('TERM', log)
