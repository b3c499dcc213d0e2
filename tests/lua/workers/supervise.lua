-- lem -w 2: both workers serve; a worker killed with SIGKILL is replaced
-- and no request that comes after fails; SIGHUP under load reloads the
-- script from disk with no failed request; SIGTERM lets a slow request
-- finish, then the supervisor exits 0.
local support = dofile('support.lua')
local utils = require 'lem.utils'
local io = require 'lem.io'
local client = require 'lem.http.client'

local function app(version)
	return ([[
local utils = require 'lem.utils'
local http = require 'lem.http.server'
local id, n = utils.worker()
local pid = _G.io.open('/proc/self/stat'):read('*a'):match('^%d+')
local srv = assert(http.new('127.0.0.1', tonumber(arg[1]), function(req, res)
	if req.uri == '/slow' then utils.newsleeper():sleep(1.5) end
	res:add('VERSION ' .. id .. ' ' .. n .. ' ' .. pid)
end))
print('ready', select(2, srv:getsockname()))
print('run', srv:run())
]]):gsub('VERSION', version)
end

local path = support.write_file('app.lua', app('v1'))
local sup = assert(io.spawn({ arg[-1], '-w', '2', path, '0' },
	{ stdout = 'pipe', stderr = 'pipe' }))

-- Keep reading the supervisor's output; `out` and `err` collect it.
local out, err = {}, {}
local function drain(stream, lines)
	utils.spawn(function()
		for line in function() return stream:read('*l') end do
			lines[#lines + 1] = line
		end
	end)
end
local first = assert(sup.stdout:read('*l'))
local port = assert(first:match('^ready\t(%d+)$'), first)
out[1] = first
drain(sup.stdout, out)
drain(sup.stderr, err)

local base = 'http://127.0.0.1:' .. port
-- One request on a new connection: version, id, count, pid, or nil, err.
local function get(c, uri)
	local own = not c
	c = c or client.new()
	local res, e = c:get(base .. (uri or '/'))
	local body = res and res:body()
	if own then c:close() end
	if not res or res.status ~= 200 or not body then
		return nil, tostring(e or (res and res.status))
	end
	local v, id, n, pid = body:match('^(%w+) (%d+) (%d+) (%d+)$')
	return v, tonumber(id), tonumber(n), pid
end

-- Both workers answer, each with its own id and the count.
local pids = {}
for _ = 1, 500 do
	local v, id, n, pid = get()
	assert(v == 'v1' and n == 2, tostring(id))
	pids[id] = pid
	if pids[1] and pids[2] then break end
end
assert(pids[1] and pids[2], 'both workers answered')
assert(pids[1] ~= pids[2])

-- SIGKILL worker 1: every request after it succeeds (its socket and queue
-- stay with the supervisor), and a new worker 1 serves soon.
local t0 = utils.updatenow()
assert(os.execute('kill -9 ' .. pids[1]))
local replaced
for i = 1, 2000 do
	local v, id, _, pid = get()
	assert(v, 'request ' .. i .. ' after the kill failed: ' .. tostring(id))
	if id == 1 then
		assert(pid ~= pids[1], 'the killed worker answered')
		replaced = utils.updatenow() - t0
		pids[1] = pid
		break
	end
end
assert(replaced, 'worker 1 was replaced')
io.stderr:write(('replacement served after %.3f s\n'):format(replaced))
assert(replaced < 5, replaced)

-- SIGHUP under load (keep-alive and new connections): no request fails,
-- and the new code answers after.
local stop, ok, failed, seen = false, 0, {}, {}
local last = {}
local running = 0
local function loader(keepalive, k)
	running = running + 1
	utils.spawn(function()
		local c = keepalive and client.new() or nil
		while not stop do
			local v, e = get(c)
			if v then
				ok = ok + 1
				seen[v] = (seen[v] or 0) + 1
				last[k] = v
			else
				failed[#failed + 1] = e
			end
		end
		if c then c:close() end
		running = running - 1
	end)
end
for k = 1, 4 do loader(k <= 2, k) end
utils.newsleeper():sleep(0.3)
support.write_file('app.lua', app('v2'))
assert(sup:kill('HUP'))
local deadline = utils.updatenow() + 15
repeat
	utils.newsleeper():sleep(0.1)
	local all = (seen.v2 or 0) > 200
	for k = 1, 4 do all = all and last[k] == 'v2' end
until all or utils.updatenow() > deadline
stop = true
while running > 0 do utils.newsleeper():sleep(0.05) end
assert(#failed == 0, #failed .. ' requests failed during the reload: ' .. tostring(failed[1]))
assert((seen.v1 or 0) > 0 and (seen.v2 or 0) > 200, 'old and new code answered')
for k = 1, 4 do assert(last[k] == 'v2', 'loader ' .. k .. ' ended on ' .. tostring(last[k])) end
io.stderr:write(('reload: %d requests, none failed (%d v1, %d v2)\n'):format(ok, seen.v1, seen.v2))

-- A reload to a script that fails at start is cancelled: the running
-- workers go on serving.
support.write_file('app.lua', 'error("broken new version")')
assert(sup:kill('HUP'))
deadline = utils.updatenow() + 10
repeat
	utils.newsleeper():sleep(0.05)
until table.concat(err, '\n'):find('reload cancelled', 1, true) or utils.updatenow() > deadline
assert(table.concat(err, '\n'):find('reload cancelled: new worker %d %(pid %d+%) exited with status 1 before it served'),
	table.concat(err, '\n'))
for _ = 1, 20 do eq(get(), 'v2', 'the old set serves after a cancelled reload') end
support.write_file('app.lua', app('v2'))

-- SIGTERM with a slow request in flight: it completes, then exit 0.
local slow
utils.spawn(function() slow = { get(nil, '/slow') } end)
utils.newsleeper():sleep(0.3)
assert(sup:kill('TERM'))
local how = assert(sup:wait())
assert(slow and slow[1] == 'v2', 'the slow request completed: ' .. tostring(slow and slow[2]))
assert(how.type == 'exited' and how.status == 0, how.type .. ' ' .. tostring(how.status or how.signal))
utils.newsleeper():sleep(0.1)
local log = table.concat(err, '\n')
assert(log:find('worker 1 %(pid ' .. '%d+%) was killed by SIGKILL'), log)
assert(log:find('reloaded: 2 new workers serve', 1, true), log)
-- Each worker's server returned nil, 'interrupted' at the stop.
local runs = 0
for _, line in ipairs(out) do
	if line == 'run\tnil\tinterrupted' then runs = runs + 1 end
end
assert(runs >= 4, table.concat(out, '\n'))
-- Nothing listens any more.
assert(not io.tcp.connect('127.0.0.1', port))
