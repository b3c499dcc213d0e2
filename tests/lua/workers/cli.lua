-- The command line of lem -w: its options' errors, and a run with
-- --workers=N and --grace.
local support = dofile('support.lua')

local script = support.write_file('ok.lua', [[
local utils = require 'lem.utils'
local id, n = utils.worker()
io.write('worker ', id, ' of ', n, '\n')
require('lem.io').tcp.listen('127.0.0.1', 0):autospawn(function() end)
]])
for _, case in ipairs {
	{ '-w 0 ' .. script, "bad worker count '0'" },
	{ '-w 1025 ' .. script, "bad worker count '1025'" },
	{ '-w many ' .. script, "bad worker count 'many'" },
	{ '-w', "'-w' needs argument" },
	{ '--workers', "'--workers' needs argument" },
	{ '-w 2', "'-w' needs a script to run" },
	{ '-w 2 -', "'-w' cannot run a script from standard input" },
	{ '-w 2 -i ' .. script, "'-w' cannot be used with '-i'" },
	{ '--grace 1 ' .. script, "'--grace' goes with '-w'" },
	{ '-w 2 --grace -1 ' .. script, "'--grace' needs argument" },
	{ '-w 2 --grace=soon ' .. script, "bad grace 'soon'" },
	{ '--gracefully ' .. script, "unrecognized option '--gracefully'" },
} do
	local out, err, code = support.lem(case[1])
	eq(code, 1, case[1])
	eq(out, '', case[1])
	assert(err:find(case[2], 1, true), case[1] .. ': ' .. err)
end

-- Two workers under --workers=2, stopped by SIGTERM after they start.
local dir = support.tmpdir()
local cmd = ('%s --workers=2 --grace=0.5 %s > %s/out 2> %s/err & pid=$!; '
	.. 'for i in $(seq 100); do [ $(grep -c worker %s/out) = 2 ] && break; sleep 0.05; done; '
	.. 'kill -TERM $pid; wait $pid')
	:format(support.shell_quote(arg[-1]), script, dir, dir, dir)
eq(support.exec(cmd), 0, 'exit status after SIGTERM')
local f = assert(_G.io.open(dir .. '/out'))
local lines = {}
for line in f:lines() do lines[#lines + 1] = line end
f:close()
table.sort(lines)
eq(lines, { 'worker 1 of 2', 'worker 2 of 2' }, 'output')
