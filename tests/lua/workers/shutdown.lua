-- utils.shutdown in a single process, started from a SIGTERM handler as
-- docs/utils.md suggests: the server stops accepting (run returns nil,
-- 'interrupted'), a request in flight completes with Connection: close, a
-- keep-alive connection idle between requests is closed after the drain
-- period, one that sends a request during it is answered with
-- Connection: close, and the process ends by itself with status 0. Then
-- the grace: work still running after it is cut off.
local support = dofile('support.lua')
local utils = require 'lem.utils'
local io = require 'lem.io'
local http = require 'lem.http.server'
local signal = require 'lem.signal'

eq({ utils.worker() }, { 1, 1 }, 'utils.worker() without -w')
eq(utils.draining(), false, 'draining before')
checkerr('grace must be a non-negative number', utils.shutdown, -1)
checkerr('grace must be a non-negative number', utils.shutdown, 0 / 0)
checkerr('number expected', utils.shutdown, 'soon')

local srv = assert(http.new('127.0.0.1', 0, function(req, res)
	if req.uri == '/slow' then utils.newsleeper():sleep(0.5) end
	res:add('done ' .. req.uri)
end))
local _, port = srv:getsockname()
local ran
utils.spawn(function() ran = { srv:run() } end)

local function send(c, uri)
	assert(c:write('GET ' .. uri .. ' HTTP/1.1\r\nHost: x\r\n\r\n'))
end
-- Read one response: its head and body.
local function response(c)
	local head = {}
	while true do
		local line, err = c:read('*l')
		if not line then return nil, err end
		if line == '\r' then break end
		head[#head + 1] = line
	end
	local len = tonumber(table.concat(head, '\n'):match('Content%-Length: (%d+)'))
	return table.concat(head, '\n'), c:read(len)
end

-- A keep-alive connection that has had its answer and waits.
local idle = assert(io.tcp.connect('127.0.0.1', port))
send(idle, '/first')
local head, body = response(idle)
assert(head:find('200 OK', 1, true) and body == 'done /first', head)
-- Another, which will send its next request during the drain.
local late = assert(io.tcp.connect('127.0.0.1', port))
send(late, '/first')
head, body = response(late)
assert(head:find('200 OK', 1, true) and body == 'done /first', head)
-- A slow request under way.
local slow = assert(io.tcp.connect('127.0.0.1', port))
send(slow, '/slow')
utils.newsleeper():sleep(0.1)

local stops = 0
signal.register('TERM', function()
	stops = stops + 1
	eq(utils.shutdown(5), true, 'the first shutdown starts the stop')
	eq(utils.shutdown(1), false, 'a second one does not')
end)
local pid = _G.io.open('/proc/self/stat'):read('*a'):match('^%d+')
assert(os.execute('kill -TERM ' .. pid))
utils.newsleeper():sleep(0.05)
eq(stops, 1, 'the handler ran')
eq(utils.draining(), true, 'draining during the stop')
eq(ran, { nil, 'interrupted' }, 'run after the stop')
send(late, '/late')
head, body = response(late)
assert(head and head:find('Connection: close', 1, true), head)
eq(body, 'done /late', 'a request on an idle connection during the drain is answered')
eq({ late:read('*a') }, { '' }, 'then its connection closed')
eq({ idle:read('*a') }, { '' }, 'the idle keep-alive connection was closed')
local c, err = io.tcp.connect('127.0.0.1', port)
assert(not c and err:find('error connecting', 1, true), 'no new connections: ' .. tostring(err))
head, body = response(slow)
assert(head and head:find('Connection: close', 1, true), head)
eq(body, 'done /slow', 'the slow response')
eq({ slow:read('*a') }, { '' }, 'then its connection closed')

-- The grace: a process whose work does not end is ended after it, with
-- status 0 and a word on stderr.
local script = support.write_file('busy.lua', [[
local utils = require 'lem.utils'
local srv = assert(require('lem.io').tcp.listen('127.0.0.1', 0))
utils.spawn(function() print('run', srv:autospawn(function() end)) end)
utils.spawn(function() while true do utils.newsleeper():sleep(0.05) end end)
utils.newsleeper():sleep(0.05)
utils.shutdown(0.3)
print('draining', utils.draining())
]])
local t0 = utils.updatenow()
local out, errs, code = support.lem(script)
local took = utils.updatenow() - t0
eq(code, 0, 'exit status after the grace')
eq(out, 'draining\ttrue\nrun\tnil\tinterrupted\n', 'stdout')
assert(errs:find('graceful stop: work left after the grace of 0.3 s is cut off', 1, true), errs)
assert(took >= 0.3, took)
