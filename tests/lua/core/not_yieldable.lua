-- Where Lua itself cannot yield, a suspending call gives a clear error and
-- leaves no object busy.
dofile('support.lua')
local utils = require 'lem.utils'

local s = utils.newsleeper()
local errs = {}
table.sort({ 3, 1, 2 }, function(a, b)
	local ok, err = pcall(s.sleep, s, 0.01)
	errs[#errs + 1] = err
	return a < b
end)
assert(#errs > 0, 'comparator ran')
assert(errs[1]:find('attempt to yield across', 1, true), errs[1])
assert(errs[1]:find('table.sort comparator', 1, true), errs[1])

-- the sleeper is not left busy: it sleeps and is woken normally
utils.spawn(function() eq(s:wakeup('fine'), true, 'wakeup') end)
eq(s:sleep(5), 'fine', 'sleeper still usable')

-- same from a gsub callback, with utils.yield and suspend
local ok, err = pcall(string.gsub, 'ab', '%w', function() utils.yield() end)
eq(ok, false, 'gsub callback cannot yield')
assert(err:find('attempt to yield across', 1, true), err)

-- the error is a plain string, and the coroutine goes on working
eq(type(err), 'string', 'error type')
eq({ s:sleep(0) }, { nil, 'timeout' }, 'still suspends normally')
-- A read that cannot wait still gets what the kernel has: after a read
-- drained the socket, the next one asks the kernel before it would suspend.
local io = require 'lem.io'
local srv = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = srv:getsockname()
local peer = assert(io.tcp.connect('127.0.0.1', port))
local conn = assert(srv:accept())
assert(peer:write('one\n'))
eq(conn:read('*l'), 'one', 'a read that waited and drained the socket')
assert(peer:write('two\n'))
s:sleep(0.05) -- the loop sees the socket readable
local got
table.sort({ 2, 1 }, function(a, b)
	got = got or { pcall(conn.read, conn, '*l') }
	return a < b
end)
eq(got, { true, 'two' }, 'read where Lua cannot yield')
peer:close()
conn:close()
srv:close()
print('ok')
