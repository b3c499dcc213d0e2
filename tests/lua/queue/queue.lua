-- lem.queue: FIFO between coroutines, get suspends, consume, signal, reset, n.
dofile('support.lua')
local utils = require 'lem.utils'
local queue = require 'lem.queue'

local q = queue.new()
eq(q:empty(), true, 'new queue is empty')
eq(q.n, 0, 'n of a new queue')
q:put(1); q:put('two'); q:put(false)
eq(q.n, 3, 'n after three puts')
eq(q:empty(), false, 'not empty')
eq({ q:get(), q:get(), q:get() }, { 1, 'two', false }, 'FIFO order')
eq(q.n, 0, 'n after gets')

-- get suspends until a value is put; waiters are served oldest first
local got = {}
for i = 1, 3 do utils.spawn(function() local v = q:get(); got[#got + 1] = i .. ':' .. v end) end
utils.yield()
eq(q.n, -3, 'n counts waiting getters')
q:put('a'); q:put('b')
utils.yield()
eq(got, { '1:a', '2:b' }, 'waiters served in order')
q:put('c')
utils.yield()
eq(got, { '1:a', '2:b', '3:c' }, 'last waiter')
eq(q.n, 0, 'n balanced')

-- consume iterates until a getter receives nil
local items = {}
utils.spawn(function()
	for v in q:consume() do items[#items + 1] = v end
	items[#items + 1] = 'end'
end)
q:put(10); q:put(20)
utils.yield()
q:put(nil)
utils.yield()
eq(items, { 10, 20, 'end' }, 'consume')

-- signal wakes every waiting getter with the same values
local woken = {}
for i = 1, 3 do utils.spawn(function() woken[i] = { q:get() } end) end
utils.yield()
q:signal('hey', 2)
utils.yield()
eq(woken, { { 'hey', 2 }, { 'hey', 2 }, { 'hey', 2 } }, 'signal')
eq(q.n, 0, 'n after signal')

-- reset drops values and wakes waiters with nil, 'reset'
q:put(1); q:put(2)
q:reset()
eq(q:empty(), true, 'reset drops values')
local r
utils.spawn(function() r = { q:get() } end)
utils.yield()
q:reset()
utils.yield()
eq(r, { nil, 'reset' }, 'reset wakes waiters')
eq(q.n, 0, 'n after reset')

-- many producers and consumers through one queue
local total, N = 0, 1000
for p = 1, 10 do
	utils.spawn(function()
		for i = 1, N / 10 do
			q:put(i)
			if i % 7 == 0 then utils.yield() end
		end
	end)
end
local done = utils.newsleeper()
local received = 0
for c = 1, 5 do
	utils.spawn(function()
		while true do
			local v = q:get()
			received = received + 1
			total = total + v
			if received == N then done:wakeup() end
		end
	end)
end
done:sleep(10)
eq(received, N, 'every value received once')
eq(total, 10 * (100 * 101 / 2), 'sum of values')
print('ok')
