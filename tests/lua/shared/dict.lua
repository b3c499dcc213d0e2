-- lem.shared dictionaries in one process: every operation, its results
-- and its errors; numbers keep their kind; expiry; flags; lists; eviction
-- of the least recently used when full ('forcible'); 'no memory'.
dofile('support.lua')
local shared = require 'lem.shared'
local utils = require 'lem.utils'

local function sleep(t) utils.newsleeper():sleep(t) end

-- shared.dict: made once, the same afterwards; sizes.
checkerr('string expected', shared.dict)
checkerr('name must be 1 to 255 bytes', shared.dict, '')
checkerr('name must be 1 to 255 bytes', shared.dict, ('n'):rep(256))
checkerr('size must be from 8k to 4g', shared.dict, 'x', 100)
checkerr('size must be from 8k to 4g', shared.dict, 'x', '5g')
checkerr('size must be from 8k to 4g', shared.dict, 'x', 'lots')
checkerr('number or string expected', shared.dict, 'x', {})
local d = shared.dict('main', '64k')
eq(d:capacity(), 65536)
assert(d:free_space() > 60000 and d:free_space() < 65536, d:free_space())
eq(shared.dict('main'):capacity(), 65536, 'no size: the one made')
eq(shared.dict('main', 65536):capacity(), 65536, 'the same size')
checkerr("shared dict 'main' exists with size 65536, not 131072", shared.dict, 'main', '128k')
eq(shared.dict('other'):capacity(), 1 << 20, 'the default size')
eq(shared.dict('paged', 10000):capacity(), 12288, 'rounded up to pages')

-- get, set, values of each kind; numbers keep their kind on 5.4.
eq(d:get('nothing'), nil)
eq({ d:set('s', 'text') }, { true })
eq(d:get('s'), 'text')
eq(d:set('bin', 'a\0b'), true)
eq(d:get('bin'), 'a\0b')
d:set('i', 42)
d:set('f', 1.5)
d:set('t', true)
d:set('no', false)
eq(d:get('i'), 42)
eq(d:get('f'), 1.5)
eq(d:get('t'), true)
eq(d:get('no'), false)
if math.type then
	eq(math.type(d:get('i')), 'integer')
	eq(math.type(d:get('f')), 'float')
	d:set('big', math.maxinteger)
	eq(d:get('big'), math.maxinteger)
end
d:set('s', 'longer text than before, to take another block of memory')
eq(d:get('s'), 'longer text than before, to take another block of memory')
d:set('s', 7)
eq(d:get('s'), 7, 'a string key turned number')
eq(d:get(12), nil, 'number keys are strings')
d:set(12, 'twelve')
eq(d:get('12'), 'twelve')

-- Flags.
eq(d:set('fl', 'v', 0, 9), true)
eq({ d:get('fl') }, { 'v', 9 })
eq({ d:get('s') }, { 7 }, 'no flags: one value')
checkerr('flags must be from 0 to 2^32-1', d.set, d, 'fl', 'v', 0, -1)
checkerr('flags must be from 0 to 2^32-1', d.set, d, 'fl', 'v', 0, 2 ^ 32)

-- Misuse raises.
checkerr('key must not be empty', d.get, d, '')
checkerr('key must not be empty', d.set, d, '', 1)
checkerr('key longer than 65535 bytes', d.set, d, ('k'):rep(65536), 1)
checkerr('string expected', d.get, d, {})
checkerr('string expected', d.get, d)
checkerr('string, number, boolean or nil expected, got table', d.set, d, 'k', {})
checkerr('string, number, boolean or nil expected, got function', d.set, d, 'k', print)
checkerr('ttl must be a number of seconds, 0 or more', d.set, d, 'k', 1, -1)
checkerr('ttl must be a number of seconds, 0 or more', d.set, d, 'k', 1, 0 / 0)
checkerr('lem.shared.Dict expected', d.get, {}, 'k')
checkerr('string, number or boolean expected', d.add, d, 'k')
checkerr('string, number or boolean expected', d.replace, d, 'k', nil)

