-- The console (lem -i) as lua.c's REPL: results go through the global
-- print (a failing one is reported as "error calling 'print' (...)" on
-- stderr and the loop goes on), prompts are _PROMPT and _PROMPT2 when set.
dofile('support.lua')

local LEM = arg[-1]
local dir = tmpdir()
local function run(opts, input)
	local f = io.open(dir .. '/in', 'w'); f:write(input); f:close()
	local cmd = "'" .. LEM .. "' " .. opts .. ' -i <' .. dir .. '/in >' .. dir .. '/out 2>' .. dir .. '/err'
	local code = require('support').exec(cmd)
	local function slurp(p) local h = io.open(p); local s = h:read('*a'); h:close(); return s end
	return slurp(dir .. '/out'):gsub('^lem [^\n]*\n', ''), slurp(dir .. '/err'), code
end

-- print is looked up for every line
eq({ run('-e "print=nil"', '10\nprint = function(...) io.write("P:", select("#", ...), "\\n") end\n1, 2\n') },
	{ '> > > P:2\n> ', "error calling 'print' (attempt to call a nil value)\n", 0 }, 'print=nil')
eq({ run('', 'print = function() error("broken", 0) end\n1\nx = 1\n') },
	{ '> > > > ', "error calling 'print' (broken)\n", 0 }, 'print raises')

-- prompts
eq({ run([[-e "_PROMPT='p1 ' _PROMPT2='p2 '"]], 'x = \n1\n=x\n') }, { 'p1 p2 p1 1\np1 ', '', 0 }, '_PROMPT')
eq({ run([[-e "_PROMPT='' _PROMPT2=''"]], '(6*2-6)\n') }, { '6\n', '', 0 }, 'empty prompts')
local tostr = [[-e "local n = 0; _PROMPT = setmetatable({}, {__tostring = function() n = n + 1; return n end})"]]
eq({ run(tostr, ' --\na = 2\n') }, { '123', '', 0 }, '_PROMPT through tostring')
print('ok')
