-- No value a handler leaves in res brings the server down (docs/http-server.md,
-- "Responses"): each bad response below gets a 500 with nothing of it
-- sent (a directory as res.file: a 404), the error reaches the debug hook,
-- a debug hook that raises is reported, and the server goes on serving.
-- Run on lem.http.server, on hathaway, and on lem.http.server under -w 2.
local support = dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

local dir = support.tmpdir()
local app = support.write_file('bad_app.lua', ([=[
local kind, port = arg[1], tonumber(arg[2])
local server = require 'lem.http.server'
local hathaway = require 'lem.hathaway'
local utils = require 'lem.utils'
local dir = %q

local raising = setmetatable({}, { __tostring = function() error('tostring broke') end })
local cases = {
	status_string = function(req, res) res.status = '404' end,
	status_negative = function(req, res) res.status = -1 end,
	status_fraction = function(req, res) res.status = 200.5 end,
	status_big = function(req, res) res.status = 1000 end,
	status_table = function(req, res) res.status = {} end,
	body_table = function(req, res) res[1] = {} end,
	body_boolean = function(req, res) res:add('x') res[2] = true end,
	file_number = function(req, res) res.file = 123 end,
	file_table = function(req, res) res.file = {} end,
	headers_nil = function(req, res) res.headers = nil end,
	headers_string = function(req, res) res.headers = 'x' end,
	name_space = function(req, res) res.headers['X A'] = '1' end,
	name_colon = function(req, res) res.headers['X-A:'] = '1' end,
	name_number = function(req, res) res.headers[1] = 'x' end,
	name_empty = function(req, res) res.headers[''] = 'x' end,
	value_crlf = function(req, res) res.headers['X-A'] = 'a\r\nSet-Cookie: evil=1' end,
	value_tostring = function(req, res) res.headers['X-A'] = raising end,
	length_word = function(req, res) res:add('hello') res.headers['Content-Length'] = 'abc' end,
	length_wrong = function(req, res) res:add('hello') res.headers['Content-Length'] = '3' end,
	length_negative = function(req, res) res:add('hello') res.headers['Content-Length'] = '-5' end,
	stream_status = function(req, res) res.status = 'x' res:write('part') end,
	stream_name = function(req, res) res.headers['X A'] = '1' res:write('part') end,
	stream_length = function(req, res) res.headers['Content-Length'] = '4' res:write('part') end,
	error_raising = function(req, res) error(raising) end,
	error_table = function(req, res) error({}) end,
	error_nil = function(req, res) error() end,
	hook_raises = function(req, res) error('raise in the hook') end,
}
local expect = {}
local function handler(req, res)
	local name = req.path:match('^/bad/(.*)$')
	if name == 'dir' then
		res.file = dir
		return
	elseif name then
		return cases[name](req, res)
	elseif req.path == '/cases' then
		local names = {}
		for n in pairs(cases) do names[#names + 1] = n end
		table.sort(names)
		res:add(table.concat(names, ' '))
		return
	end
	res:add('ok ' .. tostring(utils.worker() or 0))
end

local hooked = 0
local function debug(where, err)
	if where == 'handler' then
		hooked = hooked + 1
		io.stderr:write('debug hook: ', where, ': ', tostring(err), '\n')
		if tostring(err):find('raise in the hook', 1, true) then
			error('the hook broke')
		end
	elseif where == 'info' and err:find('/bad/hook_raises', 1, true) then
		error('the info hook broke')
	end
end

if kind == 'hathaway' then
	hathaway.debug = debug
	local a = hathaway.new()
	a:GET('/cases', handler)
	a:GET('/ok', handler)
	a:GETM('^/bad/', handler)
	local sock = assert(require('lem.io').tcp.listen('127.0.0.1', port))
	print('ready')
	io.stdout:flush()
	a:run(sock)
else
	server.debug = debug
	local srv = assert(server.new('127.0.0.1', port, handler))
	print('ready')
	io.stdout:flush()
	srv:run()
end
]=]):format(dir))

-- One request on a connection of its own: the raw response (all of it,
-- until the server closes or 2 s pass with nothing more).
local function get(port, path)
	local c = assert(io.tcp.connect('127.0.0.1', port))
	assert(c:write('GET ' .. path .. ' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
	local parts = {}
	while true do
		local data = utils.timeout(2, c.read, c)
		if not data then break end
		parts[#parts + 1] = data
	end
	c:close()
	return table.concat(parts)
end

local function check(port, label)
	local names = get(port, '/cases'):match('\r\n\r\n(.*)$')
	assert(names and #names > 0, label .. ': no case list')
	local n = 0
	for name in names:gmatch('%S+') do
		local out = get(port, '/bad/' .. name)
		assert(out:find('^HTTP/1.1 500 Internal Server Error\r\n'), label .. ' ' .. name .. ': ' .. out)
		assert(not out:find('part', 1, true), label .. ' ' .. name .. ': a bad head went out: ' .. out)
		assert(not out:find('evil', 1, true), label .. ' ' .. name .. ': forged field: ' .. out)
		n = n + 1
	end
	assert(n >= 20, label .. ': ' .. n .. ' cases')
	local out = get(port, '/bad/dir')
	assert(out:find('^HTTP/1.1 404 Not Found\r\n'), label .. ' dir: ' .. out)
	out = get(port, '/ok')
	assert(out:find('^HTTP/1.1 200 OK\r\n') and out:find('ok %d$'), label .. ': still serving: ' .. out)
	return n
end

local function run(label, ...)
	local port = support.free_port()
	local argv = { arg[-1], ... }
	argv[#argv + 1] = app
	argv[#argv + 1] = label == 'hathaway' and 'hathaway' or 'server'
	argv[#argv + 1] = tostring(port)
	local p = assert(io.spawn(argv, { stdout = 'pipe', stderr = 'pipe' }))
	local workers = select('#', ...) > 0 and 2 or 1
	for _ = 1, workers do
		eq(p.stdout:read('*l'), 'ready', label .. ': started')
	end
	local err = {}
	utils.spawn(function()
		while true do
			local data = p.stderr:read()
			if not data then break end
			err[#err + 1] = data
		end
	end)
	-- Under -w 2 the kernel spreads connections over both workers: run the
	-- cases twice so each worker likely sees some.
	local n = check(port, label)
	if workers > 1 then
		check(port, label)
	end
	assert(p:kill('TERM'))
	local how = assert(p:wait())
	if workers > 1 then
		eq({ how.type, how.status }, { 'exited', 0 }, label .. ': a graceful stop')
	else
		eq(how.type, 'signaled', label .. ': killed by SIGTERM, not ended before')
	end
	local text = table.concat(err)
	assert(not text:find('exited with', 1, true) and not text:find('killed by', 1, true),
		label .. ': a worker died: ' .. text)
	assert(text:find('handler error: res.status must be an integer from 100 to 999', 1, true), text)
	assert(text:find("header field name \"X A\" is not a token", 1, true), text)
	assert(text:find('debug hook: handler: ', 1, true), label .. ': the hook saw the errors: ' .. text)
	assert(text:find('the debug hook raised: ', 1, true), label .. ': a raising hook reported: ' .. text)
	if label == 'hathaway' then
		assert(text:find('lem.hathaway: the debug hook raised: ', 1, true), text)
	end
	return n
end

run('server')
run('hathaway')
run('workers', '-w', '2')
print('ok')
