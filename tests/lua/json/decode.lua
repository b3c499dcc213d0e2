-- lem.json's decoder: values and numbers on both builds, strings and
-- escapes, json.null and empty arrays, round trips, options, and every
-- error with its byte.
dofile('support.lua')

local json = require 'lem.json'
local jit = rawget(_G, 'jit')
local mtype = math.type or function(n)
	return type(n) == 'number' and 'float' or nil
end

local function fails(pattern, ...)
	local v, err = json.decode(...)
	assert(v == nil, 'expected an error, got ' .. tostring(v))
	assert(type(err) == 'string' and err:find(pattern, 1, true),
		('error %q lacks %q'):format(tostring(err), pattern))
end

-- Scalars.
eq(json.decode('true'), true)
eq(json.decode('false'), false)
assert(json.decode('null') == json.null)
eq(json.decode(' \t\r\n 1 \n'), 1)
eq(json.decode('"x"'), 'x')
eq(json.decode(12), 12) -- a number is taken as its text

-- Numbers: integers stay integers on 5.4.
if jit then
	eq(json.decode('9007199254740993'), 9007199254740992)
	eq(json.decode('2'), 2)
else
	eq(json.decode('9007199254740993'), 9007199254740993)
	eq(math.type(json.decode('2')), 'integer')
	eq(math.type(json.decode('-0')), 'integer')
	eq(json.decode('9223372036854775807'), math.maxinteger)
	eq(json.decode('-9223372036854775808'), math.mininteger)
	eq(math.type(json.decode('9223372036854775808')), 'float')
	eq(json.encode(json.decode('9007199254740993')), '9007199254740993')
end
eq(mtype(json.decode('2.0')), 'float')
eq(json.decode('2.5'), 2.5)
eq(json.decode('1e2'), 100.0)
eq(mtype(json.decode('1e2')), 'float')
eq(json.decode('-1.5E-3'), -0.0015)
eq(json.decode('123456789012345678901234'), 1.2345678901234568e+23)
eq(json.decode('1e-400'), 0.0)
eq(json.decode('0.1'), 0.1)
eq(json.decode('[0, -0.0, 1E+2]'), { 0, -0.0, 100.0 })
-- Floats come back as they went.
for _, f in ipairs({ 0.1, 1 / 3, 1e300, 5e-324, -2.5, 2 ^ 70, 123.456 }) do
	eq(json.decode(json.encode(f)), f)
end

-- Strings.
eq(json.decode('"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t"'), 'a"b\\c/d\b\f\n\r\t')
eq(json.decode('"\\u0041\\u00e9\\u20ac"'), 'A\195\169\226\130\172')
eq(json.decode('"\\ud83d\\ude00"'), '\240\159\152\128')
eq(json.decode('"nul\\u0000byte"'), 'nul\0byte')
eq(json.decode('"caf\195\169"'), 'caf\195\169')
eq(json.decode('"' .. ('x'):rep(100000) .. '"'), ('x'):rep(100000))
eq(json.decode('"' .. ('\\n'):rep(1000) .. '"'), ('\n'):rep(1000))
for _, s in ipairs({ '', 'plain', 'tab\tquote"', '\0\1\31', 'caf\195\169 \240\159\152\128' }) do
	eq(json.decode(json.encode(s)), s)
end

