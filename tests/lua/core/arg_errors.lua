-- Argument errors name the Lua function (never '?') and carry the
-- script's position, never one inside lem's Lua halves
-- (`lua/lem/process.lua:110:`); the original's texts are kept.
dofile('support.lua')
local io = require 'lem.io'
local lfs = require 'lem.lfs'
local client = require 'lem.http.client'

local here = 'core/arg_errors.lua:'

-- f() must raise `msg` at this script's line (no internal position).
local function raises(msg, f)
	local err = checkerr(msg, f)
	assert(err:sub(1, #here) == here, 'position is not the script\'s: ' .. err)
	assert(not err:find('lua/lem/', 1, true), 'internal position: ' .. err)
	return err
end

local dir = tmpdir()
local f = assert(io.open(dir .. '/f', 'w'))

raises("bad argument #1 to 'read' (invalid format)", function() local v = f:read('nope') return v end)
raises("bad argument #2 to 'open' (invalid mode string)", function() local v = io.open(dir .. '/g', 'q') return v end)
raises("bad argument #2 to 'popen' (invalid option 'x')", function() local v = io.popen('true', 'x') return v end)
raises("bad argument #1 to 'lock' (invalid option)", function() local v = f:lock('x') return v end)
raises("bad argument #2 to 'lock' (invalid option)", function() local v = lfs.lock(f, 'x') return v end)
raises("bad argument #1 to 'get' (invalid url)", function() local c = client.new() local v = c:get('notaurl') return v end)
-- Through the Lua halves: lines, io.read, io.lines, io.tcp.listen.
raises("bad argument #1 to 'read' (invalid format)", function() for _ in f:lines('nope') do end end)
raises("bad argument #1 to 'read' (invalid format)", function() local v = io.read('nope') return v end)
raises("bad argument #2 to 'listen' (invalid port)", function() local v = io.tcp.listen('127.0.0.1', 'http') return v end)
raises("bad argument #2 to 'listen' (number expected, got table)", function() local v = io.tcp.listen('127.0.0.1', {}) return v end)
raises("bad argument #1 to 'spawn'", function() local v = io.spawn(5) return v end)

-- Called straight from pcall, a native function is still named.
local ok, err = pcall(f.read, f, 'nope')
assert(not ok)
eq(err, "bad argument #2 to 'read' (invalid format)", 'pcall(f.read, ...)')
ok, err = pcall(io.open, dir .. '/g', 'q')
eq(err, "bad argument #2 to 'open' (invalid mode string)", 'pcall(io.open, ...)')
ok, err = pcall(io.tcp.connect)
assert(not ok and err:find("to 'connect'", 1, true), err)
-- A bad self.
ok, err = pcall(function() local v = f.read('x') return v end)
assert(not ok and err:find("'read'", 1, true) and not err:find("'?'", 1, true), err)

f:close()
