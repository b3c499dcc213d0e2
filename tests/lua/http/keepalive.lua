-- The keep-alive loop of lem.http.server: a response sent whole goes on to
-- read the next request in the same call, one that has to wait for the
-- socket (larger than its buffers) reads it afterwards, pipelined requests
-- are answered in order, a streamed response is followed by the next
-- request, and a write that fails reaches server.debug as 'write'.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'
local response = require 'lem.http.response'

-- The Rust half takes only Streams: anything else (a file, a table with
-- a Stream's metatable) is refused as the Stream methods refuse it.
local core = require 'lem.http.core'
local fake = setmetatable({}, getmetatable(io.stdin))
local file = assert(io.open('support.lua'))
for _, v in ipairs({ fake, file, 'x' }) do
	checkerr('lem.Stream expected', core.request, v)
	checkerr('lem.Stream expected', core.respond, v, {}, {}, false, false)
end
file:close()

-- Only a response to one of the server's requests streams.
eq({ response.new({ method = 'GET' }):write('x') }, { nil, 'not streaming' }, 'no server request')

local BIG = 32 * 1024 * 1024
local big = ('0123456789abcdef'):rep(2 * 1024 * 1024)

local failures = {}
server.debug = function(where, err)
	failures[#failures + 1] = { where, err }
end

local srv = assert(server.new('127.0.0.1', 0, function(req, res)
	local path = req.path
	if path == '/big' then
		res:add(big)
	elseif path == '/stream' then
		res:write('a')
		res:write('b')
	else
		res:add('ok ' .. path)
	end
end))
local _, port = srv:getsockname()

-- Read one response: status and body.
local function response(c)
	local r = assert(c:read('HTTPResponse'))
	local len = r.headers['content-length']
	if len then
		return r.status, assert(c:read(tonumber(len)))
	end
	-- Chunked (a streamed response).
	local body = {}
	while true do
		local size = tonumber(assert(c:read('*l')):match('^%x+'), 16)
		if size == 0 then
			assert(c:read('*l'))
			return r.status, table.concat(body)
		end
		body[#body + 1] = assert(c:read(size))
		assert(c:read('*l'))
	end
end

utils.spawn(function()
	local c = assert(io.tcp.connect('127.0.0.1', port))
	-- Small responses, one at a time and then pipelined.
	for i = 1, 3 do
		assert(c:write(('GET /%d HTTP/1.1\r\nHost: x\r\n\r\n'):format(i)))
		eq({ response(c) }, { 200, 'ok /' .. i }, 'request ' .. i)
	end
	assert(c:write('GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\nGET /p3 HTTP/1.1\r\nHost: x\r\n\r\n'))
	for i = 1, 3 do
		eq({ response(c) }, { 200, 'ok /p' .. i }, 'pipelined ' .. i)
	end
	-- A body larger than the socket's buffers: the server's write waits,
	-- then the same connection serves the next request.
	assert(c:write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n'))
	local status, body = response(c)
	eq({ status, #body, body == big }, { 200, BIG, true }, 'big response')
	assert(c:write('GET /after HTTP/1.1\r\nHost: x\r\n\r\n'))
	eq({ response(c) }, { 200, 'ok /after' }, 'request after a write that waited')
	-- A streamed response, then the next request.
	assert(c:write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
	eq({ response(c) }, { 200, 'ab' }, 'streamed response')
	eq({ response(c) }, { 200, 'ok /last' }, 'request after a streamed one')
	eq({ c:read('*a') }, { '' }, 'closed after Connection: close')
	c:close()
	eq(failures, {}, 'no connection errors so far')

	-- A client that goes away while the big body is being written.
	c = assert(io.tcp.connect('127.0.0.1', port))
	assert(c:write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n'))
	assert(c:read(1000))
	c:close()
	local sleeper = utils.newsleeper()
	for _ = 1, 100 do
		if #failures > 0 then
			break
		end
		sleeper:sleep(0.02)
	end
	eq(#failures, 1, 'one failure reported')
	eq(failures[1][1], 'write', 'reported as a write error')
	assert(type(failures[1][2]) == 'string', 'with its message')

	-- The server still serves.
	c = assert(io.tcp.connect('127.0.0.1', port))
	assert(c:write('GET /still HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
	eq({ response(c) }, { 200, 'ok /still' }, 'still serving')
	c:close()
	srv:close()
end)
eq({ srv:run() }, { nil, 'interrupted' }, 'run ends on close')
print('ok')
