-- lfs.lock/lfs.unlock on a lem.io File: POSIX record locks, which another
-- process (a child lem) sees; a held lock fails at once, never waits.
dofile('support.lua')
local lfs = require 'lem.lfs'
local io = require 'lem.io'

local dir = tmpdir()
local path = dir .. '/locked'
local f = assert(io.open(path, 'w+'))
assert(f:write('0123456789'))

-- A child lem tries a lock and prints what it got.
local probe = dir .. '/probe.lua'
local p = assert(io.open(probe, 'w'))
assert(p:write([[
local lfs, io = require 'lem.lfs', require 'lem.io'
local f = assert(io.open(arg[1], 'r+'))
local ok, err = lfs.lock(f, arg[2], tonumber(arg[3]), tonumber(arg[4]))
io.stdout:write(tostring(ok), ' ', tostring(err))
]]))
p:close()
local function try(mode, start, len)
	local child = assert(io.spawn({ arg[-1], probe, path, mode, tostring(start or 0), tostring(len or 0) }, { stdout = 'pipe' }))
	local out = child.stdout:read('*a')
	eq(child:wait().status, 0, 'probe ran')
	return out
end

eq(try('w'), 'true nil', 'unlocked: the child gets it')
eq(lfs.lock(f, 'w'), true, 'lock the whole file')
local out = try('w')
assert(out:match('^nil '), 'a held lock fails: ' .. out)
assert(out == 'nil Resource temporarily unavailable' or out == 'nil Permission denied', out)
eq(lfs.unlock(f), true, 'unlock')
eq(try('w'), 'true nil', 'free again')

-- byte ranges
eq(lfs.lock(f, 'w', 0, 5), true, 'lock bytes 0-4')
eq(try('w', 5, 5), 'true nil', 'bytes 5-9 are free')
assert(try('w', 4, 2):match('^nil '), 'byte 4 is held')
eq(lfs.unlock(f, 0, 5), true, 'unlock the range')
-- shared locks coexist
eq(lfs.lock(f, 'r'), true, 'read lock')
eq(try('r'), 'true nil', 'a second reader')
assert(try('w'):match('^nil '), 'no writer while read-locked')
eq(lfs.unlock(f), true, 'unlock')

checkerr('(invalid option)', lfs.lock, f, 'x')
f:close()
