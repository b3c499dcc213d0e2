-- lem.http.h2: HTTP/2 for lem.http.server (native half: lem.http.h2.core,
-- src/protocols/http/h2/). The server hands a connection over when ALPN
-- picked 'h2' or a cleartext client sent the connection preface; each
-- request then runs the server's handler in a coroutine of its own, with
-- req and res as for HTTP/1.1 (req.version '2.0'). See docs/http2.md.
local core = require 'lem.http.h2.core'
local server = require 'lem.http.server'
local response = require 'lem.http.response'
local http = require 'lem.http'
local io = require 'lem.io'
local utils = require 'lem.utils'

local type, tostring, tonumber, pairs, ipairs, next, setmetatable, getmetatable, xpcall, pcall, error, rawget, rawset =
	type, tostring, tonumber, pairs, ipairs, next, setmetatable, getmetatable, xpcall, pcall, error, rawget, rawset
local lower = string.lower
local concat = table.concat
local traceback = debug.traceback
local spawn, timeout, updatenow = utils.spawn, utils.timeout, utils.updatenow
local date = http.date
local newresponse = response.new
local P = response._private
local helpers = server._h2
local problem, outgoing, failed, debug, token = helpers.problem, helpers.outgoing, helpers.failed, helpers.debug,
	helpers.token
local access_logger, logged, sendbody, one_piece = helpers.access_logger, helpers.logged, helpers.sendbody,
	helpers.one_piece
local stderr = _G.io.stderr

local M = {}

-- req's methods: body() here, the rest server.Request's (which find this
-- body()); and the fields built when first read (req.query, req.cookies),
-- by the HTTP/1.1 server's getters, kept in req.
local Methods = setmetatable({}, { __index = server.Request })
local getters = helpers.getters
local Request = {}
function Request.__index(req, k)
	local m = Methods[k]
	if m ~= nil then
		return m
	end
	local get = getters[k]
	if get then
		local v = get(req)
		rawset(req, k, v)
		return v
	end
end
M.Request = Request

-- The body as a reader of pieces, for req:multipart and req:body: each
-- call returns the next DATA frame's bytes as they come, then nil, 'eof'
-- (or nil, 'oversized' past max, srv.max_body by default, or the stream's
-- error). The window is given back as each piece is read, so an upload is
-- never all in memory.
local function reader(self, max)
	local body = self[P.body]
	if body then
		return one_piece(body)
	end
	local st, size, ended = self[P.h2], 0, false
	max = max or self[P.max]
	return function()
		if ended then
			return nil, 'eof'
		end
		local chunk, err = st:read()
		if not chunk then
			if err == 'eof' then
				ended = true
				self[P.body] = ''
			end
			return nil, err
		end
		size = size + #chunk
		if size > max then
			return nil, 'oversized'
		end
		return chunk
	end
end

-- req:body([maxsize]) -> string | nil, 'oversized' | nil, err
function Methods:body(maxsize)
	local body = self[P.body]
	if body then
		return body
	end
	local max = self[P.max]
	if maxsize and maxsize < max then
		max = maxsize
	end
	local declared = tonumber(self.headers['content-length'])
	if declared and declared > max then
		return nil, 'oversized'
	end
	local read = reader(self, max)
	local parts, n = {}, 0
	while true do
		local chunk, err = read()
		if not chunk then
			if err == 'eof' then
				break
			end
			return nil, err
		end
		n = n + 1
		parts[n] = chunk
	end
	body = concat(parts)
	self[P.body] = body
	return body
end
Methods[P.reader] = reader

