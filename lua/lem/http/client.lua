-- lem.http.client: an HTTP/1.1 client (http:// over lem.io.tcp, https://
-- over lem.io.tls, either through an HTTP proxy). See docs/http-client.md
-- ("Beyond the original").
--
-- A client keeps a pool of idle connections per scheme, host and port,
-- shared by every coroutine that uses it: a request takes one (or makes
-- one, in `open`, the one place a connection is made) and gives it back
-- once its response's body has been read. Bodies are read in pieces
-- (`pieces`), decoded by lem.http.core's Decoder when they are coded, so a
-- download or `resp:chunks()` holds one piece at a time. A whole-request
-- `deadline` runs each step under utils.timeout, which also stops code
-- that never suspends.
--
-- HTTP/2 (lem.http.h2.core's client half): an `https://` connection
-- offers `h2` by ALPN, and `http2 = 'prior'` speaks it to `http://`
-- servers by prior knowledge. Such a connection is not pooled but shared:
-- one per scheme, host and port (`_h2`), which every request's stream
-- goes on while it stays alive (not told GOAWAY, not failed); it is made
-- by one task (`_dialing`) the other requests join, so that many
-- coroutines starting at once share one connection. A server whose ALPN
-- answer was `http/1.1` is remembered (`_proto`) and served as before.
local io = require 'lem.io'
local http = require 'lem.http'
local core = require 'lem.http.core'
local form = require 'lem.http.form'
local utils = require 'lem.utils'

local setmetatable, tonumber, tostring, pairs, ipairs, type, error, pcall, require =
	setmetatable, tonumber, tostring, pairs, ipairs, type, error, pcall, require
local match, lower, format, find, sub = string.match, string.lower, string.format, string.find, string.sub
local concat = table.concat
local floor, huge, min = math.floor, math.huge, math.min
local now, timeout, thisthread, task = utils.now, utils.timeout, utils.thisthread, utils.task
local read_chunked, decoder = http.read_chunked, core.decoder

-- The size of the pieces a body is read in.
local PIECE = 65536

local M = {}

local Client = {}
Client.__index = Client
M.Client = Client

local Response = {}
Response.__index = Response
M.Response = Response

-- Split a URL: scheme, host (without brackets), port, target, Host value.
local function parseurl(url)
	local scheme, rest = match(url, '^(%a[%w+.-]*)://(.*)$')
	if not scheme then
		return nil
	end
	scheme = lower(scheme)
	if scheme ~= 'http' and scheme ~= 'https' then
		return nil
	end
	local authority, target = match(rest, '^([^/?#]*)(.*)$')
	target = match(target, '^[^#]*')
	if target == '' then
		target = '/'
	elseif sub(target, 1, 1) == '?' then
		target = '/' .. target
	end
	authority = match(authority, '[^@]*$')
	local host, port = match(authority, '^%[([^%]]+)%]:?(%d*)$')
	local hostfield
	if host then
		hostfield = '[' .. host .. ']'
	else
		host, port = match(authority, '^([^:]+):?(%d*)$')
		if not host then
			return nil
		end
		hostfield = host
	end
	local default = scheme == 'https' and 443 or 80
	if port ~= '' then
		port = tonumber(port)
		if port > 65535 then
			return nil
		end
		if port ~= default then
			hostfield = hostfield .. ':' .. port
		end
	else
		port = default
	end
	return scheme, host, port, target, hostfield
end
M.parseurl = parseurl

local function typename(v)
	return v == nil and 'no value' or type(v)
end

-- parseurl for a URL that is argument #arg of the script's call to
-- `name`: a bad URL is misuse, raised at the script's call (level 3:
-- past this function and the method that calls it).
local function checkurl(url, name, arg)
	if type(url) ~= 'string' then
		error(format("bad argument #%d to '%s' (string expected, got %s)", arg, name, typename(url)), 3)
	end
	local scheme, host, port, target, hostfield = parseurl(url)
	if not scheme then
		error(format("bad argument #%d to '%s' (invalid url)", arg, name), 3)
	end
	return scheme, host, port, target, hostfield
end

-- Options ------------------------------------------------------------------

-- Each option's check: (value, name, function name, argument number);
-- they raise at the script's call (level 4: past the check and
-- check_client_options).
local function bad(fname, arg, msg)
	error(format("bad argument #%d to '%s' (%s)", arg, fname, msg), 4)
end

local function check_seconds(v, what, fname, arg)
	if v ~= nil and (type(v) ~= 'number' or v ~= v or v < 0) then
		bad(fname, arg, what .. ' must be a number of seconds')
	end
end

local function check_count(v, what, fname, arg)
	if v ~= nil and (type(v) ~= 'number' or v < 0 or v ~= floor(v)) then
		bad(fname, arg, what .. ' must be a whole number')
	end
end

local CLIENT_OPTIONS = {
	timeout = check_seconds,
	connect_timeout = check_seconds,
	deadline = check_seconds,
	redirects = check_count,
	pool = check_count,
	decompress = function(v, _, fname, arg)
		if v ~= nil and type(v) ~= 'boolean' then
			bad(fname, arg, 'decompress must be a boolean')
		end
	end,
	proxy = function(v, _, fname, arg)
		if v ~= nil and (type(v) ~= 'string' or parseurl(v) ~= 'http') then
			bad(fname, arg, 'proxy must be an http:// url')
		end
	end,
	tls = function(v, _, fname, arg)
		if v ~= nil and type(v) ~= 'table' then
			bad(fname, arg, 'tls must be a table')
		end
		local msg = v ~= nil and io.tls and io.tls.check(v)
		if msg then
			bad(fname, arg, msg)
		end
	end,
	http2 = function(v, _, fname, arg)
		if v ~= nil and v ~= true and v ~= false and v ~= 'prior' then
			bad(fname, arg, "http2 must be true, false or 'prior'")
		end
	end,
}

