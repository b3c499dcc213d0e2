-- lem.http.server over raw sockets: malformed, oversized and smuggling
-- requests get an answer or a close, and the server keeps serving.
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local io = require 'lem.io'

local port, url = common.spawn_app(nil, 'APP_TIMEOUT=0.5')

local function status(data)
	local out = common.raw(port, data) or ''
	return tonumber(out:match('^HTTP/1%.1 (%d%d%d)')), out
end

local function ok()
	local s = status('GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
	eq(s, 200, 'still serving')
end

for _, case in ipairs({
	{ 400, 'GARBAGE\r\n\r\n' },
	{ 400, 'GET / HTTP/1.1\r\nHost: x\r\nBad Field\r\n\r\n' },
	{ 505, 'GET / HTTP/2.0\r\n\r\n' },
	{ 505, 'GET / HTTP/0.9\r\n\r\n' },
	{ 431, 'GET / HTTP/1.1\r\nHost: x\r\nX: ' .. ('a'):rep(40000) .. '\r\n\r\n' },
	-- RFC 9112 §6.3: both framings, differing lengths, bad lengths.
	{ 400, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' },
	{ 400, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!' },
	{ 400, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n' },
	{ 400, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\n' },
	{ 400, 'POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' },
	{ 400, 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n' },
	{ 501, 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n' },
	{ 400, 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n' },
	{ 400, 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n' },
	{ 413, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n' },
	{ 417, 'POST /echo HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx' },
}) do
	local s, out = status(case[2])
	eq(s, case[1], ('%q'):format(case[2]:sub(1, 60)))
	assert(out:find('Connection: close\r\n'), out)
	ok()
end

-- Identical repeated lengths are one length.
local s, out = status('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello')
eq(s, 200, 'same length twice')
assert(out:find('\r\n\r\nhello$'), out)

-- Chunked with extensions and trailers; then a pipelined request.
s, out = status('POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'
	.. '5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n'
	.. 'GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
eq(s, 200, 'chunked')
assert(out:find('\r\n\r\nhello world'), out)
assert(out:find('Hello, /last!\n$'), out)

-- A silent client is dropped after the read timeout (0.5 s here); one
-- that never finishes its head too.
local c = assert(io.tcp.connect('127.0.0.1', port))
eq({ c:read('*a') }, { '' }, 'idle connection closed')
c:close()
c = assert(io.tcp.connect('127.0.0.1', port))
assert(c:write('GET / HTTP/1.1\r\nHost:'))
eq({ c:read('*a') }, { '' }, 'slow head closed')
c:close()
ok()
common.quit(url)
