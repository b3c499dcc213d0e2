-- Fifos, io.streamfile, io.fromfd and the standard streams (in child lem
-- processes, so their descriptors can be arranged by the shell).
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

local dir = tmpdir()
local lem = arg[-1]

-- A fifo opened twice in one process: io.open waits for the other side
-- on the pool, and gives Streams.
local fifo = dir .. '/fifo'
assert(os.execute('mkfifo ' .. fifo))
local w
utils.spawn(function()
	w = assert(io.open(fifo, 'w'))
	assert(getmetatable(w).__index == io.Stream, 'a fifo is a Stream')
	w:write('through the fifo\n', 'second')
	w:close()
end)
local r = assert(io.open(fifo, 'r'))
assert(getmetatable(r).__index == io.Stream, 'a fifo is a Stream')
eq(r:read('*l'), 'through the fifo', 'fifo line')
eq(r:read('*a'), 'second', 'fifo rest')
eq({ r:read() }, { nil, 'closed' }, 'fifo closed')
r:close()

-- io.streamfile: a file read like a socket.
local path = dir .. '/data'
local f = assert(io.open(path, 'w'))
local text = ('streamfile line\n'):rep(5000)
f:write(text)
f:close()
local s = assert(io.streamfile(path))
assert(getmetatable(s).__index == io.Stream, 'streamfile gives a Stream')
eq(s:read('*l'), 'streamfile line', 'streamfile first line')
eq(#s:read('*a'), #text - 16, 'streamfile rest')
s:close()
eq({ io.streamfile(dir .. '/missing') }, { nil, 'No such file or directory' }, 'streamfile error')

-- Children: run lem with arranged descriptors, collect stdout.
local function child(code, redirect)
	local script = dir .. '/child.lua'
	local cf = assert(_G.io.open(script, 'w'))
	cf:write(code)
	cf:close()
	local p = assert(_G.io.popen(('%s %s %s'):format(lem, script, redirect or '')))
	local out = p:read('*a')
	local ok = p:close()
	return out, ok
end

-- io.fromfd: a File for a regular file, a Server for a listening socket.
eq(child([[
local io = require 'lem.io'
local f = assert(io.fromfd(5))
assert(getmetatable(f).__index == io.File)
print(f:read('*l'))
local bad, err = io.fromfd(77)
print(bad, err)
]], '5<' .. path), 'streamfile line\nnil\tBad file descriptor\n', 'fromfd')

-- io.fromfd: a Server for an inherited listening socket, a Stream for a
-- connected one.
local script = dir .. '/fromfd.lua'
local sf = assert(_G.io.open(script, 'w'))
sf:write([[
local io = require 'lem.io'
local utils = require 'lem.utils'
local s = assert(io.fromfd(5))
assert(getmetatable(s).__index == io.Server, 'a listening socket is a Server')
local _, port = s:getsockname()
utils.spawn(function()
	local c = assert(io.tcp.connect('127.0.0.1', port))
	c:write('via inherited server\n')
	c:close()
end)
local c = assert(s:accept())
print(c:read('*l'))
local peer = assert(io.fromfd(6))
assert(getmetatable(peer).__index == io.Stream, 'a connected socket is a Stream')
print(peer:read('*l'))
]])
sf:close()
local py = ([[python3 -c "
import os, socket
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(8)
a, b = socket.socketpair()
b.sendall(b'via socketpair\n')
os.dup2(s.fileno(), 5); os.dup2(a.fileno(), 6)
os.execv('%s', ['%s', '%s'])"]]):format(lem, lem, script)
local p = assert(_G.io.popen(py))
eq(p:read('*a'), 'via inherited server\nvia socketpair\n', 'fromfd server and stream')
p:close()

-- io.stdin / io.stdout as non-blocking Streams; io.read/io.write/io.lines.
eq(child([[
local io = require 'lem.io'
assert(getmetatable(io.stdin).__index == io.Stream)
local first = io.read('*l')
local n = 0
for l in io.lines() do n = n + 1 end
assert(io.write('first=', first, ' more=', tostring(n), '\n') == io.stdout)
io.stdout:write('done\n')
]], '< ' .. path), 'first=streamfile line more=4999\ndone\n', 'stdin/stdout')

-- At exit the standard descriptors are blocking again: a second program
-- sharing the same pipe sees no O_NONBLOCK.
local out = child([[
local io = require 'lem.io'
io.stdout:write('x\n')
]], [[| (cat; python3 -c "import fcntl, os; print(fcntl.fcntl(0, fcntl.F_GETFL) & os.O_NONBLOCK)")]])
eq(out, 'x\n0\n', 'restored after exit (piped stdout)')
out = child([[
local io = require 'lem.io'
local l = io.stdin:read('*l')
print(l)
]], [[< ]] .. fifo .. [[ & python3 -c "
import fcntl, os, sys
w = os.open(']] .. fifo .. [[', os.O_WRONLY)
os.write(w, b'via fifo\n')
os.close(w)"; wait]])
eq(out, 'via fifo\n', 'stdin from a fifo')

-- io.input/io.output with paths, io.close.
local outpath = dir .. '/out'
eq(child(([[
local io = require 'lem.io'
io.output('%s')
io.write('written', '\n')
io.close()
io.input('%s')
print(io.read('*a'))
for l in io.lines('%s') do print('line', l) end
]]):format(outpath, outpath, outpath)), 'written\n\nline\twritten\n', 'io.input/output/lines/close')
