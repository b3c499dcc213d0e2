#!/usr/bin/env lem
-- A small hathaway app: a page with a form, the form's POST, and a
-- pattern route with captures.
--   lem examples/hathaway.lua [port [host]]    (port 0: any free port)
local hathaway = require 'lem.hathaway'
local server = require 'lem.http.server'
hathaway.import()

local function esc(s)
	return (s:gsub('[&<>"]', { ['&'] = '&amp;', ['<'] = '&lt;', ['>'] = '&gt;', ['"'] = '&quot;' }))
end

local function page(res, title, body)
	res.headers['Content-Type'] = 'text/html; charset=UTF-8'
	res:add('<!DOCTYPE html><html><head><title>%s</title></head><body>%s</body></html>\n', esc(title), body)
end

GET('/', function(_, res)
	page(res, 'Hello', [[
<h1>Hello from lem</h1>
<form method="post" action="/greet">
<input id="name" name="name" value="">
<button id="send" type="submit">Greet</button>
</form>
<p><a href="/square/12">12 squared</a></p>]])
end)

POST('/greet', function(req, res)
	local body = req:body(4096) or ''
	local name = server.urldecode(body:match('name=([^&]*)') or '')
	page(res, 'Greeting', ('<p id="greeting">Hello, %s!</p>'):format(esc(name)))
end)

GETM('^/square/(%d+)$', function(_, res, n)
	n = tonumber(n)
	page(res, 'Square', ('<p id="square">%d</p>'):format(n * n))
end)

-- Listen first, so that port 0 (any free port) prints the port it got.
local port, host = tonumber(arg[1]) or 8080, arg[2] or '127.0.0.1'
local sock = assert(require('lem.io').tcp.listen(host, port))
local _, bound = sock:getsockname()
print(('listening on http://%s:%d/'):format(host, bound))
io.stdout:flush() -- for a parent reading our stdout through a pipe
Hathaway(sock)
