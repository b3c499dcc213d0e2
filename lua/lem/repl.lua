-- lem.repl: a read-eval-print loop on the event loop, over any two streams
-- (a TCP client makes a remote console) or over the console itself.
-- See docs/repl.md; the console's line reading is lem.repl.core.
local core = require 'lem.repl.core'

local load, loadstring, pcall, select, tostring = load, loadstring, pcall, select, tostring
local concat = table.concat

local M = {}

-- Lua 5.1 and LuaJIT quote the marker, 5.4 does not.
local function incomplete(msg)
	return msg:sub(-5) == '<eof>' or msg:sub(-7) == "'<eof>'"
end

local compile = loadstring or load

-- As lua.c: try the line as an expression first, then as statements.
local function compile_line(src, chunkname)
	if src:sub(1, 1) == '=' then src = 'return ' .. src:sub(2) end
	-- (through select, so the expression is no tail call that would hide
	-- an error's position)
	local f = compile('return select(1, ' .. src .. '\n)', chunkname)
	if f then return f end
	return compile(src, chunkname)
end

-- How a stream REPL shows a line's results: put() them, tab-separated.
local function show(put, ok, ...)
	local n = select('#', ...)
	if not ok then
		put(tostring((...)) .. '\n')
	elseif n > 0 then
		local out = {}
		for i = 1, n do out[i] = tostring((select(i, ...))) end
		put(concat(out, '\t') .. '\n')
	end
end

local function fixed_prompt(first)
	return first and '> ' or '>> '
end

-- The loop: getline(prompt) gives a line or nil at end of input, put(s)
-- writes output. Errors are printed and the loop goes on. The console
-- passes its own prompt(first) and show(put, ok, ...).
function M.loop(name, getline, put, prompt, display)
	local chunkname = '=' .. name
	prompt, display = prompt or fixed_prompt, display or show
	while true do
		local line = getline(prompt(true))
		if line == nil then return true end
		local f, err = compile_line(line, chunkname)
		while not f and incomplete(err) do
			local more = getline(prompt(false))
			if more == nil then break end
			line = line .. '\n' .. more
			f, err = compile_line(line, chunkname)
		end
		if f then
			display(put, pcall(f))
		else
			put(err .. '\n')
		end
	end
end

-- repl(name, instream, outstream): the loop over two streams, e.g. a TCP
-- client's. Returns when instream ends.
function M.repl(name, instream, outstream)
	return M.loop(name, function(prompt)
		outstream:write(prompt)
		return instream:read('*l')
	end, function(s)
		outstream:write(s)
	end)
end

-- As lua.c: the prompts are the globals _PROMPT and _PROMPT2 (any value,
-- through tostring) when set.
local function console_prompt(first)
	local p = _G[first and '_PROMPT' or '_PROMPT2']
	if p == nil then return fixed_prompt(first) end
	return tostring(p)
end

-- As lua.c: results go through the global print, whatever it is now.
local function console_show(put, ok, ...)
	if not ok or select('#', ...) == 0 then return show(put, ok, ...) end
	local printed, err = pcall(_G.print, ...)
	if not printed then
		io.stderr:write("error calling 'print' (", tostring(err), ')\n')
	end
end

-- The interactive console: line editing and history on a terminal (the
-- editor shows the prompt); otherwise the prompt is written here, before
-- the coroutine suspends, so output stays in order.
function M.console(name)
	local stdout = io.stdout
	local tty = core.isatty()
	return M.loop(name or 'stdin', function(prompt)
		if not tty then
			stdout:write(prompt)
			prompt = ''
		end
		-- print() buffers on some Luas: show its output now
		stdout:flush()
		while true do
			local line, err = core.readline(prompt)
			if line or err ~= 'interrupted' then
				if line == nil and tty then stdout:write('\n') end
				return line
			end
		end
	end, function(s)
		stdout:write(s)
		stdout:flush()
	end, console_prompt, console_show)
end

return M
