-- lem.queue: a FIFO for passing values between coroutines.
-- See docs/queue.md.
local utils = require 'lem.utils'

local thisthread, suspend, resume = utils.thisthread, utils.suspend, utils.resume

local M = {}

local Queue = {}
Queue.__index = Queue
M.Queue = Queue

-- The queue keeps values in slots first..last, and waiting getters in
-- wfirst..wlast; n is (values queued) - (getters waiting), as in LEM.
function M.new()
	return setmetatable({ n = 0, first = 1, last = 0, wfirst = 1, wlast = 0 }, Queue)
end

function Queue:empty()
	return self.last < self.first
end

function Queue:put(v)
	self.n = self.n + 1
	while self.wfirst <= self.wlast do
		local i = self.wfirst
		local co = self[-i]
		self[-i] = nil
		self.wfirst = i + 1
		-- A getter woken by someone else meanwhile (or cancelled) no longer
		-- waits here, nor counts in n.
		if resume(co, v) then return end
		self.n = self.n + 1
	end
	local last = self.last + 1
	self.last = last
	self[last] = v
end

function Queue:get()
	self.n = self.n - 1
	if self.first <= self.last then
		local i = self.first
		local v = self[i]
		self[i] = nil
		self.first = i + 1
		return v
	end
	local w = self.wlast + 1
	self.wlast = w
	self[-w] = thisthread()
	return suspend()
end

-- Wake every waiting getter with the given values.
function Queue:signal(...)
	for i = self.wfirst, self.wlast do
		local co = self[-i]
		self[-i] = nil
		resume(co, ...)
	end
	self.n = self.n + (self.wlast - self.wfirst + 1)
	self.wfirst, self.wlast = 1, 0
end

-- Wake waiters with nil, 'reset' and drop queued values.
function Queue:reset()
	for i = self.first, self.last do self[i] = nil end
	self.first, self.last = 1, 0
	self.n = 0
	self:signal(nil, 'reset')
	self.n = 0
end

-- for v in q:consume() do ... end, until a getter receives nil.
function Queue:consume()
	return Queue.get, self
end

return M
