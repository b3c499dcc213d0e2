-- A standard Lua C module loads with require: Debian's lua-cjson encodes and
-- decodes through the Lua C API exported by the lem executable.
dofile('support.lua')

-- Found by the default package.cpath, as lua5.4 (luajit) finds it: the
-- harness runs this script with LUA_CPATH unset.
assert(os.getenv('LUA_CPATH') == nil and os.getenv('LUA_CPATH_5_4') == nil)

local ok, cjson = pcall(require, 'cjson')
assert(ok, tostring(cjson) .. '\n(install lua-cjson: scripts/deps)')

-- Encoding.
eq(cjson.encode({ 1, 2, 3 }), '[1,2,3]', 'array')
eq(cjson.encode({ a = 'b' }), '{"a":"b"}', 'object')
eq(cjson.encode('tab\tquote"'), '"tab\\tquote\\""', 'escapes')
eq(cjson.encode(true), 'true', 'boolean')
eq(cjson.encode(cjson.null), 'null', 'null')
eq(cjson.encode(2.5), '2.5', 'number')

-- Decoding.
eq(cjson.decode('[1,"two",{"three":3}]'), { 1, 'two', { three = 3 } }, 'decode')
eq(cjson.decode('"\\u00e9"'), '\195\169', 'unicode escape')
eq(cjson.decode('null'), cjson.null, 'decode null')

-- A roundtrip of a nested document.
local doc = {
	name = 'lem',
	list = { 1, 2, 3, 4.5 },
	nested = { yes = true, no = false, none = cjson.null, deep = { { {} } } },
	text = 'line\nbreak, "quotes", back\\slash, \1 control',
}
local json = cjson.encode(doc)
eq(type(json), 'string', 'encoded type')
eq(cjson.decode(json), doc, 'roundtrip')

-- Big enough to grow cjson's buffers and the Lua stack.
local big = {}
for i = 1, 5000 do
	big[i] = { id = i, name = 'item' .. i }
end
eq(cjson.decode(cjson.encode(big)), big, 'big roundtrip')

-- Errors from C code arrive as Lua string errors.
checkerr('Expected', cjson.decode, '{bad')
checkerr('Cannot serialise', cjson.encode, { f = print })

print('ok')
