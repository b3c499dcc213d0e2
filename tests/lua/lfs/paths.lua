-- mkdir, rmdir, remove, rename, link (hard and symbolic), touch, chdir,
-- currentdir, readlink: each with its failure case.
dofile('support.lua')
-- (Argument errors are matched without the function's name: Lua 5.4 calls
-- it 'lem.lfs.touch', LuaJIT by the name at the call site.)
local lfs = require 'lem.lfs'

local dir = tmpdir()
local function write(path, s)
	local f = assert(io.open(path, 'w'))
	f:write(s)
	f:close()
end
local function read(path)
	local f = assert(io.open(path))
	local s = f:read('*a')
	f:close()
	return s
end
local function fails(msg, ok, err)
	assert(ok == nil, 'expected a failure')
	eq(err, msg, 'error message')
end

-- mkdir / rmdir
eq(lfs.mkdir(dir .. '/a'), true, 'mkdir')
eq(lfs.attributes(dir .. '/a', 'mode'), 'directory', 'made a directory')
fails('File exists', lfs.mkdir(dir .. '/a'))
fails('No such file or directory', lfs.mkdir(dir .. '/x/y'))
write(dir .. '/a/file', 'x')
fails('Directory not empty', lfs.rmdir(dir .. '/a'))
fails('Not a directory', lfs.rmdir(dir .. '/a/file'))
fails('No such file or directory', lfs.rmdir(dir .. '/nope'))

-- remove
eq(lfs.remove(dir .. '/a/file'), true, 'remove')
fails('No such file or directory', lfs.remove(dir .. '/a/file'))
fails('Is a directory', lfs.remove(dir .. '/a'))
eq(lfs.rmdir(dir .. '/a'), true, 'rmdir')
eq(lfs.attributes(dir .. '/a'), nil, 'gone')

-- rename
write(dir .. '/old', 'content')
eq(lfs.rename(dir .. '/old', dir .. '/new'), true, 'rename')
eq(read(dir .. '/new'), 'content', 'renamed content')
fails('No such file or directory', lfs.rename(dir .. '/old', dir .. '/other'))
assert(lfs.mkdir(dir .. '/d'))
fails('Is a directory', lfs.rename(dir .. '/new', dir .. '/d'))

-- link: hard
eq(lfs.link(dir .. '/new', dir .. '/hard'), true, 'hard link')
eq(lfs.attributes(dir .. '/new', 'nlink'), 2, 'two links')
eq(lfs.attributes(dir .. '/hard', 'ino'), lfs.attributes(dir .. '/new', 'ino'), 'same inode')
eq(lfs.symlinkattributes(dir .. '/hard', 'mode'), 'file', 'a hard link is a file')
fails('File exists', lfs.link(dir .. '/new', dir .. '/hard'))
fails('No such file or directory', lfs.link(dir .. '/none', dir .. '/hard2'))
-- link: symbolic (the target need not exist)
eq(lfs.link('new', dir .. '/soft', true), true, 'symlink')
eq(lfs.readlink(dir .. '/soft'), 'new', 'readlink')
eq(read(dir .. '/soft'), 'content', 'read through the link')
fails('File exists', lfs.link('new', dir .. '/soft', true))

-- touch
eq(lfs.touch(dir .. '/new', 1000000000), true, 'touch with atime')
eq(lfs.attributes(dir .. '/new', 'access'), 1000000000, 'atime')
eq(lfs.attributes(dir .. '/new', 'modification'), 1000000000, 'mtime defaults to atime')
eq(lfs.touch(dir .. '/new', 1000000000, 1200000000), true, 'touch with both')
eq(lfs.attributes(dir .. '/new', 'access'), 1000000000, 'atime')
eq(lfs.attributes(dir .. '/new', 'modification'), 1200000000, 'mtime')
eq(lfs.touch(dir .. '/new'), true, 'touch now')
assert(math.abs(lfs.attributes(dir .. '/new', 'modification') - os.time()) < 60, 'now')
fails('No such file or directory', lfs.touch(dir .. '/none'))
checkerr("(number expected, got string)", lfs.touch, dir .. '/new', 'x')

-- chdir / currentdir
local cwd = assert(lfs.currentdir())
eq(lfs.chdir(dir .. '/d'), true, 'chdir')
local here = assert(lfs.currentdir())
eq(here:sub(-2), '/d', 'currentdir after chdir')
write('relative', 'r')
eq(read(dir .. '/d/relative'), 'r', 'relative paths follow chdir')
fails('No such file or directory', lfs.chdir(dir .. '/none'))
fails('Not a directory', lfs.chdir(dir .. '/new'))
eq(lfs.currentdir(), here, 'a failed chdir changes nothing')
assert(lfs.chdir(cwd))
eq(lfs.currentdir(), cwd, 'back')

-- argument errors raise
checkerr("(string expected, got no value)", lfs.mkdir)
checkerr("(string expected, got no value)", lfs.rename, 'a')
checkerr("(string expected, got nil)", lfs.link, 'a', nil)
