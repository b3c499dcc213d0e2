-- A real browser against examples/hathaway.lua: the example runs as a child
-- lem on a free loopback port; headless Chromium (driven over the DevTools
-- protocol by hathaway/data/browser.py) loads the page, types a name into
-- the form, submits it (a urlencoded POST) and follows the link to the
-- pattern route. Skipped only when no Chromium is installed (scripts/deps
-- installs Debian's `chromium`).
local support = dofile('support.lua')
local process = require 'lem.process'

local chromium = support.chromium()

-- The example prints its URL once it listens.
local app = assert(process.spawn({ arg[-1], '../../examples/hathaway.lua', '0', '127.0.0.1' }, { stdout = 'pipe' }))
local line = assert(app.stdout:read('*l'))
local url = assert(line:match('^listening on (http://127%.0%.0%.1:%d+/)$'), line)

-- The browser's part; the example is ended whatever happens.
local ok, err = xpcall(function()
	local profile = tmpdir() .. '/chromium'
	assert(os.execute('mkdir -p ' .. profile))
	local drv = assert(process.spawn({ 'python3', 'hathaway/data/browser.py', chromium, url, profile }, { stdout = 'pipe' }))
	local out = assert(drv.stdout:read('*a'))
	local ended = drv:wait()
	if ended.status ~= 0 then
		local log = _G.io.open(profile .. '/chromium.log')
		_G.io.stderr:write(log and log:read('*a') or '', '\n')
		error('browser.py failed: ' .. tostring(ended.status) .. '\n' .. out)
	end

	local got = {}
	for k, v in out:gmatch('([^\t\n]+)\t([^\n]*)') do
		got[#got + 1] = { k, v }
	end
	eq(got, {
		{ 'title', 'Hello' },
		{ 'heading', 'Hello from lem' },
		{ 'path', '/greet' },
		{ 'greeting', 'Hello, Ada & <Lovelace> 100%!' },
		{ 'path', '/square/12' },
		{ 'square', '144' },
	}, 'what the browser saw')
end, debug.traceback)
assert(app:kill())
eq(app:wait().type, 'signaled', 'example ended by SIGTERM')
assert(ok, err)
