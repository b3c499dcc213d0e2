-- Nothing a script prints is lost, and it comes out in order, with any mix
-- of print, _G.io.write and lem.io.stdout, whether stdout is a pipe or a
-- file: C stdio's buffers are flushed before each lem.io.stdout write and
-- before the descriptor closes (at exit, the Lua state's collection closes
-- it, before libc's own flush: LuaJIT's print does not flush).
local support = dofile('support.lua')
local io = require 'lem.io'

local cases = {
	mix = 'p1\nl1\np2\nw1\nl2\np3\n',
	after = 'l1\np1\nw1\n',
	exit = 'p1\nl1\nw1\n',
	stderr = 'p1\nw1\n',
}

local mode = arg[1]
if mode then
	-- The child: write the case `mode`.
	local stdlib = _G.io
	if mode == 'mix' then
		print('p1')
		io.stdout:write('l1\n')
		print('p2')
		stdlib.write('w1\n')
		io.stdout:write('l2\n')
		print('p3')
	elseif mode == 'after' then
		-- The issue's case: stdio output after lem.io wrote to stdout.
		io.stdout:write('l1\n')
		print('p1')
		stdlib.write('w1\n')
	elseif mode == 'exit' then
		print('p1')
		io.stdout:write('l1\n')
		stdlib.write('w1\n')
		require('lem.utils').exit(0)
	elseif mode == 'stderr' then
		print('p1')
		io.stderr:write('e1\n')
		stdlib.write('w1\n')
	elseif mode == 'flood' then
		-- 2 MB through print after lem.io made its Stream on stdout: the
		-- pipe fills, and C stdio must block, not fail with EAGAIN.
		io.stdout:write('start\n')
		local line = ('y'):rep(99)
		for _ = 1, 20000 do print(line) end
	elseif mode == 'big' then
		-- More than a pipe holds, interleaved: lines must stay whole and
		-- in order.
		for i = 1, 3000 do
			if i % 2 == 0 then
				print(('p%05d'):format(i) .. ('.'):rep(60))
			else
				assert(io.stdout:write(('l%05d'):format(i) .. ('.'):rep(60) .. '\n'))
			end
		end
	end
	return
end

local lem = arg[-1]
local function expected(m)
	if m == 'flood' then
		return 'start\n' .. (('y'):rep(99) .. '\n'):rep(20000)
	elseif m ~= 'big' then
		return cases[m]
	end
	local t = {}
	for i = 1, 3000 do
		t[i] = (i % 2 == 0 and 'p' or 'l') .. ('%05d'):format(i) .. ('.'):rep(60) .. '\n'
	end
	return table.concat(t)
end

local out = support.tmpdir() .. '/out'
for _, m in ipairs({ 'mix', 'after', 'exit', 'stderr', 'big', 'flood' }) do
	-- stdout a pipe
	local p = assert(io.popen(("'%s' io/stdout_mix.lua %s 2>/dev/null"):format(lem, m)))
	local got = p:read('*a') or ''
	p:close()
	if got ~= expected(m) then
		error(('%s, stdout a pipe: %d bytes, expected %d'):format(m, #got, #expected(m)))
	end
	-- stdout a file
	eq(support.exec(("'%s' io/stdout_mix.lua %s > '%s' 2>/dev/null"):format(lem, m, out)), 0, m .. ' exit status')
	local f = assert(_G.io.open(out, 'rb'))
	got = f:read('*a')
	f:close()
	if got ~= expected(m) then
		error(('%s, stdout a file: %d bytes, expected %d: %q'):format(m, #got, #expected(m), got:sub(1, 200)))
	end
end
