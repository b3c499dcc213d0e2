-- require's "module not found" message is lua's own: lem's built-in
-- searcher adds nothing to it (no blank line, no line of its own).
dofile('support.lua')
package.path = '?.lua;?/?'
package.cpath = '?.so;?/init'
local ok, msg = pcall(require, 'XXX')
eq(ok, false, 'not found')
if _VERSION == 'Lua 5.4' then
	eq(msg, [[module 'XXX' not found:
	no field package.preload['XXX']
	no file 'XXX.lua'
	no file 'XXX/XXX'
	no file 'XXX.so'
	no file 'XXX/init']], 'the message')
else -- 5.1's loaders; LuaJIT adds its all-in-one loader's line
	assert(msg:find([[^module 'XXX' not found:
	no field package.preload%['XXX'%]
	no file 'XXX.lua'
	no file 'XXX/XXX'
	no file 'XXX.so'
	no file 'XXX/init']]), msg)
end
assert(not msg:find('\n\t\n', 1, true) and not msg:find('lem', 1, true), msg)
print('ok')
