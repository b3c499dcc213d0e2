-- lem.http.server against request smuggling and slow clients, over raw
-- sockets: chunk lines with junk after the size, bad trailers, missing or
-- repeated Host, folded framing fields, bare CRs, absolute-form targets,
-- and bodies trickled past srv.body_timeout (RFC 9112 §3.2, §5.2, §7.1).
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'

local served = {}
local debugs = {}
server.debug = function(where, err)
	debugs[#debugs + 1] = where .. ' ' .. tostring(err)
end

local srv, port = common.serve(function(req, res)
	served[#served + 1] = req.path
	if req.path == '/echo' then
		local body, err = req:body()
		if not body then
			res.status = err == 'timeout' and 408 or 422
			res:add('%s', err)
			return
		end
		res:add('%s', body)
	elseif req.path == '/raise' then
		error('smuggled')
	elseif req.path:sub(1, 5) == '/move' then
		-- A value from the request in a response field.
		res.status = 302
		res.headers.Location = req.path
		res:add('moved')
	else
		res:add('%s %s %s', req.method, req.uri, req.path)
	end
end)
srv.timeout = 5
srv.body_timeout = 0.5

local function status(data)
	local out = common.raw(port, data) or ''
	return tonumber(out:match('^HTTP/1%.1 (%d%d%d)')), out
end

local post = 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'

-- Each refused with 400 and close, and nothing after it is served.
local smuggled = 'GET /raise HTTP/1.1\r\nHost: x\r\n\r\n'
for _, case in ipairs({
	-- Junk after the chunk size (a front end reading 0x22 as hex sees one
	-- request with a body holding the second).
	post .. '0x22\r\n' .. smuggled .. '\r\n0\r\n\r\n',
	post .. '0zz\r\n\r\n' .. smuggled,
	post .. '0x0\r\n\r\n' .. smuggled,
	post .. '5 \r\nhello\r\n0\r\n\r\n' .. smuggled,
	post .. '5;\r\nhello\r\n0\r\n\r\n' .. smuggled,
	post .. '5\rX\nhello\r\n0\r\n\r\n' .. smuggled,
	post .. '5\r\nhelloXX\r\n0\r\n\r\n' .. smuggled,
	-- Trailers that are not fields.
	post .. '0\r\nGARBAGE LINE\r\n\r\n' .. smuggled,
	post .. '0\r\nX-A: a\0b\r\n\r\n' .. smuggled,
	post .. '0\r\n' .. smuggled .. smuggled,
	post .. '0\r\nX-A: a\r\n folded\r\n\r\n' .. smuggled,
	post .. '0\r\nX: ' .. ('a'):rep(40000) .. '\r\n\r\n' .. smuggled,
	post .. '0\r\n' .. ('X-T: 1\r\n'):rep(101) .. '\r\n' .. smuggled,
	-- Host: exactly one in HTTP/1.1, at most one in 1.0, and a host.
	'GET / HTTP/1.1\r\n\r\n' .. smuggled,
	'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n' .. smuggled,
	'GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n' .. smuggled,
	'GET / HTTP/1.1\r\nHost: a b\r\n\r\n' .. smuggled,
	'GET / HTTP/1.1\r\nHost: evil/x@good\r\n\r\n' .. smuggled,
	-- Folded framing fields.
	'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 34\r\n\r\n' .. smuggled,
	'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: x,\r\n chunked\r\n\r\n0\r\n\r\n' .. smuggled,
	'GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n' .. smuggled,
	-- A fold that reads as a framing field to a front end that takes it
	-- for a line of its own.
	'POST /echo HTTP/1.1\r\nHost: x\r\nX-A: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n' .. smuggled,
	'POST /echo HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tContent-Length: 34\r\n\r\n' .. smuggled,
	-- Bare CRs.
	'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n' .. smuggled,
	'GET /\r HTTP/1.1\r\nHost: x\r\n\r\n' .. smuggled,
}) do
	served = {}
	local s, out = status(case)
	eq(s, 400, ('%q'):format(case:sub(1, 90)))
	assert(out:find('Connection: close\r\n'), out)
	assert(not out:find('HTTP/1.1 500'), 'the smuggled request was served')
	for _, p in ipairs(served) do
		assert(p ~= '/raise', 'the smuggled request was served')
	end
end

-- Repeated Connection fields are one list: a close in any closes (the
-- pipelined request after it is not served); so are Expect fields.
served = {}
s, out = status('GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n'
	.. 'GET /b HTTP/1.1\r\nHost: x\r\n\r\n')
eq(s, 200, 'repeated Connection')
eq(served, { '/a' }, 'closed after the first')
eq(status('POST /echo HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx'), 417)

-- A line end taken from the request into a response field forges
-- nothing: the response is a 500.
s, out = status('GET /move%0d%0aSet-Cookie:%20admin=1%0d%0a%0d%0aHTTP/1.1%20200%20OK HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
eq(s, 500, 'forged field')
assert(not out:find('Set-Cookie'), out)
s, out = status('GET /move/ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
eq(s, 302, 'a plain field')
assert(out:find('\r\nLocation: /move/ok\r\n'), out)

-- Empty lines before a head count to its limit (they are buffered too).
eq(status(('\r\n'):rep(20000) .. 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 431, 'empty lines')
eq(status(('\r\n'):rep(3) .. 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 200, 'a few empty lines')

-- The default body timeout is the module's.
local other = assert(server.new('127.0.0.1', 0, function() end))
eq(other.body_timeout, server.body_timeout, 'srv.body_timeout from server.body_timeout')
eq(other.body_timeout, 60, 'default body_timeout')
other:close()

-- A 400 for a bad head reaches server.debug as LEM's did.
debugs = {}
status('GET / HTTP/1.1\r\n\r\n')
eq(debugs, { 'read parse error' })

-- Valid chunk extensions, quoted values and trailers still work, with a
-- pipelined request after them.
local s, out = status(post .. '5 ; a=b;c="d \\" e"\r\nhello\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\n'
	.. 'GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
eq(s, 200, 'valid chunked')
assert(out:find('\r\n\r\nhello'), out)
assert(out:find('GET /next /next$'), out)

-- HTTP/1.0 needs no Host; folds elsewhere are still joined.
eq(status('GET / HTTP/1.0\r\n\r\n'), 200, 'HTTP/1.0 without Host')
eq(status('GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nConnection: close\r\n\r\n'), 200, 'fold')

-- Absolute form: req.path is the path part, req.uri as sent.
s, out = status('GET http://example.org/a%20b?q=1 HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n')
eq(s, 200, 'absolute form')
assert(out:sub(-#'GET http://example.org/a%20b?q=1 /a b') == 'GET http://example.org/a%20b?q=1 /a b', out)
s, out = status('GET HTTP://example.org HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n')
assert(out:find('\r\n\r\nGET HTTP://example.org /$'), out)

-- A bare CR is refused at once, not when the head is complete (the
-- server's timeout is 5 s; this client waits 4 at most).
local c = assert(io.tcp.connect('127.0.0.1', port))
c:settimeout(4)
assert(c:write('GET / HTTP/1.1\rHost: x'))
local answer = assert(c:read('*a'))
assert(answer:find('^HTTP/1.1 400 '), answer)
c:close()

-- A body trickled in, each byte well within the read timeout, is cut at
-- srv.body_timeout (0.5 s): the handler gets nil, 'timeout'. (15 bytes at
-- 0.1 s each would take 1.5 s.)
local function trickle(head, body)
	local conn = assert(io.tcp.connect('127.0.0.1', port))
	assert(conn:write(head))
	local done = false
	utils.spawn(function()
		local sleeper = utils.newsleeper()
		for i = 1, #body do
			if done or not conn:write(body:sub(i, i)) then
				return
			end
			sleeper:sleep(0.1)
		end
	end)
	conn:settimeout(4)
	local got = assert(conn:read('*a'))
	done = true
	conn:close()
	return got
end
out = trickle(post, '5\r\nhello\r\n0\r\n\r\n')
assert(out:find('^HTTP/1.1 408 '), out)
assert(out:find('timeout$'), out)
out = trickle('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n', ('x'):rep(15))
assert(out:find('^HTTP/1.1 408 '), out)

-- The connection's read timeout is the server's again after a body: a
-- second request on it is served.
c = assert(io.tcp.connect('127.0.0.1', port))
assert(c:write(post .. '1\r\na\r\n0\r\n\r\nGET /again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
out = assert(c:read('*a'))
assert(out:find('GET /again /again$'), out)
c:close()

srv:close()
