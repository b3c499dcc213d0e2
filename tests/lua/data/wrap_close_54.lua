-- The body of core/wrap_close.lua, in Lua 5.4's syntax.
local utils = require 'lem.utils'

local function closer(f) return setmetatable({}, { __close = f }) end

-- an error closes the variables still open, a yield does not
local x, y = false, false
local co = coroutine.wrap(function()
	local xv <close> = closer(function() x = true end)
	do
		local yv <close> = closer(function() y = true end)
		coroutine.yield(100)
	end
	utils.newsleeper():sleep(0.001) -- a lem suspension in between
	coroutine.yield(200)
	error(23)
end)
eq(co(), 100, 'first yield')
eq({ x, y }, { false, false }, 'a yield closes nothing')
eq(co(), 200, 'second yield')
eq({ x, y }, { false, true }, 'the block closed its variable')
eq({ pcall(co) }, { false, 23 }, 'the error')
eq({ x, y }, { true, true }, 'the error closed the rest')
local ok, err = pcall(co)
eq(ok, false, 'dead')
assert(err:find('cannot resume dead coroutine', 1, true), err)

-- the error a __close raises replaces the coroutine's, with its position
local n = 0
co = coroutine.wrap(function()
	local a <close> = closer(function(_, e)
		n = n + 1
		assert(e:find('@XXX'), e)
		error('@YYY')
	end)
	local b <close> = closer(function() n = n + 1; error('@XXX') end)
	coroutine.yield(1)
	error(2)
end)
eq(co(), 1, 'yielded')
ok, err = pcall(co)
eq({ ok, n }, { false, 2 }, 'both closed')
assert(err:find('wrap_close_54%.lua:%d+: @YYY'), err)

-- a string error keeps the position of the coroutine's error
co = coroutine.wrap(function() local c <close> = closer(function() end); error('plain') end)
ok, err = pcall(co)
assert(err:find('wrap_close_54%.lua:%d+: plain$'), err)

-- a wrapped coroutine that returns normally closes as usual
local closed = false
co = coroutine.wrap(function() local c <close> = closer(function() closed = true end); return 'r' end)
eq({ co(), closed }, { 'r', true }, 'return closes')
print('ok')
