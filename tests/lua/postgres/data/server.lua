-- A throwaway PostgreSQL cluster for the postgres tests: initdb in a fresh
-- directory (as `nobody` when run as root, since initdb refuses root), a
-- free loopback port and a Unix socket in the same directory, fsync off;
-- stop() kills it and removes the directory. Superuser `postgres` is
-- trusted on the socket; over TCP, `lem` logs in with SCRAM-SHA-256,
-- `lemmd5` with MD5 and `lempw` with a clear-text password (all with
-- password 'secret').
local io, utils = require 'lem.io', require 'lem.utils'
local support = dofile('support.lua')

local S = {}

local function sh(cmd)
	local code = support.exec(cmd)
	assert(code == 0, 'failed (' .. tostring(code) .. '): ' .. cmd)
end

local function bindir()
	local p = _G.io.popen('ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1')
	local d = p:read('*l')
	p:close()
	assert(d and d ~= '', 'PostgreSQL is not installed (scripts/deps installs it)')
	return d
end

-- start([extra settings]) -> { port =, dir =, proc =, bin = }
function S.start(extra)
	local bin = bindir()
	local p = _G.io.popen('mktemp -d /tmp/lem-pg-XXXXXX')
	local dir = p:read('*l')
	p:close()
	local root = _G.io.popen('id -u'):read('*l') == '0'
	local as = root and 'runuser -u nobody -- ' or ''
	if root then sh('chown nobody ' .. dir) end
	sh(as .. bin .. '/initdb -D ' .. dir .. '/data -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null 2>&1')
	local hba = _G.io.open(dir .. '/data/pg_hba.conf', 'w')
	hba:write([[
local all all trust
host all postgres 127.0.0.1/32 trust
host all lem 127.0.0.1/32 scram-sha-256
host all lemmd5 127.0.0.1/32 md5
host all lempw 127.0.0.1/32 password
]])
	hba:close()
	local s = { port = support.free_port(), dir = dir, bin = bin, root = root, extra = extra or {} }
	S.launch(s)
	return s
end

-- (Re)start the server of s, as after a crash.
function S.launch(s)
	local dir = s.dir
	local argv = { s.bin .. '/postgres', '-D', dir .. '/data', '-k', dir, '-p', tostring(s.port),
		'-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off',
		'-c', 'full_page_writes=off', '-c', 'max_connections=200' }
	for _, setting in ipairs(s.extra) do
		argv[#argv + 1] = '-c'
		argv[#argv + 1] = setting
	end
	if s.root then
		for i, a in ipairs { 'runuser', '-u', 'nobody', '--' } do table.insert(argv, i, a) end
	end
	-- A watchdog shell around it: when this test's lem is gone (a failed
	-- assertion ends it before stop()), the server is killed too, so no
	-- cluster outlives its test.
	local watch = [[
"$@" & p=$!
while kill -0 "$p" 2>/dev/null; do
	if ! kill -0 "$PPID" 2>/dev/null; then
		kill -9 "$(head -1 "$DIR/data/postmaster.pid" 2>/dev/null)" "$p" 2>/dev/null
		rm -rf "$DIR"
		exit 1
	fi
	sleep 0.2
done
wait "$p"]]
	local wrapped = { 'env', 'DIR=' .. dir, 'sh', '-c', watch, 'watchdog' }
	for _, a in ipairs(argv) do wrapped[#wrapped + 1] = a end
	argv = wrapped
	s.proc = assert(io.spawn(argv, { stdout = 'null', stderr = 'null' }))
	local sleeper = utils.newsleeper()
	for _ = 1, 500 do
		local u = io.unix.connect(dir .. '/.s.PGSQL.' .. s.port)
		if u then
			u:close()
			local db = require('lem.postgres').connect(('host=%s port=%d user=postgres dbname=postgres'):format(dir, s.port))
			if db then
				db:close()
				return
			end
		end
		sleeper:sleep(0.02)
	end
	s.proc:kill()
	error('postgres did not start on port ' .. s.port)
end

-- The postgres process itself (runuser's child when run as root).
function S.pid(s)
	local f = assert(_G.io.open(s.dir .. '/data/postmaster.pid'))
	local pid = f:read('*l')
	f:close()
	return pid
end

-- Kill the server at once (SIGKILL), as a crash would.
function S.kill(s)
	support.exec('kill -9 ' .. S.pid(s) .. ' 2>/dev/null')
	s.proc:wait()
end

function S.stop(s)
	support.exec('kill -9 ' .. S.pid(s) .. ' 2>/dev/null')
	s.proc:kill()
	s.proc:wait()
	support.exec('rm -rf ' .. s.dir)
end

return S
