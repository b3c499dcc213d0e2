-- lfs.attributes and lfs.symlinkattributes: every field, the mode and
-- permissions strings, the single-field and table forms, links' targets,
-- and failures as nil, strerror.
dofile('support.lua')
-- (Argument errors are matched without the function's name: Lua 5.4 calls
-- it 'lem.lfs.touch', LuaJIT by the name at the call site.)
local lfs = require 'lem.lfs'

local dir = tmpdir()
local path = dir .. '/file.txt'
local f = assert(io.open(path, 'w'))
f:write('hello world')
f:close()
assert(os.execute('chmod 640 ' .. path))

local a = assert(lfs.attributes(path))
eq(a.mode, 'file', 'mode')
eq(a.permissions, 'rw-r-----', 'permissions')
eq(a.size, 11, 'size')
eq(a.nlink, 1, 'nlink')
for _, k in ipairs { 'dev', 'ino', 'uid', 'gid', 'rdev', 'blksize', 'blocks', 'access', 'modification', 'change' } do
	assert(type(a[k]) == 'number', k .. ' is a number')
end
assert(a.target == nil, 'no target for attributes')
assert(math.abs(a.modification - os.time()) < 3600, 'modification is recent')

-- the single-field form, including every name
eq(lfs.attributes(path, 'size'), 11, 'single size')
eq(lfs.attributes(path, 'mode'), 'file', 'single mode')
eq(lfs.attributes(path, 'permissions'), 'rw-r-----', 'single permissions')
for k, v in pairs(a) do
	eq(lfs.attributes(path, k), v, 'single ' .. k)
end
-- the table form fills the table given
local t = { extra = true }
local r = lfs.attributes(path, t)
assert(r == t and t.extra and t.size == 11, 'table form')
checkerr("(invalid attribute name 'nope')", lfs.attributes, path, 'nope')
checkerr("bad argument #1 to '", lfs.attributes)
checkerr("(string or table expected)", lfs.attributes, path, 42)

-- other kinds of files
eq(lfs.attributes(dir, 'mode'), 'directory', 'directory')
eq(lfs.attributes('/dev/null', 'mode'), 'char device', 'char device')
assert(os.execute('mkfifo ' .. dir .. '/fifo'))
eq(lfs.attributes(dir .. '/fifo', 'mode'), 'named pipe', 'fifo')

-- links: attributes follows, symlinkattributes does not
assert(lfs.link('file.txt', dir .. '/sym', true))
eq(lfs.attributes(dir .. '/sym', 'mode'), 'file', 'attributes follows the link')
eq(lfs.attributes(dir .. '/sym', 'size'), 11, 'size through the link')
local s = assert(lfs.symlinkattributes(dir .. '/sym'))
eq(s.mode, 'link', 'symlinkattributes mode')
eq(s.target, 'file.txt', 'target field')
eq(s.size, #'file.txt', 'a link is as long as its target')
eq(lfs.symlinkattributes(dir .. '/sym', 'target'), 'file.txt', 'single target')
eq(lfs.symlinkattributes(path, 'mode'), 'file', 'symlinkattributes on a plain file')
assert(lfs.symlinkattributes(path).target == nil, 'no target for a plain file')
eq(lfs.readlink(dir .. '/sym'), 'file.txt', 'readlink')

-- failures
local r, err = lfs.attributes(dir .. '/missing')
assert(r == nil and err == 'No such file or directory', tostring(err))
r, err = lfs.symlinkattributes(dir .. '/missing', 'mode')
assert(r == nil and err == 'No such file or directory', tostring(err))
r, err = lfs.attributes(path .. '/below')
assert(r == nil and err == 'Not a directory', tostring(err))
r, err = lfs.readlink(path)
assert(r == nil and err == 'Invalid argument', tostring(err))
r, err = lfs.readlink(dir .. '/missing')
assert(r == nil and err == 'No such file or directory', tostring(err))
-- a dangling link: attributes fails, symlinkattributes does not
assert(lfs.link('nowhere', dir .. '/dangling', true))
r, err = lfs.attributes(dir .. '/dangling')
assert(r == nil and err == 'No such file or directory', tostring(err))
eq(lfs.symlinkattributes(dir .. '/dangling', 'target'), 'nowhere', 'dangling target')