-- set nil deletes; delete.
eq(d:set('i', nil), true)
eq(d:get('i'), nil)
eq(d:delete('f'), true)
eq(d:get('f'), nil)
eq(d:delete('never there'), true)

-- add and replace.
eq({ d:add('t', 1) }, { nil, 'exists' })
eq({ d:add('new', 1) }, { true })
eq(d:get('new'), 1)
eq({ d:replace('absent', 1) }, { nil, 'not found' })
eq({ d:replace('new', 'two') }, { true })
eq(d:get('new'), 'two')

-- incr.
eq({ d:incr('n', 1) }, { nil, 'not found' })
eq(d:incr('n', 1, 0), 1)
eq(d:incr('n', 41), 42)
if math.type then eq(math.type(d:incr('n', 0)), 'integer') end
eq(d:incr('n', 0.5), 42.5)
eq(d:incr('n', -0.5), 42)
eq({ d:incr('new', 1) }, { nil, 'not a number' })
eq({ d:incr('t', 1, 0) }, { nil, 'not a number' })
checkerr('number expected', d.incr, d, 'n')
checkerr('number expected', d.incr, d, 'n', 'x')
checkerr('number expected', d.incr, d, 'n', 1, 'x')
if math.type then
	d:set('wrap', math.maxinteger)
	eq(d:incr('wrap', 1), math.mininteger, 'integers wrap as in Lua')
end
eq(d:incr('short', 1, 10, 0.05), 11)

-- ttl, expire, expiry, get_stale.
eq(d:ttl('n'), 0, 'no expiry')
eq({ d:ttl('absent') }, { nil, 'not found' })
eq(d:set('soon', 'gone', 0.05, 3), true)
local left = d:ttl('soon')
assert(left > 0 and left <= 0.05, left)
eq({ d:get_stale('soon') }, { 'gone', 3, false })
eq({ d:get_stale('n') }, { 42, nil, false })
eq(d:get_stale('absent'), nil)
-- A method whose name has an underscore is named whole in its errors.
checkerr("bad argument #2 to 'get_stale' (string expected, got table)", d.get_stale, d, {})
checkerr("bad argument #2 to 'flush_expired'", d.flush_expired, d, -1)
eq(d:set('later', 'v', 100), true)
eq(d:expire('later', 0), true)
eq(d:ttl('later'), 0, 'expire 0: for ever')
eq(d:expire('later', 1000), true)
assert(d:ttl('later') > 999)
eq({ d:expire('absent', 1) }, { nil, 'not found' })
checkerr('number expected', d.expire, d, 'later')
sleep(0.1)
eq(d:get('soon'), nil, 'expired')
eq(d:get('short'), nil, 'incr init ttl')
eq({ d:get_stale('soon') }, { 'gone', 3, true })
eq({ d:ttl('soon') }, { nil, 'not found' })
eq({ d:expire('soon', 1) }, { nil, 'not found' })
eq({ d:replace('soon', 1) }, { nil, 'not found' })
eq(d:add('soon', 'back'), true, 'add over an expired entry')
eq(d:get('soon'), 'back')
eq({ d:incr('short', 1) }, { nil, 'not found' })

-- Lists.
eq(d:llen('list'), 0)
eq(d:lpop('list'), nil)
eq(d:rpush('list', 'b'), 1)
eq(d:rpush('list', 3), 2)
eq(d:lpush('list', 'a'), 3)
eq(d:llen('list'), 3)
eq({ d:get('list') }, { nil, 'value is a list' })
eq(d:lpop('list'), 'a')
eq(d:rpop('list'), 3)
if math.type then
	d:rpush('list', 4)
	eq(math.type(d:rpop('list')), 'integer')
end
eq(d:rpop('list'), 'b')
eq(d:rpop('list'), nil)
eq(d:llen('list'), 0, 'an emptied list is gone')
eq(d:get('list'), nil)
eq({ d:lpush('n', 1) }, { nil, 'value not a list' })
eq({ d:lpop('n') }, { nil, 'value not a list' })
eq({ d:llen('n') }, { nil, 'value not a list' })
checkerr('string or number expected, got boolean', d.lpush, d, 'list', true)
checkerr('string or number expected, got nil', d.rpush, d, 'list', nil)
d:rpush('list', 'x')
d:set('list', 'plain')
eq(d:get('list'), 'plain', 'set over a list')

