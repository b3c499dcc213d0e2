-- Exported class tables are the objects' metatables, with __index pointing
-- at themselves (as in the original LEM), so scripts can add methods.
dofile('support.lua')
local io = require 'lem.io'
local utils = require 'lem.utils'
local queue = require 'lem.queue'

local function class(obj, cls, what)
	assert(cls ~= nil, what .. ': class not exported')
	assert(getmetatable(obj) == cls, what .. ': getmetatable(obj) is not the class')
	assert(rawequal(cls.__index, cls), what .. ': __index is not the class itself')
end

local dir = tmpdir()
local f = assert(io.open(dir .. '/f', 'w'))
class(f, io.File, 'File')
class(io.stdin, io.Stream, 'Stream (stdin)')
local srv = assert(io.tcp.listen('127.0.0.1', 0))
class(srv, io.Server, 'Server')
local _, port = srv:getsockname()
local c = assert(io.tcp.connect('127.0.0.1', port))
class(c, io.Stream, 'Stream (tcp)')
local r = assert(io.popen('true', 'r'))
class(r, io.Stream, 'Stream (popen)')
r:close()

-- A method added to a class reaches its objects.
function io.Stream:hello() return 'hello ' .. tostring(self:closed()) end
eq(c:hello(), 'hello false', 'added Stream method')
function io.File:name() return 'file' end
eq(f:name(), 'file', 'added File method')

-- The metamethods stay out of reach: a script cannot free an object twice.
eq(io.Stream.__gc, nil, 'Stream.__gc hidden')
eq(io.File.__gc, nil, 'File.__gc hidden')

local q = queue.new()
class(q, queue.Queue, 'lem.queue Queue')

local proc = assert(io.spawn({ 'true' }))
class(proc, require('lem.process').Process, 'lem.process Process')
proc:wait()

local tls = require 'lem.io.tls'
assert(tls.Server, 'io.tls.Server')

local client = require 'lem.http.client'
class(client.new(), client.Client, 'http client')

-- lem.http: req's metatable is server.Request (whose __index is a function
-- that also builds req.headers on first use, so methods added to Request
-- are still found), res's is response.Response.
local server = require 'lem.http.server'
local response = require 'lem.http.response'
function server.Request:where() return self.path end
local hsock = assert(io.tcp.listen('127.0.0.1', 0))
local _, hport = hsock:getsockname()
local seen
local hsrv = server.new(hsock, function(req, res)
	seen = getmetatable(req) == server.Request and getmetatable(res) == response.Response
	res:add('%s', req:where())
end)
utils.spawn(function() hsrv:run() end)
local hc = client.new()
local hres = assert(hc:get(('http://127.0.0.1:%d/x'):format(hport)))
class(hres, client.Response, 'http client Response')
eq(hres:body(), '/x', 'method added to Request')
eq(seen, true, 'req and res metatables')
hc:close()
hsrv:close()

c:close(); srv:close(); f:close()
local _ = utils
print('ok')
