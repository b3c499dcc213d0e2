-- io.spawn (lem.process.spawn): argv without a shell, piped stdio as
-- Streams, environment, working directory, and argument errors.
dofile('support.lua')
local process = require 'lem.process'
local procs = dofile('process/data/procs.lua')

-- stdout piped; arguments are passed as they are (no shell quoting)
local p = assert(process.spawn({ 'printf', '%s|%s', 'a b', "c'd" }, { stdout = 'pipe' }))
assert(type(p.pid) == 'number' and p.pid > 0, 'pid')
eq(p.stdout:read('*a'), "a b|c'd", 'stdout')
eq(p:wait(), { pid = p.pid, rpid = p.pid, type = 'exited', status = 0 }, 'wait')
assert(p.stdin == nil and p.stderr == nil, 'only stdout is piped')

-- stdin and stdout piped: cat echoes what it is given
p = assert(process.spawn({ 'cat' }, { stdin = 'pipe', stdout = true }))
assert(p.stdin:write('hello ', 'cat\n'))
eq(p.stdout:read('*l'), 'hello cat', 'echoed')
assert(p.stdin:close())
eq(p.stdout:read('*a'), '', 'eof after stdin closed')
eq(p:wait().status, 0, 'cat exited')

-- stderr piped, stdout to /dev/null
p = assert(process.spawn({ 'sh', '-c', 'echo out; echo err >&2; exit 4' }, { stdout = 'null', stderr = 'pipe' }))
eq(p.stderr:read('*a'), 'err\n', 'stderr')
eq(p:wait().status, 4, 'exit 4')

-- the environment is replaced by env
p = assert(process.spawn({ '/usr/bin/env' }, { env = { ONLY = 'this one', PATH = '/bin' }, stdout = 'pipe' }))
local lines = {}
for l in p.stdout:lines() do lines[#lines + 1] = l end
table.sort(lines)
eq(lines, { 'ONLY=this one', 'PATH=/bin' }, 'environment')
p:wait()

-- the working directory
local dir = tmpdir()
p = assert(process.spawn({ 'pwd' }, { cwd = dir, stdout = 'pipe' }))
local out = p.stdout:read('*l')
eq(out:sub(-#dir), dir:sub(-#out), 'cwd')
p:wait()

-- a program that does not exist
local r, err = process.spawn { 'no-such-program-lem', 'x' }
eq(r, nil, 'missing program')
eq(err, "cannot run 'no-such-program-lem': No such file or directory", 'message names it')
r, err = process.spawn { dir }
eq(err, "cannot run '" .. dir .. "': Permission denied", 'a directory')

-- argument errors raise
checkerr("bad argument #1 to 'spawn' (table expected, got no value)", process.spawn)
checkerr("bad argument #1 to 'spawn' (table expected, got string)", process.spawn, 'ls')
checkerr("bad argument #1 to 'spawn' (argv is empty: no program to run)", process.spawn, {})
checkerr("bad argument #1 to 'spawn' (argv[2] is a number, not a string)", process.spawn, { 'echo', 1 })
checkerr("bad argument #1 to 'spawn' (argv[1] is a table, not a string)", process.spawn, { {} })
checkerr("bad argument #2 to 'spawn' (env must map strings to strings)", process.spawn, { 'true' }, { env = { 1 } })
checkerr("bad argument #2 to 'spawn' (cwd must be a string)", process.spawn, { 'true' }, { cwd = 1 })
checkerr("bad argument #2 to 'spawn' (stdout must be 'inherit', 'null' or 'pipe')", process.spawn, { 'true' }, { stdout = 'x' })
checkerr("bad argument #2 to 'spawn' (table expected, got string)", process.spawn, { 'true' }, 'x')

collectgarbage()
procs.no_zombies('after spawn')
