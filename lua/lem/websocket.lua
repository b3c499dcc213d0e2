-- lem.websocket: RFC 6455 WebSockets over lem streams: accept(req, res)
-- inside a lem.http.server or hathaway handler, connect(url) for ws:// and
-- wss://. Frames are read by the 'WebSocketFrame' read format and built by
-- lem.websocket.core (src/protocols/websocket/); the handshakes, the joining of
-- fragments, UTF-8 across fragments, ping answers and the closing
-- handshake are here. See docs/websocket.md.
local io = require 'lem.io'
local utils = require 'lem.utils'
local core = require 'lem.websocket.core'
require 'lem.http'
local response = require 'lem.http.response'

local setmetatable, type, error, tostring, tonumber, pairs, ipairs, pcall = setmetatable, type, error, tostring, tonumber, pairs, ipairs, pcall
local format, lower, find, gmatch, match, sub = string.format, string.lower, string.find, string.gmatch, string.match, string.sub
local concat = table.concat
local now, spawn, newturn, draining = utils.now, utils.spawn, utils.newturn, utils.draining
local utf8, close_payload, parse_close, read, send = core.utf8, core.close_payload, core.parse_close, core.read, core.send

local M = {}

-- Defaults: the largest message accepted (bytes), and how long the closing
-- handshake may take (seconds) before the connection is dropped.
M.max_message = 16 * 1024 * 1024
M.close_timeout = 5

-- The largest frame head: what the stream's limit allows beyond a message.
local HEAD = 14
local TOO_LARGE = 'websocket frame too large'

local WebSocket = {}
WebSocket.__index = WebSocket
M.WebSocket = WebSocket

-- The open WebSockets (weak keys): a graceful stop closes them with 1001
-- (going away), so that their peers hear of it and the process need not
-- wait for them until its grace ends.
local open = setmetatable({}, { __mode = 'k' })

local function going_away(ws)
	ws:close(1001, 'going away')
end

utils.ondrain(function()
	local list = {}
	for ws in pairs(open) do
		list[#list + 1] = ws
	end
	for i = 1, #list do
		spawn(going_away, list[i])
	end
end)

local function new(stream, client, max, protocol, deflate)
	stream:settimeout(nil)
	stream:setlimit(max + HEAD)
	local ws = setmetatable({
		stream = stream,
		protocol = protocol,
		-- A client masks what it sends and expects nothing masked.
		_client = client,
		_max = max,
		-- permessage-deflate's state (lem.websocket.core), if negotiated.
		_deflate = deflate,
		-- 'open', 'closing' (our close frame sent), 'closed'.
		_state = 'open',
		-- Writers go one at a time.
		_turn = newturn(),
	}, WebSocket)
	open[ws] = true
	if draining() then
		spawn(going_away, ws)
	end
	return ws
end

-- Send one final frame (opcode op, payload data, RSV bits rsv), whole,
-- after the writers that came first (the reader's pongs and close answers
-- share the stream with the script's sends: they wait their turn,
-- utils.newturn()). core.send takes the turn only when the write waits
-- for the kernel (src/protocols/websocket/stream.rs); a write taken whole
-- at once cannot interleave with another.
local function put(self, op, data, rsv)
	local turn = self._turn
	local ok, err, now = send(self.stream, turn, op, data, self._client, rsv)
	if now then
		return ok, err
	end
	if ok == nil and err == nil then
		-- Another writer holds the turn: wait for it.
		turn:take()
		ok, err = send(self.stream, nil, op, data, self._client, rsv)
	end
	turn:give()
	return ok, err
end

-- The connection is over: drop it, and wake a close() waiting for it.
local function drop(self, code, reason)
	open[self] = nil
	if self._state ~= 'closed' then
		self._state = 'closed'
		self._code, self._reason = code, reason
	end
	if not self.stream:closed() then
		self.stream:close()
	end
	local w = self._watch
	if w then
		self._watch = nil
		w:wakeup()
	end
end

-- Wait (a client, at most until the closing deadline) for the server to
-- close the connection, then drop it. A server drops it at once.
local function finish(self, code, reason)
	if self._client and not self.stream:closed() then
		local left = (self._deadline or now() + M.close_timeout) - now()
		if left > 0 then
			self.stream:settimeout(left)
			while self.stream:read() do
			end
		end
	end
	drop(self, code, reason)
end

-- A protocol error of the peer's: close with code (no waiting for the
-- answer: the peer is not to be trusted), and report it as the close.
local function fail(self, code, reason)
	self._reading = false
	if self._state == 'open' then
		self._state = 'closing'
		put(self, 8, close_payload(code))
	end
	drop(self, code, reason)
	return nil, 'closed', code, reason