local REQUEST_OPTIONS = { headers = true, body = true, json = true, query = true }

-- Raises at the caller of the function that calls it.
local function check_client_options(options, fname, arg, request_too)
	for k, v in pairs(options) do
		local check = CLIENT_OPTIONS[k]
		if check then
			check(v, k, fname, arg)
		elseif not (request_too and REQUEST_OPTIONS[k]) then
			error(format("bad argument #%d to '%s' (unknown option '%s')", arg, fname, tostring(k)), 3)
		end
	end
end

local function make(options)
	local self = setmetatable({
		timeout = options.timeout,
		connect_timeout = options.connect_timeout,
		deadline = options.deadline,
		redirects = options.redirects or 0,
		decompress = options.decompress,
		pool = options.pool or 8,
		proxy = options.proxy,
		tls = options.tls,
		http2 = options.http2,
		-- HTTP/2 connections: key -> conn (lem.http.h2.core's); the tasks
		-- making them: key -> Task; the keys whose server chose HTTP/1.1.
		_h2 = {},
		_dialing = {},
		_proto = {},
		-- Idle connections: key -> array of Streams (the last is the
		-- newest, taken first).
		_idle = {},
		-- Each coroutine's last response, to drop its connection if the
		-- coroutine asks again without having touched its body.
		_last = setmetatable({}, { __mode = 'k' }),
	}, Client)
	return self
end

-- client.new([options]) -> Client
function M.new(options)
	if options == nil then
		options = {}
	elseif type(options) ~= 'table' then
		error(format("bad argument #1 to 'new' (table expected, got %s)", type(options)), 2)
	end
	check_client_options(options, 'new', 1)
	return make(options)
end

-- Connections --------------------------------------------------------------

-- `f(...)` before `at` (utils.now() time), or plainly without one.
local function within(at, f, ...)
	if not at then
		return f(...)
	end
	local left = at - now()
	if left <= 0 then
		return nil, 'timeout'
	end
	return timeout(left, f, ...)
end

local function authority(host, port)
	if find(host, ':', 1, true) then
		return '[' .. host .. ']:' .. port
	end
	return host .. ':' .. port
end

-- A tunnel through the proxy on `stream` to host:port (CONNECT).
local function tunnel(stream, host, port)
	local where = authority(host, port)
	local ok, err = stream:write('CONNECT ', where, ' HTTP/1.1\r\nHost: ', where, '\r\n\r\n')
	local res
	if ok then
		res, err = stream:read('HTTPResponse')
	end
	if not res then
		return nil, format("error connecting to '%s' through the proxy: %s", where, err)
	end
	if res.status < 200 or res.status > 299 then
		return nil, format("error connecting to '%s' through the proxy: %d %s", where, res.status, res.text)
	end
	return true
end

-- The TLS options for a connection: the client's, offering h2 and
-- http/1.1 by ALPN when `h2` (unless the caller chose the protocols).
local function tlsoptions(self, h2)
	local t = self.tls
	if not h2 or (t and t.alpn ~= nil) then
		return t
	end
	local o = { alpn = { 'h2', 'http/1.1' } }
	for k, v in pairs(t or {}) do
		o[k] = v
	end
	return o
end

-- A connection: stream, alpn | nil, err.
local function dial(self, scheme, host, port, h2)
	local stream, err, alpn
	local proxy = self.proxy
	if proxy then
		local _, phost, pport = parseurl(proxy)
		stream, err = io.tcp.connect(phost, pport)
		if stream and scheme == 'https' then
			local ok
			ok, err = tunnel(stream, host, port)
			if ok then
				local tls
				tls, err = io.tls.upgrade(stream, host, tlsoptions(self, h2))
				if not tls then
					stream:close()
				end
				stream, alpn = tls, err
				err = not tls and err or nil
			else
				stream:close()
				stream = nil
			end
		end
	elseif scheme == 'https' then
		if not io.tls then
			return nil, 'https is not available'
		end
		stream, err = io.tls.connect(host, port, tlsoptions(self, h2))
		if stream then
			alpn, err = err, nil
		end
	else
		stream, err = io.tcp.connect(host, port)
	end
	if not stream then
		return nil, err
	end
	return stream, alpn
end

-- The one place a connection is made: TCP, TLS, or through the proxy,
-- within connect_timeout: stream, alpn | nil, err. `h2`: offer h2 by
-- ALPN.
local function open(self, scheme, host, port, h2)
	local ct = self.connect_timeout
	if not ct then
		local stream, err = dial(self, scheme, host, port, h2)
		return stream, err
	end
	local stream, err = timeout(ct, dial, self, scheme, host, port, h2)
	if not stream and err == 'timeout' then
		err = format("error connecting to '%s': timeout", authority(host, port))
	end
	return stream, err
end

-- Where connections to scheme://host:port are kept. Plain requests
-- through a proxy all go to the proxy, so they share its connections.
local function poolkey(self, scheme, host, port)
	if self.proxy and scheme == 'http' then
		return 'proxy'
	end
	return scheme .. '://' .. lower(host) .. ':' .. port
end

-- An idle connection to there taken from the pool, or a new one: stream,
-- reused, alpn | nil, err.
local function take(self, scheme, host, port, h2)
	local idle = self._idle[poolkey(self, scheme, host, port)]
	while idle and #idle > 0 do
		local stream = idle[#idle]
		idle[#idle] = nil
		if not stream:closed() then
			stream:settimeout(self.timeout)
			return stream, true
		end
	end
	local stream, alpn = open(self, scheme, host, port, h2)
	if not stream then
		return nil, alpn
	end
	if self.timeout then
		stream:settimeout(self.timeout)
	end
	return stream, false, alpn
end

-- client:connect(scheme, host, port) -> stream, reused | nil, err: an
-- idle connection to there taken from the pool, or a new one (HTTP/1.1).
function Client:connect(scheme, host, port)
	local stream, reused = take(self, scheme, host, port, false)
	return stream, reused
end

-- Give a connection whose exchange is complete back to the pool.
local function release(self, key, stream)
	if stream:closed() then
		return
	end
	local idle = self._idle[key]
	if not idle then
		idle = {}
		self._idle[key] = idle
	end
	if #idle < self.pool then
		idle[#idle + 1] = stream
	else
		stream:close()
	end
end

-- client:close(): close the idle connections; the HTTP/2 ones take no
-- new request and end with their last stream.
function Client:close()
	for key, conn in pairs(self._h2) do
		conn:close()
		self._h2[key] = nil
	end
	for key, idle in pairs(self._idle) do
		for _, stream in ipairs(idle) do
			if not stream:closed() then
				stream:close()
			end
		end
		self._idle[key] = nil
	end
	return true
end

-- Requests -----------------------------------------------------------------

-- What a request body is: 'string', 'function' or 'stream' (anything with
-- a read method).
local function bodykind(body)
	local t = type(body)
	if t == 'string' or t == 'function' then
		return t
	elseif (t == 'userdata' or t == 'table') and body.read then
		return 'stream'
	end
	return nil
end

local function request_head(self, method, target, hostfield, headers, body, kind)
	local h = { method, ' ', target, ' HTTP/1.1\r\n' }
	local hashost, haslength, hasagent, hasencoding
	if headers then
		for k, v in pairs(headers) do
			local lk = lower(k)
			if lk == 'host' then
				hashost = true
			elseif lk == 'content-length' or lk == 'transfer-encoding' then
				haslength = true
			elseif lk == 'user-agent' then
				hasagent = true
			elseif lk == 'accept-encoding' then
				hasencoding = true
			end
			h[#h + 1] = k .. ': ' .. tostring(v) .. '\r\n'
		end
	end
	if not hashost then
		h[#h + 1] = 'Host: ' .. hostfield .. '\r\n'
	end
	if not hasagent then
		h[#h + 1] = 'User-Agent: lem\r\n'
	end
	local decompress, asked = self.decompress, nil
	if decompress ~= false and not hasencoding then
		h[#h + 1] = decompress and 'Accept-Encoding: gzip, deflate, br\r\n' or 'Accept-Encoding: gzip, br\r\n'
		asked = true
	end
	local chunked
	if body and not haslength then
		if kind == 'string' then
			h[#h + 1] = 'Content-Length: ' .. #body .. '\r\n'
		else
			h[#h + 1] = 'Transfer-Encoding: chunked\r\n'
			chunked = true
		end
	end
	h[#h + 1] = '\r\n'
	return concat(h), asked, chunked
end

-- The next piece of a streamed body (a function or a Stream): a string,
-- or nil at its end, or nil, err.
local function next_piece(body, kind)
	local piece, err
	if kind == 'function' then
		piece = body()
	else
		piece, err = body:read()
		if not piece and err ~= 'closed' and err ~= 'eof' then
			return nil, err
		end
	end
	if piece == nil or piece == '' then
		return nil
	end
	return tostring(piece)
end

-- Hand each piece of a streamed body to write(piece) -> ok, err: true once
-- the body ends, or nil, err.
local function each_piece(body, kind, write)
	while true do
		local piece, err = next_piece(body, kind)
		if not piece then
			if err then
				return nil, err
			end
			return true
		end
		local ok
		ok, err = write(piece)
		if not ok then
			return nil, err
		end
	end
end

-- Send a streamed body: each piece the function or Stream gives, chunked
-- unless the caller set the framing.
local function write_stream(stream, body, kind, chunked)
	local ok, err
	if chunked then
		ok, err = each_piece(body, kind, function(piece)
			return stream:write(format('%x\r\n', #piece), piece, '\r\n')
		end)
	else
		ok, err = each_piece(body, kind, function(piece)
			return stream:write(piece)
		end)
	end
	if not ok then
		return nil, err
	end
	if chunked then
		return stream:write('0\r\n\r\n')
	end
	return true
end

-- Whether the connection ends with this response.
local function closing(res)
	local conn = res.headers.connection
	if conn and find(lower(conn), 'close', 1, true) then
		return true
	end
	if res.version == '1.0' then
		return not (conn and find(lower(conn), 'keep-alive', 1, true))
	end
	return false
end

local ASKED = { gzip = true, ['x-gzip'] = true, br = true }

-- How the body is framed and decoded, from the head.
local function frame(self, res, asked)
	local status, headers = res.status, res.headers
	if res.method == 'HEAD' or status == 204 or status == 304 or status < 200 then
		return 'none'
	end
	local decompress = self.decompress
	local coding = headers['content-encoding']
	if coding and decompress ~= false then
		coding = lower(match(coding, '^%s*(.-)%s*$'))
		if decompress or (asked and ASKED[coding]) then
			local d = decoder(coding)
			if d then
				res._decoder, res.decoded = d, coding
			end
		end
	end
	local te = headers['transfer-encoding']
	if te and find(lower(te), 'chunked', 1, true) then
		return 'chunked'
	end
	local cl = headers['content-length']
	if cl then
		local len = tonumber(match(cl, '^%s*(%d+)%s*$'))
		if not len then
			return nil
		end
		res._left = len
		return 'length'
	end
	return 'close'
end

-- The body is over: the connection goes back to the pool, or is closed.
local function done(res, body)
	res._body = body
	res._mode = 'done'
	local call = res._call
	if call then
		res._call = nil
		call:close()
	end
	local stream = res._stream
	res._stream = nil
	if stream then
		if res._close then
			stream:close()
		else
			release(res.client, res._key, stream)
		end
	end
end

-- The body failed: the connection goes.
local function fail(res, err)
	res._mode, res.error = 'failed', err
	local call = res._call
	if call then
		res._call = nil
		call:close()
	end
	local stream = res._stream
	res._stream = nil
	if stream and not stream:closed() then
		stream:close()
	end
	return nil, err
end

-- HTTP/2 -------------------------------------------------------------------

local h2core

-- Whether a request to `scheme` may go over HTTP/2.
local function h2wanted(self, scheme)
	local h = self.http2
	if h == false then
		return false
	elseif scheme == 'https' then
		return true
	end
	return h == 'prior' and not self.proxy
end

-- HTTP/2 on a new connection's stream: conn | nil, err.
local function h2start(self, stream, host, port)
	h2core = h2core or require 'lem.http.h2.core'
	local conn, err = h2core.client(stream, self.connect_timeout or self.timeout)
	if not conn then
		stream:close()
		return nil, format("error connecting to '%s': %s", authority(host, port), err)
	end
	return conn
end

-- The task that makes the connection to key: true once it is there (an
-- HTTP/2 one in _h2, or an HTTP/1.1 one in the pool, the server's answer
-- remembered), or nil, err.
local function h2dial(self, scheme, host, port, key)
	local stream, alpn = open(self, scheme, host, port, true)
	if not stream then
		return nil, alpn
	end
	if alpn == 'h2' or scheme == 'http' then
		local conn, err = h2start(self, stream, host, port)
		if not conn then
			return nil, err
		end
		local old = self._h2[key]
		if old then
			old:close()
		end
		self._h2[key], self._proto[key] = conn, nil
		return true
	end
	self._proto[key] = 'http/1.1'
	if self.timeout then
		stream:settimeout(self.timeout)
	end
	release(self, key, stream)
	return true
end

-- The HTTP/2 connection to key, made (or its making joined) if there is
-- none alive; false when the server speaks HTTP/1.1; nil, err.
local function h2conn(self, scheme, host, port, key)
	for _ = 1, 3 do
		local conn = self._h2[key]
		if conn then
			if conn:alive() then
				return conn
			end
			self._h2[key] = nil
			conn:close()
		end
		if self._proto[key] == 'http/1.1' then
			return false
		end
		local t = self._dialing[key]
		if not t then
			t = task(h2dial, self, scheme, host, port, key)
			self._dialing[key] = t
		end
		local ok, made, err = t:join()
		if self._dialing[key] == t then
			self._dialing[key] = nil
		end
		if not ok then
			return nil, made
		elseif not made then
			return nil, err
		end
	end
	return nil, format("error connecting to '%s': the HTTP/2 connection keeps failing", authority(host, port))
end

-- f(a, b) from Lua, not a tail call (so that on LuaJIT a deadline raises
-- inside utils.timeout, see docs/deviations.md).
local function invoke(f, a, b)
	local x, y, z, w = f(a, b)
	return x, y, z, w
end

-- `f(a, b)` within the client's timeout for each read and write.
local function op(self, f, a, b)
	local t = self.timeout
	if t then
		local x, y, z, w = timeout(t, invoke, f, a, b)
		return x, y, z, w
	end
	local x, y, z, w = f(a, b)
	return x, y, z, w
end

-- An HTTP/2 error, naming the host ('timeout' as it is).
local function h2error(where, err)
	if err == 'timeout' then
		return err
	end
	return format("HTTP/2 error from '%s': %s", where, err)
end

-- Fields HTTP/2 forbids (RFC 9113 §8.2.2); Host becomes :authority.
local HOP = {
	connection = true, ['keep-alive'] = true, ['proxy-connection'] = true,
	['transfer-encoding'] = true, upgrade = true, host = true,
}

-- The request's fields for HTTP/2 (lower-case names), whether an
-- encoding was asked for, and the Host the caller gave.
local function h2head(self, headers, body, kind)
	local h, hostfield = {}, nil
	if headers then
		for k, v in pairs(headers) do
			local lk = lower(k)
			v = tostring(v)
			if lk == 'host' then
				hostfield = v
			elseif lk == 'te' then
				-- Only "trailers" may be sent (§8.2.2).
				if lower(v) == 'trailers' then
					h.te = 'trailers'
				end
			elseif not HOP[lk] then
				h[lk] = v
			end
		end
	end
	if not h['user-agent'] then
		h['user-agent'] = 'lem'
	end
	local decompress, asked = self.decompress, nil
	if decompress ~= false and not h['accept-encoding'] then
		h['accept-encoding'] = decompress and 'gzip, deflate, br' or 'gzip, br'
		asked = true
	end
	if kind == 'string' and not h['content-length'] then
		h['content-length'] = tostring(#body)
	end
	return h, asked, hostfield
end

-- Send a streamed body on an HTTP/2 stream.
local function h2write(self, call, body, kind)
	return each_piece(body, kind, function(piece)
		return op(self, call.write, call, piece)
	end)
end

-- Methods a request of which may be sent again when a GOAWAY broke it off.
local IDEMPOTENT = { GET = true, HEAD = true, OPTIONS = true, PUT = true, DELETE = true, TRACE = true }

-- One exchange on an HTTP/2 connection: res | nil, err, retry.
local function h2exchange(self, conn, key, where, method, scheme, target, hostfield, headers, body, kind, state)
	local h, asked, given = h2head(self, headers, body, kind)
	local last = body == nil or body == ''
	local call, err, retry = conn:request(method, scheme .. '://' .. (given or hostfield) .. target, h, last)
	if not call then
		return nil, h2error(where, err), retry
	end
	state.call = call
	local ok, werr = true, nil
	if not last then
		if kind == 'string' then
			ok, werr = op(self, call.write, call, body)
		else
			ok, werr = h2write(self, call, body, kind)
		end
		if ok then
			ok, werr = call:finish()
		end
	end
	local status, text, rh, fields
	if ok or werr ~= 'timeout' then
		-- A server may answer without taking the whole body.
		status, text, rh, fields = op(self, call.response, call)
	end
	if not status then
		state.call = nil
		call:close()
		if not ok and kind ~= 'string' and werr ~= 'timeout' then
			-- The body's own source failed.
			return nil, werr
		end
		return nil, h2error(where, text or werr), rh
	end
	state.call = nil
	local res = setmetatable({
		status = status, text = text, version = '2.0', headers = rh, fields = fields,
		client = self, method = method, _call = call, _key = key, _where = where,
	}, Response)
	local mode = frame(self, res, asked)
	res._left = nil
	if mode == 'none' then
		done(res, '')
	else
		res._mode = 'h2'
	end
	return res
end

-- A request over HTTP/2: res | nil, err; false when the server speaks
-- HTTP/1.1.
local function h2send(self, method, scheme, host, port, key, target, hostfield, headers, body, kind, state)
	local where = authority(host, port)
	for attempt = 1, 2 do
		local conn, err = h2conn(self, scheme, host, port, key)
		if not conn then
			return conn, err
		end
		local res, retry
		res, err, retry = h2exchange(self, conn, key, where, method, scheme, target, hostfield, headers, body, kind, state)
		if res then
			return res
		end
		if retry and self._h2[key] == conn and not conn:alive() then
			-- Dead or told GOAWAY: replaced for new requests.
			self._h2[key] = nil
			conn:close()
		end
		if not (attempt == 1 and (kind == nil or kind == 'string')
				and (retry == 'unsent' or retry == 'refused' or (retry == 'goaway' and IDEMPOTENT[method]))) then
			return nil, err
		end
	end
end

-- One exchange on one connection (twice when a kept one turns out to
-- have been closed by the server and the body can be sent again).
local function send(self, method, scheme, host, port, target, hostfield, headers, body, state)
	-- A coroutine asking again without having touched its last response's
	-- body will not read it: its connection goes.
	local co = thisthread()
	local last = self._last[co]
	if last and not last._touched and (last._stream or last._call) then
		fail(last, 'dropped')
	end
	local kind = body ~= nil and bodykind(body) or nil
	local key = poolkey(self, scheme, host, port)
	local h2 = h2wanted(self, scheme)
	if h2 then
		local res, err = h2send(self, method, scheme, host, port, key, target, hostfield, headers, body, kind, state)
		if res then
			self._last[co] = res
			return res
		elseif res == nil then
			return nil, err
		end
	end
	if self.proxy and scheme == 'http' then
		target = 'http://' .. hostfield .. (sub(target, 1, 1) == '/' and target or '/' .. target)
	end
	local head, asked, chunked = request_head(self, method, target, hostfield, headers, body, kind)
	-- Every kept connection may have died with a restarted server: past
	-- each of them (at most pool), then a new one.
	for attempt = 1, self.pool + 1 do
		local stream, reused, alpn = take(self, scheme, host, port, h2)
		if not stream then
			return nil, reused
		end
		if alpn == 'h2' then
			-- The server speaks HTTP/2 now.
			local conn, err = h2start(self, stream, host, port)
			if not conn then
				return nil, err
			end
			self._h2[key], self._proto[key] = conn, nil
			return send(self, method, scheme, host, port, target, hostfield, headers, body, state)
		end
		state.stream = stream
		local ok, err
		if kind == 'string' then
			ok, err = stream:write(head, body)
		else
			ok, err = stream:write(head)
			if ok and kind then
				ok, err = write_stream(stream, body, kind, chunked)
			end
		end
		local res
		if ok then
			repeat
				res, err = stream:read('HTTPResponse')
			until not res or res.status >= 200 or res.status == 101
		end
		if res then
			res.client, res.method, res.stream = self, method, stream
			res._stream, res._key = stream, key
			setmetatable(res, Response)
			local mode = frame(self, res, asked)
			if not mode then
				stream:close()
				return nil, 'parse error'
			end
			res._mode, res._close = mode, mode == 'close' or closing(res)
			if mode == 'none' then
				done(res, '')
			end
			self._last[co] = res
			state.stream = nil
			return res
		end
		stream:close()
		state.stream = nil
		-- A kept connection the server closed meanwhile: try the next, if
		-- the body can be sent again.
		if not (reused and attempt <= self.pool and (err == 'closed' or err == 'Connection reset by peer')
				and (kind == nil or kind == 'string')) then
			return nil, err
		end
	end
end


-- Bodies -------------------------------------------------------------------

-- The next piece of the body as sent, its framing taken off: data, nil at
-- the end, or nil, err. Pieces are at most PIECE bytes, whatever the
-- sizes the server announces.
local function raw(res)
	if res._rawend then
		return nil
	end
	local stream, mode, err = res._stream, res._mode, nil
	local left = res._left
	if mode == 'h2' then
		local call = res._call
		local data
		data, err = op(res.client, call.read, call)
		if data then
			return data
		elseif err == 'eof' then
			res._rawend = true
			local t
			t, err = op(res.client, call.trailers, call)
			if t or not err then
				res.trailers = t
				return nil
			end
		end
		return nil, h2error(res._where, err)
	elseif mode == 'chunked' then
		if not left or left == 0 then
			if left == 0 then
				local ok
				ok, err = stream:read('HTTPChunkEnd')
				if not ok then
					return nil, err
				end
			end
			left, err = stream:read('HTTPChunkSize')
			if not left then
				return nil, err
			end
			if left == 0 then
				local ok
				ok, err = stream:read('HTTPTrailers')
				if not ok then
					return nil, err
				end
				res._rawend = true
				return nil
			end
		end
	elseif mode == 'close' then
		local data
		data, err = stream:read()
		if data then
			return data
		end
		if err == 'closed' then
			res._rawend = true
			return nil
		end
		return nil, err
	elseif mode ~= 'length' or left == 0 then
		res._rawend = true
		return nil
	end
	local n = left < PIECE and left or PIECE
	local data
	data, err = stream:read(n)
	if not data then
		return nil, err
	end
	res._left = left - n
	return data
end

-- The next piece of the body, decoded: data, nil at the end (the
-- connection is then given back), or nil, err (it is closed).
local function piece(res)
	local d = res._decoder
	if not d then
		local data, err = raw(res)
		if data then
			return data
		elseif err then
			return fail(res, err)
		end
		done(res)
		return nil
	end
	while true do
		local out, err = d:pull()
		if out == true then
			local data
			data, err = raw(res)
			if data then
				d:push(data)
			elseif err then
				return fail(res, err)
			else
				d:finish()
			end
		elseif out == false then
			-- The coding ended: what the framing still holds is dropped.
			repeat
				local data
				data, err = raw(res)
			until not data
			if err then
				return fail(res, err)
			end
			done(res)
			return nil
		elseif out then
			return out
		else
			return fail(res, err)
		end
	end
end

local function read_body(res)
	local mode = res._mode
	if mode == 'done' then
		return res._body or ''
	elseif mode == 'failed' then
		return nil, res.error
	end
	if not res._decoder and mode ~= 'h2' then
		local stream, body, err = res._stream, nil, nil
		if mode == 'length' then
			body, err = stream:read(res._left)
		elseif mode == 'chunked' then
			body, err = read_chunked(stream)
		else
			body, err = stream:read('*a')
		end
		if not body then
			return fail(res, err)
		end
		done(res, body)
		return body
	end
	local parts = {}
	while true do
		local p, err = piece(res)
		if not p then
			if err then
				return nil, err
			end
			break
		end
		parts[#parts + 1] = p
	end
	local body = concat(parts)
	res._body = body
	return body
end

-- res:body() -> string | nil, err
function Response:body()
	local body = self._body
	if body then
		return body
	end
	if self._streamed then
		return nil, 'the body is being read by chunks()'
	end
	self._touched = true
	local err
	body, err = within(self._at, read_body, self)
	if not body then
		return fail(self, err)
	end
	return body
end

-- res:chunks() -> iterator of the body's pieces; the iterator returns
-- nil at the end, or nil, err (also kept in res.error).
function Response:chunks()
	self._touched = true
	local body = self._body
	if body then
		local given = body == ''
		return function()
			if given then
				return nil
			end
			given = true
			return body
		end
	end
	self._streamed = true
	return function()
		local mode = self._mode
		if mode == 'done' then
			return nil
		elseif mode == 'failed' then
			return nil, self.error
		end
		local p, err = within(self._at, piece, self)
		if p then
			return p
		elseif err then
			return fail(self, err)
		end
		return nil
	end
end

-- lem.json, loaded when first needed (it is another module's half).
local function json_module(what)
	local ok, json = pcall(require, 'lem.json')
	if not ok then
		error(format('%s needs lem.json, which is not available', what), 4)
	end
	return json
end

-- res:json() -> value | nil, err
function Response:json()
	local json = json_module("'json'")
	local body, err = self:body()
	if not body then
		return nil, err
	end
	return json.decode(body)
end

-- res:close(): drop the connection if the body has not been read.
function Response:close()
	if self._stream or self._call then
		fail(self, 'closed')
	end
	return true
end

-- Redirects ----------------------------------------------------------------

-- RFC 3986 5.2.4: '.' and '..' segments taken out of an absolute path.
local function remove_dots(path)
	local out, dir = {}, false
	for seg in string.gmatch(sub(path, 2) .. '/', '(.-)/') do
		if seg == '..' then
			out[#out] = nil
			dir = true
		elseif seg == '.' then
			dir = true
		else
			out[#out + 1] = seg
			dir = false
		end
	end
	local s = '/' .. concat(out, '/')
	if dir and #out > 0 then
		s = s .. '/'
	end
	return s
end

-- Where a redirect's Location `loc` points from the URL `base`.
local function resolve(base, loc)
	if match(loc, '^%a[%w+.-]*:') then
		return loc
	end
	local scheme, origin, path, query = match(base, '^(%a[%w+.-]*:)//([^/?#]*)([^?#]*)(%??[^#]*)')
	if sub(loc, 1, 2) == '//' then
		return scheme .. loc
	end
	if path == '' then
		path = '/'
	end
	local lpath, lrest = match(loc, '^([^?#]*)(.*)$')
	if lpath == '' then
		if lrest == '' or sub(lrest, 1, 1) == '#' then
			lrest = query .. lrest
		end
		return scheme .. '//' .. origin .. path .. lrest
	end
	if sub(lpath, 1, 1) ~= '/' then
		lpath = match(path, '^(.*/)') .. lpath
	end
	return scheme .. '//' .. origin .. remove_dots(lpath) .. lrest
end
M.resolve = resolve

local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }
-- Not sent to another origin.
local CREDENTIALS = { authorization = true, cookie = true, host = true }
-- Not sent once a redirect turns the request into a GET.
local BODY_FIELDS = { ['content-type'] = true, ['content-length'] = true, ['transfer-encoding'] = true }

local function strip(headers, cross, toget)
	if not headers or not (cross or toget) then
		return headers
	end
	local out = {}
	for k, v in pairs(headers) do
		local lk = lower(k)
		if not (cross and CREDENTIALS[lk]) and not (toget and BODY_FIELDS[lk]) then
			out[k] = v
		end
	end
	return out
end

-- Read and drop a redirect's (small) body so its connection can be kept.
local function discard(res)
	res._touched = true
	if res._mode == 'length' and res._left > PIECE then
		fail(res, 'dropped')
		return
	end
	local total = 0
	while res._stream or res._call do
		local p = piece(res)
		if not p then
			return
		end
		total = total + #p
		if total > PIECE then
			fail(res, 'dropped')
			return
		end
	end
end

local function fetch(self, method, url, headers, body, state, scheme, host, port, target, hostfield)
	local hops = self.redirects
	for hop = 0, hops do
		local res, err = send(self, method, scheme, host, port, target, hostfield, headers, body, state)
		if not res then
			return nil, err
		end
		res.url = url
		local status, loc = res.status, res.headers.location
		if hops == 0 or not REDIRECT[status] or not loc then
			return res
		end
		local nmethod, nbody = method, body
		if (status == 303 and method ~= 'HEAD') or ((status == 301 or status == 302) and method == 'POST') then
			nmethod, nbody = 'GET', nil
		elseif body ~= nil and type(body) ~= 'string' then
			-- A streamed body cannot be sent again: the redirect is the
			-- answer.
			return res
		end
		local nurl = resolve(url, loc)
		local s2, h2, p2, t2, f2 = parseurl(nurl)
		if not s2 then
			return res
		end
		state.res = res
		if hop == hops then
			res:close()
			return nil, format('too many redirects (more than %d)', hops)
		end
		discard(res)
		local cross = s2 ~= scheme or lower(h2) ~= lower(host) or p2 ~= port
		headers = strip(headers, cross, nmethod ~= method)
		method, body, url = nmethod, nbody, nurl
		scheme, host, port, target, hostfield = s2, h2, p2, t2, f2
	end
end

-- A request to a parsed URL, under the client's deadline.
local function perform(self, method, url, headers, body, ...)
	local state = {}
	local d = self.deadline
	local at = d and now() + d
	local res, err = within(at, fetch, self, method, url, headers, body, state, ...)
	if not res then
		-- What a deadline interrupted is not given back.
		if state.stream and not state.stream:closed() then
			state.stream:close()
		end
		if state.call then
			state.call:close()
		end
		if state.res then
			state.res:close()
		end
		return nil, err
	end
	res._at = at
	return res
end

-- Arguments ----------------------------------------------------------------

-- url with the query `q` added: a string as it is, a table encoded by
-- lem.http.form (names to values or lists of values). nil and why for a
-- table form cannot encode.
local function add_query(url, q)
	if type(q) == 'table' then
		local err
		q, err = form._encode(q)
		if not q then
			return nil, err
		end
	end
	if q == '' then
		return url
	end
	url = match(url, '^[^#]*')
	return url .. (find(url, '?', 1, true) and '&' or '?') .. q
end

-- Whether the third argument is an options table rather than header
-- fields: it has one of the options' names.
local function is_options(t, client_too)
	for k in pairs(REQUEST_OPTIONS) do
		if t[k] ~= nil then
			return true
		end
	end
	if client_too then
		for k in pairs(CLIENT_OPTIONS) do
			if t[k] ~= nil then
				return true
			end
		end
	end
	return false
end

local function check_body(body, fname, arg)
	if body ~= nil and not bodykind(body) then
		error(format("bad argument #%d to '%s' (body must be a string, a function or a Stream, got %s)",
			arg, fname, type(body)), 4)
	end
end

local function check_headers(headers, fname, arg)
	if headers ~= nil and type(headers) ~= 'table' then
		error(format("bad argument #%d to '%s' (headers must be a table, got %s)", arg, fname, type(headers)), 4)
	end
end

-- The URL, header fields and body an options table asks for.
local function prepare(fname, arg, url, opts, client_too)
	for k in pairs(opts) do
		if not REQUEST_OPTIONS[k] and not (client_too and CLIENT_OPTIONS[k]) then
			error(format("bad argument #%d to '%s' (unknown option '%s')", arg, fname, tostring(k)), 3)
		end
	end
	local headers, body = opts.headers, opts.body
	check_headers(headers, fname, arg)
	check_body(body, fname, arg)
	if opts.json ~= nil then
		if body ~= nil then
			error(format("bad argument #%d to '%s' (body and json both given)", arg, fname), 3)
		end
		local text, err = json_module("the 'json' option").encode(opts.json)
		if not text then
			error(format("bad argument #%d to '%s' (json: %s)", arg, fname, tostring(err)), 3)
		end
		body = text
		local typed = false
		local h = {}
		for k, v in pairs(headers or {}) do
			h[k] = v
			typed = typed or lower(k) == 'content-type'
		end
		if not typed then
			h['Content-Type'] = 'application/json'
		end
		headers = h
	end
	local q = opts.query
	if q ~= nil then
		if type(q) ~= 'string' and type(q) ~= 'table' then
			error(format("bad argument #%d to '%s' (query must be a string or a table)", arg, fname), 3)
		end
		local err
		url, err = add_query(url, q)
		if not url then
			error(format("bad argument #%d to '%s' (query: %s)", arg, fname, err), 3)
		end
	end
	return url, headers, body
end

local function check_method(method, fname)
	if type(method) ~= 'string' then
		error(format("bad argument #1 to '%s' (string expected, got %s)", fname, typename(method)), 3)
	end
end

-- client:request(method, url [, options | headers [, body]]) -> Response
-- | nil, err; a malformed URL raises (the original's get raised on one).
function Client:request(method, url, a, b)
	check_method(method, 'request')
	local scheme, host, port, target, hostfield = checkurl(url, 'request', 2)
	local headers, body = a, b
	if b == nil and type(a) == 'table' and is_options(a) then
		url, headers, body = prepare('request', 3, url, a)
		scheme, host, port, target, hostfield = parseurl(url)
	else
		check_headers(headers, 'request', 3)
		check_body(body, 'request', 4)
	end
	local res, err = perform(self, method, url, headers, body, scheme, host, port, target, hostfield)
	return res, err
end

-- client:get(url) -> Response | nil, err
function Client:get(url)
	local res, err = perform(self, 'GET', url, nil, nil, checkurl(url, 'get', 1))
	return res, err
end

-- client:download(url, filename [, {strict =, headers =, query =}]) ->
-- true, Response | nil, err: the body streamed to a file.
function Client:download(url, filename, options)
	local scheme, host, port, target, hostfield = checkurl(url, 'download', 1)
	if type(filename) ~= 'string' then
		error(format("bad argument #2 to 'download' (string expected, got %s)", typename(filename)), 2)
	end
	local headers, strict
	if options ~= nil then
		if type(options) ~= 'table' then
			error(format("bad argument #3 to 'download' (table expected, got %s)", type(options)), 2)
		end
		strict = options.strict
		local o = {}
		for k, v in pairs(options) do
			if k ~= 'strict' then
				if k ~= 'headers' and k ~= 'query' then
					error(format("bad argument #3 to 'download' (unknown option '%s')", tostring(k)), 2)
				end
				o[k] = v
			end
		end
		url, headers = prepare('download', 3, url, o)
		scheme, host, port, target, hostfield = parseurl(url)
	end
	local res, err = perform(self, 'GET', url, headers, nil, scheme, host, port, target, hostfield)
	if not res then
		return nil, err
	end
	local status = res.status
	if strict and (status < 200 or status > 299) then
		res:close()
		return nil, format('status %d %s', status, res.text)
	end
	local f
	f, err = io.open(filename, 'w')
	if not f then
		res:close()
		return nil, err
	end
	local nextpiece = res:chunks()
	while true do
		local p
		p, err = nextpiece()
		if not p then
			break
		end
		local ok
		ok, err = f:write(p)
		if not ok then
			res:close()
			break
		end
	end
	local closed, cerr = f:close()
	err = err or (not closed and cerr) or nil
	if err then
		if strict then
			os.remove(filename)
		end
		return nil, err
	end
	return true, res
end

-- client.request(method, url [, options | headers [, body]]) -> Response,
-- body | nil, err: one request on a fresh client, closed afterwards;
-- options may hold the client's options too.
function M.request(method, url, a, b)
	check_method(method, 'request')
	local scheme, host, port, target, hostfield = checkurl(url, 'request', 2)
	local c, headers, body
	if b == nil and type(a) == 'table' and is_options(a, true) then
		check_client_options(a, 'request', 3, true)
		url, headers, body = prepare('request', 3, url, a, true)
		scheme, host, port, target, hostfield = parseurl(url)
		c = make(a)
	else
		check_headers(a, 'request', 3)
		check_body(b, 'request', 4)
		c, headers, body = make({}), a, b
	end
	local res, err = perform(c, method, url, headers, body, scheme, host, port, target, hostfield)
	if not res then
		c:close()
		return nil, err
	end
	local data
	data, err = res:body()
	c:close()
	if not data then
		return nil, err
	end
	return res, data
end

return M
