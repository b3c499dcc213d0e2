-- Cancel and deadlines at every kind of suspension point: the call raises,
-- and the object it was using stays usable (a read loses no buffered
-- input, an accept or a write is not left 'busy', a pool job that cannot
-- be stopped finishes and its result is dropped).
local support = dofile('support.lua')
local tcp_pair = support.tcp_pair
local io = require 'lem.io'
local utils = require 'lem.utils'
local queue = require 'lem.queue'

-- Each point: start() -> a function that suspends there (run once under a
-- cancel, once under a deadline), and check() that the object still works.
local points = {}

local server = assert(io.tcp.listen('127.0.0.1', 0))
local a, b = tcp_pair(server)

points.read = {
	start = function()
		return function()
			local r = b:read('*l')
			return r
		end
	end,
	check = function()
		assert(a:write('ld\n'))
		eq(b:read('*l'), 'world', 'buffered input kept')
		assert(a:write('wor'))
	end,
}
assert(a:write('hello\nwor'))
eq(b:read('*l'), 'hello', 'first line')

local s = utils.newsleeper()
points.sleep = {
	start = function() return function() s:sleep() end end,
	check = function() eq({ s:sleep(0) }, { nil, 'timeout' }, 'sleeper free again') end,
}

local q = queue.new()
points.queue_get = {
	start = function() return function() local v = q:get() return v end end,
	check = function()
		q:put('v')
		eq(q.n, 1, 'a cancelled getter no longer counts')
		eq(q:get(), 'v', 'the value went to the next getter')
	end,
}

points.accept = {
	start = function() return function() local c = server:accept() return c end end,
	check = function()
		local c, d = tcp_pair(server)
		c:close()
		d:close()
	end,
}

local u = assert(io.udp.bind('127.0.0.1', 0))
local _, uport = u:getsockname()
points.udp_recv = {
	start = function() return function() local d = u:recv() return d end end,
	check = function()
		local v = assert(io.udp.connect('127.0.0.1', uport))
		assert(v:send('dgram'))
		eq(u:recv(), 'dgram', 'recv after')
		v:close()
	end,
}

-- A write that cannot finish: nobody reads the other end.
local w1, w2 = tcp_pair(server)
points.write = {
	start = function()
		return function() local ok = w1:write(('x'):rep(64 * 1024 * 1024)) return ok end
	end,
	check = function()
		-- Not busy: another write can start (and times out, the peer
		-- still reading nothing).
		w1:settimeout(0.01)
		local ok, err = w1:write('y')
		assert(ok or err == 'timeout', err)
		w1:settimeout(nil)
	end,
}

-- A pool job that blocks: opening a FIFO nobody writes to.
local dir = tmpdir()
local fifo = dir .. '/fifo'
assert(support.exec('mkfifo ' .. fifo) == 0)
points.pool_job = {
	start = function()
		return function() local f = io.open(fifo, 'r') return f end
	end,
	check = function()
		-- Let the stuck open finish (opening a FIFO read-write never
		-- blocks, and counts as a writer); its result is dropped.
		local wf = assert(io.open(fifo, 'r+'))
		wf:close()
		local f = assert(io.open(dir .. '/plain', 'w'))
		assert(f:write('ok'))
		f:close()
	end,
}

local s2 = utils.newsleeper()
local other = utils.task(function() s2:sleep() end)
points.join = {
	start = function() return function() local ok = other:join() return ok end end,
	check = function() eq(other:status(), 'suspended', 'joined task goes on') end,
}

points.process_wait = {
	start = function()
		local p = assert(io.spawn({ 'sleep', '30' }))
		points.process_wait.proc = p
		return function() local st = p:wait() return st end
	end,
	check = function()
		local p = points.process_wait.proc
		assert(p:kill())
		assert(p:wait())
	end,
}


-- A connect that cannot finish: the listener's backlog (0) is full, so the
-- kernel drops the SYNs.
local full = assert(io.tcp.listen('127.0.0.1', 0, 0))
local _, fport = full:getsockname()
local held = { utils.timeout(1, function() return io.tcp.connect('127.0.0.1', fport) end) }
points.connect = {
	start = function()
		return function() local c = io.tcp.connect('127.0.0.1', fport) return c end
	end,
	check = function()
		local c, d = tcp_pair(server)
		c:close()
		d:close()
	end,
}

-- Only where the kernel does drop them (no SYN cookies for loopback here).
local probe = { utils.timeout(0.2, function() return io.tcp.connect('127.0.0.1', fport) end) }
if probe[1] then
	io.stderr:write('task_points: this kernel completes connects past the backlog: connect not tested\n')
	probe[1]:close()
	points.connect = nil
end

local names = {}
for name in pairs(points) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
	local p = points[name]
	-- Under a cancel.
	local f = p.start()
	local t = utils.task(f)
	for _ = 1, 3 do utils.yield() end
	eq(t:status(), 'suspended', name .. ' suspended')
	t:cancel()
	eq({ t:join() }, { nil, 'cancelled' }, name .. ' cancelled')
	p.check()
	-- Under a deadline.
	f = p.start()
	eq({ utils.timeout(0.02, f) }, { nil, 'timeout' }, name .. ' timed out')
	p.check()
end
if held[1] then held[1]:close() end
full:close()
s2:wakeup()
eq({ other:join() }, { true }, 'joined task ended')
print('ok')
