-- lem.json's encoder: values, numbers on both builds, strings, the array
-- and object rules, markers, options and every error it returns.
dofile('support.lua')

local json = require 'lem.json'
local jit = rawget(_G, 'jit')

local function fails(pattern, ...)
	local v, err = json.encode(...)
	assert(v == nil, 'expected an error, got ' .. tostring(v))
	assert(type(err) == 'string' and err:find(pattern, 1, true),
		('error %q lacks %q'):format(tostring(err), pattern))
end

-- Scalars.
eq(json.encode(nil), 'null')
eq(json.encode(json.null), 'null')
eq(json.encode(true), 'true')
eq(json.encode(false), 'false')
eq(json.encode(0), '0')
eq(json.encode(-42), '-42')
eq(json.encode(0.5), '0.5')
eq(json.encode(0.1), '0.1')
eq(json.encode(1e300), '1e300')
eq(json.encode(-1.5e-7), '-1.5e-7')
eq(json.encode(3.141592653589793), '3.141592653589793')
if jit then
	-- All numbers are floats: a whole one is written as an integer.
	eq(json.encode(2.0), '2')
	eq(json.encode(2 ^ 53), '9007199254740992')
	eq(json.encode(2 ^ 63), '9.223372036854776e18')
else
	eq(json.encode(9007199254740993), '9007199254740993')
	eq(json.encode(math.maxinteger), '9223372036854775807')
	eq(json.encode(math.mininteger), '-9223372036854775808')
	eq(json.encode(2.0), '2.0')
	eq(json.encode(-0.0), '-0.0')
	eq(json.encode(2 ^ 53), '9007199254740992.0')
end

-- Strings: escapes, UTF-8 kept, NUL.
eq(json.encode('plain'), '"plain"')
eq(json.encode('q"b\\s/'), '"q\\"b\\\\s/"')
eq(json.encode('\n\r\t\b\f'), '"\\n\\r\\t\\b\\f"')
eq(json.encode('\0\1\31\127'), '"\\u0000\\u0001\\u001f\127"')
eq(json.encode('caf\195\169 \240\159\152\128'), '"caf\195\169 \240\159\152\128"')
fails('cannot encode a string that is not UTF-8 (byte 3)', 'ab\255')
fails('not UTF-8 (byte 1)', '\237\160\128') -- a surrogate in UTF-8 form
fails('not UTF-8 (byte 2) at .name', { name = 'a\192' })

-- Arrays and objects.
eq(json.encode({ 1, 2, 3 }), '[1,2,3]')
eq(json.encode({ 'a', { true, false }, {} }), '["a",[true,false],{}]')
eq(json.encode({ a = 1 }), '{"a":1}')
eq(json.encode({}), '{}')
eq(json.encode({ a = { b = { c = 'd' } } }), '{"a":{"b":{"c":"d"}}}')
local two = json.decode(json.encode({ x = 1, y = 2 }))
eq(two, { x = 1, y = 2 })
eq(json.encode({ 1, nil, 3 }), '[1,null,3]')
eq(json.encode({ [2] = 'b' }), '[null,"b"]')
eq(json.encode({ 1, json.null, 3 }), '[1,null,3]')

-- `n` gives the length (table.pack, database rows with NULL columns).
eq(json.encode(table.pack(1, nil, nil)), '[1,null,null]')
eq(json.encode({ 'x', nil, n = 2 }), '["x",null]')
eq(json.encode({ n = 2 }), '{"n":2}')
eq(json.encode({ n = 'two', 1 }) == nil, true)
fails('neither an array nor an object', { 1, 2, 3, n = 2 })

-- lem's nulls: redis.null is json.null.
local redis = require 'lem.redis'
assert(redis.null == json.null)
eq(json.encode({ redis.null, 'v' }), '[null,"v"]')

-- Markers.
eq(json.encode(json.array({})), '[]')
eq(json.encode(json.array()), '[]')
eq(json.encode(json.object({})), '{}')
eq(json.encode(json.object()), '{}')
eq(json.encode(json.array({ n = 3 })), '[null,null,null]')
eq(json.encode(json.array({ 'a', 'b' })), '["a","b"]')
eq(json.encode(json.object({ [1] = 'a' })), '{"1":"a"}')
eq(json.encode(json.object({ [2.5] = 'a' })), '{"2.5":"a"}')
fails('neither an array nor an object', json.array({ 1, x = 2 }))
local t = {}
assert(json.array(t) == t, 'array returns its table')
assert(json.object(t) == t, 'a mark may be changed')
eq(json.encode(t), '{}')
checkerr('table has a metatable', json.array, setmetatable({}, {}))
checkerr('table expected', json.object, 'x')

