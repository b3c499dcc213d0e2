-- lem.http.response: the response object handed to server handlers, the
-- status texts and the ready error handlers. See docs/http-response.md.
local setmetatable, format, pairs, type, error = setmetatable, string.format, pairs, type, error
local cookie = require 'lem.http.cookie'

local M = {}

-- The private fields of req and res: what the halves of the server (Rust
-- and Lua) and the modules on it (lem.websocket) tell each other through a
-- request or a response. A handler leaves them alone. Each is named here
-- once; the Lua halves index with these names (req[P.framing]).
--
-- Those the Rust half reads or sets too. src/protocols/http/server.rs has
-- the same list (PRIVATE), and a test there checks that the two agree.
local shared = {
	framing = '_framing',     -- req: how the body comes: 'length', 'chunked', nil (none)
	length = '_length',       -- req: its Content-Length, with framing 'length'
	expect = '_expect',       -- req: true until 100 Continue is sent
	head = '_head',           -- req: the raw field section until req.headers is built
	req = '_req',             -- res: its request
	streaming = '_streaming', -- res: set, not an ordinary response (the Lua half sends it)
}
-- Those of the Lua halves alone.
local own = {
	body = '_body',         -- req: the body, once read
	max = '_max',           -- req: the largest body the server takes
	server = '_server',     -- req: the server (its timeouts), with a body
	badchunk = '_badchunk', -- req: bad chunked framing was read (a 400 then)
	parts = '_parts',       -- req: what req:multipart returned (its body is being read)
	stream = '_stream',     -- Request: what res:write calls
	reader = '_reader',     -- Request: the body as a reader of pieces (req:multipart)
	close = '_close',       -- res: a streamed body ends with the connection
	opened = '_opened',     -- res: the File opened for res.file, closed after
	upgrade = '_upgrade',   -- res: the hook of a connection taken over (M._upgrade)
	h2 = '_h2',             -- req: its HTTP/2 stream (lem.http.h2)
	filesize = '_filesize', -- res: the bytes of res.file to send, known to its opener (no checks then)
	fileoffset = '_fileoffset', -- res: where in res.file they start (a Range)
	sent = '_sent',         -- res: the body bytes send() sent (for the access log)
}
local P = {}
for k, v in pairs(shared) do
	P[k] = v
end
for k, v in pairs(own) do
	P[k] = v
end
M._private = P

M.status_string = {
	[100] = 'Continue',
	[101] = 'Switching Protocols',
	[200] = 'OK',
	[201] = 'Created',
	[202] = 'Accepted',
	[203] = 'Non-Authoritative Information',
	[204] = 'No Content',
	[205] = 'Reset Content',
	[206] = 'Partial Content',
	[300] = 'Multiple Choices',
	[301] = 'Moved Permanently',
	[302] = 'Found',
	[303] = 'See Other',
	[304] = 'Not Modified',
	[305] = 'Use Proxy',
	[307] = 'Temporary Redirect',
	[308] = 'Permanent Redirect',
	[400] = 'Bad Request',
	[401] = 'Unauthorized',
	[402] = 'Payment Required',
	[403] = 'Forbidden',
	[404] = 'Not Found',
	[405] = 'Method Not Allowed',
	[406] = 'Not Acceptable',
	[407] = 'Proxy Authentication Required',
	[408] = 'Request Timeout',
	[409] = 'Conflict',
	[410] = 'Gone',
	[411] = 'Length Required',
	[412] = 'Precondition Failed',
	[413] = 'Content Too Large',
	[414] = 'URI Too Long',
	[415] = 'Unsupported Media Type',
	[416] = 'Range Not Satisfiable',
	[417] = 'Expectation Failed',
	[426] = 'Upgrade Required',
	[428] = 'Precondition Required',
	[429] = 'Too Many Requests',
	[431] = 'Request Header Fields Too Large',
	[500] = 'Internal Server Error',
	[501] = 'Not Implemented',
	[502] = 'Bad Gateway',
	[503] = 'Service Unavailable',
	[504] = 'Gateway Timeout',
	[505] = 'HTTP Version Not Supported',
}

-- A response: res.status, res.headers, res.file, and the body as the
-- array part (res:add appends to it).
local Response = {}
Response.__index = Response
M.Response = Response

-- response.new(req) -> res
function M.new(req)
	return setmetatable({ headers = {}, [P.req] = req }, Response)
end

-- response._upgrade(res, hook): the connection leaves HTTP (lem.websocket's
-- accept, once its 101 is sent). The server sends no response for res;
-- when the handler has ended it calls hook(ok, err) (ok false when the
-- handler raised err), then closes the connection.
function M._upgrade(res, hook)
	res[P.upgrade] = hook
	res[P.streaming] = 'upgrade'
end

-- res:add(fmt, ...): append string.format(fmt, ...) to the body. On Lua
-- 5.4 in Rust (a plain string is appended without formatting); LuaJIT runs
-- the Lua version faster, since a call to a C function ends its trace.
if type(jit) == 'table' then
	function Response:add(fmt, ...)
		self[#self + 1] = format(fmt, ...)
	end
else
	Response.add = require('lem.http.core').add
end

-- res:write(...) -> true | nil, err: stream the body (beyond the
-- original): the head goes out on the first call (chunked transfer coding
-- for HTTP/1.1), each call sends its strings as they are.
function Response:write(...)
	local req = self[P.req]
	local stream = req and req[P.stream]
	if stream == nil then
		return nil, 'not streaming'
	end
	return stream(self, ...)
end

-- res:cookie(name, value [, opts]): add a Set-Cookie field (beyond the
-- original; lem.http.cookie's format makes it, and raises for bad bytes).
-- res.headers['Set-Cookie'] becomes a list, one field per element.
function Response:cookie(name, value, opts)
	local v, err = cookie._build(name, value, opts)
	if not v then
		error(err, 2)
	end
	local headers = self.headers
	local old = headers['Set-Cookie']
	if old == nil then
		headers['Set-Cookie'] = { v }
	elseif type(old) == 'table' then
		old[#old + 1] = v
	else
		headers['Set-Cookie'] = { old, v }
	end
end

-- response.htmlerror(code, text) -> handler(req, res) that answers with
-- status code and a small HTML page saying text.
function M.htmlerror(code, text)
	local body = format('<html><head><title>%s</title></head><body><h1>%s</h1></body></html>\n', text, text)
	return function(_, res)
		res.status = code
		res.headers['Content-Type'] = 'text/html; charset=UTF-8'
		res[1] = body
		for i = #res, 2, -1 do
			res[i] = nil
		end
	end
end

M.bad_request = M.htmlerror(400, 'Bad Request')
M.not_found = M.htmlerror(404, 'Not Found')
M.method_not_allowed = M.htmlerror(405, 'Method Not Allowed')
M.payload_too_large = M.htmlerror(413, 'Content Too Large')
M.expectation_failed = M.htmlerror(417, 'Expectation Failed')
M.header_fields_too_large = M.htmlerror(431, 'Request Header Fields Too Large')
M.internal_server_error = M.htmlerror(500, 'Internal Server Error')
M.not_implemented = M.htmlerror(501, 'Not Implemented')
M.version_not_supported = M.htmlerror(505, 'HTTP Version Not Supported')

return M
