-- lem.lfs: LuaFileSystem on the event loop. The calls that touch the disk
-- are in lem.lfs.core (src/lfs.rs) and run on the blocking pool; this half
-- adds what is built from other objects: record locks on a lem.io File,
-- directory locks, setmode. See docs/lfs.md.

local core = require 'lem.lfs.core'

local pairs, setmetatable, type, error, format = pairs, setmetatable, type, error, string.format
local link, remove = core.link, core.remove

local M = {}
for name, f in pairs(core) do
	M[name] = f
end

-- A File (anything with a lock method: a lem.io File), else misuse.
local function checkfile(file, name)
	local t = type(file)
	if (t ~= 'userdata' and t ~= 'table') or type(file.lock) ~= 'function' then
		error(format("bad argument #1 to '%s' (file expected, got %s)", name, file == nil and 'no value' or type(file)), 3)
	end
end

-- lfs.lock(file, mode [, start [, len]]): a POSIX record lock through the
-- File's own lock method ('r', 'w'; never waits).
function M.lock(file, mode, ...)
	checkfile(file, 'lock')
	if mode ~= 'r' and mode ~= 'w' then
		error("bad argument #2 to 'lock' (invalid option)", 2)
	end
	local ok, err = file:lock(mode, ...)
	return ok, err
end

-- lfs.unlock(file [, start [, len]])
function M.unlock(file, ...)
	checkfile(file, 'unlock')
	local ok, err = file:lock('u', ...)
	return ok, err
end

-- lfs.setmode(file, mode) -> 'binary': there is no text mode on POSIX.
function M.setmode()
	return 'binary'
end

local Lock = {}
Lock.__index = Lock

-- lock:free() -> true | nil, err
function Lock:free()
	local filename = self.filename
	if not filename then
		return nil, 'closed'
	end
	self.filename = nil
	return remove(filename)
end

-- lfs.lock_dir(path) -> lock | nil, err
--
-- The lock is a symbolic link `path/lockfile.lfs`: creating one fails
-- with 'File exists' while another holder has not freed it, in this or
-- any other process.
function M.lock_dir(path)
	local filename = path .. '/lockfile.lfs'
	local ok, err = link('lock', filename, true)
	if not ok then
		return nil, err
	end
	return setmetatable({ filename = filename }, Lock)
end

return M
