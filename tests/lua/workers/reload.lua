-- 20 SIGHUP reloads of `lem -w 2` under load from clients that do not
-- retry (issue 28): Python http.client loops (half on keep-alive
-- connections, half on a new connection per request) and curl on one
-- keep-alive connection per run. No request may fail: a draining worker
-- keeps its idle keep-alive connections open for a moment, answers the
-- next request on each with Connection: close, and closes only those that
-- stay idle.
local support = dofile('support.lua')
local utils = require 'lem.utils'
local io = require 'lem.io'

local app = support.write_file('app.lua', [[
local utils = require 'lem.utils'
local http = require 'lem.http.server'
local srv = assert(http.new('127.0.0.1', tonumber(arg[1]), function(req, res)
	res:add('v' .. select(2, utils.worker()))
end))
print('ready', select(2, srv:getsockname()))
srv:run()
]])
local sup = assert(io.spawn({ arg[-1], '-w', '2', app, tostring(support.free_port()) },
	{ stdout = 'pipe', stderr = 'pipe' }))
local first = assert(sup.stdout:read('*l'))
local port = assert(first:match('^ready\t(%d+)$'), first)

local err = {}
local reloads = 0
utils.spawn(function()
	for line in function() return sup.stderr:read('*l') end do
		err[#err + 1] = line
		if line:find('reloaded: 2 new workers serve', 1, true) then reloads = reloads + 1 end
	end
end)
utils.spawn(function()
	for _ in function() return sup.stdout:read('*l') end do end
end)

local stop = support.tmpdir() .. '/stop'
local url = 'http://127.0.0.1:' .. port .. '/'
-- Read a client's whole output, then note it in `results`.
local results, running = {}, 0
local function collect(name, p)
	running = running + 1
	utils.spawn(function()
		results[name] = assert(p.stdout:read('*a'))
		p:wait()
		running = running - 1
	end)
end
collect('python', assert(io.spawn({ 'python3', 'workers/data/no_retry.py', port, stop, '4' }, { stdout = 'pipe' })))
local curl = ([[
urls=; i=0
while [ $i -lt 100 ]; do urls="$urls -o /dev/null %s"; i=$((i + 1)); done
while [ ! -e %s ]; do curl -s -w '%%{http_code}\n' $urls; done]]):format(url, stop)
collect('curl', assert(io.spawn({ 'sh', '-c', curl }, { stdout = 'pipe' })))

local sleeper = utils.newsleeper()
sleeper:sleep(0.3)
for n = 1, 20 do
	assert(sup:kill('HUP'))
	local deadline = utils.updatenow() + 10
	while reloads < n do
		assert(utils.updatenow() < deadline, 'reload ' .. n .. ' did not finish:\n' .. table.concat(err, '\n'))
		sleeper:sleep(0.02)
	end
	sleeper:sleep(0.1)
end
support.write_file('stop', '')
while running > 0 do sleeper:sleep(0.05) end

local lines = {}
for line in results.python:gmatch('[^\n]+') do lines[#lines + 1] = line end
local answered = tonumber(table.remove(lines, 1))
assert(answered and answered > 1000, 'python answers: ' .. tostring(answered))
eq(lines, {}, 'python failures among ' .. answered .. ' requests')
local codes = {}
for code in results.curl:gmatch('%d+') do codes[code] = (codes[code] or 0) + 1 end
assert((codes['200'] or 0) > 100, 'curl answers: ' .. support.show(codes))
codes['200'] = nil
eq(codes, {}, 'curl failures')
io.stderr:write(('20 reloads: %d python and %d curl requests, none failed\n'):format(answered,
	select(2, results.curl:gsub('200', ''))))

assert(sup:kill('TERM'))
local how = assert(sup:wait())
eq({ how.type, how.status }, { 'exited', 0 }, 'the supervisor stops')