-- The values of a and b (each a string or a list of strings) as one list.
local function join(a, b)
	local out = {}
	for _, x in ipairs({ a, b }) do
		if type(x) == 'table' then
			for i = 1, #x do
				out[#out + 1] = x[i]
			end
		else
			out[#out + 1] = x
		end
	end
	return out
end

-- The response's fields for HTTP/2: lower-case names, values as strings,
-- and Date, Server and the body's length unless the handler set them.
-- problem() has checked them (so every name is a token).
local function fields(res, length)
	local h = {}
	for k, v in pairs(res.headers) do
		-- A list (a table without a metatable): one field per element.
		if type(v) ~= 'table' or getmetatable(v) ~= nil then
			v = tostring(v)
		end
		local name = token(k)
		local old = h[name]
		if old ~= nil then
			-- Names that differ only in case ('Set-Cookie', 'set-cookie')
			-- are one field in HTTP/2: every value of each goes out.
			v = join(old, v)
		end
		h[name] = v
	end
	if h.date == nil then
		h.date = date()
	end
	if h.server == nil then
		h.server = server.server_name
	end
	if length and h['content-length'] == nil then
		h['content-length'] = tostring(length)
	end
	return h
end

-- res.trailers, if it is a table of fields.
local function trailers(res)
	local t = res.trailers
	if type(t) ~= 'table' or next(t) == nil then
		return nil
	end
	local out = {}
	for k, v in pairs(t) do
		out[lower(k)] = tostring(v)
	end
	return out
end

-- res:write(...) on an HTTP/2 request: the head first, then each call's
-- strings as DATA frames, as the peer's window lets them go.
local function stream(res, ...)
	local req = res[P.req]
	local st = req[P.h2]
	local state = res[P.streaming]
	if state == nil then
		local status = res.status or 200
		res.status = status
		local bad, declared = problem(res, status)
		if bad or declared then
			error(bad or 'a Content-Length on a streamed response', 0)
		end
		local head_only = req.method == 'HEAD'
		local ok, err = st:respond(status, fields(res), head_only)
		if not ok then
			return nil, err
		end
		state = head_only and 'head' or 'h2'
		res[P.streaming] = state
		local pre = concat(res)
		for i = #res, 1, -1 do
			res[i] = nil
		end
		if state == 'h2' and pre ~= '' then
			ok, err = st:write(pre)
			if not ok then
				return nil, err
			end
		end
	end
	if state == 'head' then
		return true
	end
	return st:write(concat({ ... }))
end
Methods[P.stream] = stream

-- The largest body sent with its head by one st:respond (h2 queues what
-- the peer's window does not take yet); larger ones go by st:write.
local whole = 65536

-- Send the response the handler built: true, or nil, err. Raises, with
-- nothing sent, when it cannot be sent as it is (the caller sends a 500).
local function send(req, res)
	local st = req[P.h2]
	local streaming = res[P.streaming]
	if streaming then
		if streaming == 'h2' then
			return st:finish(trailers(res))
		end
		return true
	end
	if res.file == nil and res.trailers == nil then
		-- An ordinary response, checked and sent whole in one call (false:
		-- one to check and send here).
		local sent, err = st:send(res, req.method == 'HEAD', server.server_name)
		if sent ~= false then
			return sent, err
		end
	end
	local file, body, size, status, length = outgoing(req, res)
	local tr = trailers(res)
	local last = req.method == 'HEAD' or ((length or 0) == 0 and not tr)
	res[P.sent] = req.method ~= 'HEAD' and length or 0
	-- A small body goes with the head, in one call that does not wait.
	local small = not last and not file and not tr and length and length <= whole
	local ok, err = st:respond(status, fields(res, length), last, small and body or nil)
	if ok and not last and not small then
		if file then
			-- From res._fileoffset (a Range) on, in pieces.
			ok, err = sendbody(st, file, size, res[P.fileoffset])
		elseif length then
			ok, err = st:write(body)
		end
		if ok then
			ok, err = st:finish(tr)
		else
			st:reset()
		end
	end
	if res[P.opened] then
		res[P.opened]:close()
	end
	return ok, err
end

-- The handler under srv.handler_timeout: its results are dropped.
local function call(handler, req, res)
	handler(req, res)
end

local service_unavailable = response.htmlerror(503, 'Service Unavailable')

-- One request: the handler, then its response (or a 500 / 503 in its
-- place, or a reset when a streamed response breaks off).
local function handle(self, method, uri, path, headers, st, log, peer)
	local start = log and updatenow()
	local req = setmetatable({
		method = method,
		uri = uri,
		path = path,
		version = '2.0',
		headers = headers,
		[P.h2] = st,
		[P.max] = self.max_body,
		[P.server] = self,
	}, Request)
	local res = newresponse(req)
	local handler = self.handler
	local ok, herr, terr
	if self.handler_timeout then
		ok, herr, terr = xpcall(timeout, traceback, self.handler_timeout, call, handler, req, res)
	else
		ok, herr = xpcall(handler, traceback, req, res)
	end
	if ok and terr == 'timeout' then
		stderr:write('lem.http.server: handler timed out after ', tostring(self.handler_timeout), ' s: ',
			tostring(method), ' ', tostring(uri), '\n')
		debug(self, 'handler', 'timeout')
		if res[P.streaming] then
			st:reset()
			return st:close()
		end
		res = newresponse(req)
		service_unavailable(req, res)
	elseif not ok then
		failed(self, herr)
		if res[P.streaming] then
			st:reset()
			return st:close()
		end
		res = newresponse(req)
		response.internal_server_error(req, res)
	end
	local fine, sent, err = pcall(send, req, res)
	if not fine then
		failed(self, sent)
		if res[P.opened] then
			res[P.opened]:close()
		end
		res = newresponse(req)
		response.internal_server_error(req, res)
		fine, sent, err = pcall(send, req, res)
	end
	if fine and not sent then
		debug(self, 'write', err)
	end
	st:close()
	if log then
		logged(log, peer, req, res, start)
	end
end

-- Take the connection's requests, each to a handler of its own, until it
-- ends.
local function run(self, conn, log, peer)
	while true do
		local method, uri, path, headers, st = conn:accept()
		if not method then
			if uri ~= 'closed' then
				debug(self, 'read', uri)
			end
			return
		end
		spawn(handle, self, method, uri, path, headers, st, log, peer)
	end
end

-- h2.serve(srv, client [, preface]): serve the connection client (a
-- Stream of srv's) over HTTP/2 until it ends. preface: its first line
-- was read as an HTTP/1.1 head (cleartext by prior knowledge).
function M.serve(self, client, preface)
	local log = self.access_log and access_logger(self)
	local peer = log and client:getpeer()
	local conn, err = core.serve(client, preface, self.max_streams, nil, self.timeout)
	if not conn then
		debug(self, 'read', err)
		client:close()
		return
	end
	return run(self, conn, log, peer)
end

-- h2.upgrade(srv, client, req) -> true | false | nil, err: req (read
-- from client, a connection of srv's) asked for Upgrade: h2c; switch the
-- connection over to HTTP/2 (101 Switching Protocols), req becoming its
-- stream 1, and serve it until it ends: true. false: serve req over
-- HTTP/1.1 instead (a TLS connection, a target that is not a path).
-- nil, err: its HTTP2-Settings is bad (the caller answers 400).
function M.upgrade(self, client, req)
	local section = rawget(req, P.head)
	if not section then
		return false
	end
	local log = self.access_log and access_logger(self)
	local peer = log and client:getpeer()
	local conn, err = core.upgrade(client, req.method, req.uri, section, self.max_streams, nil, self.timeout)
	if not conn then
		return conn, err
	end
	run(self, conn, log, peer)
	return true
end

return M
