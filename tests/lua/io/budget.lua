-- io.setbudget: the input all streams buffer together is bounded. Ten
-- clients each send 314 KB of one line (each under the 1 MiB per-stream
-- limit, 3 MB in all) against a 2 MiB budget: every one is cut at about
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

local N = 10
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

-- Each client sends 250 KB of a line: 2.5 MB in all, past the budget.
-- Streams filled before the total passed it wait (they hold no more than
-- what came); every fill after it cuts a stream holding its share. Then
-- each client sends 64 KB more: every stream not cut yet is filled again,
-- past its share, and cut.
local clients = {}
local function send_all(bytes)
	for i = 1, N do
		utils.spawn(function()
			if not clients[i] then
				clients[i] = assert(io.tcp.connect('127.0.0.1', port))
			end
			clients[i]:write(('x'):rep(bytes))
		end)
	end
end
local function wait_for(what, cond)
	local sleeper = utils.newsleeper()
	for _ = 1, 1000 do
		if cond() then
			return
		end
		sleeper:sleep(0.01)
	end
	error('still waiting for ' .. what)
end
send_all(250 * 1000)
wait_for('the budget to be passed', function()
	return select(2, io.budget()) > budget
end)
send_all(64 * 1000)
wait_for('every stream to be cut', function()
	return #results >= N
end)
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
