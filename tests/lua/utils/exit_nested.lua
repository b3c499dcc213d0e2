-- exit: 3
-- utils.exit inside pcall and inside a user coroutine still ends the
-- process, and nothing after it runs.
local utils = require 'lem.utils'
local co = coroutine.wrap(function()
	pcall(utils.exit, 3)
	print('must not continue in the coroutine')
end)
co()
print('must not continue in main')
