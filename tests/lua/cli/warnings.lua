-- warn as lua's: -W turns warnings on; only a one-piece message can be a
-- control message ('@on', '@off'; other '@...' ignored), and the pieces of
-- a multi-part warning are printed as one line. Lua 5.4 only.
dofile('support.lua')
if _VERSION ~= 'Lua 5.4' then print('ok') return end

local LEM = arg[-1]
local dir = tmpdir()
local function run(text, opts)
	local p = dir .. '/w.lua'
	local f = io.open(p, 'w'); f:write(text); f:close()
	local cmd = "'" .. LEM .. "' " .. (opts or '') .. ' ' .. p .. ' 2>' .. dir .. '/err </dev/null'
	local code = require('support').exec(cmd)
	f = io.open(dir .. '/err'); local err = f:read('a'); f:close()
	return err, code
end

-- Lua 5.4.6's main.lua, "testing warnings".
eq({ run([[
warn("@allow")               -- unknown control, ignored
warn("@off", "XXX", "@off")  -- these are not control messages
warn("@off")                 -- this one is
warn("@on", "YYY", "@on")    -- not control, but warn is off
warn("@off")                 -- keep it off
warn("@on")                  -- restart warnings
warn("", "@on")              -- again, no control, real warning
warn("@on")                  -- keep it "started"
warn("Z", "Z", "Z")          -- common warning
]], '-W') }, { 'Lua warning: @offXXX@off\nLua warning: @on\nLua warning: ZZZ\n', 0 }, '-W')

-- Off by default; '@on' in a script turns them on.
eq({ run('io.stderr:write(1); warn("XXX")') }, { '1', 0 }, 'off by default')
eq({ run('warn("@on") warn("a", "@off") warn("b")') }, { 'Lua warning: a@off\nLua warning: b\n', 0 },
	'a later piece is no control message')
print('ok')
