-- coroutine.wrap (lem's, which lets suspending calls through) closes a
-- coroutine that raised, as Lua 5.4's does: its to-be-closed variables run
-- and an error raised while closing is the one the caller gets.
dofile('support.lua')
if _VERSION ~= 'Lua 5.4' then print('ok') return end -- (5.1 has no <close>)
dofile('data/wrap_close_54.lua')
