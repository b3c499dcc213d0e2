-- read('HTTPRequest') / read('HTTPResponse'): the tables, lower-cased
-- names, the last of repeated fields, folded lines, errors and the limit.
local support = dofile('support.lua')
local io = require 'lem.io'
local http = require 'lem.http'
local utils = require 'lem.utils'

-- A connected pair over loopback; `feed` writes to one end, the other
-- end reads.
local srv = assert(io.tcp.listen4('127.0.0.1', 0))
local _, port = srv:getsockname()
-- A connected pair: a (client side) and b (accepted side).
local function pair()
	return support.tcp_pair(srv)
end

local function parse(fmt, text)
	local a, b = pair()
	assert(a:write(text))
	a:close()
	local r, err = b:read(fmt)
	local rest = b:read('*a')
	b:close()
	return r, err, rest
end

local r, err, rest = parse('HTTPRequest',
	'GET /a%20b?c=d HTTP/1.1\r\nHost: example.org\r\nX-Long:  one\r\n  two\r\n\tthree\r\n'
	.. 'ACCEPT: x\r\naccept: y\r\n\r\nbody')
eq(r, {
	method = 'GET',
	uri = '/a%20b?c=d',
	version = '1.1',
	headers = { host = 'example.org', ['x-long'] = 'one two three', accept = 'y' },
}, 'request')
eq(rest, 'body', 'bytes after the head stay buffered')

-- Bare LF line ends and leading empty lines are accepted.
r = parse('HTTPRequest', '\r\nPOST / HTTP/1.0\nContent-Length: 0\n\n')
eq(r, { method = 'POST', uri = '/', version = '1.0', headers = { ['content-length'] = '0' } }, 'LF only')

-- Any HTTP/x.y version parses (the server answers 505).
eq(parse('HTTPRequest', 'GET / HTTP/2.0\r\n\r\n').version, '2.0', 'other version')

-- Repeated framing fields are combined, so a server can see conflicts.
eq(parse('HTTPRequest', 'GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n')
	.headers['content-length'], '1, 2', 'combined Content-Length')

for _, bad in ipairs({
	'GET / HTTP/1.1 x\r\n\r\n',
	'GET / FTP/1.1\r\n\r\n',
	'GET /\r\n\r\n',
	'G(T / HTTP/1.1\r\n\r\n',
	'GET / HTTP/1.1\r\nNo Colon\r\n\r\n',
	'GET / HTTP/1.1\r\nA b: c\r\n\r\n',
}) do
	eq({ parse('HTTPRequest', bad) }, { nil, 'parse error', bad }, ('%q'):format(bad))
end

-- The stream ends first.
eq({ parse('HTTPRequest', 'GET / HTTP/1.1\r\nHost: x\r\n') }, { nil, 'closed', 'GET / HTTP/1.1\r\nHost: x\r\n' }, 'closed')

-- A head past the limit.
local a, b = pair()
utils.spawn(function()
	a:write('GET / HTTP/1.1\r\nX: ' .. ('x'):rep(http.head_limit) .. '\r\n\r\n')
end)
eq({ b:read('HTTPRequest') }, { nil, 'out of buffer space' }, 'too large')
a:close()
b:close()

-- Responses: numeric status, text, every field in order in `fields`.
r = parse('HTTPResponse', 'HTTP/1.1 404 Not Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 3\r\n\r\nabc')
eq(r, {
	version = '1.1',
	status = 404,
	text = 'Not Found',
	headers = { ['set-cookie'] = 'b=2', ['content-length'] = '3' },
	fields = { { 'set-cookie', 'a=1' }, { 'set-cookie', 'b=2' }, { 'content-length', '3' } },
}, 'response')
eq(parse('HTTPResponse', 'HTTP/1.0 204\r\n\r\n').status, 204, 'no reason phrase')
eq({ parse('HTTPResponse', 'HTTP/1.1 20 OK\r\n\r\n') }, { nil, 'parse error', 'HTTP/1.1 20 OK\r\n\r\n' }, 'bad status')

-- The formats are in parsers.lookup.
local parsers = require 'lem.parsers'
assert(parsers.lookup.HTTPRequest and parsers.lookup.HTTPResponse)
srv:close()
