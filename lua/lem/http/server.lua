-- lem.http.server: an HTTP/1.1 server on any lem Server (TCP, Unix, TLS).
-- The per-request hot path is in Rust (src/protocols/http/server.rs): reading and
-- checking the head (version, Connection, framing, Expect), building req
-- and res, and sending an ordinary response. The keep-alive loop, bodies,
-- streamed and file responses are here. See docs/http-server.md.
--
-- Each response goes out in one write (head and body together), with a
-- Date string formatted once a second. Beyond the original: chunked request
-- bodies, streamed responses (res:write), the framing rules of RFC 9112
-- §6.3 (conflicting lengths -> 400 and close), 431 for a head too large,
-- 413 past srv.max_body, a read timeout (srv.timeout) so idle or slow
-- clients cannot hold a connection, and a handler that raises gets a 500
-- and a logged traceback.
local io = require 'lem.io'
local http = require 'lem.http'
local response = require 'lem.http.response'
local form = require 'lem.http.form'
local cookie = require 'lem.http.cookie'
local multipart = require 'lem.http.multipart'

local type, tostring, tonumber, pairs, next, setmetatable, xpcall, pcall = type, tostring, tonumber, pairs, next, setmetatable, xpcall, pcall
local getmetatable = getmetatable
local match = string.match
local format, gsub, lower, char, find, sub = string.format, string.gsub, string.lower, string.char, string.find, string.sub
local concat = table.concat
local traceback = debug.traceback
local date = http.date
local utils = require 'lem.utils'
local now, timeout, updatenow = utils.now, utils.timeout, utils.updatenow
local core = require 'lem.http.core'
local core_head, request, respond = core.head, core.request, core.respond
local draining = require('lem.utils.core').draining
local status_string = response.status_string
local Response = response.Response
-- The private fields of req and res (declared in lem.http.response).
local P = response._private
local stderr = _G.io.stderr

local M = {}

-- server.debug(where, err): called on connection errors, as LEM's was:
-- ('read', 'closed'), ('read', 'parse error'), ('write', err),
-- ('handler', traceback); nil to stay quiet. srv.debug, when set, serves
-- one server instead.
M.debug = nil

-- Defaults for new servers (srv.timeout, srv.body_timeout, srv.max_body
-- change one server). timeout bounds the wait for a request's head, from
-- the end of the last response (a head read is one read); body_timeout
-- the reading of a whole body.
M.timeout = 30
M.body_timeout = 60
M.max_body = 64 * 1024 * 1024
M.server_name = 'lem'
-- The default maxsize of req:form().
M.max_form = 1024 * 1024

-- A value as a message can show it: tostring's, or its type when even
-- that raises (an error value's __tostring may).
local function describe(v)
	if type(v) == 'string' then
		return v
	end
	local ok, s = pcall(tostring, v)
	if ok and type(s) == 'string' then
		return s
	end
	return '(a ' .. type(v) .. ')'
end

-- The debug hook, if any, with (where, err). A hook that raises is
-- reported on stderr; the connection goes on as it would have.
local function debug(self, where, err)
	local hook = self.debug or M.debug
	if hook then
		local ok, herr = pcall(hook, where, err)
		if not ok then
			stderr:write('lem.http.server: the debug hook raised: ', describe(herr), '\n')
		end
	end
end

-- A handler's mistake (an error it raised, or a response that cannot be
-- sent): to stderr and the debug hook, as ('handler', err).
local function failed(self, err)
	err = describe(err)
	stderr:write('lem.http.server: handler error: ', err, '\n')
	debug(self, 'handler', err)
end

local function hexdigit(h)
	return char(tonumber(h, 16))
end

-- server.urldecode(s): '+' -> ' ' and %XX escapes decoded.
function M.urldecode(s)
	return (gsub(gsub(s, '+', ' '), '%%(%x%x)', hexdigit))
end