-- Errors, with the path to the value at fault.
fails('cannot encode a function', print)
fails('cannot encode a function at .handlers[2]', { handlers = { 1, print } })
fails('cannot encode a function at ["a b"]', { ['a b'] = print })
fails('cannot encode a thread', coroutine.create(print))
fails('cannot encode a userdata', io.stdout)
fails('cannot encode a userdata at [1]', { io.stdout })
local cyc = { list = {} }
cyc.list[1] = cyc
fails('cannot encode a cycle (a table inside itself) at .list[1]', cyc)
local self = {}
self[1] = self
fails('cycle', self)
-- The same table twice is no cycle.
local shared = { 1 }
eq(json.encode({ shared, shared }), '[[1],[1]]')
fails('cannot encode NaN', 0 / 0)
fails('cannot encode NaN at .x', { x = -(0 / 0) })
fails('cannot encode inf', math.huge)
fails('cannot encode -inf at [1]', { -math.huge })
fails('neither an array nor an object (integer and string keys)', { 1, 2, x = 3 })
fails('neither an array nor an object (integer and string keys)', { x = 3, [1] = 2 })
fails('neither an array nor an object (a number key', { [0] = 'a', 'b' })
fails('neither an array nor an object (a number key', { [1.5] = 1 })
fails('cannot encode a table with a boolean key', { [true] = 1 })
fails('cannot encode a table with a table key', { [{}] = 1 })
fails('cannot encode a sparse array (length 1000000000, 1 elements)', { [1e9] = 1 })
-- Holes are fine up to 1,000 slots, or when at least half full.
eq(#json.encode({ [1000] = 1 }), 5 * 999 + 1 + 2) -- 999 of "null," then 1
assert(json.encode({ [1001] = 1 }) == nil)
local half = {}
for i = 2, 4000, 2 do
	half[i] = i
end
assert(json.encode(half))
local deep = {}
local at = deep
for _ = 1, 1000 do
	at[1] = {}
	at = at[1]
end
fails('cannot encode tables nested deeper than 1000', deep)
local ok_deep = {}
at = ok_deep
for _ = 1, 999 do
	at[1] = {}
	at = at[1]
end
eq(#json.encode(ok_deep), 2 * 1000)

-- Metamethods are not called: tables are read raw.
local proxy = setmetatable({}, { __index = function() error('called') end, __pairs = error })
eq(json.encode(proxy), '{}')

-- Options.
eq(json.encode({ b = 1, a = { 2, 3 }, c = {} }, { sort_keys = true }), '{"a":[2,3],"b":1,"c":{}}')
eq(json.encode({ b = 1, a = { z = 1, y = 2 } }, { indent = 2, sort_keys = true }), [[
{
  "a": {
    "y": 2,
    "z": 1
  },
  "b": 1
}]])
eq(json.encode({ 1, { 2 } }, { indent = '\t' }), '[\n\t1,\n\t[\n\t\t2\n\t]\n]')
eq(json.encode({ 1 }, { indent = 0 }), '[\n1\n]')
eq(json.encode({}, { indent = 2 }), '{}')
eq(json.encode(json.array(), { indent = 2 }), '[]')
eq(json.encode({ 1 }, { indent = false }), '[1]')
eq(json.encode(json.object({ [2] = 'b', [10] = 'a' }), { sort_keys = true }), '{"10":"a","2":"b"}')
fails('cannot encode a function at .b', { a = 1, b = print }, { sort_keys = true })
fails('neither an array nor an object', { a = 1, [1] = 1 }, { sort_keys = true })
local many = {}
for i = 1, 200 do
	many['k' .. i] = { i, { ['in' .. i] = i } }
end
eq(json.decode(json.encode(many, { sort_keys = true })), json.decode(json.encode(many)))
checkerr("unknown option 'indnet'", json.encode, 1, { indnet = 2 })
checkerr('indent must be a string or 0 to 32', json.encode, 1, { indent = 33 })
checkerr('indent must be a string or 0 to 32', json.encode, 1, { indent = 1.5 })
checkerr('table expected', json.encode, 1, 'indent')
checkerr('value expected', json.encode)

-- A big document: the reused buffer grows and is trimmed.
local big = {}
for i = 1, 50000 do
	big[i] = { id = i, name = ('n'):rep(100) }
end
local text = json.encode(big)
assert(#text > 5000000)
eq(json.encode({ 1 }), '[1]')

print('ok')
