-- exit: 7
-- utils.exit(code) ends the process with code once control returns to the
-- loop; the caller does not continue, nor does anyone else.
local utils = require 'lem.utils'
utils.spawn(function() print('spawned before exit ran') end)
utils.spawn(function()
	utils.yield()
	print('must not run')
end)
utils.yield()
print('exiting')
utils.exit(7)
print('must not continue')
