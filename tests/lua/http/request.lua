-- The req table lem.http.server hands a handler: its fields, req.headers
-- built on first use (from the field section kept in req._head), the
-- methods of server.Request, pairs(req), and headers read after the
-- connection has moved on to its next request.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'

local luajit = type(jit) == 'table'

-- A method added to server.Request by a script.
function server.Request:host()
	return self.headers.host
end

local seen = {}
local later = {}
local srv = assert(server.new('127.0.0.1', 0, function(req, res)
	local path = req.path
	if path == '/raw' then
		-- Nothing built yet: the section is kept as it came.
		seen.raw_headers = rawget(req, 'headers')
		seen.raw_head = rawget(req, '_head')
		seen.headers = req.headers
		seen.same = req.headers == seen.headers
		seen.after_headers = rawget(req, 'headers') == seen.headers
		seen.after_head = rawget(req, '_head')
		seen.missing = req.nosuchfield
		seen.host = req:host()
	elseif path == '/line' then
		seen.line = { req.method, req.uri, req.version }
	elseif path == '/pairs' then
		local keys = {}
		for k in pairs(req) do
			keys[#keys + 1] = k
		end
		table.sort(keys)
		seen.keys = table.concat(keys, ' ')
	elseif path == '/body' then
		seen.body = req:body()
		seen.length = req.headers['content-length']
	elseif path == '/later' then
		-- Read once the connection has read the next request.
		utils.spawn(function()
			utils.newsleeper():sleep(0.05)
			later.headers = req.headers
		end)
	end
	res:add('ok')
end))
local _, port = srv:getsockname()

-- Send a pipelined batch of requests, read the responses.
local function exchange(data, n)
	local c = assert(io.tcp.connect('127.0.0.1', port))
	assert(c:write(data))
	for _ = 1, n do
		local r = assert(c:read('HTTPResponse'))
		eq(r.status, 200, 'status')
		eq(c:read(tonumber(r.headers['content-length'])), 'ok', 'body')
	end
	c:close()
end

utils.spawn(function()
	exchange('GET /raw HTTP/1.1\r\nHost: example.org\r\nX-Folded: one\r\n  two\r\n'
		.. 'X-Rep: 1\r\nX-REP: 2\r\nCookie: a=1\r\n\r\n', 1)
	eq(seen.raw_headers, nil, 'not built before use')
	eq(seen.raw_head, 'Host: example.org\r\nX-Folded: one\r\n  two\r\nX-Rep: 1\r\nX-REP: 2\r\nCookie: a=1\r\n\r\n',
		'the field section kept')
	eq(seen.headers, { host = 'example.org', ['x-folded'] = 'one two', ['x-rep'] = '1, 2', cookie = 'a=1' },
		'headers: lower-cased, folded, repeated ones joined')
	eq(seen.same, true, 'built once')
	eq(seen.after_headers, true, 'stored in req')
	eq(seen.after_head, nil, 'section dropped once built')
	eq(seen.missing, nil, 'unknown field')
	eq(seen.host, 'example.org', 'a method added to server.Request')

	-- Common methods and versions come from kept strings, others as sent.
	for _, case in ipairs({ { 'GET', '1.1' }, { 'POST', '1.0' }, { 'HEAD', '1.1' }, { 'PATCH', '1.0' } }) do
		local m, v = case[1], case[2]
		local c = assert(io.tcp.connect('127.0.0.1', port))
		assert(c:write(('%s /line HTTP/%s\r\nHost: x\r\nContent-Length: 0\r\n\r\n'):format(m, v)))
		local r = assert(c:read('HTTPResponse'))
		eq(r.status, 200, m .. ' status')
		c:close()
		eq(seen.line, { m, '/line', v }, m .. ' HTTP/' .. v)
	end

	exchange('GET /pairs?x=1 HTTP/1.0\r\nA: b\r\n\r\n', 1)
	if luajit then
		-- LuaJIT's pairs has no __pairs: the kept section shows instead.
		eq(seen.keys, '_head client method path uri version', 'pairs(req) on LuaJIT')
	else
		eq(seen.keys, 'client headers method path uri version', 'pairs(req) builds the headers')
	end

	exchange('POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc', 1)
	eq(seen.body, 'abc', 'req:body()')
	eq(seen.length, '3, 3', 'repeated Content-Length combined')

	-- No fields at all (HTTP/1.0: 1.1 needs Host).
	exchange('GET /raw HTTP/1.0\r\n\r\n', 1)
	eq(seen.raw_head, '\r\n', 'an empty section')
	eq(seen.headers, {}, 'no headers')

	-- The first request's headers are read after the second was parsed.
	exchange('GET /later HTTP/1.1\r\nHost: x\r\nX-N: first\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\nX-N: second\r\n\r\n', 2)
	utils.newsleeper():sleep(0.1)
	eq(later.headers, { host = 'x', ['x-n'] = 'first' }, 'headers of a request read late')
	srv:close()
end)
eq({ srv:run() }, { nil, 'interrupted' }, 'run ends on close')
print('ok')
