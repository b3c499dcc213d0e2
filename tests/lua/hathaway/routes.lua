-- lem.hathaway: import, exact and pattern routes with captures, 404/405,
-- GET answering HEAD, instances, Hathaway(server), and
-- hathaway.server:close() from a handler ending the run.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local hathaway = require 'lem.hathaway'
local client = require 'lem.http.client'

local env = {}
hathaway.import(env)
for _, name in ipairs({ 'GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'GETM', 'POSTM', 'PUTM', 'DELETEM', 'OPTIONSM', 'Hathaway' }) do
	assert(type(env[name]) == 'function', name)
end

env.GET('/', function(req, res)
	res:add('index')
end)
env.POST('/form', function(req, res)
	res:add('posted %s', req:body())
end)
env.GETM('^/user/(%w+)/(%d+)$', function(req, res, name, id)
	res:add('user %s #%s', name, id)
end)
env.GETM('^/stop$', function(req, res)
	res:add('stopping')
	hathaway.server:close()
end)

local sock = assert(io.tcp.listen('127.0.0.1', 0))
local _, port = sock:getsockname()
local base = 'http://127.0.0.1:' .. port
local ran
utils.spawn(function()
	ran = { env.Hathaway(sock) }
end)

local c = client.new()
local function req(method, path, body)
	local res = assert(c:request(method, base .. path, nil, body))
	return res.status, assert(res:body())
end
eq({ req('GET', '/') }, { 200, 'index' }, 'exact')
eq({ req('HEAD', '/') }, { 200, '' }, 'HEAD via GET')
eq({ req('POST', '/form', 'a=1') }, { 200, 'posted a=1' }, 'POST')
eq({ req('GET', '/user/bob/42') }, { 200, 'user bob #42' }, 'captures')
eq(req('GET', '/user/bob/x'), 404, 'pattern miss')
eq(req('PUT', '/'), 405, 'exact, other method')
eq(req('POST', '/user/a/1'), 405, 'pattern, other method')
eq(req('GET', '/nothing'), 404, 'no route')
eq({ req('GET', '/stop') }, { 200, 'stopping' }, 'stop')
c:close()
while not ran do
	utils.yield()
end
eq(ran, { nil, 'interrupted' }, 'run ended')

-- Instances are independent; app:run(host, port) listens itself.
local app = hathaway.new()
app:GET('/only', function(req, res)
	res:add('app')
end)
utils.spawn(function()
	ran = { app:run('127.0.0.1', 0) }
end)
while not app.server do
	utils.yield()
end
local _, aport = app.server:getsockname()
local c2 = client.new()
local res = assert(c2:get(('http://127.0.0.1:%d/only'):format(aport)))
eq(res:body(), 'app', 'instance route')
res = assert(c2:get(('http://127.0.0.1:%d/'):format(aport)))
eq(res.status, 404, 'instance has no default routes')
-- (an open keep-alive connection would hold the server's connection
-- coroutine, and the process, until the head-read timeout)
c2:close()
app.server:close()

-- app:dispatch(req, res) routes a request built by hand: exact routes,
-- GET answering HEAD, patterns with captures, 405 and 404.
local response = require 'lem.http.response'
local d = hathaway.new()
d:GET('/x', function(_, r)
	r:add('x')
end)
d:POSTM('^/n/(%d+)$', function(_, r, n)
	r:add('n=' .. n)
end)
local function route(method, path)
	local req = { method = method, path = path, uri = path }
	local r = response.new(req)
	d:dispatch(req, r)
	return r.status or 200, table.concat(r)
end
eq({ route('GET', '/x') }, { 200, 'x' }, 'dispatch: exact')
eq({ route('HEAD', '/x') }, { 200, 'x' }, 'dispatch: HEAD through GET')
eq(route('POST', '/x'), 405, 'dispatch: other method')
eq({ route('POST', '/n/12') }, { 200, 'n=12' }, 'dispatch: pattern with capture')
eq(route('GET', '/n/12'), 405, 'dispatch: pattern, other method')
eq(route('GET', '/nothing'), 404, 'dispatch: no route')
