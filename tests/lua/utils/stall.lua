-- The stall report and limit (lem --stall / --stall-kill, utils.stall) and
-- the memory cap (lem --max-memory, utils.memlimit, utils.memory), run in
-- child processes whose stderr is checked.
local support = dofile('support.lua')
local run, q = support.lem, support.shell_quote
local utils = require 'lem.utils'

local script = support.write_file('hog.lua', [[
local utils = require 'lem.utils'
local function hog(ms)
	local t = os.clock()
	while os.clock() - t < ms / 1000 do end
end
local mode = ...
if mode == 'report' then
	hog(150)
	print('done')
elseif mode == 'kill' then
	print(pcall(hog, 2000))
	utils.stall(nil)
	hog(100)
	print('after')
elseif mode == 'calm' then
	for i = 1, 20 do utils.newsleeper():sleep(0.005) hog(2) end
	print('calm')
elseif mode == 'api' then
	utils.stall(30)
	hog(100)
	utils.stall(nil)
	hog(100)
	print('api')
end
]])

-- A report names the stall and the culprit's line, once per stall.
local out, err, code = run('--stall 40 ' .. q(script) .. ' report')
eq({ out, code }, { 'done\n', 0 }, 'report run: ' .. err)
assert(err:find('stall: a coroutine has held the loop for %d+ ms without suspending'), err)
assert(err:find('hog.lua:4'), 'traceback names the busy line: ' .. err)
local _, reports = err:gsub('stall:', '')
eq(reports, 1, 'one report per stall')

-- --stall-kill raises 'timeout' in it; turned off, hogging goes on.
out, err, code = run('--stall-kill=40 ' .. q(script) .. ' kill')
eq({ out, code }, { 'false\ttimeout\nafter\n', 0 }, 'kill run: ' .. err)

-- Short holds are not stalls.
out, err, code = run('--stall 500 ' .. q(script) .. ' calm')
eq({ out, err, code }, { 'calm\n', '', 0 }, 'calm run')

-- utils.stall from the script; nil turns it off.
out, err, code = run(q(script) .. ' api')
eq({ out, code }, { 'api\n', 0 }, 'api run: ' .. err)
local _, n = err:gsub('stall:', '')
eq(n, 1, 'only the watched hog is reported')

-- Bad values.
out, err, code = run('--stall 0 ' .. q(script))
eq(code, 1, 'bad --stall')
assert(err:find("bad stall limit '0'"), err)
out, err, code = run('--max-memory lots ' .. q(script))
eq(code, 1, 'bad --max-memory')
assert(err:find("bad memory size 'lots'"), err)
checkerr('milliseconds must be a positive number', utils.stall, -1)
checkerr("'kill' or nil expected", utils.stall, 10, 'maim')
checkerr('size expected', utils.memlimit, 'lots')
checkerr('size must be 0 or more bytes', utils.memlimit, -1)

-- utils.memory().
local m = utils.memory()
assert(math.type == nil or math.type(m.lua) == 'integer', 'lua is an integer')
assert(m.lua > 0 and m.buffers >= 0 and m.limit == nil, 'memory fields')

-- The cap: a coroutine that grows a table without end gets 'not enough
-- memory'; another keeps answering over TCP meanwhile and after.
local capped = support.write_file('cap.lua', [[
local utils, io = require 'lem.utils', require 'lem.io'
local srv = assert(io.tcp.listen4('127.0.0.1', 0))
local _, port = srv:getsockname()
utils.spawn(function()
	srv:autospawn(function(c)
		for line in c:lines() do c:write(line, '\n') end
		c:close()
	end)
end)
local answers = 0
local function ask()
	local c = assert(io.tcp.connect('127.0.0.1', port))
	c:write('ping\n')
	assert(c:read('*l') == 'ping')
	c:close()
	answers = answers + 1
end
ask()
print('limit', utils.memory().limit)
local t = {}
local ok, err = pcall(function()
	for i = 1, 1e9 do
		t[i] = ('x'):rep(64) .. i
		if i % 10000 == 0 then utils.yield() end
	end
end)
print(ok, err)
t = nil
collectgarbage()
ask()
print('answers', answers, utils.memory().lua < 32 * 2^20)
srv:close()
]])
out, err, code = run('--max-memory 32m ' .. q(capped))
eq({ out, err, code }, {
	'limit\t33554432\nfalse\tnot enough memory\nanswers\t2\ttrue\n', '', 0,
}, 'memory cap')
print('ok')
