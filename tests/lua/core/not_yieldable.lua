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
print('ok')
