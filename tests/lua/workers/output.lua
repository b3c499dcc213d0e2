-- lem -w: workers' output reaches the supervisor's stdout and stderr a
-- whole line at a time, however long the lines and however the workers
-- interleave; utils.worker() gives each its number.
local support = dofile('support.lua')
local utils = require 'lem.utils'
local io = require 'lem.io'

local script = support.write_file('talk.lua', [[
local utils = require 'lem.utils'
local io = require 'lem.io'
local id, n = utils.worker()
local line = string.rep(tostring(id), 70000)
for i = 1, 20 do
	print(line)
	io.stderr:write(line:sub(1, 1000 * i), '\n')
	io.stdout:write(line:sub(1, 3000), '\n')
end
io.stdout:write('no newline at the end ', id)
assert(require('lem.io').tcp.listen('127.0.0.1', 0)):autospawn(function() end)
]])
local p = assert(io.spawn({ arg[-1], '-w', '3', script }, { stdout = 'pipe', stderr = 'pipe' }))
local err = {}
utils.spawn(function()
	for line in function() return p.stderr:read('*l') end do err[#err + 1] = line end
end)
local counts, tails = {}, {}
local function all_lines()
	for d = 1, 3 do
		if counts[tostring(d)] ~= 40 then return false end
	end
	return true
end
-- An unterminated last line is passed on when its worker ends.
local stopped = false
for line in function() return p.stdout:read('*l') end do
	local tail = line:match('^no newline at the end (%d)$')
	if tail then
		tails[#tails + 1] = tail
	else
		local d = line:sub(1, 1)
		assert(d:match('[123]') and line == string.rep(d, #line), 'a mixed line: ' .. line:sub(1, 40))
		assert(#line == 70000 or #line == 3000, #line)
		counts[d] = (counts[d] or 0) + 1
	end
	if not stopped and all_lines() then
		stopped = true
		assert(p:kill('INT'))
	end
end
assert(all_lines(), 'every line came')
table.sort(tails)
eq(tails, { '1', '2', '3' }, 'unterminated last lines')
local how = assert(p:wait())
eq({ how.type, how.status }, { 'exited', 0 }, 'exit')
utils.newsleeper():sleep(0.1)
local n = 0
for _, line in ipairs(err) do
	local d = line:sub(1, 1)
	assert(line == string.rep(d, #line), 'a mixed line on stderr: ' .. line:sub(1, 40))
	n = n + 1
end
eq(n, 60, 'stderr lines')
