-- The lua-compatible command line: options, arg, LUA_INIT, stdin, errors.
local support = dofile('support.lua')

local LEM = arg[-1]
local dir = tmpdir()

local q, run, script = support.shell_quote, support.lem, support.write_file

-- arg: script at 0, arguments after, interpreter and options before
local s = script('args.lua', 'for i = -3, #arg do io.write(i, "=", tostring(arg[i]), " ") end print("|", ...)')
local out, err, code = run('-e "x=1" ' .. s .. ' a b')
eq(code, 0, 'exit status: ' .. err)
eq(out, '-3=' .. LEM .. ' -2=-e -1=x=1 0=' .. s .. ' 1=a 2=b |\ta\tb\n', 'arg table')

-- shebang line is skipped
s = script('shebang.lua', '#!/usr/bin/env lem\nprint("ran", ...)\n')
eq({ run(s .. ' 1') }, { 'ran\t1\n', '', 0 }, 'shebang')

-- -e in order, -l mod and -l g=mod
eq({ run('-e "io.write(1)" -e "io.write(2)"') }, { '12', '', 0 }, '-e order')
eq({ run('-l string -e "io.write(string.rep(\'a\', 2))"') }, { 'aa', '', 0 }, '-l mod')
eq({ run('-l q=lem.queue -e "io.write(type(q.new))"') }, { 'function', '', 0 }, '-l g=mod')
eq({ run('-lstring -e"io.write(1)"') }, { '1', '', 0 }, 'attached option values')

-- -v prints the version; -i implies it
out, err, code = run('-v')
eq(code, 0, '-v status')
assert(out:match('^lem %d+%.%d+%.%d+ %(.*Lua.*%)\n$'), out)

-- --: stop handling options; -: script from stdin with arguments
s = script('dash.lua', 'io.write("dash ", ...)')
eq({ run('-- ' .. s .. ' -x') }, { 'dash -x', '', 0 }, '--')
eq({ run('- a b', 'io.write("stdin ", ...)') }, { 'stdin ab', '', 0 }, '- reads stdin')
-- no script, piped stdin: run it like lua does
eq({ run('', 'io.write("piped")') }, { 'piped', '', 0 }, 'piped stdin')

-- LUA_INIT and LUA_INIT_5_4 (string and @file), and -E ignoring them
local init = script('init.lua', 'y = "from file"')
eq({ run('-e "io.write(x)"', nil, 'LUA_INIT="x=5"') }, { '5', '', 0 }, 'LUA_INIT')
eq({ run('-e "io.write(y)"', nil, 'LUA_INIT=@' .. init) }, { 'from file', '', 0 }, 'LUA_INIT=@file')
eq({ run('-E -e "io.write(tostring(x))"', nil, 'LUA_INIT="x=5"') }, { 'nil', '', 0 }, '-E')
eq({ run('-E -e "io.write(package.path:find(\'nowhere\') and 1 or 0)"', nil, 'LUA_PATH="/nowhere/?.lua"') },
	{ '0', '', 0 }, '-E ignores LUA_PATH')
eq({ run('-e "io.write(package.path:find(\'nowhere\') and 1 or 0)"', nil, 'LUA_PATH="/nowhere/?.lua"') },
	{ '1', '', 0 }, 'LUA_PATH')
if _VERSION == 'Lua 5.4' then
	eq({ run('-e "io.write(x)"', nil, 'LUA_INIT="x=5" LUA_INIT_5_4="x=6"') }, { '6', '', 0 }, 'LUA_INIT_5_4 first')
end
out, err, code = run('-e "io.write(1)"', nil, 'LUA_INIT="error(\'init failed\')"')
eq({ out, code }, { '', 1 }, 'failing LUA_INIT stops')
assert(err:find('init failed', 1, true), err)

-- -W turns warnings on (Lua 5.4)
if _VERSION == 'Lua 5.4' then
	out, err = run('-W -e "warn(\'careful\')"')
	assert(err:find('careful', 1, true), 'warning shown: ' .. err)
	out, err = run('-e "warn(\'careful\')"')
	eq(err, '', 'warnings off by default')
end

-- errors: lem: msg, with lua's wording, and status 1
out, err, code = run('-x')
eq(code, 1, 'bad option status')
assert(err:find("lem: unrecognized option '-x'", 1, true), err)
assert(err:find('usage: ' .. LEM .. ' [options]', 1, true), err)
out, err, code = run('-e')
eq(code, 1, 'missing argument')
assert(err:find("lem: '-e' needs argument", 1, true), err)
out, err, code = run(dir .. '/missing.lua')
eq(code, 1, 'missing script')
assert(err:find('lem: cannot open ' .. dir .. '/missing.lua', 1, true), err)
s = script('syntax.lua', 'x = = 1')
out, err, code = run(s)
eq(code, 1, 'syntax error status')
-- (LuaJIT shortens long chunk names from the left)
assert(err:find('^' .. LEM:gsub('%p', '%%%0') .. ': .*syntax%.lua:1:'), err)
out, err, code = run('-e "error(\'boom\')"')
eq(code, 1, 'runtime error status')
assert(err:find('lem: (command line):1: boom', 1, true), err)
assert(err:find('stack traceback:', 1, true), err)

-- the process runs spawned coroutines to the end after the script returns
s = script('tail.lua', [[
local utils = require 'lem.utils'
utils.spawn(function() utils.newsleeper():sleep(0.01); io.write('late') end)
io.write('main ')
]])
eq({ run(s) }, { 'main late', '', 0 }, 'loop runs after the script')
-- and a script's coroutines keep running while a later -i REPL reads
print('ok')
