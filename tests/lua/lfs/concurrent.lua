-- The loop keeps running other coroutines while lfs calls are on the pool.
dofile('support.lua')
local lfs = require 'lem.lfs'
local utils = require 'lem.utils'

local dir = tmpdir()
local done, ticks = false, 0
utils.spawn(function()
	while not done do
		ticks = ticks + 1
		utils.yield()
	end
end)

for i = 1, 50 do
	assert(lfs.mkdir(dir .. '/d' .. i))
	assert(lfs.attributes(dir .. '/d' .. i))
end
local n = 0
for _ in lfs.dir(dir) do n = n + 1 end
eq(n, 52, 'entries')
assert(ticks > 0, 'other coroutines ran during lfs calls')

-- Many calls in flight at once, from many coroutines.
local results, pending = {}, 20
for i = 1, 20 do
	utils.spawn(function()
		results[i] = lfs.attributes(dir .. '/d' .. i, 'mode')
		pending = pending - 1
	end)
end
while pending > 0 do utils.yield() end
for i = 1, 20 do eq(results[i], 'directory', 'result ' .. i) end

-- Where Lua cannot yield (a sort comparator), the call raises and leaves
-- nothing behind.
checkerr('yield across', table.sort, { 1, 2, 3 }, function(a, b)
	lfs.currentdir()
	return a < b
end)
assert(lfs.currentdir())
done = true
