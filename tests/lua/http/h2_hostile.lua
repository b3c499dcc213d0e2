-- HTTP/2 against a hostile peer, in raw frames (http/data/h2_peer.py, on
-- Debian's python3-h2): the limits the server announces (128 streams,
-- the header list), Rapid Reset (CVE-2023-44487), streams past the cap,
-- a CONTINUATION flood (CVE-2024-27316), a window that never opens and
-- a connection that stays idle past srv.timeout.
-- After each, the server still serves other connections.
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local utils = require 'lem.utils'

local PY = '/usr/bin/python3'
local handled, big = 0, nil
local srv, port, url = common.serve(function(req, res)
	handled = handled + 1
	if req.path == '/slow' then
		utils.newsleeper():sleep(0.05)
		res[1] = 'slow'
	elseif req.path == '/big' then
		local ok, err = res:write(('b'):rep(1 << 20))
		big = { ok = ok, err = err }
	else
		res[1] = 'ok'
	end
end)

local function peer(case, arg)
	return common.sh(('%s http/data/h2_peer.py %s %d %s 2>&1'):format(PY, case, port, arg or ''))
end
local function still_serving(what)
	eq(common.sh('curl -s --http2-prior-knowledge ' .. url .. '/'), 'ok', 'served after ' .. what)
end

eq(peer('settings'), 'max_concurrent_streams 128\nmax_header_list_size 65536\n', 'announced limits')

-- Rapid Reset: 10,000 streams opened and reset. The server says GOAWAY
-- (ENHANCE_YOUR_CALM, 11) long before the end, and few handlers ran.
local out = peer('rapid_reset', 10000)
assert(out:find('^goaway 11\n') or out:find('^closed\n'), out)
assert(handled < 1000, 'handlers run for reset streams: ' .. handled)
still_serving('rapid reset')

-- 200 streams at once on a server that takes 128: the rest are refused.
handled = 0
out = peer('many_streams', 200)
local ok, refused = out:match('answered (%d+) refused (%d+)')
assert(ok, out)
eq(tonumber(ok) + tonumber(refused), 200, 'every stream answered or refused: ' .. out)
assert(tonumber(ok) >= 128, out)
still_serving('many streams')

-- CONTINUATION frames without end: the connection ends (the header
-- list limit) long before 10,000 of them (80 MB) are sent.
out = peer('continuation', 10000)
assert(out:find('^goaway') or out:find('^closed'), out)
assert(out:find('stopped early'), out)
still_serving('a CONTINUATION flood')

-- A window that never opens: the head comes, no body; the handler's
-- write waits, and fails once the client goes away.
out = peer('window', '/big')
eq(out, 'head 200\nno data\n', 'window 0')
while not big do
	utils.newsleeper():sleep(0.01)
end
eq(big.ok, nil, 'the stalled write fails when the client leaves')
still_serving('a stalled window')

-- Idle past srv.timeout with no stream open: GOAWAY, then the end.
srv.timeout = 0.3
eq(peer('idle'), 'goaway 0\nclosed\n', 'an idle connection is closed')
srv.timeout = 30
still_serving('an idle connection')

srv:close()
