-- A server for http/access_log.lua under lem -w: logs JSON lines to the
-- file arg[2], listens on port arg[1], says which worker answered.
local server = require 'lem.http.server'
local utils = require 'lem.utils'
local srv = assert(server.new('127.0.0.1', tonumber(arg[1]), function(req, res)
	res.headers['X-Worker'] = tostring((utils.worker()))
	res:add('ok')
end))
srv.access_log = arg[2]
srv.access_log_format = 'json'
srv:run()
