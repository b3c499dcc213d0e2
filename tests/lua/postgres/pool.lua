-- postgres.pool across server restarts: the pooled connections all die
-- (a crash, then a fast shutdown), and no call made once the server is
-- back fails; the pool's options are checked.
dofile('support.lua')
local utils = require 'lem.utils'
local postgres = require 'lem.postgres'
local S = dofile('postgres/data/server.lua')

local srv = S.start()
local info = ('host=127.0.0.1 port=%d user=postgres dbname=postgres'):format(srv.port)
local pool = postgres.pool(info, { size = 4 })

-- 8 workers on the pool; restart() runs while they hold off.
local function under_load(restart)
	local failed, calls, after = 0, 0, 0
	local stop, down, paused, workers = false, false, 0, 8
	local done, held = utils.newsleeper(), utils.newsleeper()
	for w = 1, workers do
		utils.spawn(function()
			while not stop do
				if down then
					paused = paused + 1
					if paused == workers then held:wakeup() end
					while down do utils.newsleeper():sleep(0.01) end
					paused = paused - 1
				end
				local res, e = pool:exec('SELECT $1::int + 1', w)
				calls = calls + 1
				if not res or res[1][1] ~= tostring(w + 1) then
					failed = failed + 1
					print('failed: ' .. tostring(e))
				end
				utils.yield()
			end
			workers = workers - 1
			if workers == 0 then done:wakeup() end
		end)
	end
	local sl = utils.newsleeper()
	sl:sleep(0.2)
	down = true
	held:sleep()
	restart()
	local before = calls
	down = false
	sl:sleep(0.3)
	after = calls - before
	stop = true
	done:sleep()
	return failed, calls, after
end

local failed, calls, after = under_load(function()
	S.kill(srv)
	S.launch(srv)
end)
assert(after > 8, 'calls after the crash: ' .. after)
eq(failed, 0, 'calls failed across a crash (of ' .. calls .. ')')
eq(pool.count <= 4, true, 'the pool stays within its size')

-- A fast shutdown (SIGINT): the server tells each connection it ends.
failed, calls, after = under_load(function()
	require('lem.io').spawn({ 'kill', '-INT', S.pid(srv) }):wait()
	srv.proc:wait()
	S.launch(srv)
end)
assert(after > 8, 'calls after the fast shutdown: ' .. after)
eq(failed, 0, 'calls failed across a fast shutdown (of ' .. calls .. ')')
pool:close()

-- Options are checked.
checkerr("unknown option 'sise'", postgres.pool, info, { sise = 2 })
checkerr("unknown tls option 'cafil'", postgres.pool, info, { tls = { cafil = 'x' } })
checkerr("unknown option 'tsl'", postgres.connect, info, { tsl = {} })
S.stop(srv)
print('postgres pool ok')