-- Arrays and objects.
eq(json.decode('[1, "two", {"three": 3}]'), { 1, 'two', { three = 3 } })
eq(json.decode('{"a": {"b": [true, false]}}'), { a = { b = { true, false } } })
local arr = json.decode('[1, null, 3]')
eq(#arr, 3)
assert(arr[2] == json.null)
local obj = json.decode('{"k": null}')
assert(obj.k == json.null)
eq(json.decode('{"a": 1, "a": 2}'), { a = 2 })
-- Empty arrays come back marked: they encode as [] again.
local empty = json.decode('[]')
eq(next(empty), nil)
eq(json.encode(empty), '[]')
eq(json.encode(json.decode('{"list": [], "map": {}}'), { sort_keys = true }), '{"list":[],"map":{}}')
eq(getmetatable(json.decode('{}')), nil)
eq(getmetatable(json.decode('[1]')), nil)

-- Round trip of a document.
local doc = {
	name = 'lem',
	list = { 1, 2, 3, 4.5 },
	nested = { yes = true, no = false, none = json.null, deep = { { { 'x' } } } },
	text = 'line\nbreak, "quotes", back\\slash, \1 control',
}
eq(json.decode(json.encode(doc)), doc)
local big = {}
for i = 1, 5000 do
	big[i] = { id = i, name = 'item' .. i, score = i / 4 }
end
eq(json.decode(json.encode(big)), big)

-- Depth: the limit and the option.
local function nest(n)
	return ('['):rep(n) .. (']'):rep(n)
end
assert(json.decode(nest(1000)))
fails('nested deeper than max_depth (1000) at byte 1001', nest(1001))
fails('nested deeper than max_depth (2) at byte 3', '[[[]]]', { max_depth = 2 })
eq(json.encode(json.decode('[[]]', { max_depth = 2 })), '[[]]')
fails('nested deeper than max_depth (1) at byte 7', '{"a": {}}', { max_depth = 1 })
-- Deep nesting costs no C stack: 100,000 levels with the limit raised
-- (5,000 on LuaJIT, where a C function has at most 8,000 stack slots).
local levels = jit and 5000 or 100000
local d = assert(json.decode(nest(levels), { max_depth = levels }))
for _ = 1, levels - 1 do
	d = d[1]
end
eq(json.encode(d), '[]')
-- A hostile depth with a huge limit: the Lua stack's end is an error.
local v, err = json.decode(('['):rep(2000000), { max_depth = 1e9 })
assert(v == nil and (err:find('Lua stack', 1, true) or err:find('found the end', 1, true)), err)
checkerr("unknown option 'depth'", json.decode, '1', { depth = 1 })
checkerr('max_depth must be a whole number from 1', json.decode, '1', { max_depth = 0 })
checkerr('max_depth must be a whole number from 1', json.decode, '1', { max_depth = 'x' })
checkerr('string expected', json.decode, {})
checkerr('string expected', json.decode)

-- Errors: what and where.
fails('expected a value at byte 1, found the end', '')
fails('expected a value at byte 4, found the end', '   ')
fails("expected a value at byte 4, found ']'", '[1,]')
fails("expected a string key at byte 9, found '}'", '{"a": 1,}')
fails("expected ':' at byte 6, found '1'", '{"a" 1}')
fails("expected ',' or ']' at byte 4, found '2'", '[1 2]')
fails("expected ',' or '}' at byte 8, found ']'", '{"a": 1]')
fails("expected ',' or ']' at byte 3, found the end", '[1')
fails("expected a string key at byte 2, found 'a'", "{a: 1}")
fails("expected a value at byte 1, found '''", "'x'")
fails("expected the end at byte 2, found '1'", '01')
fails("expected a value at byte 1, found '+'", '+1')
fails("expected a value at byte 1, found '.'", '.5')
fails('expected a digit at byte 3, found the end', '1.')
fails("expected a digit at byte 2, found 'x'", '-x')
fails("expected a digit at byte 3, found 'x'", '1ex')
fails("expected a value at byte 1, found 'N'", 'NaN')
fails("expected a value at byte 1, found 'I'", 'Infinity')
fails('expected a literal at byte 4, found the end', 'tru')
fails("expected a literal at byte 2, found 'U'", 'nULL')
fails("expected the end at byte 5, found 'x'", '[1] x')
fails("expected the end at byte 3, found '/'", '1 // comment')
fails('expected a value at byte 1, found byte 0xef', '\239\187\191{}') -- BOM
fails('number out of range at byte 2', '[1e400]')
fails('number out of range at byte 1', '-1e999')
fails('invalid escape at byte 3', '"a\\x"')
fails('invalid escape at byte 2', '"\\')
fails('invalid \\u escape at byte 2', '"\\u12"')
fails('invalid \\u escape at byte 2', '"\\uzzzz"')
fails('lone surrogate in a \\u escape at byte 2', '"\\ud800"')
fails('lone surrogate in a \\u escape at byte 2', '"\\ud800\\u0041"')
fails('lone surrogate in a \\u escape at byte 2', '"\\udc00"')
fails('invalid UTF-8 at byte 4', '"ab\255"')
fails('invalid UTF-8 at byte 2', '"\192\128"') -- overlong
fails('invalid UTF-8 at byte 2', '"\237\160\128"') -- a surrogate
fails('invalid UTF-8 at byte 7', '"\\n ab\255"')
fails('control character byte 0x09 in a string at byte 3', '"a\tb"')
fails('control character byte 0x00 in a string at byte 2', '"\0"')
fails('expected \'"\' at byte 5, found the end', '"abc')
fails('expected \'"\' at byte 7, found the end', '"a\\nbc')
fails('expected a value at byte 1, found byte 0xff', '\255')

-- Fuzz-ish: every prefix of a document fails cleanly or decodes.
local text = json.encode(doc)
for i = 0, #text - 1 do
	local val, e = json.decode(text:sub(1, i))
	assert(val == nil and e:find(' at byte %d+'), e)
end

print('ok')
