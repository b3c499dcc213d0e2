-- hathaway.debug and server.debug are called as LEM's were: ('info',
-- 'GET / HTTP/1.1') for each request routed, and connection errors passed
-- on as ('read', 'closed'), ('read', 'parse error'); a handler's answer to
-- an oversized body goes out as it made it.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local hathaway = require 'lem.hathaway'
local server = require 'lem.http.server'

local logged = {}
local waiter
hathaway.debug = function(kind, msg)
	logged[#logged + 1] = kind .. ' ' .. tostring(msg)
	if waiter and kind == 'read' then
		local w = waiter
		waiter = nil
		w:wakeup()
	end
end
local app = hathaway.new()
app:GET('/', function(req, res)
	res:add('index')
end)
app:POST('/small', function(req, res)
	local body, err = req:body(5)
	if not body then
		-- The handler decides: no 413 in its place.
		res:add('refused: %s', err)
		return
	end
	res:add('%s', body)
end)

local sock = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = sock:getsockname()
utils.spawn(function()
	app:run(sock)
end)

-- One exchange; returns what came back before the server closed (the
-- server calls its hook before it closes).
local function exchange(data)
	local c = assert(io.tcp.connect('127.0.0.1', port))
	assert(c:write(data))
	c:settimeout(5)
	local out = c:read('*a')
	c:close()
	return out
end

logged = {}
local out = exchange('GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /?a HTTP/1.0\r\n\r\n')
assert(out:find('index$'), out)
eq(logged, { 'info GET / HTTP/1.1', 'info GET /?a HTTP/1.0' }, 'info per request')

-- A client that goes away: ('read', 'closed').
logged = {}
waiter = utils.newsleeper()
local c = assert(io.tcp.connect('127.0.0.1', port))
assert(c:write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
assert(c:read('HTTPResponse'))
c:close()
waiter:sleep(5)
eq(logged, { 'info GET / HTTP/1.1', 'read closed' }, 'closed')

logged = {}
out = exchange('BAD\r\n\r\n')
assert(out:find('^HTTP/1.1 400 '), out)
eq(logged, { 'read parse error' }, 'parse error')

-- req:body(max) past max: the handler's own answer, then close (the body
-- was left unread).
logged = {}
out = exchange('POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789')
assert(out:find('^HTTP/1.1 200 OK\r\n'), out)
assert(out:find('Connection: close\r\n'), out)
assert(out:find('refused: oversized$'), out)
out = exchange('POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n')
assert(out:find('^HTTP/1.1 200 OK\r\n'), out)
assert(out:find('refused: oversized$'), out)

-- Without hathaway.debug, server.debug hears the connection errors.
hathaway.debug = nil
local heard = {}
server.debug = function(where, err)
	heard[#heard + 1] = where .. ' ' .. tostring(err)
end
exchange('BAD\r\n\r\n')
eq(heard, { 'read parse error' }, 'server.debug')
server.debug = nil
sock:close()
