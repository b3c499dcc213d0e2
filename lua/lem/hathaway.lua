-- lem.hathaway: routing on top of lem.http.server. See
-- docs/hathaway.md. Exact paths are one table lookup; patterns are tried in
-- the order they were added, with their captures passed to the handler.
local server = require 'lem.http.server'
local response = require 'lem.http.response'

local setmetatable, type, match, unpack, pcall = setmetatable, type, string.match, table.unpack or unpack, pcall
local stderr = io.stderr

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
-- matches for another method, else 404.
local function by_pattern(patterns, path, method, req, res)
	local known = false
	for i = 1, #patterns do
		local route = patterns[i]
		local caps = { match(path, route.pattern) }
		if caps[1] ~= nil then
			local h = pick(route, method)
			if h then
				return h(req, res, unpack(caps))
			end
			known = true
		end
	end
	if known then
		return response.method_not_allowed(req, res)
	end
	return response.not_found(req, res)
end

-- hathaway.new() -> an app with its own routes.
function M.new()
	local exact, patterns = {}, {}
	local app = setmetatable({ exact = exact, patterns = patterns, bypattern = {} }, App)
	-- The request handler: the server calls it directly, and the lookup
	-- of an exact route is written out here (one Lua call per request in
	-- all, the route's handler).
	app.handler = function(req, res)
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
			return response.method_not_allowed(req, res)
		end
		return by_pattern(patterns, path, method, req, res)
	end
	return app
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
