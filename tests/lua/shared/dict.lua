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
print('ok')
