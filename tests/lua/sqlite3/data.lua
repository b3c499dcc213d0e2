-- lem.sqlite3: values round trip exactly: NULLs (holes, with the row's
-- length in n), empty strings, strings with NULs and invalid UTF-8 (bound
-- as BLOBs), a 16 MiB blob, integers at the edges, floats.
dofile('support.lua')
local sqlite3 = require 'lem.sqlite3'

local db = assert(sqlite3.open(tmpdir() .. '/data.db'))
assert(db:exec('create table d(id integer primary key, a, b, c)'))
local ins = assert(db:prepare('insert into d(a, b, c) values(?, ?, ?)'))

local function roundtrip(what, a, b, c)
	assert(ins:bind(a, b, c))
	assert(ins:step() == true)
	local id = db:last_insert_rowid()
	local row = assert(db:fetchone('select a, b, c from d where id = ?', id))
	eq(row, { a, b, c, n = 3 }, what)
	return id
end

-- NULLs: holes in the array, n says how many columns.
roundtrip('all NULL', nil, nil, nil)
roundtrip('NULL in the middle', 1, nil, 3)
local row = db:fetchone('select null, null')
eq(row.n, 2, 'n counts NULL columns')
eq(#row == 0, true, 'NULLs are holes')
eq(db:fetchone('select typeof(a) from d where id = 1'), { 'null', n = 1 }, 'nil binds NULL')

-- Empty strings are not NULL.
roundtrip('empty strings', '', '', 'x')
eq(db:fetchone("select typeof(?), length(?)", '', ''), { 'text', 0, n = 2 }, 'empty is text')

-- Binary-safe strings.
local bin = 'a\0b\0\0c'
roundtrip('NULs in text', bin, '\0', '\0\0\0')
local raw = {}
for i = 0, 255 do
	raw[#raw + 1] = string.char(i)
end
raw = table.concat(raw)
roundtrip('every byte', raw, raw:reverse(), raw .. raw)
-- Invalid UTF-8 goes in as a BLOB, valid UTF-8 as TEXT.
eq(db:fetchone('select typeof(?), typeof(?), typeof(?)', raw, 'héllo', bin),
	{ 'blob', 'text', 'text', n = 3 }, 'string storage classes')
eq(db:fetchone('select length(?)', raw), { 256, n = 1 }, 'blob length')
-- Blobs and text written in SQL come back as strings.
eq(db:fetchone("select x'00ff10', cast('a' || char(0) || 'b' as blob)"),
	{ '\0\255\16', 'a\0b', n = 2 }, 'SQL blobs')
eq(db:fetchone("select zeroblob(0), ''"), { '', '', n = 2 }, 'empty blob')

-- Numbers.
local maxint, minint = math.maxinteger or 2 ^ 53, math.mininteger or -2 ^ 53
roundtrip('integer edges', maxint, minint, 0)
roundtrip('floats', 0.5, -1e300, 1 / 3)
roundtrip('booleans as integers', 1, 0, 2)
eq(db:fetchone('select ?, ?', true, false), { 1, 0, n = 2 }, 'booleans bind as 1 and 0')
local inf = db:fetchone('select 1e999, -1e999')
eq(inf, { math.huge, -math.huge, n = 2 }, 'infinities')

-- A 16 MiB blob in and out, and by name.
local chunk = {}
for i = 0, 4095 do
	chunk[#chunk + 1] = string.char(i % 256, (i * 7) % 256, 0, 255)
end
chunk = table.concat(chunk) -- 16 KiB, not UTF-8
local huge = chunk:rep(1024)
assert(#huge == 16 * 1024 * 1024)
local id = roundtrip('16 MiB blob', huge, nil, '')
local got = db:fetchone('select a, length(a), typeof(a) from d where id = :id', { id = id })
assert(got[1] == huge, '16 MiB blob comes back whole')
eq(got[2], #huge, 'blob length in SQL')
eq(got[3], 'blob', 'stored as blob')
local text = ('x'):rep(16 * 1024 * 1024)
id = roundtrip('16 MiB text', text, text, nil)
eq(db:fetchone('select length(a), typeof(b) from d where id = ?', id), { #text, 'text', n = 2 }, 'big text')

-- fetchall of many rows, each with NULLs.
assert(db:exec('begin'))
local many = assert(db:prepare('insert into d(a, b, c) values(?, null, ?)'))
for i = 1, 5000 do
	assert(many:bind(i, i % 2 == 0 and 'even' or nil))
	assert(many:step() == true)
end
assert(db:exec('commit'))
local rows = assert(db:fetchall('select a, b, c from d where b is null and a > 0 and typeof(a) = ? order by a', 'integer'))
local found = 0
for _, r in ipairs(rows) do
	if r.n == 3 and r[2] == nil and (r[1] % 2 == 0) == (r[3] == 'even') then
		found = found + 1
	end
end
assert(found >= 5000, 'rows with holes: ' .. found)
local count = 0
for r in db:rows('select a, c from d where id > ?', 0) do
	assert(r.n == 2)
	count = count + 1
end
eq(count, #db:fetchall('select 1 from d'), 'rows sees every row (batches)')

-- A row the memory cap refuses (utils.memlimit) raises where the script
-- can catch it and is not lost: the iterator gives it next. (Its push
-- once raised with the rows stepped ahead still borrowed, and the next
-- call ended the process.) Rows of 20 KB, stepped ahead in a batch.
local utils = require 'lem.utils'
assert(db:exec('create table wide(id integer primary key, v)'))
local put = assert(db:prepare('insert into wide(v) values(?)'))
for i = 1, 4 do
	assert(put:bind(('%d'):format(i) .. ('w'):rep(20000)))
	assert(put:step())
	assert(put:reset())
end
local it = assert(db:prepare('select id, v from wide order by id'))
local next_row = it:rows()
eq(next_row()[1], 1, 'first wide row')
for i = 1, 3 do
	collectgarbage()
	collectgarbage()
	utils.memlimit(utils.memory().lua + 4096)
	local ok, r = pcall(next_row)
	utils.memlimit(0)
	eq(ok, false, 'refused under the cap ' .. i)
	assert(tostring(r):find('not enough memory'), tostring(r))
end
eq(next_row()[1], 2, 'the refused row comes next')
eq(next_row()[1], 3, 'and the one after')
assert(it:finalize())
assert(db:close())
print('ok')
