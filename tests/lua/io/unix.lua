-- io.unix: listen with perm, connect, getpeer '*unix', errors.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

local path = tmpdir() .. '/sock'
local s = assert(io.unix.listen(path, 600))
eq(s:getsockname(), path, 'socket path')
local mode = io.open(path) -- a socket cannot be opened: an OS error value
eq(mode, nil, 'open a socket fails')

-- perm: octal-looking number, applied to the socket file.
local p = assert(_G.io.popen('stat -c %a ' .. path)):read('*l')
eq(p, '600', 'perm')

utils.spawn(function()
	local c = assert(io.unix.connect(path))
	eq({ c:cork() }, { nil, 'Operation not supported' }, 'cork on a Unix socket')
	c:write('over unix\n')
	eq(c:read('*l'), 'reply', 'client reads')
	c:close()
end)
local c = assert(s:accept())
local kind, uid, gid = c:getpeer()
eq(kind, '*unix', 'getpeer kind')
assert(type(uid) == 'number' and uid % 1 == 0 and type(gid) == 'number', 'uid, gid')
eq(c:read('*l'), 'over unix', 'server reads')
c:write('reply\n')
eq({ c:read() }, { nil, 'closed' }, 'client closed')
c:close()

local again, err = io.unix.listen(path)
eq(again, nil, 'path in use')
eq(err, ("error binding to '%s': Address already in use"):format(path), 'bind error')
s:close()

local r, cerr = io.unix.connect(tmpdir() .. '/nothing')
eq(r, nil, 'connect to nothing')
assert(cerr:find('No such file or directory', 1, true), cerr)
checkerr('path too long', io.unix.connect, ('x'):rep(200))
checkerr('path too long', io.unix.listen, ('x'):rep(200))
checkerr('invalid permissions', io.unix.listen, tmpdir() .. '/p', 985)