end

-- The peer's close frame: answer it if ours was not sent yet; the closing
-- handshake is then done.
local function closed_by_peer(self, code, reason)
	self._reading = false
	if self._state == 'open' then
		self._state = 'closing'
		local body = code == 1005 and '' or close_payload(code)
		put(self, 8, body)
	end
	finish(self, code, reason)
	return nil, 'closed', code, reason
end

-- ws:receive() -> data, 'text' | 'binary' | nil, 'closed', code, reason |
-- nil, 'timeout' | nil, 'busy'. A message broken by a timeout goes on with
-- the next call.
function WebSocket:receive()
	if self._state == 'closed' then
		return nil, 'closed', self._code, self._reason
	end
	if self._reading then
		return nil, 'busy'
	end
	self._reading = true
	local stream, client, max = self.stream, self._client, self._max
	while true do
		local fin, rsv, op, masked, data, utf = read(stream)
		if fin == nil then
			local err = rsv
			if err == 'timeout' then
				self._reading = false
				return nil, 'timeout'
			elseif err == TOO_LARGE then
				return fail(self, 1009, 'message too large')
			elseif find(err, '^websocket ') then
				return fail(self, 1002, err)
			end
			-- Gone without a close frame (or our own close dropped it).
			self._reading = false
			if self._state ~= 'closed' then
				drop(self, 1006, err)
			end
			return nil, 'closed', self._code, self._reason
		end
		if masked == client then
			return fail(self, 1002, client and 'masked frame from the server' or 'unmasked frame from the client')
		end
		if rsv ~= 0 then
			-- RSV1 on a message's first frame: compressed (RFC 7692).
			if rsv == 4 and (op == 1 or op == 2) and self._deflate and not self._kind then
				local d, kind, err = self._deflate, op, nil
				if fin then
					data, err = d:decompress(data, true, max)
				else
					self._kind, self._parts, self._size, self._zipped = op, {}, #data, true
					data, err = d:decompress(data, false, max)
					if data then
						self._parts[1] = data
						self._size = #data
					end
				end
				if not data then
					return fail(self, err == 'too large' and 1009 or 1007, 'compressed message ' .. err)
				end
				if fin then
					if kind == 1 and utf8(data) ~= 0 then
						return fail(self, 1007, 'text message not UTF-8')
					end
					self._reading = false
					return data, kind == 1 and 'text' or 'binary'
				end
				goto continue
			end
			return fail(self, 1002, 'frame with reserved bits set')
		end
		if op == 0 and self._zipped then
			local parts = self._parts
			local out, err = self._deflate:decompress(data, fin, max - self._size)
			if not out then
				return fail(self, err == 'too large' and 1009 or 1007, 'compressed message ' .. err)
			end
			parts[#parts + 1] = out
			self._size = self._size + #out
			if fin then
				local kind = self._kind
				self._kind, self._parts, self._size, self._zipped = nil, nil, nil, nil
				local msg = concat(parts)
				if kind == 1 and utf8(msg) ~= 0 then
					return fail(self, 1007, 'text message not UTF-8')
				end
				self._reading = false
				return msg, kind == 1 and 'text' or 'binary'
			end
			goto continue
		end
		if op >= 8 then
			if op == 9 then
				if self._state == 'open' then
					put(self, 10, data)
				end
			elseif op == 8 then
				local code, reason = parse_close(data)
				if not code then
					return fail(self, reason, reason == 1007 and 'close reason not UTF-8' or 'bad close frame')
				end
				return closed_by_peer(self, code, reason)
			end
		elseif op == 0 then
			local kind = self._kind
			if not kind then
				return fail(self, 1002, 'continuation frame outside a message')
			end
			local size = self._size + #data
			if size > max then
				return fail(self, 1009, 'message too large')
			end
			if kind == 1 then
				local carry = self._carry
				if carry then
					data = carry .. data
					utf = utf8(data)
				end
				if utf == false or (fin and utf ~= 0) then
					return fail(self, 1007, 'text message not UTF-8')
				end
				if utf > 0 then
					self._carry = sub(data, -utf)
					data = sub(data, 1, -utf - 1)
				else
					self._carry = nil
				end
			end
			local parts = self._parts
			parts[#parts + 1] = data
			self._size = size
			if fin then
				self._kind, self._parts, self._size, self._carry = nil, nil, nil, nil
				self._reading = false
				return concat(parts), kind == 1 and 'text' or 'binary'
			end
		else
			if self._kind then
				return fail(self, 1002, 'new message inside a fragmented one')
			end
			if #data > max then
				return fail(self, 1009, 'message too large')
			end
			if op == 1 and (utf == false or (fin and utf ~= 0)) then
				return fail(self, 1007, 'text message not UTF-8')
			end
			if fin then
				self._reading = false
				return data, op == 1 and 'text' or 'binary'
			end
			if op == 1 and utf > 0 then
				self._carry = sub(data, -utf)
				data = sub(data, 1, -utf - 1)
			end
			self._kind, self._parts, self._size = op, { data }, #data
		end
		::continue::
	end
end

local kinds = { text = 1, binary = 2 }

-- ws:send(data [, 'text' | 'binary']) -> true | nil, err
function WebSocket:send(data, kind)
	if type(data) ~= 'string' then
		if type(data) ~= 'number' then
			error(format("bad argument #1 to 'send' (string expected, got %s)", data == nil and 'no value' or type(data)), 2)
		end
		data = tostring(data)
	end
	local op = kinds[kind or 'text']
	if not op then
		error("bad argument #2 to 'send' (invalid option '" .. tostring(kind) .. "')", 2)
	end
	if self._state ~= 'open' then
		return nil, 'closed'
	end
	local ok, err
	local rsv = 0
	if self._deflate then
		data, rsv = self._deflate:compress(data), 4
	end
	-- A server's frame is unmasked: the head and the data in one write, no
	-- copy.
	ok, err = put(self, op, data, rsv)
	if not ok then
		if err ~= 'timeout' then
			drop(self, 1006, err)
		end
		return nil, err
	end
	return true
end

-- ws:ping([data]) -> true | nil, err (the pong is taken by receive)
function WebSocket:ping(data)
	data = data or ''
	if type(data) ~= 'string' then
		error(format("bad argument #1 to 'ping' (string expected, got %s)", type(data)), 2)
	end
	if #data > 125 then
		error("bad argument #1 to 'ping' (longer than 125 bytes)", 2)
	end
	if self._state ~= 'open' then
		return nil, 'closed'
	end
	local ok, err = put(self, 9, data)
	if not ok then
		return nil, err
	end
	return true
end

-- ws:close([code [, reason]]) -> true | nil, 'closed'. Sends our close
-- frame, then waits for the peer's (ignoring messages) until
-- websocket.close_timeout; a coroutine already in receive gets the answer
-- instead, and the connection is dropped at the deadline if none comes.
function WebSocket:close(code, reason)
	if code ~= nil and (type(code) ~= 'number' or code % 1 ~= 0) then
		error(format("bad argument #1 to 'close' (integer expected, got %s)", type(code)), 2)
	end
	if reason ~= nil and type(reason) ~= 'string' then
		error(format("bad argument #2 to 'close' (string expected, got %s)", type(reason)), 2)
	end
	local ok, body = pcall(close_payload, code, reason)
	if not ok then
		error(body, 2)
	end
	if self._state ~= 'open' then
		return nil, 'closed'
	end
	self._state = 'closing'
	self._deadline = now() + M.close_timeout
	local sent, err = put(self, 8, body)
	if not sent then
		drop(self, 1006, err)
		return true
	end
	if self._reading then
		-- The reader sees the answer; this makes sure it comes in time.
		local w = utils.newsleeper()
		self._watch = w
		spawn(function()
			if w:sleep(M.close_timeout) == nil and self._watch == w then
				drop(self, 1006, 'timeout')
			end
		end)
		return true
	end
	while self._state ~= 'closed' do
		local left = self._deadline - now()
		if left <= 0 then
			drop(self, 1006, 'timeout')
			break
		end
		self.stream:settimeout(left)
		local data, e = self:receive()
		if not data and e == 'timeout' then
			drop(self, 1006, 'timeout')
		end
	end
	return true
end

-- ws:settimeout(s): for every later receive, send, ping (nil: none)
function WebSocket:settimeout(t)
	local ok, err = self.stream:settimeout(t)
	return ok, err
end

-- ws:closed() -> whether the connection is over (or closing)
function WebSocket:closed()
	return self._state ~= 'open'
end

-- The server's part when the handler returns: close if still open.
function WebSocket:_finish(code)
	if self._state == 'open' then
		self:close(code or 1000)
	end
	drop(self, self._code or 1006, self._reason)
end

-- Whether the comma-separated header value holds token (any case).
local function has_token(value, token)
	if type(value) ~= 'string' then
		return false
	end
	for t in gmatch(lower(value), '[^,%s]+') do
		if t == token then
			return true
		end
	end
	return false
end

-- The names each function's options table may hold.
local OPTIONS = {
	accept = { max_message = true, protocols = true, deflate = true },
	connect = {
		max_message = true, protocols = true, deflate = true, timeout = true,
		headers = true, tls = true, cafile = true, insecure = true,
	},
}

local function check_opts(opts, name, argn)
	if opts == nil then
		return M.max_message, nil, true
	end
	if type(opts) ~= 'table' then
		error(format("bad argument #%d to '%s' (table expected, got %s)", argn, name, type(opts)), 3)
	end
	local known = OPTIONS[name]
	for k in pairs(opts) do
		if not known[k] then
			error(format("bad argument #%d to '%s' (unknown option '%s')", argn, name, tostring(k)), 3)
		end
	end
	if opts.tls ~= nil then
		local msg = require('lem.io.tls').check(opts.tls)
		if msg then
			error(format("bad argument #%d to '%s' (%s)", argn, name, msg), 3)
		end
	end
	local max = opts.max_message or M.max_message
	if type(max) ~= 'number' or max < 1 or max % 1 ~= 0 then
		error(format("bad argument #%d to '%s' (max_message must be a positive integer)", argn, name), 3)
	end
	local protocols = opts.protocols
	if protocols ~= nil then
		if type(protocols) == 'string' then
			protocols = { protocols }
		elseif type(protocols) ~= 'table' then
			error(format("bad argument #%d to '%s' (protocols must be a table of strings)", argn, name), 3)
		end
		for _, p in ipairs(protocols) do
			if type(p) ~= 'string' or not match(p, '^[!#$%%&\'*+.^_`|~%w-]+$') then
				error(format("bad argument #%d to '%s' (protocol %s is not a token)", argn, name, tostring(p)), 3)
			end
		end
	end
	return max, protocols, opts.deflate ~= false
end

-- The offers or answer of a Sec-WebSocket-Extensions value: an array of
-- {name, params = {key = value or true}}; nil if malformed.
local function extensions(value)
	local list = {}
	if type(value) ~= 'string' then
		return list
	end
	for item in gmatch(value, '[^,]+') do
		local name
		local params = {}
		for part in gmatch(item, '[^;]+') do
			part = match(part, '^%s*(.-)%s*$')
			if not name then
				name = lower(part)
			else
				local k, v = match(part, '^([%w_-]+)%s*=%s*"?([^"]*)"?$')
				if k then
					params[lower(k)] = v
				elseif match(part, '^[%w_-]+$') then
					params[lower(part)] = true
				else
					return nil
				end
			end
		end
		if name and name ~= '' then
			list[#list + 1] = { name = name, params = params }
		end
	end
	return list
end

-- A window-bits parameter: true (none given) or 8..15, else nil.
local function window_bits(v, bare_ok)
	if v == true then
		return bare_ok and 15 or nil
	end
	local n = tonumber(v)
	if n and n % 1 == 0 and n >= 8 and n <= 15 and match(v, '^%d+$') then
		return n
	end
end

-- The server's choice among permessage-deflate offers: the Deflate state
-- and the answer's text, or nil (none acceptable). lem keeps a 15-bit
-- window, so an offer asking the server for less is declined.
local function accept_deflate(value)
	for _, ext in ipairs(extensions(value) or {}) do
		local p = ext.params
		local ok = ext.name == 'permessage-deflate'
		local answer = { 'permessage-deflate' }
		for k, v in pairs(p) do
			if k == 'server_no_context_takeover' or k == 'client_no_context_takeover' then
				ok = ok and v == true
				answer[#answer + 1] = k
			elseif k == 'server_max_window_bits' then
				ok = ok and window_bits(v, false) == 15
				answer[#answer + 1] = 'server_max_window_bits=15'
			elseif k == 'client_max_window_bits' then
				ok = ok and window_bits(v, true) ~= nil
			else
				ok = false
			end
		end
		if ok then
			return core.deflate(p.server_no_context_takeover == true, p.client_no_context_takeover == true),
				concat(answer, '; ')
		end
	end
end

-- Answer a bad upgrade with status and the message as body; nil, err.
local function refuse(res, status, err, headers)
	res.status = status
	if headers then
		for k, v in pairs(headers) do
			res.headers[k] = v
		end
	end
	res.headers['Content-Type'] = 'text/plain'
	res[#res + 1] = err .. '\n'
	return nil, err
end

-- websocket.accept(req, res [, {protocols=, max_message=}]) -> WebSocket |
-- nil, err (the 400 or 426 is then set on res)
function M.accept(req, res, opts)
	if type(req) ~= 'table' or type(req.client) == 'nil' then
		error("bad argument #1 to 'accept' (request expected)", 2)
	end
	if type(res) ~= 'table' or type(res.headers) ~= 'table' then
		error("bad argument #2 to 'accept' (response expected)", 2)
	end
	local max, protocols, want_deflate = check_opts(opts, 'accept', 3)
	local h = req.headers
	if not has_token(h.upgrade, 'websocket') then
		return refuse(res, 426, 'not a websocket upgrade', { Upgrade = 'websocket', Connection = 'Upgrade' })
	end
	if req.method ~= 'GET' then
		return refuse(res, 400, 'websocket upgrade with method ' .. tostring(req.method))
	end
	if req.version ~= '1.1' then
		return refuse(res, 400, 'websocket upgrade over HTTP/' .. tostring(req.version))
	end
	if not has_token(h.connection, 'upgrade') then
		return refuse(res, 400, 'websocket upgrade without Connection: Upgrade')
	end
	if h['sec-websocket-version'] ~= '13' then
		return refuse(res, 426, 'websocket version ' .. tostring(h['sec-websocket-version']) .. ' not supported',
			{ ['Sec-WebSocket-Version'] = '13' })
	end
	local key = h['sec-websocket-key']
	local accept = type(key) == 'string' and core.accept_key(key)
	if not accept then
		return refuse(res, 400, 'bad Sec-WebSocket-Key ' .. tostring(key))
	end
	local chosen
	local offered = h['sec-websocket-protocol']
	if protocols and offered then
		for _, p in ipairs(protocols) do
			if has_token(offered, lower(p)) then
				chosen = p
				break
			end
		end
	end
	local head = {
		'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ',
		accept, '\r\n',
	}
	if chosen then
		head[#head + 1] = 'Sec-WebSocket-Protocol: ' .. chosen .. '\r\n'
	end
	local deflate, answer
	if want_deflate then
		deflate, answer = accept_deflate(h['sec-websocket-extensions'])
		if deflate then
			head[#head + 1] = 'Sec-WebSocket-Extensions: ' .. answer .. '\r\n'
		end
	end
	head[#head + 1] = '\r\n'
	local client = req.client
	local ok, err = client:write(concat(head))
	if not ok then
		return nil, err
	end
	local ws = new(client, false, max, chosen, deflate)
	ws.request = req
	-- The server leaves the connection alone from now on and, when the
	-- handler has ended, lets the WebSocket finish (1011 if it raised).
	response._upgrade(res, function(ok)
		ws:_finish(ok and 1000 or 1011)
	end)
	return ws
end

local parseurl

-- websocket.connect(url [, {headers=, protocols=, tls=, max_message=,
-- timeout=, deflate=}]) -> WebSocket | nil, err. tls is io.tls.connect's
-- options; cafile= and insecure= at the top still work (the older form).
function M.connect(url, opts)
	if type(url) ~= 'string' then
		error(format("bad argument #1 to 'connect' (string expected, got %s)", url == nil and 'no value' or type(url)), 2)
	end
	local max, protocols, want_deflate = check_opts(opts, 'connect', 2)
	opts = opts or {}
	local scheme, rest = match(url, '^(%a[%w+.-]*)(://.*)$')
	scheme = scheme and lower(scheme)
	if scheme ~= 'ws' and scheme ~= 'wss' then
		error("bad argument #1 to 'connect' (ws:// or wss:// url expected)", 2)
	end
	parseurl = parseurl or require('lem.http.client').parseurl
	local _, host, port, target, hostfield = parseurl((scheme == 'ws' and 'http' or 'https') .. rest)
	if not host then
		error("bad argument #1 to 'connect' (invalid url)", 2)
	end
	local headers = opts.headers
	if headers ~= nil and type(headers) ~= 'table' then
		error("bad argument #2 to 'connect' (headers must be a table)", 2)
	end
	local stream, err
	if scheme == 'wss' then
		local tls = require 'lem.io.tls'
		local t = opts.tls
		if t == nil and (opts.cafile ~= nil or opts.insecure ~= nil) then
			t = { cafile = opts.cafile, insecure = opts.insecure }
		end
		stream, err = tls.connect(host, port, t)
	else
		stream, err = io.tcp.connect(host, port)
	end
	if not stream then
		return nil, err
	end
	if opts.timeout then
		stream:settimeout(opts.timeout)
	end
	local key = core.new_key()
	local h = {
		'GET ', target, ' HTTP/1.1\r\nHost: ', hostfield,
		'\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ', key,
		'\r\nSec-WebSocket-Version: 13\r\n',
	}
	if protocols and #protocols > 0 then
		h[#h + 1] = 'Sec-WebSocket-Protocol: ' .. concat(protocols, ', ') .. '\r\n'
	end
	if want_deflate then
		-- Without client_max_window_bits: the server may then not ask
		-- for a smaller window than lem's 15 bits.
		h[#h + 1] = 'Sec-WebSocket-Extensions: permessage-deflate\r\n'
	end
	if headers then
		for k, v in pairs(headers) do
			k, v = tostring(k), tostring(v)
			if find(k, '[\r\n%z:]') or find(v, '[\r\n%z]') then
				stream:close()
				error(format("bad argument #2 to 'connect' (header field %q has a CR, LF or NUL in it)", k), 2)
			end
			h[#h + 1] = k .. ': ' .. v .. '\r\n'
		end
	end
	h[#h + 1] = '\r\n'
	local ok
	ok, err = stream:write(concat(h))
	local res
	if ok then
		res, err = stream:read('HTTPResponse')
	end
	local function give_up(msg)
		stream:close()
		return nil, msg
	end
	if not res then
		return give_up(err)
	end
	if res.status ~= 101 then
		return give_up(format('websocket handshake refused by %s: %d', hostfield, res.status))
	end
	local rh = res.headers
	if not has_token(rh.upgrade, 'websocket') or not has_token(rh.connection, 'upgrade') then
		return give_up('websocket handshake: no Upgrade: websocket in the answer of ' .. hostfield)
	end
	if rh['sec-websocket-accept'] ~= core.accept_key(key) then
		return give_up('websocket handshake: bad Sec-WebSocket-Accept from ' .. hostfield)
	end
	local chosen = rh['sec-websocket-protocol']
	if chosen then
		local known = false
		for _, p in ipairs(protocols or {}) do
			if p == chosen then
				known = true
			end
		end
		if not known then
			return give_up('websocket handshake: ' .. hostfield .. ' chose protocol ' .. chosen .. ', not offered')
		end
	end
	local deflate
	local exts = extensions(rh['sec-websocket-extensions'])
	if not exts then
		return give_up('websocket handshake: malformed Sec-WebSocket-Extensions from ' .. hostfield)
	end
	for _, ext in ipairs(exts) do
		local p = ext.params
		local ok = want_deflate and ext.name == 'permessage-deflate' and not deflate
		for k, v in pairs(p) do
			if k == 'server_no_context_takeover' or k == 'client_no_context_takeover' then
				ok = ok and v == true
			elseif k == 'server_max_window_bits' then
				ok = ok and window_bits(v, false) ~= nil
			else
				ok = false
			end
		end
		if not ok then
			return give_up('websocket handshake: extension ' .. ext.name .. ' from ' .. hostfield .. ' not offered as accepted')
		end
		deflate = core.deflate(p.client_no_context_takeover == true, p.server_no_context_takeover == true)
	end
	local ws = new(stream, true, max, chosen, deflate)
	if opts.timeout then
		stream:settimeout(opts.timeout)
	end
	ws.response = res
	return ws
end

return M
