#!/usr/bin/env lem
-- The benchmark server: "Hello, World!" from lem.http.server.
--   lem examples/hello.lua [port [host]]
local server = require 'lem.http.server'

local port, host = tonumber(arg[1]) or 8080, arg[2] or '127.0.0.1'
local srv = assert(server.new(host, port, function(_, res)
	res.headers['Content-Type'] = 'text/plain'
	res:add('Hello, World!\n')
end))
print(('listening on http://%s:%d/'):format(host, port))
srv:run()
