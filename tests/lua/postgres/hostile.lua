-- lem.postgres against a fake server speaking bad protocol: malformed and
-- absurd lengths are refused from the header (nothing that size is
-- allocated), truncated and garbled messages fail cleanly, an unknown
-- authentication method and a wrong SCRAM signature are refused, and the
-- process goes on.
dofile('support.lua')
local utils = require 'lem.utils'
local io = require 'lem.io'
local postgres = require 'lem.postgres'

local function int32(n)
	return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
		math.floor(n / 256) % 256, n % 256)
end
local function msg(t, body) return t .. int32(#body + 4) .. body end
local ok_auth = msg('R', int32(0))
local ready = msg('Z', 'I')

-- A server that reads the startup message, then sends `reply` (after the
-- first query too, when `query` is given) and closes.
local function fake(reply, query)
	local srv = assert(io.tcp.listen('127.0.0.1', 0))
	local _, port = srv:getsockname()
	utils.spawn(function()
		local c = srv:accept()
		srv:close()
		local len = c:read(4)
		c:read(len:byte(1) * 16777216 + len:byte(2) * 65536 + len:byte(3) * 256 + len:byte(4) - 4)
		if query then
			c:write(ok_auth .. ready)
			c:read(5)
		end
		c:write(reply)
		utils.newsleeper():sleep(0.05)
		c:close()
	end)
	return ('host=127.0.0.1 port=%d user=x dbname=x sslmode=disable'):format(port)
end

local function refused(reply, expect, query)
	local info = fake(reply, query)
	local db, err = postgres.connect(info)
	if query then
		assert(db, err)
		local r
		r, err = db:exec('SELECT 1')
		assert(r == nil, 'the query failed')
	else
		assert(db == nil, 'the connection failed')
	end
	assert(err:find(expect, 1, true), ('expected %q, got %q'):format(expect, err))
end

refused('R\0\0\0\2', 'postgres message with a length below 4')
refused('R\127\255\255\255', 'postgres message too large')
refused('D\64\0\0\5', 'postgres message too large')
refused(msg('R', int32(7)), 'authentication method 7 is not supported')
refused(msg('R', int32(10) .. 'GSSAPI\0\0'), 'no SASL mechanism')
refused(msg('R', int32(12) .. 'v=AAAA'), "SCRAM signature is wrong")
refused(msg('R', int32(5) .. 'salt'), 'fe_sendauth: no password supplied')
refused(msg('E', 'SFATAL\0Mgo away\0\0'), 'FATAL:  go away')
refused(ok_auth .. 'Z\0\0', 'closed')
-- After the login: a row description that lies, a data row that lies, a
-- row longer than its message, a truncated reply.
refused(msg('T', '\0\5id\0'), 'postgres row description malformed', true)
refused(msg('T', '\0\0') .. msg('D', '\0\1\0\0\0\9ab'), 'postgres data row malformed', true)
refused(msg('D', '\0\2\255\255\255\255'), 'postgres data row malformed', true)
refused(msg('C', 'SELECT 1'), 'closed', true)
-- conninfo parsing, without a server.
eq(postgres.parse_conninfo([[host='a b\'c' port = 5 password=p\ q dbname=]]),
	{ host = "a b'c", port = '5', password = 'p q', dbname = '' }, 'keywords, quotes and escapes')
eq({ postgres.parse_conninfo("host='open") }, { nil, 'unterminated quoted value in conninfo' }, 'unterminated')
assert(not postgres.parse_conninfo('=x'), 'no key')
eq(postgres.parse_conninfo('postgresql://u:p%40w@[::1]:6/db?sslmode=require'),
	{ user = 'u', password = 'p@w', host = '::1', port = '6', dbname = 'db', sslmode = 'require' }, 'a URL')
eq(postgres.parse_conninfo('postgres://%2Ftmp%2Fpg/d'), { host = '/tmp/pg', dbname = 'd' }, 'a socket directory in a URL')

-- The process goes on.
eq(1 + 1, 2, 'still running')
