-- The server of http/browser_upload.lua, run as a child lem: `lem
-- browser_upload.lua DIR`. GET / sets a signed session cookie and a plain
-- one and serves a form with a file input; POST /upload reads the
-- cookies and streams the multipart body's file to DIR; GET /result shows
-- what it got. Prints its URL once it listens.
local io = require 'lem.io'
local hathaway = require 'lem.hathaway'

local dir = assert(arg[1], 'usage: browser_upload.lua DIR')
local SECRET = 'a key for this test only'
local app = hathaway.new()
local got = {}

app:GET('/', function(_, res)
	res:cookie('sid', 'user42', { sign = SECRET, httponly = true, path = '/', samesite = 'Lax' })
	res:cookie('theme', 'dark', { path = '/' })
	res.headers['Content-Type'] = 'text/html; charset=utf-8'
	res:add([[<!DOCTYPE html><title>upload</title>
<form method="post" action="/upload" enctype="multipart/form-data">
<input type="text" id="note" name="note">
<input type="file" id="file" name="file">
<button id="send" type="submit">send</button>
</form>]])
end)

app:POST('/upload', function(req, res)
	got = { sid = req:cookie('sid', SECRET) or 'forged', theme = req.cookies.theme or 'none' }
	local parts = assert(req:multipart())
	for part in parts do
		if part.filename then
			got.filename, got.type = part.filename, part.type or ''
			got.size = assert(part:save(dir .. '/received'))
		else
			got[part.name] = assert(part:body())
		end
	end
	got.error = parts.error or 'none'
	-- Post/redirect/get, as a form handler does.
	res.status = 303
	res.headers['Location'] = '/result'
end)

app:GET('/result', function(_, res)
	res.headers['Content-Type'] = 'text/html; charset=utf-8'
	res:add('<!DOCTYPE html><title>result</title><pre id="result">')
	for _, k in ipairs { 'sid', 'theme', 'note', 'filename', 'type', 'size', 'error' } do
		res:add('%s\t%s\n', k, (tostring(got[k]):gsub('[<&]', { ['<'] = '&lt;', ['&'] = '&amp;' })))
	end
	res:add('</pre>')
end)

local sock = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = sock:getsockname()
io.stdout:write(('listening on http://127.0.0.1:%d/\n'):format(port))
app:run(sock)
