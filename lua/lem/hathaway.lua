-- lem.hathaway: routing on top of lem.http.server. See
-- docs/hathaway.md. Exact paths are one table lookup; patterns are tried in
-- the order they were added, with their captures passed to the handler.
local server = require 'lem.http.server'
local response = require 'lem.http.response'
local http_core = require('lem.http.core')
local static_open, static_cache = http_core.static_open, http_core.static_cache

local setmetatable, type, match, unpack, pcall = setmetatable, type, string.match, table.unpack or unpack, pcall
local error, pairs, tostring, tonumber, getmetatable = error, pairs, tostring, tonumber, getmetatable
local find, gsub, gmatch, lower, sub, format = string.find, string.gsub, string.gmatch, string.lower, string.sub, string.format
local byte = string.byte
local concat = table.concat
local floor = math.floor
local stderr = io.stderr
-- The private fields of res (declared in lem.http.response).
local P = response._private

local M = {}

local App = {}
App.__index = App
M.App = App

local methods = { 'GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'HEAD' }

for _, method in ipairs(methods) do
	-- app:GET(path, handler): an exact-path route.
	App[method] = function(self, path, handler)
		local route = self.exact[path]
		if not route then
			route = {}
			self.exact[path] = route
		end
		route[method] = handler
	end
	-- app:GETM(pattern, handler): a Lua pattern route.
	App[method .. 'M'] = function(self, pattern, handler)
		local route = self.bypattern[pattern]
		if not route then
			route = { pattern = pattern }
			self.bypattern[pattern] = route
			self.patterns[#self.patterns + 1] = route
		end
		route[method] = handler
	end
end

-- The handler for method in a route (GET answers HEAD too).
local function pick(route, method)
	local h = route[method]
	if h == nil and method == 'HEAD' then
		h = route.GET
	end
	return h
end

-- The routes tried in order on a path no exact route has: 405 when one
-- matches for another method, else 404 (the app's pages for them).
local function by_pattern(app, patterns, path, method, req, res)
	local known = false
	for i = 1, #patterns do
		local route = patterns[i]
		-- Up to four captures without a table for them.
		local a, b, c, d, e = match(path, route.pattern)
		if a ~= nil then
			local h = pick(route, method)
			if h then
				if b == nil then
					return h(req, res, a)
				elseif c == nil then
					return h(req, res, a, b)
				elseif d == nil then
					return h(req, res, a, b, c)
				elseif e == nil then
					return h(req, res, a, b, c, d)
				end
				return h(req, res, unpack({ match(path, route.pattern) }))
			end
			known = true
		end
	end
	if known then
		return app.method_not_allowed(req, res)
	end
	return app.not_found(req, res)
end

-- hathaway.new() -> an app with its own routes.
function M.new()
	local exact, patterns = {}, {}
	local app = setmetatable({
		exact = exact, patterns = patterns, bypattern = {}, middleware = {},
		not_found = response.not_found, method_not_allowed = response.method_not_allowed,
	}, App)
	-- The router: the server calls it directly while the app has no
	-- middleware, and the lookup of an exact route is written out here
	-- (one Lua call per request in all, the route's handler).
	app.route = function(req, res)
		local path, method = req.path, req.method
		local debug = M.debug
		if debug then
			-- A hook that raises is reported; the request is routed all the same.
			local ok, err = pcall(debug, 'info', method .. ' ' .. req.uri .. ' HTTP/' .. req.version)
			if not ok then
				stderr:write('lem.hathaway: the debug hook raised: ',
					type(err) == 'string' and err or '(a ' .. type(err) .. ')', '\n')
			end
		end
		local route = exact[path]
		if route then
			local h = route[method]
			if h == nil and method == 'HEAD' then
				h = route.GET
			end
			if h then
				return h(req, res)
			end
			return app.method_not_allowed(req, res)
		end
		return by_pattern(app, patterns, path, method, req, res)
	end
	app.handler = app.route
	return app
end

-- The handler of an app with middleware: each f(req, res, next) in the
-- order they were added, the router last. Each next runs once (a second
-- call raises: the rest would run twice).
local function chain(mw, route)
	local n = #mw
	return function(req, res)
		local function step(i)
			local done = false
			return function()
				if done then
					error('next() called twice', 2)
				end
				done = true
				if i > n then
					return route(req, res)
				end
				return mw[i](req, res, step(i + 1))
			end
		end
		return step(1)()
	end
end

-- app:use(f): middleware f(req, res, next), run before the routes in the
-- order added; next() runs the rest (the code after it runs after the
-- route); not calling next answers early.
function App:use(f)
	if type(f) ~= 'function' and not (getmetatable(f) and getmetatable(f).__call) then
		error(format("bad argument #1 to 'use' (function expected, got %s)", type(f)), 2)
	end
	if self.server then
		error('app:use after app:run: the server already has the handler', 2)
	end
	local mw = self.middleware
	mw[#mw + 1] = f
	self.handler = chain(mw, self.route)
	return self
end

-- app:dispatch(req, res): route one request.
function App:dispatch(req, res)
	return self.handler(req, res)
end

-- The server's debug hook of apps: hathaway.debug (else server.debug) as
-- it is at the time.
local function forward_debug(where, err)
	local debug = M.debug or server.debug
	if debug then
		debug(where, err)
	end
end

-- app:run(host, port) | app:run(serversocket) -> nil, 'interrupted' | nil, err
function App:run(host, port)
	local srv, err
	if type(host) == 'string' then
		srv, err = server.new(host, port, self.handler)
	else
		srv, err = server.new(host, self.handler)
	end
	if not srv then
		return nil, err
	end
	-- Connection errors go to hathaway.debug too, as ('read', 'closed').
	srv.debug = forward_debug
	self.server = srv
	if self == M.default then
		M.server = srv
	end
	return srv:run()
end

-- hathaway.mime: Content-Type by lower-cased file extension, for
-- hathaway.static (a script may add to it).
M.mime = {
	html = 'text/html; charset=utf-8', htm = 'text/html; charset=utf-8',
	css = 'text/css; charset=utf-8', js = 'text/javascript; charset=utf-8',
	mjs = 'text/javascript; charset=utf-8', json = 'application/json',
	map = 'application/json', txt = 'text/plain; charset=utf-8',
	md = 'text/markdown; charset=utf-8', csv = 'text/csv; charset=utf-8',
	xml = 'application/xml', svg = 'image/svg+xml', png = 'image/png',
	jpg = 'image/jpeg', jpeg = 'image/jpeg', gif = 'image/gif',
	webp = 'image/webp', avif = 'image/avif', ico = 'image/x-icon',
	wasm = 'application/wasm', pdf = 'application/pdf',
	zip = 'application/zip', gz = 'application/gzip', tar = 'application/x-tar',
	mp3 = 'audio/mpeg', ogg = 'audio/ogg', wav = 'audio/wav',
	mp4 = 'video/mp4', webm = 'video/webm', woff = 'font/woff',
	woff2 = 'font/woff2', ttf = 'font/ttf', otf = 'font/otf',
}

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- An IMF-fixdate ('Sun, 06 Nov 1994 08:49:37 GMT') as unix seconds, or
-- nil (the obsolete forms too: a condition we cannot read is ignored).
local function parse_date(s)
	local d, mon, y, h, mi, sec = match(s, '^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$')
	local m = MONTHS[mon]
	if not m then
		return nil
	end
	y, m, d = tonumber(y), m, tonumber(d)
	-- Days since 1970-01-01 of a civil date (Hinnant's days_from_civil).
	if m <= 2 then
		y = y - 1
	end
	local era = floor(y / 400)
	local yoe = y - era * 400
	local mp = (m + 9) % 12
	local doy = floor((153 * mp + 2) / 5) + d - 1
	local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
	local days = era * 146097 + doe - 719468
	return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
end
M._parse_date = parse_date

-- Whether an If-None-Match value names etag (the weak comparison of RFC
-- 9110 §8.8.3.2: W/ is ignored on both sides).
local function none_match(value, etag)
	if match(value, '^%s*%*%s*$') then
		return true
	end
	etag = gsub(etag, '^W/', '')
	for tag in gmatch(value, '[^,]+') do
		tag = gsub(gsub(tag, '^%s+', ''), '%s+$', '')
		if gsub(tag, '^W/', '') == etag then
			return true
		end
	end
	return false
end

-- The byte range of a Range value for a file of size bytes: first, last
-- (inclusive); false when unsatisfiable (416); nil when the value is not
-- one range of bytes we read (the field is then ignored, as RFC 9110
-- §14.2 allows: a whole 200 answer, several ranges included).
local function byte_range(value, size)
	local first, last = match(value, '^%s*bytes%s*=%s*(%d*)%s*%-%s*(%d*)%s*$')
	if not first or (first == '' and last == '') then
		return nil
	end
	if first == '' then
		-- A suffix: the last n bytes.
		if #last > 15 then
			last = size
		else
			last = tonumber(last)
		end
		if last == 0 or size == 0 then
			return false
		end
		return last >= size and 0 or size - last, size - 1
	end
	if #first > 15 then
		return false
	end
	first = tonumber(first)
	local l = size - 1
	if last ~= '' then
		if #last <= 15 then
			local n = tonumber(last)
			if n < first then
				return nil
			end
			if n < l then
				l = n
			end
		end
	end
	if first >= size then
		return false
	end
	return first, l
end
M._byte_range = byte_range

local static_options = {
	index = 'string', symlinks = 'boolean', dotfiles = 'boolean',
	max_age = 'number', not_found = 'function', mime = 'table', default_type = 'string',
	cache = 'number', cache_valid = 'number',
}

-- hathaway.static(root [, opts]) -> handler(req, res [, path]): serves the
-- file at path (the route's capture; else req.path) beneath root.
function M.static(root, opts)
	if type(root) ~= 'string' then
		error(format("bad argument #1 to 'static' (string expected, got %s)", type(root)), 2)
	end
	opts = opts or {}
	if type(opts) ~= 'table' then
		error(format("bad argument #2 to 'static' (table expected, got %s)", type(opts)), 2)
	end
	for k, v in pairs(opts) do
		local want = static_options[k]
		if not want then
			error(format("bad argument #2 to 'static' (unknown option %s)", tostring(k)), 2)
		end
		if type(v) ~= want then
			error(format("bad argument #2 to 'static' (option %s: %s expected, got %s)", k, want, type(v)), 2)
		end
	end
	local cache, cache_valid = opts.cache or 128, opts.cache_valid or 1
	if not (cache >= 0 and cache <= 1e6) or cache ~= floor(cache) then
		error(format("bad argument #2 to 'static' (option cache: a count of files expected, got %s)", tostring(cache)), 2)
	end
	if not (cache_valid >= 0 and cache_valid <= 1e9) then
		error(format("bad argument #2 to 'static' (option cache_valid: seconds between 0 and 1e9 expected, got %s)",
			tostring(cache_valid)), 2)
	end
	local index, follow, dotfiles = opts.index, opts.symlinks or false, opts.dotfiles
	local files = static_cache(root, follow, cache, cache_valid)
	local max_age = opts.max_age and format('max-age=%d', floor(opts.max_age))
	local not_found = opts.not_found or response.not_found
	local mime, default_type = opts.mime or M.mime, opts.default_type or 'application/octet-stream'
	local bad_request = response.bad_request

	-- The path beneath root, checked: its segments joined by one '/', or
	-- nil and the handler for the refusal. The path is decoded already
	-- (req.path), so '..' here is every spelling of it that decoding can
	-- give ('%2e%2e', '..%2f', ...); a '%' left after decoding is a file
	-- name's own and is not decoded again.
	local function clean(path)
		if find(path, '\\', 1, true) or find(path, '\0', 1, true) then
			return nil, bad_request
		end
		-- The usual path ('css/site.css'): no empty or dot segment, nothing
		-- to take apart.
		local b = byte(path, 1)
		if b ~= 47 and b ~= 46 and byte(path, -1) ~= 47 and not find(path, '/.', 1, true)
			and not find(path, '//', 1, true) then
			return path
		end
		local parts, n = {}, 0
		for seg in gmatch(path, '[^/]+') do
			if seg == '..' then
				return nil, bad_request
			end
			if seg ~= '.' then
				if sub(seg, 1, 1) == '.' and not dotfiles then
					return nil, not_found
				end
				n = n + 1
				parts[n] = seg
			end
		end
		return concat(parts, '/', 1, n)
	end

	return function(req, res, path)
		local method = req.method
		if method ~= 'GET' and method ~= 'HEAD' then
			res.headers['Allow'] = 'GET, HEAD'
			return response.method_not_allowed(req, res)
		end
		local rel, refuse = clean(path or req.path)
		if not rel then
			return refuse(req, res)
		end
		local file, size, etag, modified, mtime = static_open(files, rel == '' and '.' or rel)
		if file == false and size == 'directory' and index then
			-- A directory's index wants a URL with a slash at the end (its
			-- relative links): redirect to it first.
			local raw, query = match(req.uri, '^([^?]*)(.*)$')
			if sub(raw, -1) ~= '/' then
				res.status = 301
				res.headers['Location'] = raw .. '/' .. query
				return
			end
			rel = rel == '' and index or rel .. '/' .. index
			file, size, etag, modified, mtime = static_open(files, rel)
		end
		if not file then
			return not_found(req, res)
		end
		local headers, reqh = res.headers, req.headers
		headers['ETag'] = etag
		headers['Last-Modified'] = modified
		headers['Accept-Ranges'] = 'bytes'
		if max_age then
			headers['Cache-Control'] = max_age
		end
		local inm, ims = reqh['if-none-match'], reqh['if-modified-since']
		local fresh
		if inm then
			fresh = none_match(inm, etag)
		elseif ims then
			local t = parse_date(ims)
			fresh = t and mtime <= t
		end
		-- A small file comes as its bytes (read when it was opened), a
		-- larger one as an open File.
		local bytes = type(file) == 'string'
		if fresh then
			if not bytes then
				file:close()
			end
			res.status = 304
			return
		end
		-- The extension: after the last dot of the last segment.
		local ext = ''
		for i = #rel, 1, -1 do
			local c = byte(rel, i)
			if c == 46 then
				ext = lower(sub(rel, i + 1))
				break
			elseif c == 47 then
				break
			end
		end
		headers['Content-Type'] = mime[ext] or default_type
		local range = method == 'GET' and reqh['range']
		if range then
			local cond = reqh['if-range']
			if cond and cond ~= etag and cond ~= modified then
				range = nil
			end
		end
		local offset = 0
		if range then
			local first, last = byte_range(range, size)
			if first == false then
				if not bytes then
					file:close()
				end
				res.status = 416
				headers['Content-Range'] = 'bytes */' .. size
				return
			elseif first then
				res.status = 206
				headers['Content-Range'] = format('bytes %d-%d/%d', first, last, size)
				offset, size = first, last - first + 1
			end
		end
		if bytes then
			-- The body, sent with the head in one write.
			res.status = res.status or 200
			res[1] = (offset == 0 and size == #file) and file or sub(file, offset + 1, offset + size)
			return
		end
		-- The descriptor may be shared with other answers (the cache):
		-- read at an offset, never at its file position.
		res[P.fileoffset] = offset
		res.file = file
		res[P.filesize] = size
		res[P.opened] = file
	end
end

-- hathaway.cors([opts]) -> middleware answering CORS preflights and
-- adding the Access-Control-* fields to the other answers.
local cors_options = {
	origins = true, methods = 'string', headers = 'string', expose = 'string',
	credentials = 'boolean', max_age = 'number',
}
function M.cors(opts)
	opts = opts or {}
	if type(opts) ~= 'table' then
		error(format("bad argument #1 to 'cors' (table expected, got %s)", type(opts)), 2)
	end
	for k, v in pairs(opts) do
		local want = cors_options[k]
		if not want then
			error(format("bad argument #1 to 'cors' (unknown option %s)", tostring(k)), 2)
		end
		if want ~= true and type(v) ~= want then
			error(format("bad argument #1 to 'cors' (option %s: %s expected, got %s)", k, want, type(v)), 2)
		end
	end
	-- origins: '*' (default), one origin, a list of them, or a function
	-- origin -> boolean.
	local origins = opts.origins or '*'
	local allowed
	if type(origins) == 'function' then
		allowed = origins
	elseif type(origins) == 'string' then
		allowed = function(o) return origins == '*' or o == origins end
	elseif type(origins) == 'table' then
		local set = {}
		for _, o in pairs(origins) do
			set[o] = true
		end
		allowed = function(o) return set[o] == true end
	else
		error(format("bad argument #1 to 'cors' (option origins: string, table or function expected, got %s)",
			type(origins)), 2)
	end
	local methods = opts.methods or 'GET, HEAD, POST, PUT, PATCH, DELETE'
	local credentials, expose = opts.credentials, opts.expose
	local max_age = opts.max_age and format('%d', floor(opts.max_age))
	-- The origin is echoed (with Vary: Origin) unless any will do and
	-- no credentials go with it.
	local any = origins == '*' and not credentials
	return function(req, res, nxt)
		local origin = req.headers['origin']
		if not origin or not allowed(origin) then
			return nxt()
		end
		local h = res.headers
		if any then
			h['Access-Control-Allow-Origin'] = '*'
		else
			h['Access-Control-Allow-Origin'] = origin
			h['Vary'] = 'Origin'
		end
		if credentials then
			h['Access-Control-Allow-Credentials'] = 'true'
		end
		local want = req.method == 'OPTIONS' and req.headers['access-control-request-method']
		if want then
			h['Access-Control-Allow-Methods'] = methods
			local asked = opts.headers or req.headers['access-control-request-headers']
			if asked then
				h['Access-Control-Allow-Headers'] = asked
			end
			if max_age then
				h['Access-Control-Max-Age'] = max_age
			end
			res.status = 204
			return
		end
		if expose then
			h['Access-Control-Expose-Headers'] = expose
		end
		return nxt()
	end
end

-- hathaway.debug(kind, message): a logging hook (nil: quiet), called as
-- LEM's was: ('info', 'GET / HTTP/1.1') for each request, and with the
-- server's connection errors (('read', 'closed'), ('write', err) ...).
M.debug = nil

-- The default app behind the imported globals.
M.default = M.new()

-- hathaway.import([env]): GET POST ... GETM POSTM ... and Hathaway() into
-- env (default _G).
function M.import(env)
	env = env or _G
	local app = M.default
	for _, method in ipairs(methods) do
		env[method] = function(path, handler)
			return app[method](app, path, handler)
		end
		env[method .. 'M'] = function(pattern, handler)
			return app[method .. 'M'](app, pattern, handler)
		end
	end
	env.Hathaway = function(host, port)
		return app:run(host, port)
	end
	return M
end

return M
