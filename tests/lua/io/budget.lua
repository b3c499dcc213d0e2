-- io.setbudget: the input all streams buffer together is bounded. Ten
-- clients each send 600 KB of one line (each under the 1 MiB per-stream
-- limit, 6 MB in all) against a 2 MiB budget: every one is cut at about
-- its share ('line too long'), the total stays near the budget, and a
-- client with a short line is still served.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'

checkerr('positive number of bytes', io.setbudget, 0)
checkerr('number expected', io.setbudget, 'x')
local default = io.budget()
assert(default > 0 and default <= 256 * 1024 * 1024, default)

local budget = 2 * 1024 * 1024
assert(io.setbudget(budget) == true)
eq(io.budget(), budget)

local N, SIZE = 10, 600 * 1000
local server = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = server:getsockname()
local results, most = {}, 0
local conns = {}
local sleeper = utils.newsleeper()
utils.spawn(function()
	server:autospawn(function(c)
		conns[#conns + 1] = c
		local line, err = c:read('*l')
		local _, buffered = io.budget()
		if buffered > most then
			most = buffered
		end
		results[#results + 1] = line or err
		if #results == N + 1 then
			sleeper:wakeup()
		end
	end)
end)

local clients = {}
for i = 1, N do
	utils.spawn(function()
		local c = assert(io.tcp.connect('127.0.0.1', port))
		clients[i] = c
		c:write(('x'):rep(SIZE))
	end)
end
-- Wait until the ten are cut, then send the short line.
while #results < N do
	utils.newsleeper():sleep(0.01)
end
for i = 1, N do
	eq(results[i], 'line too long', 'cut ' .. i)
end
-- Past the budget each input may still take the fill in progress (a
-- read asks for up to 256 KiB at a time once its buffer is large).
assert(most <= budget + N * 320 * 1024, ('%d buffered for a budget of %d'):format(most, budget))
local good = assert(io.tcp.connect('127.0.0.1', port))
assert(good:write('hello\n'))
sleeper:sleep(10)
eq(results[N + 1], 'hello', 'a short line still served')

-- Closing the cut streams gives their input back.
for _, c in ipairs(conns) do
	c:close()
end
for _, c in ipairs(clients) do
	c:close()
end
good:close()
local _, buffered = io.budget()
eq(buffered, 0, 'nothing buffered once closed')
assert(io.setbudget(nil))
eq(io.budget(), default)
server:close()
