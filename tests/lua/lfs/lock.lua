-- lfs.lock_dir is exclusive until free(); setmode says 'binary'.
dofile('support.lua')
local lfs = require 'lem.lfs'

local dir = tmpdir()
local lock = assert(lfs.lock_dir(dir))
eq(lfs.symlinkattributes(dir .. '/lockfile.lfs', 'mode'), 'link', 'the lock file')
eq({ lfs.lock_dir(dir) }, { nil, 'File exists' }, 'a second lock fails')
eq(lock:free(), true, 'free')
eq({ lock:free() }, { nil, 'closed' }, 'free twice')
local again = assert(lfs.lock_dir(dir), 'lock again after free')
assert(again:free())
eq({ lfs.lock_dir(dir .. '/missing') }, { nil, 'No such file or directory' }, 'missing dir')

eq(lfs.setmode(io.stdout, 'text'), 'binary', 'setmode')
