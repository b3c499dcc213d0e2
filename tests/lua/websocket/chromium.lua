-- A real browser against examples/websocket-chat.lua: the example runs as
-- a child lem on a free loopback port; a lem WebSocket client joins the
-- chat first, then headless Chromium (driven by data/ws_browser.py) loads
-- the page, whose script opens a WebSocket and sends a line through the
-- form; the lem client sees it broadcast and answers, and the page shows
-- the answer. Skipped only when no Chromium is installed (scripts/deps
-- installs Debian's `chromium`).
local support = dofile('support.lua')
local process = require 'lem.process'
local utils = require 'lem.utils'
local websocket = require 'lem.websocket'

local chromium = support.chromium()

local app = assert(process.spawn({ arg[-1], '../../examples/websocket-chat.lua', '0', '127.0.0.1' }, { stdout = 'pipe' }))
local line = assert(app.stdout:read('*l'))
local url = assert(line:match('^listening on (http://127%.0%.0%.1:%d+/)$'), line)

local ok, err = xpcall(function()
	-- A bad upgrade: the chat's route answers 426 itself.
	local ws, werr = websocket.connect(url:gsub('^http', 'ws') .. 'nochat')
	eq(ws, nil, 'no WebSocket at /nochat')
	assert(werr:match('404$'), werr)

	ws = assert(websocket.connect(url:gsub('^http', 'ws') .. 'chat'))
	eq({ ws:receive() }, { 'welcome, guest1', 'text' }, 'welcome')

	local profile = tmpdir() .. '/chromium'
	assert(os.execute('mkdir -p ' .. profile))
	local drv = assert(process.spawn({ '/usr/bin/python3', 'data/ws_browser.py', chromium, url, profile }, { stdout = 'pipe' }))
	local out
	utils.spawn(function()
		out = drv.stdout:read('*a')
	end)
	ws:settimeout(50)
	eq({ ws:receive() }, { 'guest2: hello from chromium', 'text' }, 'the browser\'s line, broadcast')
	assert(ws:send('hi chromium'))
	eq({ ws:receive() }, { 'you: hi chromium', 'text' }, 'echo to the sender')
	local ended = drv:wait()
	while out == nil do
		utils.yield()
	end
	if ended.status ~= 0 then
		local log = _G.io.open(profile .. '/chromium.log')
		_G.io.stderr:write(log and log:read('*a') or '', '\n')
		error('ws_browser.py failed: ' .. tostring(ended.status) .. '\n' .. out)
	end
	local got = {}
	for v in out:gmatch('log\t([^\n]*)') do
		got[#got + 1] = v
	end
	eq(got, { 'welcome, guest2', 'you: hello from chromium', 'guest1: hi chromium' }, 'what the page showed')
	-- The page went away: its WebSocket closed (1001 from Chromium, or
	-- dropped when it was killed).
	assert(ws:close())
end, debug.traceback)
assert(app:kill())
app:wait()
assert(ok, err)
