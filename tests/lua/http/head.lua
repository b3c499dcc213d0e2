-- The response head: built in Rust (lem.http.core head, and the whole
-- response in core.respond) for plain string and number fields, in Lua for
-- anything else (tostring on a value with __tostring, a status that is not
-- an integer, body parts that are not strings); both give the same shape.
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local core = require 'lem.http.core'

-- core.head directly: fields in table order, the server's own last.
local h = core.head(200, 'OK', { ['X-A'] = 'b' }, 14, false, false, 'lem')
assert(h:match('^HTTP/1%.1 200 OK\r\nX%-A: b\r\nContent%-Length: 14\r\nDate: [^\r]+ GMT\r\nServer: lem\r\n\r\n$'), h)
h = core.head(404, 'Not Found', { date = 'x', SERVER = 'y', connection = 'z', ['content-length'] = 3 }, 3, true, false, 'lem')
local lines = {}
for l in h:gmatch('([^\r]*)\r\n') do lines[#lines + 1] = l end
table.sort(lines)
eq(lines, { '', 'HTTP/1.1 404 Not Found', 'SERVER: y', 'connection: z', 'content-length: 3', 'date: x' }, 'fields given win')
eq(core.head(200, 'OK', {}, 'chunked', true, false, 'lem'):match('Transfer%-Encoding: chunked\r\n'), 'Transfer-Encoding: chunked\r\n', 'chunked')
assert(core.head(200, 'OK', {}, nil, false, true, 'lem'):find('Connection: keep-alive\r\n', 1, true), 'keep-alive')
eq(core.head(200, 'OK', { x = setmetatable({}, {}) }, 1, false, false, 'lem'), nil, 'a table value with a metatable: left to Lua')
eq(core.head(200, 'OK', { x = { { 'nested' } } }, 1, false, false, 'lem'), nil, 'a table in a list: left to Lua')
eq(core.head(200, 'OK', { x = { 'a\r\nb' } }, 1, false, false, 'lem'), nil, 'a line end in a list: left to Lua')
eq(core.head(200, 'OK', { ['Content-Length'] = { 1 } }, 1, false, false, 'lem'), nil, 'a list Content-Length: left to Lua')
h = core.head(200, 'OK', { x = { 'a', 2 }, y = {} }, 1, false, false, 'lem')
assert(h:match('^HTTP/1%.1 200 OK\r\nx: a\r\nx: 2\r\nContent%-Length: 1\r\n'), h)
eq(core.head(200.5, 'OK', {}, 1, false, false, 'lem'), nil, 'a fractional status: left to Lua')

-- res:add appends string.format's result; a lone string without '%' is
-- appended as it is.
local r = require('lem.http.response').new({})
r:add('plain')
r:add('100%% %s', 'sure')
r:add('%d+%d', 1, 2)
r:add(7)
r:add('')
eq({ r[1], r[2], r[3], r[4], r[5], r[6] }, { 'plain', '100% sure', '1+2', '7', '' }, 'res:add')
local ok, err = pcall(r.add, r, '%d', 'x')
assert(not ok and err:find('number expected, got string', 1, true), err)
assert(not pcall(r.add, 'x', 'y'), 'res:add on a string')
eq(#r, 5, 'nothing added by a failed call')
-- core.add (res:add on Lua 5.4; LuaJIT keeps the Lua version) directly.
local parts = {}
core.add(parts, 'a%%')
core.add(parts, 'b')
core.add(parts, '%s-%d', 'c', 3)
eq(parts, { 'a%', 'b', 'c-3' }, 'core.add')

-- Through the server: both paths.
local obj = setmetatable({}, { __tostring = function() return 'from tostring' end })
local server = require 'lem.http.server'
local srv, port = common.serve(function(req, res)
	if req.path == '/obj' then
		res.headers['X-Obj'] = obj
	elseif req.path == '/parts' then
		res:add('a')
		res:add('%d', 2)
		res[#res + 1] = 'c'
		return
	elseif req.path == '/number' then
		res[1] = 42
		return
	elseif req.path == '/status' then
		res.status = 299
		res:add('odd')
		return
	elseif req.path ~= '/num' then
		res:add('%s|%s', req.path, req.uri)
		return
	else
		res.headers['X-Num'] = 42
	end
	res:add('hi')
end)
local out = common.raw(port, 'GET /obj HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
assert(out:match('^HTTP/1%.1 200 OK\r\nX%-Obj: from tostring\r\nContent%-Length: 2\r\nDate: [^\r]+\r\nServer: lem\r\nConnection: close\r\n\r\nhi$'), out)
out = common.raw(port, 'GET /num HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
assert(out:match('^HTTP/1%.1 200 OK\r\nX%-Num: 42\r\nContent%-Length: 2\r\nDate: [^\r]+\r\nServer: lem\r\nConnection: close\r\n\r\nhi$'), out)

-- Bodies in parts are joined; a part that is a number goes the Lua way.
local function body(path, method)
	local r = common.raw(port, (method or 'GET') .. ' ' .. path .. ' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
	return r:match('^HTTP/1%.1 (%d+ [^\r]*)\r\n'), r:match('\r\nContent%-Length: (%d+)\r\n'), r:match('\r\n\r\n(.*)$')
end
eq({ body('/parts') }, { '200 OK', '3', 'a2c' }, 'parts joined')
eq({ body('/parts', 'HEAD') }, { '200 OK', '3', '' }, 'HEAD: the length, no body')
eq({ body('/number') }, { '200 OK', '2', '42' }, 'a number part')
eq({ body('/status') }, { '299 Unknown', '3', 'odd' }, 'a status without a text')
-- The path: decoded before the query, the uri as sent.
eq({ body('/a%20b+c%2B?x=%41') }, { '200 OK', '25', '/a b c+|/a%20b+c%2B?x=%41' }, 'path decoded')
eq({ body('/plain?') }, { '200 OK', '14', '/plain|/plain?' }, 'query cut')
-- The Server field follows server.server_name.
server.server_name = 'other'
assert(common.raw(port, 'GET /num HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'):find('\r\nServer: other\r\n', 1, true))
server.server_name = 'lem'
srv:close()
