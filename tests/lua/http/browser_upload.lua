-- A real browser sends cookies and an upload: headless Chromium (driven
-- over the DevTools protocol by http/data/browser_upload.py) loads a page
-- that sets a signed HttpOnly cookie and a plain one (res:cookie), picks a
-- 300 KB binary file in a form's file input and submits it as
-- multipart/form-data; the server (http/data/browser_upload.lua, a child
-- lem) verifies the signed cookie (req:cookie), reads the plain one
-- (req.cookies) and streams the file to disk (req:multipart,
-- part:save). Skipped only when no Chromium is installed (scripts/deps
-- installs Debian's `chromium`).
local support = dofile('support.lua')
local process = require 'lem.process'

local chromium = support.chromium()
local dir = support.tmpdir()

-- A file with every byte value, CR LF and something like a delimiter in it.
local pieces = {}
for i = 0, 255 do pieces[#pieces + 1] = string.char(i) end
local sample = table.concat(pieces) .. '\r\n--boundary\r\n'
local file = support.write_file('photo of me.bin', sample:rep(math.floor(300 * 1024 / #sample) + 1))
local want = assert(_G.io.open(file, 'rb')):read('*a')

local app = assert(process.spawn({ arg[-1], 'http/data/browser_upload.lua', dir }, { stdout = 'pipe' }))
local line = assert(app.stdout:read('*l'))
local url = assert(line:match('^listening on (http://127%.0%.0%.1:%d+/)$'), line)

local ok, err = xpcall(function()
	local profile = dir .. '/chromium'
	assert(os.execute('mkdir -p ' .. profile))
	local drv = assert(process.spawn({ 'python3', 'http/data/browser_upload.py', chromium, url, profile, file },
		{ stdout = 'pipe' }))
	local out = assert(drv.stdout:read('*a'))
	local ended = drv:wait()
	if ended.status ~= 0 then
		local log = _G.io.open(profile .. '/chromium.log')
		_G.io.stderr:write(log and log:read('*a') or '', '\n')
		error('browser_upload.py failed: ' .. tostring(ended.status) .. '\n' .. out)
	end
	local got = {}
	for k, v in out:gmatch('([%w_]+)\t([^\n]*)') do got[k] = v end
	eq(got.document_cookie, 'theme=dark', 'the page sees the plain cookie, not the HttpOnly one')
	eq(got.sid, 'user42', 'the signed cookie came back and verifies')
	eq(got.theme, 'dark', 'the plain cookie came back')
	eq(got.note, 'caf\xc3\xa9 & "quotes"', 'the text field, UTF-8')
	eq(got.filename, 'photo of me.bin', 'the file name the browser sent')
	eq(got.type, 'application/octet-stream', "the browser's type for .bin")
	eq(tonumber(got.size), #want, 'the bytes saved')
	eq(got.error, 'none', 'the body read to its end')
	local saved = assert(_G.io.open(dir .. '/received', 'rb')):read('*a')
	eq(saved == want, true, 'the saved file is the file, byte for byte')
end, debug.traceback)
assert(app:kill())
app:wait()
assert(ok, err)
print('browser upload ok')