-- server.urlencode(s): the inverse (lem.http.form's escape).
M.urlencode = form.escape

-- req's methods. req.headers is built on first use (core.request_index),
-- from the field section the Rust half keeps in req._head: a handler that
-- never reads the headers costs no table for them. pairs(req) builds them
-- first (on Lua 5.4; LuaJIT's pairs has no __pairs).
local Request = {}
Request.__index = core.request_index
function Request.__pairs(req)
	local _ = req.headers
	return next, req, nil
end
M.Request = Request

-- The fields of req built the first time they are read (core.request_index
-- calls getters[k](req) and stores the result in req).
local getters = {}

-- req.query: the query string parsed (lem.http.form); {} without one.
function getters.query(req)
	local uri = req.uri
	local q = find(uri, '?', 1, true)
	if not q then
		return {}
	end
	local hash = find(uri, '#', q + 1, true)
	return form.parse(sub(uri, q + 1, hash and hash - 1 or nil), #uri) or {}
end

-- req.cookies: the Cookie field parsed (lem.http.cookie); {} without one.
function getters.cookies(req)
	return cookie.parse(req.headers.cookie)
end

-- req:cookie(name [, key]) -> value | nil: a cookie's value; with key,
-- only if it was signed with it (res:cookie's sign), without the
-- signature.
function Request:cookie(name, key)
	local v = self.cookies[name]
	if key == nil or v == nil then
		return v
	end
	return cookie.verify(key, name, v)
end

-- The request's framing, set by the server: 'length' with _length, or
-- 'chunked', or nil (no body).

-- Send 100 Continue the first time the body is wanted.
local function continue(self)
	if self[P.expect] then
		self[P.expect] = nil
		local ok, err = self.client:write('HTTP/1.1 100 Continue\r\n\r\n')
		if not ok then
			return nil, err
		end
	end
	return true
end

-- Read a chunked body of at most max bytes before the server's
-- body_timeout; bad framing marks the request for a 400 (the connection
-- then closes).
local function read_chunked(self, max)
	local srv = self[P.server]
	local deadline = srv.body_timeout
	if deadline then
		deadline = now() + deadline
	end
	local body, err = http.read_chunked(self.client, max, deadline)
	if deadline then
		self.client:settimeout(srv.timeout)
	end
	if not body and err == 'parse error' then
		self[P.badchunk] = true
	end
	return body, err
end

-- req:body([maxsize]) -> string | nil, 'oversized' | nil, err
function Request:body(maxsize)
	local body = self[P.body]
	if body then
		return body
	end
	local framing = self[P.framing]
	if framing == nil then
		self[P.body] = ''
		return ''
	end
	local max = self[P.max]
	if maxsize and maxsize < max then
		max = maxsize
	end
	local err
	if framing == 'length' then
		local len = self[P.length]
		if len > max then
			return nil, 'oversized'
		end
		body, err = continue(self)
		if not body then
			return nil, err
		end
		-- One read: body_timeout bounds all of it.
		local client, srv = self.client, self[P.server]
		client:settimeout(srv.body_timeout)
		body, err = client:read(len)
		client:settimeout(srv.timeout)
	else
		body, err = continue(self)
		if not body then
			return nil, err
		end
		body, err = read_chunked(self, max)
	end
	if not body then
		return nil, err
	end
	self[P.body] = body
	return body
end

-- The media type of a request, lower case, without parameters ('' when
-- there is no Content-Type).
local function media_type(req)
	local ct = req.headers['content-type']
	if not ct then
		return ''
	end
	return lower(match(ct, '^[ \t]*([^; \t]*)'))
end

-- req:form([maxsize]) -> table | nil, err: an
-- application/x-www-form-urlencoded body parsed as req.query is; err is
-- 'not a form' for another Content-Type, 'too many fields' past
-- form.max_fields, or req:body's.
function Request:form(maxsize)
	if media_type(self) ~= 'application/x-www-form-urlencoded' then
		return nil, 'not a form'
	end
	local body, err = self:body(maxsize or M.max_form)
	if not body then
		return nil, err
	end
	return form.parse(body)
end

-- The largest piece req:multipart reads at once.
local PIECE = 65536

-- The request's body as a reader of pieces (for req:multipart): each
-- call returns the next piece (at most PIECE bytes), or nil, 'eof' at the
-- end, or nil, err ('timeout' past srv.body_timeout for the whole body,
-- 'oversized' past srv.max_body, 'parse error' for bad chunked framing,
-- which the server then answers 400). Once the whole body is read,
-- req._body is '' so the connection can go on.
-- A reader of a body read already (req:body()): it as one piece, then
-- nil, 'eof'.
local function one_piece(body)
	return function()
		local b = body
		body = ''
		if b == '' then
			return nil, 'eof'
		end
		return b
	end
end

local function body_reader(self)
	local body = self[P.body]
	if body then
		return one_piece(body)
	end
	local framing = self[P.framing]
	if framing == nil then
		self[P.body] = ''
		return function()
			return nil, 'eof'
		end
	end
	local client, srv = self.client, self[P.server]
	local deadline = srv.body_timeout
	if deadline then
		deadline = now() + deadline
	end
	local function get(fmt)
		if deadline then
			local left = deadline - now()
			if left <= 0 then
				return nil, 'timeout'
			end
			client:settimeout(left)
		end
		local v, err = client:read(fmt)
		if deadline then
			client:settimeout(srv.timeout)
		end
		if not v and err == 'parse error' then
			self[P.badchunk] = true
		end
		return v, err
	end
	local started
	local left, ended = 0, false
	if framing == 'length' then
		left = self[P.length]
		return function()
			if not started then
				started = true
				local ok, err = continue(self)
				if not ok then
					return nil, err
				end
			end
			if left == 0 then
				self[P.body] = ''
				return nil, 'eof'
			end
			local data, err = get(left < PIECE and left or PIECE)
			if not data then
				return nil, err
			end
			left = left - #data
			return data
		end
	end
	local total, max, chunk_end = 0, self[P.max], false
	return function()
		if not started then
			started = true
			local ok, err = continue(self)
			if not ok then
				return nil, err
			end
		end
		if ended then
			return nil, 'eof'
		end
		local ok, err
		if left == 0 then
			if chunk_end then
				ok, err = get('HTTPChunkEnd')
				if not ok then
					return nil, err
				end
				chunk_end = false
			end
			local size
			size, err = get('HTTPChunkSize')
			if not size then
				return nil, err
			end
			if size == 0 then
				ok, err = get('HTTPTrailers')
				if not ok then
					return nil, err
				end
				ended = true
				self[P.body] = ''
				return nil, 'eof'
			end
			total = total + size
			if total > max then
				return nil, 'oversized'
			end
			left = size
		end
		local data
		data, err = get(left < PIECE and left or PIECE)
		if not data then
			return nil, err
		end
		left = left - #data
		chunk_end = left == 0
		return data
	end
end

-- req:multipart([opts]) -> parts | nil, err: the parts of a
-- multipart/form-data body, read as they come (lem.http.multipart).
-- err: 'not multipart', 'bad boundary'. A second call returns the same
-- parts.
function Request:multipart(opts)
	local parts = self[P.parts]
	if parts then
		return parts
	end
	local boundary, err = multipart.boundary(self.headers['content-type'])
	if not boundary then
		return nil, err
	end
	parts = multipart.new(self[P.reader](self), boundary, opts)
	self[P.parts] = parts
	return parts
end

-- token(k) -> k in lower case if the string k is a token (a field name),
-- or nil. Those found are kept (at most 256): a handler sends the same few
-- names again and again, and the pattern and lower() were a tenth of an
-- HTTP/2 hello world's work.
local tokens, ntokens = {}, 0
local function token(k)
	local low = tokens[k]
	if low then
		return low
	end
	if not find(k, "^[%w!#$%%&'*+%-.^_`|~]+$") then
		return nil
	end
	low = lower(k)
	if ntokens < 256 then
		tokens[k], ntokens = low, ntokens + 1
	end
	return low
end

-- Whether a field value has a CR, LF or NUL: three plain searches (memchr),
-- where the class '[\r\n%z]' costs a pattern match at every byte.
local function unsafe_value(v)
	return find(v, '\r', 1, true) or find(v, '\n', 1, true) or find(v, '\0', 1, true)
end

-- Why a response cannot go out as the handler left it, or nil (and the
-- Content-Length the handler set, as a number, if any). Checked before
-- anything is sent: a status that is not an integer from 100 to 999, a
-- headers value that is not a table, a field name that is not a token or
-- a value with a CR, LF or NUL in it (a value taken from the request could
-- forge fields or a whole response with them), a Content-Length that is
-- not a decimal number, body parts that are not strings or numbers, a
-- res.file that is neither a path nor a File. May raise (a value's
-- __tostring, the headers' __pairs): the caller is protected.
local function problem(res, status)
	if type(status) ~= 'number' or status % 1 ~= 0 or status < 100 or status > 999 then
		return format('res.status must be an integer from 100 to 999, not %s %s', type(status), describe(status))
	end
	local headers = res.headers
	if type(headers) ~= 'table' then
		return 'res.headers must be a table, not ' .. type(headers)
	end
	local length
	for k, v in pairs(headers) do
		local low = type(k) == 'string' and token(k)
		if not low then
			return format('header field name %q is not a token', describe(k))
		end
		if type(v) == 'table' and getmetatable(v) == nil then
			-- A list: one field per element.
			if low == 'content-length' then
				return format('header field %q is a list', k)
			end
			for i = 1, #v do
				local e = v[i]
				if type(e) ~= 'string' and type(e) ~= 'number' then
					return format('header field %q: element %d is a %s, not a string', k, i, type(e))
				end
				if unsafe_value(e) then
					return format('header field %q has a CR, LF or NUL in element %d', k, i)
				end
			end
			v = ''
		end
		v = tostring(v)
		if type(v) ~= 'string' then
			return format('header field %q: tostring gave no string', k)
		end
		if unsafe_value(v) then
			return format('header field %q has a CR, LF or NUL in it', k)
		end
		if low == 'content-length' then
			length = find(v, '^%d+$') and #v <= 15 and tonumber(v)
			if not length then
				return format('header field %q is not a decimal number: %q', k, v)
			end
		end
	end
	for i = 1, #res do
		local t = type(res[i])
		if t ~= 'string' and t ~= 'number' then
			return format('res[%d] is a %s, not a string', i, t)
		end
	end
	local file = res.file
	if file ~= nil and type(file) ~= 'string' and getmetatable(file) ~= io.File then
		return 'res.file must be a path or a File, not ' .. type(file)
	end
	return nil, length
end

-- Build the head of a response: in Rust (core.head) when the headers are
-- plain strings and numbers, else here (tostring on each value). Raises
-- when the response cannot be sent (problem(), or a Content-Length on a
-- chunked body): a streamed response's handler then gets a 500. `checked`:
-- the caller ran problem() on res as it is, which gave `declared`.
local function head(res, status, length, close, keepalive, head_only, checked, declared)
	local bad
	if not checked then
		bad, declared = problem(res, status)
	end
	if declared and not bad then
		if length == 'chunked' then
			bad = 'a Content-Length on a streamed (chunked) response'
		elseif length and declared ~= length and not head_only then
			-- Only the body's own: else a keep-alive client would read the
			-- next response from the wrong place.
			bad = format('Content-Length %d on a body of %d bytes', declared, length)
		end
	end
	if bad then
		error(bad, 0)
	end
	local text = status_string[status] or 'Unknown'
	local h = core_head(status, text, res.headers, length, close, keepalive, M.server_name)
	if h then
		return h
	end
	h = {
		'HTTP/1.1 ', tostring(status), ' ', status_string[status] or 'Unknown', '\r\n',
	}
	local n = 5
	local haslength, hasdate, hasserver, hasconn
	for k, v in pairs(res.headers) do
		local lk = lower(k)
		if lk == 'content-length' then
			haslength = true
		elseif lk == 'date' then
			hasdate = true
		elseif lk == 'server' then
			hasserver = true
		elseif lk == 'connection' then
			hasconn = true
		end
		if type(v) == 'table' and getmetatable(v) == nil then
			for i = 1, #v do
				h[n + 1], h[n + 2], h[n + 3], h[n + 4] = k, ': ', tostring(v[i]), '\r\n'
				n = n + 4
			end
		else
			h[n + 1], h[n + 2], h[n + 3], h[n + 4] = k, ': ', tostring(v), '\r\n'
			n = n + 4
		end
	end
	if length == 'chunked' then
		h[n + 1] = 'Transfer-Encoding: chunked\r\n'
		n = n + 1
	elseif length and not haslength then
		h[n + 1] = 'Content-Length: ' .. length .. '\r\n'
		n = n + 1
	end
	if not hasdate then
		h[n + 1], h[n + 2], h[n + 3] = 'Date: ', date(), '\r\n'
		n = n + 3
	end
	if not hasserver then
		h[n + 1] = 'Server: ' .. M.server_name .. '\r\n'
		n = n + 1
	end
	if not hasconn then
		if close then
			h[n + 1] = 'Connection: close\r\n'
			n = n + 1
		elseif keepalive then
			h[n + 1] = 'Connection: keep-alive\r\n'
			n = n + 1
		end
	end
	h[n + 1] = '\r\n'
	return concat(h)
end

-- A response that is only a status (errors found before any handler):
-- sent, then the connection is closed.
local function refuse(client, handler)
	local res = setmetatable({ headers = {} }, Response)
	handler(nil, res)
	local body = res[1] or ''
	client:write(head(res, res.status, #body, true), body)
	client:close()
end

-- res:write(...) while a handler streams: the head first (chunked for
-- HTTP/1.1), then each call's strings as one chunk.
local function stream(res, ...)
	local req = res[P.req]
	local client = req.client
	local state = res[P.streaming]
	if state == nil then
		local close = req.version ~= '1.1' or res[P.close]
		res[P.close] = close
		local status = res.status or 200
		res.status = status
		local h = head(res, status, not close and 'chunked' or nil, close, false)
		local parts = {}
		for i = 1, #res do
			parts[i] = res[i]
			res[i] = nil
		end
		local pre = concat(parts)
		state = close and 'raw' or 'chunked'
		res[P.streaming] = state
		if req.method == 'HEAD' then
			res[P.streaming] = 'head'
			local ok, err = client:write(h)
			if not ok then
				return nil, err
			end
			return true
		end
		if state == 'chunked' and pre ~= '' then
			pre = format('%x\r\n', #pre) .. pre .. '\r\n'
		end
		local ok, err = client:write(h, pre)
		if not ok then
			return nil, err
		end
		state = res[P.streaming]
	end
	if state == 'head' then
		return true
	end
	local data = concat({ ... })
	if data == '' then
		return true
	end
	if state == 'chunked' then
		return client:write(format('%x\r\n', #data), data, '\r\n')
	end
	return client:write(data)
end

-- Send size bytes of a file as the body: sendfile on streams that have
-- it, else copied; from offset when one is given (read there, without the
-- file position: hathaway.static's descriptors are shared), else from the
-- file position. A file that ends before size bytes is a failure (the
-- head promised them: the caller closes the connection or the stream).
local file_pread = core.file_pread
local function sendbody(client, file, size, offset)
	if client.sendfile then
		local sent, err = client:sendfile(file, size, offset)
		if sent and sent < size then
			return nil, 'file ended early'
		end
		return sent, err
	end
	while size > 0 do
		local n = size < 65536 and size or 65536
		local data, err
		if offset then
			data, err = file_pread(file, n, offset)
			offset = offset + (data and #data or 0)
		else
			data, err = file:read(n)
		end
		if not data then
			return nil, err == 'eof' and 'file ended early' or err
		end
		size = size - #data
		local ok, werr = client:write(data)
		if not ok then
			return nil, werr
		end
	end
	return true
end

local newresponse = response.new

-- Whether the File file can be sent as a body, as far as reading tells: a
-- directory opens, and has a size, but cannot be read. Reads one byte and
-- goes back.
local function readable(file)
	local pos = file:seek('cur')
	if not pos then
		return false
	end
	local data, err = file:read(1)
	if not data and err ~= 'eof' then
		return false
	end
	return file:seek('set', pos) ~= nil
end

-- What the response the handler built sends: the file (opened here for a
-- path and kept in res[P.opened] for the caller to close) or the body, its
-- size, the status, and the body's length on the wire (nil for a status
-- that has no body). A missing file or a directory becomes a 404. Raises,
-- with nothing sent, when the response cannot be sent as it is (problem():
-- the caller sends a 500 instead); `checked` and `declared` are for head().
local function outgoing(req, res)
	local bad, declared = problem(res, res.status or 200)
	if bad then
		error(bad, 0)
	end
	local checked = true
	local file = res.file
	local body, size
	local known = res[P.filesize]
	if known and file then
		-- Opened and sized by its maker (hathaway.static): no checks.
		size = known
	elseif file then
		if type(file) == 'string' then
			file = io.open(file, 'r')
			if file then
				res[P.opened] = file
			end
		end
		if file then
			size = file:size()
			if not size or (size > 0 and not readable(file)) then
				file = nil
			end
		end
		if not file then
			-- Missing, or not a file (a directory): nothing to send.
			response.not_found(req, res)
			checked = false
		end
	end
	if not file then
		body = concat(res)
		size = #body
	end
	local status = res.status
	if status == nil then
		status = (size == 0 and not file) and 204 or 200
	end
	local length = size
	if status == 204 or status == 304 or status < 200 then
		length = nil
	end
	return file, body, size, status, length, checked, declared
end

-- Send the response the handler built; returns true, or nil, err. Raises,
-- with nothing sent, when the response cannot be sent as it is.
local function send(req, res, close, keepalive)
	local client = req.client
	local streaming = res[P.streaming]
	if streaming then
		if streaming == 'chunked' then
			return client:write('0\r\n\r\n')
		end
		return true
	end
	local file, body, size, status, length, checked, declared = outgoing(req, res)
	local head_only = req.method == 'HEAD'
	res[P.sent] = not head_only and length or 0
	local h = head(res, status, length, close, keepalive, head_only, checked, declared)
	local ok, err
	if head_only then
		ok, err = client:write(h)
	elseif file then
		ok, err = client:write(h)
		if ok and size > 0 then
			ok, err = sendbody(client, file, size, res[P.fileoffset])
		end
	elseif length then
		ok, err = client:write(h, body)
	else
		ok, err = client:write(h)
	end
	if res[P.opened] then
		res[P.opened]:close()
	end
	return ok, err
end

-- send(), and when it raises (nothing was sent) a 500 in its place, the
-- error to the debug hook.
local function send_or_fail(self, req, res, close, keepalive)
	local fine, ok, err = pcall(send, req, res, close, keepalive)
	if fine then
		return ok, err
	end
	failed(self, ok)
	local opened = res[P.opened]
	if opened then
		pcall(opened.close, opened)
	end
	res = newresponse(req)
	response.internal_server_error(req, res)
	return send(req, res, true, keepalive)
end

-- res:write on a response to one of our requests finds this through
-- res._req (a request of ours has it through its metatable).
Request[P.stream] = stream
Request[P.reader] = body_reader

core.setup(Request, Response, status_string, M, getters)

-- The answers to heads the Rust half refuses (core.request's status).
local refusals = {
	[400] = response.bad_request,
	-- Errors of the head's read (a bare CR, past the limits).
	['parse error'] = response.bad_request,
	['out of buffer space'] = response.header_fields_too_large,
	[417] = response.expectation_failed,
	[431] = response.header_fields_too_large,
	[501] = response.not_implemented,
	[505] = response.version_not_supported,
	-- HTTP/2's preface on a server with h2c = false.
	h2 = response.version_not_supported,
}

-- The read error LEM's server.debug got for a head refused with a status.
local refused_as = {
	[400] = 'parse error',
	[431] = 'out of buffer space',
}

-- The handler under srv.handler_timeout: its results are dropped, so only
-- a deadline makes utils.timeout return nil, 'timeout'.
local function call(handler, req, res)
	handler(req, res)
end

local service_unavailable = response.htmlerror(503, 'Service Unavailable')

-- The connection was taken over (response._upgrade: lem.websocket's accept,
-- which marks res as streaming, so no ordinary response is sent): it ends
-- with the handler, after the hook.
local function upgraded(self, client, hook, ok, herr)
	if not ok then
		failed(self, herr)
	end
	local fine, err = pcall(hook, ok, herr)
	if not fine then
		failed(self, err)
	end
	client:close()
end

-- The access log of a server (srv.access_log, srv.access_log_format):
-- the function lem.http.log made for them, made again when they change.
local function access_logger(self)
	local sink, fmt = self.access_log, self.access_log_format
	local made = self._access
	if not made or made[1] ~= sink or made[2] ~= fmt then
		made = { sink, fmt, require('lem.http.log').new(sink, fmt) }
		self._access = made
	end
	return made[3]
end

-- Log one request, answered: status and body bytes as sent (a streamed
-- body's are not counted: nil).
local function logged(log, peer, req, res, start)
	local status, bytes = res.status, res[P.sent]
	if not bytes and not res[P.streaming] then
		-- Sent by the Rust half: the body is res's parts.
		bytes = 0
		for i = 1, #res do
			bytes = bytes + #tostring(res[i])
		end
		if status == nil then
			status = bytes == 0 and 204 or 200
		end
		if req.method == 'HEAD' or status == 204 or status == 304 or status < 200 then
			bytes = 0
		end
	end
	local t = updatenow()
	log({
		time = t, peer = peer, method = req.method, target = req.uri, version = req.version,
		status = status or 200, bytes = bytes, duration = t - start,
	})
end

-- Serve one connection until it closes, fails or asks to close. The head
-- is read, checked and turned into req and res in Rust (core.request), and
-- an ordinary response goes out from Rust too (core.respond, which then
-- reads the next request in the same call); what is left here is the
-- handler call, bodies and the unusual responses.
local function serve(self, client)
	local handler = self.handler
	local max_body = self.max_body
	if self.timeout then
		client:settimeout(self.timeout)
	end
	local log = self.access_log and access_logger(self)
	local peer = log and client:getpeer()
	local start
	local req, res, close, keepalive, framing = request(client)
	while true do
		if not req then
			if res == 'h2' and self.h2c ~= false then
				-- HTTP/2's preface, in cleartext (lem.http.h2).
				return require('lem.http.h2').serve(self, client, true)
			end
			-- res: a read error, or the status of a refused head.
			local err = res
			if type(res) == 'number' then
				err = refused_as[res]
			end
			if err then
				debug(self, 'read', err)
			end
			local refusal = refusals[res]
			if refusal then
				refuse(client, refusal)
			else
				client:close()
			end
			return
		end
		req.client = client
		if log then
			start = updatenow()
		end
		if framing then
			if framing == 'h2c' then
				-- Upgrade: h2c (a request without a body): switch over,
				-- or serve it over HTTP/1.1 (TLS, h2c = false, a
				-- graceful stop).
				framing = nil
				if self.h2c ~= false and not draining() then
					local up, err = require('lem.http.h2').upgrade(self, client, req)
					if up then
						return
					elseif up == nil then
						debug(self, 'read', err)
						return refuse(client, response.bad_request)
					end
				end
			else
				if framing == 'length' and req[P.length] > max_body then
					return refuse(client, response.payload_too_large)
				end
				req[P.max] = max_body
				req[P.server] = self
			end
		end
		local ok, herr, terr
		if self.handler_timeout then
			ok, herr, terr = xpcall(timeout, traceback, self.handler_timeout, call, handler, req, res)
		else
			ok, herr = xpcall(handler, traceback, req, res)
		end
		if not ok or terr == 'timeout' then
			local hook = res[P.upgrade]
			if hook then return upgraded(self, client, hook, ok, herr) end
		end
		if ok and terr == 'timeout' then
			-- Past srv.handler_timeout: a 503 if nothing was sent yet.
			stderr:write('lem.http.server: handler timed out after ', tostring(self.handler_timeout), ' s: ',
				tostring(req.method), ' ', tostring(req.uri), '\n')
			debug(self, 'handler', 'timeout')
			if res[P.streaming] or client:closed() then
				client:close()
				return
			end
			res = newresponse(req)
			service_unavailable(req, res)
			close = true
		elseif not ok then
			failed(self, herr)
			if res[P.streaming] or client:closed() then
				client:close()
				return
			end
			res = newresponse(req)
			response.internal_server_error(req, res)
			close = true
		end
		if framing then
			-- A framing error is answered 400 whatever the handler made
			-- of it. Anything else it answers itself ('oversized'
			-- included, as in LEM); a body it did not read (or that broke
			-- off) leaves the connection at an unknown place: close after
			-- answering.
			if req[P.badchunk] and not res[P.streaming] then
				res = newresponse(req)
				response.bad_request(req, res)
			end
			if not req[P.body] then
				close = true
			end
		end
		-- An ordinary response; the next request comes with it (req, res
		-- or nil, status | err), or the answer is true (sent), false, err
		-- (not sent) or a lone false (not an ordinary response: sent from
		-- here). The usual answer, the next request, takes two tests of
		-- truth and no comparison.
		local nreq, nres, nclose, nkeepalive, nframing = respond(client, req, res, close, keepalive)
		if nres and (nreq or nreq == nil) then
			if log then
				logged(log, peer, req, res, start)
			end
			req, res, close, keepalive, framing = nreq, nres, nclose, nkeepalive, nframing
		else
			local err = nres
			if nreq == false and err == nil then
				-- A streamed one (which may have decided to close), a
				-- file, unusual values, a connection taken over.
				local hook = res[P.upgrade]
				if hook then return upgraded(self, client, hook, true) end
				if res[P.close] or draining() then
					close = true
				end
				ok, err = send_or_fail(self, req, res, close, keepalive)
			else
				ok = nreq
			end
			if log and ok then
				logged(log, peer, req, res, start)
			end
			if not ok then
				debug(self, 'write', err)
				client:close()
				return
			end
			if close or draining() then
				client:close()
				return
			end
			req, res, close, keepalive, framing = request(client, true)
		end
	end
end
M.serve = serve

local Server = {}
Server.__index = Server
M.Server = Server

-- The options of server.new.
local options = { h2c = true, max_streams = true, access_log = true, access_log_format = true }

-- server.new(host, port, handler [, opts]) | server.new(serversocket,
-- handler [, opts]) -> Server | nil, err. opts: h2c (false: no cleartext
-- HTTP/2), max_streams (HTTP/2 streams at once per connection).
function M.new(host, port, handler, opts)
	local sock
	if type(host) == 'string' then
		local err
		sock, err = io.tcp.listen(host, port)
		if not sock then
			return nil, err
		end
	else
		sock, handler, opts = host, port, handler
	end
	local srv = setmetatable({
		server = sock,
		handler = handler,
		timeout = M.timeout,
		body_timeout = M.body_timeout,
		max_body = M.max_body,
		max_streams = 128,
	}, Server)
	if opts ~= nil then
		if type(opts) ~= 'table' then
			error(format("bad argument to 'new' (options table expected, got %s)", type(opts)), 2)
		end
		for k, v in pairs(opts) do
			if not options[k] then
				error(format("bad argument to 'new' (unknown option %s)", describe(k)), 2)
			end
			srv[k] = v
		end
	end
	return srv
end

-- srv:run() -> nil, 'interrupted' after close (or nil, err). A TLS
-- server's connections that picked 'h2' by ALPN speak HTTP/2.
function Server:run()
	if self.access_log then
		-- A bad srv.access_log raises here, not in each connection.
		access_logger(self)
	end
	return self.server:autospawn(function(client, alpn)
		if alpn == 'h2' then
			return require('lem.http.h2').serve(self, client)
		end
		serve(self, client)
	end)
end

-- srv:close()
function Server:close()
	return self.server:close()
end

-- srv:getsockname() -> ip, port (where the server listens)
function Server:getsockname()
	return self.server:getsockname()
end

-- What lem.http.h2 shares with this half.
M._h2 = {
	problem = problem, outgoing = outgoing, failed = failed, debug = debug, getters = getters,
	access_logger = access_logger, logged = logged, sendbody = sendbody, token = token, one_piece = one_piece,
}

return M
