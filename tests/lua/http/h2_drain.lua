-- A graceful stop (utils.shutdown) on an HTTP/2 connection: GOAWAY goes
-- out, the request in flight on it is answered whole, a stream opened
-- after the GOAWAY is not served, and the connection then ends; the
-- process ends by itself with status 0 (http/data/h2_peer.py's 'drain').
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local utils = require 'lem.utils'

local late = false
local srv, port = common.serve(function(req, res)
	if req.path == '/slow' then
		utils.newsleeper():sleep(0.3)
		res[1] = 'all of it'
	elseif req.path == '/stop' then
		utils.spawn(function()
			utils.shutdown(30)
		end)
		res[1] = 'stopping'
	else
		late = true
		res[1] = 'late'
	end
end)

local out = common.sh(('/usr/bin/python3 http/data/h2_peer.py drain %d 2>&1'):format(port))
eq(out, 'goaway 0 last 3\nslow body all of it\nclosed\n', 'GOAWAY, and the slow stream finished')
eq(late, false, 'no handler for a stream after GOAWAY')
eq(utils.draining(), true, 'draining')
srv:close()
