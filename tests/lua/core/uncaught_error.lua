-- exit: 1
-- An error not caught in a spawned coroutine prints the message with
-- file:line and a traceback of the script's frames, and exits with 1.
local utils = require 'lem.utils'
local function inner()
	local t = 'boom in inner'
	error(t)
end
local function outer() inner() end
utils.spawn(function()
	utils.yield()
	outer()
end)
utils.newsleeper():sleep(10)
print('must not be reached')
