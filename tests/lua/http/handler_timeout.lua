-- srv.handler_timeout: a handler past its deadline gets a 503 if nothing
-- was sent (its cleanup runs, the server keeps serving), one that catches
-- the timeout answers itself, a streaming one
-- has its connection closed, and fast handlers are untouched. Handlers
-- that compute without suspending are stopped the same way (a 503, or a
-- cut once part went out) while a client on the fast route keeps being
-- served: its p99 latency meanwhile goes to stderr. Off by default.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'

local forever = utils.newsleeper()
local cleaned = 0
local srv = assert(server.new('127.0.0.1', 0, function(req, res)
	if req.uri == '/slow' then
		local ok, err = pcall(function() forever:sleep() end)
		cleaned = cleaned + 1
		assert(not ok and err == 'timeout', err)
		error(err, 0)
	elseif req.uri == '/stream' then
		res:write('part one\n')
		forever:sleep()
	elseif req.uri == '/compute' then
		local x = 0
		while true do x = x + 1 end
	elseif req.uri == '/compute_stream' then
		res:write('part one\n')
		while true do end
	elseif req.uri == '/catches' then
		-- Catches the timeout and answers itself: its answer goes out.
		pcall(function() forever:sleep() end)
		res:add('too late\n')
	else
		res:add('fast\n')
	end
end))
eq(srv.handler_timeout, nil, 'off by default')
srv.handler_timeout = 0.1
local _, port = srv.server:getsockname()
utils.spawn(function() srv:run() end)

local function curl(path)
	local p = assert(io.popen(('curl -sS -i --max-time 10 http://127.0.0.1:%d%s'):format(port, path) .. ' 2>&1', 'r'))
	local out, e = p:read('*a')
	out = out or ('read failed: ' .. tostring(e))
	p:close()
	return out
end

local out = curl('/fast')
assert(out:find('^HTTP/1.1 200 OK\r\n') and out:find('fast\n$'), out)
out = curl('/slow')
assert(out:find('^HTTP/1.1 503 Service Unavailable\r\n'), out)
eq(cleaned, 1, 'cleanup ran')
out = curl('/catches')
assert(out:find('^HTTP/1.1 200 ') and out:find('too late\n$'), out)
-- The head and the first chunk went out; then the connection is closed
-- mid-body (curl says so).
out = curl('/stream')
assert(out:find('HTTP/1.1 200 OK\r\n', 1, true), out)
assert(out:find('part one'), out)
assert(out:find('transfer closed', 1, true), out)
out = curl('/fast')
assert(out:find('fast\n$'), 'still serving: ' .. out)

-- Computing handlers, while another client asks for /fast over and over
-- on one keep-alive connection.
local done, times = false, {}
local fast = utils.task(function()
	local c = assert(io.tcp.connect('127.0.0.1', port))
	while not done do
		local t0 = utils.updatenow()
		assert(c:write('GET /fast HTTP/1.1\r\nHost: x\r\n\r\n'))
		local head = assert(c:read('HTTPResponse'))
		assert(head.status == 200, head.status)
		assert(c:read(tonumber(head.headers['content-length'])))
		times[#times + 1] = utils.updatenow() - t0
	end
	c:close()
end)
for _ = 1, 5 do
	out = curl('/compute')
	assert(out:find('^HTTP/1.1 503 Service Unavailable\r\n'), out)
end
out = curl('/compute_stream')
assert(out:find('part one'), out)
assert(out:find('transfer closed', 1, true), out)
done = true
assert(fast:join())
assert(#times > 0, 'the fast client was served while handlers computed')
table.sort(times)
io.stderr:write(('fast route while handlers computed: %d requests, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n')
	:format(#times, times[math.ceil(#times * 0.5)] * 1000, times[math.ceil(#times * 0.99)] * 1000, times[#times] * 1000))
out = curl('/fast')
assert(out:find('fast\n$'), 'still serving: ' .. out)
srv:close()
print('ok')
