-- A read refused by the memory cap (utils.memlimit) raises 'not enough
-- memory' where the script can catch it, loses nothing and leaves the
-- stream usable: the next read gets the same line. (The push of a value
-- once raised with the stream's input borrowed, and the next read ended
-- the process.) Over a real loopback TCP connection, and from a file.
local support = dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

local sock = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = sock:getsockname()
local big = ('x'):rep(100000)
utils.spawn(function()
	local c = assert(io.tcp.connect('127.0.0.1', port))
	assert(c:write('hello\n' .. big .. '\nthird\n'))
	utils.newsleeper():sleep(2)
	c:close()
end)
local s = assert(sock:accept())
-- Let all of it arrive: then the reads below finish inside the call
-- (where the cap applies), not when a wait ends.
utils.newsleeper():sleep(0.3)
eq(s:read('*l'), 'hello', 'first line')
-- f(...) under a cap of 4 KiB past what Lua holds now.
local function capped(f, ...)
	collectgarbage()
	collectgarbage()
	utils.memlimit(utils.memory().lua + 4096)
	local r = { pcall(f, ...) }
	utils.memlimit(0)
	return (table.unpack or unpack)(r, 1, 2)
end
-- Read a line of `o` (a Stream or a File) three times under the cap, then
-- without it: the line must be `want` whole. A read that finishes inside
-- the call is refused (and raises); one that finishes when a wait ends is
-- not (nothing could catch the error there). On Lua 5.4 the line is
-- buffered and the read finishes in the call, so it is refused each time.
local function refused_then_read(o, want, what)
	local got
	for _ = 1, 3 do
		local ok, v = capped(o.read, o, '*l')
		if ok then
			got = v
			break
		end
		assert(tostring(v):find('not enough memory'), tostring(v))
	end
	if not jit then
		eq(got, nil, what .. ': Lua 5.4 refused the read under the cap each time')
	end
	eq(got or o:read('*l'), want, what .. ': the refused line read whole once the cap is lifted')
end

refused_then_read(s, big, 'stream')
eq(s:read('*l'), 'third', 'and the next one')
s:close()
sock:close()

-- The same for a File: a line in its read-ahead, refused, then read.
local line = ('y'):rep(20000)
local path = support.write_file('lines.txt', 'first\n' .. line .. '\nlast\n')
local f = assert(io.open(path))
eq(f:read('*l'), 'first', 'file: first line')
refused_then_read(f, line, 'file')
eq(f:read('*l'), 'last', 'file: and the next')
f:close()
print('read memlimit ok')
