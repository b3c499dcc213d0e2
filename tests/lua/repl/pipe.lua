-- The REPL driven through a pipe: expressions, =expr, continuation lines,
-- errors that don't end it, and coroutines that run between lines.
dofile('support.lua')

local LEM = arg[-1]
local dir = tmpdir()
local input = table.concat({
	'1+2',
	'=3*4',
	'x = 10',
	'for i = 1, 2 do',
	'  print("loop", i)',
	'end',
	'error("oops")',
	'x',
	'local u = require "lem.utils"; u.spawn(function() print("spawned ran") end)',
	'"after"',
	'return 1, nil, "three"',
	'',
}, '\n')
local f = io.open(dir .. '/in', 'w'); f:write(input); f:close()
local p = io.popen("'" .. LEM .. "' -i < " .. dir .. '/in 2>&1; echo "[exit $?]"')
local out = p:read('*a')
p:close()
local status
out, status = out:match('^(.*)%[exit (%d+)%]\n$')
eq(status, '0', 'repl exits 0 at end of input')
local expect = {
	'^lem %S+ %(.-%)\n',
	'> 3\n',
	'> 12\n',
	'> > >> >> loop\t1\nloop\t2\n',
	'> stdin:1: oops\n',
	'> 10\n',
	'> > spawned ran\nafter\n',
	'> 1\tnil\tthree\n',
	'> $',
}
local pos = 1
for _, pat in ipairs(expect) do
	local s, e = out:find(pat, pos)
	assert(s == pos, ('expected %q at %d in:\n%s'):format(pat, pos, out))
	pos = e + 1
end

-- repl(name, instream, outstream) over any two objects with read/write
local repl = require 'lem.repl'
local lines = { 'return 6*7', 'if true then', 'print_ok = true end', '' }
local written = {}
local instream = { read = function() return table.remove(lines, 1) end }
local outstream = { write = function(_, s) written[#written + 1] = s end }
eq(repl.repl('remote', instream, outstream), true, 'repl returns at end of input')
local text = table.concat(written)
eq(text, '> 42\n> >> > > ', 'remote repl transcript')
eq(print_ok, true, 'multi-line statement ran')
print('ok')
