-- The REPL on a terminal: banner, line editing and history (arrow up,
-- backspace), coroutines running between lines, continuation prompt,
-- Ctrl-D to leave. Driven through a real pseudo-terminal.
dofile('support.lua')
local helper = 'data/pty_repl.py'
p = io.popen("python3 " .. helper .. " '" .. arg[-1] .. "' 2>&1")
local out = p:read('*a')
p:close()
assert(out:find('^lem %S+ %(') or out:find('\nlem %S+ %('), 'banner:\n' .. out)
assert(out:find('42', 1, true), 'expression value:\n' .. out)
assert(out:find('43', 1, true), 'edited history line:\n' .. out)
assert(out:find('tick', 1, true), 'spawned coroutine ran:\n' .. out)
assert(out:find('block', 1, true), 'continued statement:\n' .. out)
assert(out:find('[exit 0]', 1, true), 'exit status:\n' .. out)
print('ok')
