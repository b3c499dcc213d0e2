-- lem.redis against a fake server written in Lua that answers with bad
-- RESP: absurd lengths and depths are refused from the header (nothing of
-- that size is allocated), malformed lines and integers fail with a
-- message, a reply cut short fails as 'closed', and every failure closes
-- the connection (later calls: nil, 'closed') while the process goes on.
dofile('support.lua')
local utils = require 'lem.utils'
local io = require 'lem.io'
local redis = require 'lem.redis'

-- A server that reads one command and answers `reply`, then closes.
local function fake(reply)
	local srv = assert(io.tcp.listen('127.0.0.1', 0))
	local _, port = srv:getsockname()
	utils.spawn(function()
		local c = srv:accept()
		srv:close()
		c:read()
		c:write(reply)
		utils.newsleeper():sleep(0.05)
		c:close()
	end)
	return port
end

local function refused(reply, expect)
	local r = assert(redis.connect('127.0.0.1', fake(reply)))
	local v, err = r:call('GET', 'k')
	assert(v == nil and type(err) == 'string', 'a failure')
	assert(err:find(expect, 1, true), ('expected %q, got %q'):format(expect, err))
	eq({ r:call('PING') }, { nil, 'closed' }, 'closed after a bad reply')
end

refused('$9999999999\r\n', 'bulk string too long')
refused('$-2\r\n', 'negative length')
refused('*99999999999\r\n', 'array too long')
refused(string.rep('*1\r\n', 100) .. ':1\r\n', 'nested too deep')
refused(':12x\r\n', 'malformed integer')
refused(':99999999999999999999\r\n', 'malformed integer')
refused('+OK\rX', 'without LF after CR')
refused('?what\r\n', 'unknown type')
refused('+' .. string.rep('a', 70000), 'line too long')
refused('$5\r\nab', 'closed')
refused('*2\r\n:1\r\n', 'closed')
refused('', 'closed')
eq(1 + 1, 2, 'still running')