-- keys, flush_all, flush_expired.
local e = shared.dict('keys', '64k')
for i = 1, 5 do e:set('k' .. i, i) end
e:set('dead', 1, 0.01)
local keys = e:keys()
table.sort(keys)
sleep(0.05)
keys = e:keys()
table.sort(keys)
eq(keys, { 'k1', 'k2', 'k3', 'k4', 'k5' })
eq(#e:keys(2), 2)
eq(#e:keys(0), 5)
checkerr('count must not be negative', e.keys, e, -1)
eq(e:flush_expired(), 1)
eq(e:flush_expired(), 0)
e:flush_all()
eq(e:keys(), {})
eq(e:get('k1'), nil)
eq({ e:get_stale('k1') }, { 1, nil, true }, 'flush_all marks them expired, as ngx does')
local before = e:free_space()
eq(e:flush_expired(2), 2)
eq(e:flush_expired(0), 3)
assert(e:free_space() > before)
eq(e:free_space(), shared.dict('keys'):free_space())

-- Eviction: a full dictionary drops its least recently used entries and
-- set says so; what was read lately stays.
local small = shared.dict('small', '8k')
local value = ('v'):rep(200)
small:set('keep', value)
local forced
for i = 1, 100 do
	eq(small:get('keep'), value)
	local ok, why = small:set('k' .. i, value)
	assert(ok, why)
	forced = forced or why == 'forcible'
end
eq(forced, true, "'forcible' once full")
eq(small:get('keep'), value, 'the recently read entry stays')
eq(small:get('k1'), nil, 'the oldest went')
eq(small:get('k100'), value)
eq({ small:set('huge', ('x'):rep(9000)) }, { nil, 'no memory' })
eq(small:get('k100'), value, 'a value too big evicts nothing')
eq({ small:rpush('biglist', ('x'):rep(9000)) }, { nil, 'no memory' })
eq(small:get('biglist'), nil)
-- Lists count: pushing evicts others, never the list itself; when only
-- the list is left, a push finds no memory and the list stays whole.
local n, err = 0, nil
repeat
	n, err = small:rpush('l', value)
until not n
eq(err, 'no memory')
eq(small:keys(0), { 'l' })
assert(small:llen('l') > 10 and small:llen('l') < 40, small:llen('l'))
eq(small:lpop('l'), value)

-- The dictionary object: a table whose fields are its methods; one per
-- name in a state. On LuaJIT the hot methods are the ffi's (Lua functions
-- of lua/lem/shared/ffi.lua), which is what every call above went
-- through; on Lua 5.4 they are C closures.
eq(rawequal(shared.dict('main'), d), true, 'one object per name')
local hot = { 'get', 'set', 'add', 'replace', 'incr', 'delete' }
for _, m in ipairs(hot) do
	local info = debug.getinfo(d[m], 'S')
	if jit then
		eq(info.source, '@lua/lem/shared/ffi.lua', m .. ' is an ffi method')
	else
		eq(info.what, 'C', m .. ' is a C method')
	end
	eq(rawget(d, m), d[m], m .. ' is a field of the object')
end
eq(debug.getinfo(d.get_stale, 'S').what, 'C')
eq(getmetatable(d), d, 'the object is its class')
checkerr('cannot change a protected metatable', setmetatable, d, {})

-- A wrong self raises the same argument error on both builds, whichever
-- way the method is called; a forged object (the methods copied into a
-- table of one's own) is a wrong self; another dictionary's object is a
-- right one.
local fake = {}
for k, v in pairs(d) do fake[k] = v end
for _, m in ipairs(hot) do
	checkerr("bad argument #1 to '" .. m .. "' (lem.shared.Dict expected, got table)", d[m], {}, 'k', 1)
	checkerr("bad argument #1 to '" .. m .. "' (lem.shared.Dict expected, got number)", d[m], 7, 'k', 1)
	checkerr("bad argument #1 to '" .. m .. "' (lem.shared.Dict expected, got no value)", d[m])
	checkerr("bad argument #1 to '" .. m .. "' (lem.shared.Dict expected, got table)",
		function() local r = fake[m](fake, 'k', 1) return r end)
end
for m, call in pairs {
	get = function() local r = fake:get('k') return r end,
	set = function() local r = fake:set('k', 1) return r end,
	add = function() local r = fake:add('k', 1) return r end,
	replace = function() local r = fake:replace('k', 1) return r end,
	incr = function() local r = fake:incr('k', 1, 0) return r end,
	delete = function() local r = fake:delete('k') return r end,
} do
	checkerr("calling '" .. m .. "' on bad self (lem.shared.Dict expected, got table)", call)
end
local sub = shared.subscribe('wrong self')
checkerr('lem.shared.Dict expected, got lem.shared.Subscription', d.get, sub, 'k')
sub:close()
checkerr("bad argument #1 to 'get' (string expected, got table)", function()
	local r = d:get({})
	return r
end)
checkerr("bad argument #2 to 'get' (string expected, got no value)", d.get, d)
eq(d.get(e, 'k1'), nil, "another dictionary's object")
e:set('k1', 'in e')
eq(d.get(e, 'k1'), 'in e')
eq(d.set(e, 'k2', 2), true)
eq(e:get('k2'), 2)
eq(d.incr(e, 'k2', 1), 3)
eq(d.delete(e, 'k2'), true)
eq(e:get('k2'), nil)

-- Every kind of value and argument through the hot methods (on LuaJIT:
-- the ffi, or its fall back to the C method for what it does not take).
local big = shared.dict('big', '8m')
for _, n in ipairs { 0, 1, 4095, 4096, 4097, 70000, 1048576, 2000000 } do
	local v = ('x'):rep(n - 1) .. (n > 0 and '\0' or '')
	v = v:sub(1, n)
	eq(big:set('s' .. n, v, 0, n), true)
	local got, flags = big:get('s' .. n)
	eq(#got, n, 'a string of ' .. n .. ' bytes')
	eq(got == v, true)
	eq(flags, n > 0 and n or nil)
end
eq(big:get('s70000'):sub(-1), '\0')
eq(big:get('s4095'), ('x'):rep(4094) .. '\0', 'the buffer, once bigger, still holds short ones')
eq({ big:set('n', 0.25, 10, 3) }, { true })
eq({ big:get('n') }, { 0.25, 3 })
eq({ big:set('i', -12) }, { true })
eq({ big:get('i') }, { -12 })
eq(big:set('t', true, nil, nil), true)
eq(big:get('t'), true)
eq(big:set('f', false, 0), true)
eq(big:get('f'), false)
eq({ big:add('f', 1) }, { nil, 'exists' })
eq({ big:replace('nope', 1) }, { nil, 'not found' })
eq({ big:add('a1', 'x', 1, 0) }, { true })
eq({ big:replace('a1', 'y', 0, 4) }, { true })
eq({ big:get('a1') }, { 'y', 4 })
eq(big:set('a1', nil), true, 'set nil deletes')
eq(big:get('a1'), nil)
eq(big:set(5, 'five'), true, 'a number key (the C method)')
eq(big:get('5'), 'five')
eq(big:get(5), 'five')
eq(big:set('ttl', 1, '10'), true, 'a ttl that is a numeric string (the C method)')
assert(big:ttl('ttl') > 9)
eq(big:incr('c', 1, 10), 11)
eq(big:incr('c', '2'), 13, 'a numeric string (the C method)')
eq(big:incr('c', 0.5, nil, nil), 13.5)
eq({ big:incr('absent', 1, nil) }, { nil, 'not found' })
eq({ big:incr('t', 1) }, { nil, 'not a number' })
eq(big:incr('c2', 1, 0.5, 10), 1.5)
assert(big:ttl('c2') > 9)
if math.type then
	eq(math.type(big:incr('c3', 1, 0)), 'integer')
end
eq(big:delete('c'), true)
eq(big:delete(5), true)
eq(big:get('5'), nil)
big:rpush('l', 1)
eq({ big:get('l') }, { nil, 'value is a list' })
print('ok')
