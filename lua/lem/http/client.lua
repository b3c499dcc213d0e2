-- lem.http.client: an HTTP/1.1 client that keeps one connection alive per
-- client object (http:// over lem.io.tcp, https:// over lem.io.tls).
-- See docs/http-client.md. Beyond the original: client:request(method,
-- url, headers, body), ports and IPv6 literals in URLs, a timeout
-- (client.timeout, seconds), and res.fields keeping repeated fields.
local io = require 'lem.io'
local http = require 'lem.http'

local setmetatable, tonumber, tostring, pairs, type, error = setmetatable, tonumber, tostring, pairs, type, error
local match, lower, format, find = string.match, string.lower, string.format, string.find
local concat = table.concat

local M = {}

local Client = {}
Client.__index = Client
M.Client = Client

local Response = {}
Response.__index = Response
M.Response = Response

-- client.new([options]) -> Client; options: timeout (seconds), tls
-- (options for io.tls.connect).
function M.new(options)
	options = options or {}
	local t = options.timeout
	if t ~= nil and (type(t) ~= 'number' or t ~= t or t < 0) then
		error("bad argument #1 to 'new' (timeout must be a number of seconds)", 2)
	end
	return setmetatable({ timeout = options.timeout, tls = options.tls }, Client)
end

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
	elseif target:sub(1, 1) == '?' then
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

-- parseurl for a URL that is argument #arg of the script's call to
-- `name`: a bad URL is misuse, raised at the script's call (level 3:
-- past this function and the method that calls it).
local function checkurl(url, name, arg)
	if type(url) ~= 'string' then
		error(format("bad argument #%d to '%s' (string expected, got %s)", arg, name, url == nil and 'no value' or type(url)), 3)
	end
	local scheme, host, port, target, hostfield = parseurl(url)
	if not scheme then
		error(format("bad argument #%d to '%s' (invalid url)", arg, name), 3)
	end
	return scheme, host, port, target, hostfield
end

-- Open (or reuse) the connection for scheme://host:port.
function Client:connect(scheme, host, port)
	local key = scheme .. '://' .. host .. ':' .. port
	local stream = self.stream
	if stream and self.key == key and not stream:closed() then
		return stream, true
	end
	self:close()
	local err
	if scheme == 'https' then
		if not io.tls then
			return nil, 'https is not available'
		end
		stream, err = io.tls.connect(host, port, self.tls)
	else
		stream, err = io.tcp.connect(host, port)
	end
	if not stream then
		return nil, err
	end
	if self.timeout then
		stream:settimeout(self.timeout)
	end
	self.stream, self.key = stream, key
	return stream, false
end

-- client:close(): close the kept connection, if any.
function Client:close()
	local stream = self.stream
	self.stream, self.key, self.pending = nil, nil, nil
	if stream and not stream:closed() then
		stream:close()
	end
	return true
end

local function request_head(method, target, hostfield, headers, body)
	local h = { method, ' ', target, ' HTTP/1.1\r\n' }
	local hashost, haslength, hasagent
	if headers then
		for k, v in pairs(headers) do
			local lk = lower(k)
			if lk == 'host' then
				hashost = true
			elseif lk == 'content-length' or lk == 'transfer-encoding' then
				haslength = true
			elseif lk == 'user-agent' then
				hasagent = true
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
	if body and not haslength then
		h[#h + 1] = 'Content-Length: ' .. #body .. '\r\n'
	end
	h[#h + 1] = '\r\n'
	return concat(h)
end

-- Send a request to a parsed URL.
local function send(self, method, headers, body, scheme, host, port, target, hostfield)
	-- The previous response's body must be read before the connection can
	-- carry another request; an unread one costs the connection.
	local pending = self.pending
	if pending and pending._body == nil then
		self:close()
	end
	self.pending = nil
	local head = request_head(method, target, hostfield, headers, body)
	for attempt = 1, 2 do
		local stream, reused = self:connect(scheme, host, port)
		if not stream then
			return nil, reused
		end
		local ok, err = stream:write(head, body or '')
		local res
		if ok then
			repeat
				res, err = stream:read('HTTPResponse')
			until not res or res.status >= 200 or res.status == 101
		end
		if res then
			res.client, res.method, res.stream = self, method, stream
			setmetatable(res, Response)
			self.pending = res
			return res
		end
		self:close()
		-- A kept connection the server closed meanwhile: try a new one,
		-- once.
		if not (reused and attempt == 1 and (err == 'closed' or err == 'Connection reset by peer')) then
			return nil, err
		end
	end
end

-- client:request(method, url [, headers [, body]]) -> Response | nil, err;
-- a malformed URL raises (the original's get raised on one).
function Client:request(method, url, headers, body)
	local res, err = send(self, method, headers, body, checkurl(url, 'request', 2))
	return res, err
end

-- client:get(url) -> Response | nil, err
function Client:get(url)
	local res, err = send(self, 'GET', nil, nil, checkurl(url, 'get', 1))
	return res, err
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

local read_chunked = http.read_chunked

-- res:body() -> string | nil, err: Content-Length, chunked, or until the
-- server closes.
function Response:body()
	local body = self._body
	if body then
		return body
	end
	local stream, status, headers = self.stream, self.status, self.headers
	local err
	if self.method == 'HEAD' or status == 204 or status == 304 or status < 200 then
		body = ''
	elseif headers['transfer-encoding'] and find(lower(headers['transfer-encoding']), 'chunked', 1, true) then
		body, err = read_chunked(stream)
	elseif headers['content-length'] then
		local len = tonumber(match(headers['content-length'], '^%s*(%d+)'))
		if not len then
			return nil, 'parse error'
		end
		body, err = stream:read(len)
	else
		body, err = stream:read('*a')
		self.client:close()
	end
	if not body then
		if self.client.stream == stream then
			self.client:close()
		end
		return nil, err
	end
	self._body = body
	if closing(self) and self.client.stream == stream then
		self.client:close()
	end
	return body
end

-- client:download(url, filename) -> Response | nil, err: the body saved
-- to a file.
function Client:download(url, filename)
	local res, err = send(self, 'GET', nil, nil, checkurl(url, 'download', 1))
	if not res then
		return nil, err
	end
	local body
	body, err = res:body()
	if not body then
		return nil, err
	end
	local f
	f, err = io.open(filename, 'w')
	if not f then
		return nil, err
	end
	local ok
	ok, err = f:write(body)
	f:close()
	if not ok then
		return nil, err
	end
	return res
end

-- Beyond the original: one-shot helpers on a fresh client.
function M.request(method, url, headers, body)
	local c = M.new()
	local res, err = send(c, method, headers, body, checkurl(url, 'request', 2))
	if not res then
		return nil, err
	end
	local b
	b, err = res:body()
	c:close()
	if not b then
		return nil, err
	end
	return res, b
end

return M
