-- lfs.dir: the iterator form, the dir object's next/close, large
-- directories (read in batches), and failures.
dofile('support.lua')
-- (Argument errors are matched without the function's name: Lua 5.4 calls
-- it 'lem.lfs.touch', LuaJIT by the name at the call site.)
local lfs = require 'lem.lfs'

local dir = tmpdir()
local want = {}
for i = 1, 300 do
	local name = ('f%03d'):format(i)
	assert(io.open(dir .. '/' .. name, 'w')):close()
	want[name] = true
end
assert(lfs.mkdir(dir .. '/sub'))
want.sub = true
want['.'] = true
want['..'] = true

local seen = {}
for name in lfs.dir(dir) do
	assert(not seen[name], 'listed twice: ' .. name)
	seen[name] = true
end
eq(seen, want, 'every entry, . and .. included')

-- the dir object
local iter, d = lfs.dir(dir .. '/sub')
assert(type(iter) == 'function', 'iterator')
local names = {}
while true do
	local name = d:next()
	if not name then break end
	names[#names + 1] = name
end
table.sort(names)
eq(names, { '.', '..' }, 'empty directory')
eq({ d:next() }, { nil, 'closed' }, 'next after the end')
eq({ d:close() }, { nil, 'closed' }, 'close after the end')

-- close early, then next says closed
iter, d = lfs.dir(dir)
assert(iter(d))
eq(d:close(), true, 'close')
eq({ d:next() }, { nil, 'closed' }, 'next after close')
eq({ d:close() }, { nil, 'closed' }, 'close twice')

-- failures
eq({ lfs.dir(dir .. '/missing') }, { nil, 'No such file or directory' }, 'missing dir')
eq({ lfs.dir(dir .. '/f001') }, { nil, 'Not a directory' }, 'not a dir')
checkerr("bad argument #1 to '", lfs.dir)
checkerr("(lem.lfs.Dir expected", d.next, {})
