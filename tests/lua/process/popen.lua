-- io.popen (lem.process.popen): 'r', 'w' and 'rw', the pid, children
-- reaped.
dofile('support.lua')
local process = require 'lem.process'
local procs = dofile('process/data/procs.lua')
local children = procs.watch_children()

-- 'r' (default): the command's stdout
local s, pid = assert(process.popen('echo one; echo two'))
assert(type(pid) == 'number' and pid > 0, 'pid')
eq(s:read('*l'), 'one', 'first line')
eq(s:read('*a'), 'two\n', 'rest')
s:close()

-- 'w': the command's stdin
local out = tmpdir() .. '/out'
s, pid = assert(process.popen('cat > ' .. out, 'w'))
assert(s:write('written\n'))
s:close()
eq(children:ended(pid).status, 0, 'cat ended')
local f = assert(io.open(out))
eq(f:read('*a'), 'written\n', 'the child wrote what it read')
f:close()

-- 'rw': both, over a socket pair
s, pid = assert(process.popen('while read l; do echo "got $l"; done', 'rw'))
assert(s:write('a\n'))
eq(s:read('*l'), 'got a', 'round trip a')
assert(s:write('b\n'))
eq(s:read('*l'), 'got b', 'round trip b')
s:close()
eq(children:ended(pid).status, 0, 'the loop ended at eof')

checkerr("(invalid option 'x')", process.popen, 'true', 'x')
checkerr("bad argument #1 to '", process.popen)

eq(procs.children(), {}, 'every child reaped')
children:stop()
