-- A real redis-server for the redis tests: on a free loopback port and a
-- Unix socket in tmpdir(), nothing saved, killed by stop().
local io, utils = require 'lem.io', require 'lem.utils'
local redis = require 'lem.redis'
local support = dofile('support.lua')

local S = {}

-- start([extra args [, port]]) -> { port =, sock =, proc = }
function S.start(extra, port)
	port = port or support.free_port()
	local sock = tmpdir() .. '/redis' .. port .. '.sock'
	local argv = { 'redis-server', '--port', tostring(port), '--bind', '127.0.0.1',
		'--unixsocket', sock, '--save', '', '--appendonly', 'no', '--dir', tmpdir() }
	for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
	local proc = assert(io.spawn(argv, { stdout = 'null', stderr = 'null' }))
	local sleeper = utils.newsleeper()
	for _ = 1, 200 do
		local s = io.tcp.connect('127.0.0.1', port)
		if s then
			s:close()
			local u = io.unix.connect(sock)
			if u then
				u:close()
				return { port = port, sock = sock, proc = proc }
			end
		end
		sleeper:sleep(0.02)
	end
	proc:kill()
	error('redis-server did not start on port ' .. port)
end

function S.stop(s)
	s.proc:kill()
	s.proc:wait()
end

S.redis = redis
return S
