-- lem.json under hostile input and a memory cap: errors, never a crash;
-- a memory error in the middle of a call leaves lem.json working.
dofile('support.lua')

local json = require 'lem.json'
local utils = require 'lem.utils'

-- 10 MB of '[': refused at the depth limit, at once.
local v, err = json.decode(('['):rep(10 * 2 ^ 20))
assert(v == nil and err == 'nested deeper than max_depth (1000) at byte 1001', err)
-- Deep objects, each level a key.
v, err = json.decode(('{"a":'):rep(5000))
assert(v == nil and err:find('max_depth (1000) at byte 5001', 1, true), err)
-- Many small containers: memory grows with the text only.
local many = '[' .. ('[],'):rep(100000) .. '{}]'
local t = assert(json.decode(many))
eq(#t, 100001)
eq(json.encode(t[1]), '[]')
-- Every byte value alone and inside a string.
for b = 0, 255 do
	local c = string.char(b)
	json.decode(c)
	json.decode('"' .. c .. '"')
	json.decode('[' .. c .. ']')
end
-- Long runs of escapes and of numbers.
eq(#json.decode('"' .. ('\\u00e9'):rep(50000) .. '"'), 100000)
eq(#json.decode('[' .. ('1e308,'):rep(10000) .. '0]'), 10001)
-- A numeral of 100,000 digits is too large for a float; 400 zeros after
-- the point are no trouble.
v, err = json.decode('[' .. ('9'):rep(100000) .. ']')
assert(v == nil and err == 'number out of range at byte 2', err)
eq(json.decode('0.' .. ('0'):rep(400) .. '1'), 0.0)

-- A memory error inside decode and encode: Lua's error, then both work.
local text = json.encode((function()
	local big = {}
	for i = 1, 200000 do
		big[i] = { id = i, name = 'name' .. i }
	end
	return big
end)())
collectgarbage()
utils.memlimit(utils.memory().lua + 4 * 2 ^ 20)
local ok, e = pcall(json.decode, text)
utils.memlimit(nil)
assert(not ok and tostring(e):find('not enough memory'), tostring(e))
collectgarbage()
eq(#assert(json.decode(text)), 200000)

local wide = {}
for i = 1, 100 do
	wide[i] = ('x'):rep(100000)
end
collectgarbage()
utils.memlimit(utils.memory().lua + 2 * 2 ^ 20)
ok, e = pcall(json.encode, wide)
utils.memlimit(nil)
assert(not ok and tostring(e):find('not enough memory'), tostring(e))
collectgarbage()
eq(#json.encode(wide), 100 * 100002 + 101)
eq(json.encode({ 1, { 2 } }), '[1,[2]]')

print('ok')
