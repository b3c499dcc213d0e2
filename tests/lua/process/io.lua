-- io.popen and io.spawn are in lem.io, and their streams have every
-- Stream method (lines comes from lem.io's Lua half).
dofile('support.lua')
local io = require 'lem.io'

assert(io.popen == require('lem.process').popen, 'io.popen')
assert(io.spawn == require('lem.process').spawn, 'io.spawn')

local s, pid = assert(io.popen('printf "a\\nb\\n"'))
assert(pid > 0, 'pid')
local got = {}
for l in s:lines() do got[#got + 1] = l end
eq(got, { 'a', 'b' }, 'lines of a popen stream')

local p = assert(io.spawn({ 'sh', '-c', 'read x; echo "<$x>"; exit 2' }, { stdin = 'pipe', stdout = 'pipe' }))
assert(p.stdin:write('hello\n'))
eq(p.stdout:read('*l'), '<hello>', 'spawned child answered')
eq(p:wait().status, 2, 'status')
