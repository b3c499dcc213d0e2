-- File: io.open modes and perm, read formats, 'eof', write, seek, size,
-- lock, close, busy; File vs Stream by file type.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

local dir = tmpdir()
local path = dir .. '/f.txt'

eq({ io.open(dir .. '/missing') }, { nil, 'No such file or directory' }, 'missing file')
checkerr("bad argument #2 to", io.open, path, 'z')
checkerr('(invalid mode string)', io.open, path, 'z')
checkerr('invalid mode', io.open, path, 'rx')
checkerr('invalid permissions', io.open, path, 'w', 899)

local f = assert(io.open(path, 'w', 600))
assert(getmetatable(f).__index == io.File, 'a regular file is a File')
eq(f:write('line one\n', 'line two\r\n', 'tail'), true, 'write')
eq(f:size(), 23, 'size')
assert(f:close())
eq({ f:close() }, { nil, 'closed' }, 'second close')
eq({ f:read() }, { nil, 'closed' }, 'read after close')
eq(f:closed(), true, 'closed()')
local perm = assert(_G.io.popen('stat -c %a ' .. path)):read('*l')
eq(perm, '600', 'perm')

eq({ io.open(path, 'wx') }, { nil, 'File exists' }, 'x: exclusive create')

f = assert(io.open(path, 'r'))
eq(f:read('*l'), 'line one', 'line')
eq(f:read('*l'), 'line two\r', 'line keeps \\r')
eq({ f:read('*l') }, { nil, 'eof' }, 'no full line at the end')
eq(f:read(), 'tail', 'read() what is left')
eq({ f:read() }, { nil, 'eof' }, 'eof')
eq({ f:read(1) }, { nil, 'eof' }, 'eof for a count')
eq(f:read('*a'), '', "'*a' at the end")
eq(f:seek('set', 5), 5, 'seek set')
eq(f:read(3), 'one', 'read after seek')
eq(f:seek(), 8, 'seek cur accounts for read-ahead')
eq(f:seek('cur', 1), 9, 'seek cur +1')
eq(f:read('*l'), 'line two\r', 'read after seek cur')
eq(f:seek('end', -2), 21, 'seek end')
eq(f:read('*a'), 'il', '*a')
checkerr('invalid option', f.seek, f, 'middle')
local got = {}
f:seek('set')
for l in f:lines() do got[#got + 1] = l end
eq(got, { 'line one', 'line two\r' }, 'lines')
f:close()

-- r+: writes go where reading stopped, not after the read-ahead.
f = assert(io.open(path, 'r+'))
eq(f:read(5), 'line ', 'read 5')
assert(f:write('ONE'))
f:seek('set')
eq(f:read('*l'), 'line ONE', 'write after read lands at the read position')
f:close()

-- a: appends.
f = assert(io.open(path, 'a'))
f:write('+appended')
f:close()
f = assert(io.open(path))
eq(f:read('*a'), 'line ONE\nline two\r\ntail+appended', 'append')
f:close()

-- lock: POSIX record locks, not waiting; a conflict shows from another
-- process.
f = assert(io.open(path, 'r+'))
eq(f:lock('w', 0, 4), true, 'write lock')
local other = os.execute(([[python3 -c "
import fcntl, sys
f = open('%s', 'r+')
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 4, 0)
except OSError:
    sys.exit(3)
"]]):format(path))
assert(other ~= true and other ~= 0, 'the other process could not lock')
eq(f:lock('u', 0, 4), true, 'unlock')
eq(f:lock('r'), true, 'read lock of the whole file')
checkerr('invalid option', f.lock, f, 'x')
f:close()

-- Busy: one operation at a time.
f = assert(io.open(path))
local first
utils.spawn(function() first = f:read('*a') end)
utils.yield()
eq({ f:read() }, { nil, 'busy' }, 'busy file')
while not first do utils.yield() end
f:close()

-- Big file through '*a', and read(n) larger than a chunk.
local big = ('0123456789abcdef'):rep(20000)
f = assert(io.open(path, 'w'))
f:write(big)
f:close()
f = assert(io.open(path))
eq(#f:read(100000), 100000, 'read(n) across chunks')
eq(f:read('*a'), big:sub(100001), 'rest')
f:close()

-- io.open on a fifo gives a Stream; /dev/null is a character device.
local null = assert(io.open('/dev/null', 'r'))
assert(getmetatable(null).__index == io.Stream, 'a character device is a Stream')
eq({ null:read() }, { nil, 'closed' }, '/dev/null reads as closed')
null:close()
