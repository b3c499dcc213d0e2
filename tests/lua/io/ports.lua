-- A port is an integer 0-65535 or a string of digits with such a value:
-- 99999 must not wrap around to 34463; anything else is an argument error,
-- wherever a port is taken.
dofile('support.lua')
local io = require 'lem.io'

for _, bad in ipairs({ 99999, 65536, -1, 1.5, '99999', '-1', 'http', '', ' 80', '0x50' }) do
	local what = ('port %q'):format(tostring(bad))
	checkerr("bad argument #2 to 'listen' (invalid port)", function() local s = io.tcp.listen('127.0.0.1', bad) return s end)
	checkerr("bad argument #2 to 'listen' (invalid port)", function() local s = io.tcp.listen4('127.0.0.1', bad) return s end)
	checkerr("bad argument #2 to 'listen' (invalid port)", function() local s = io.tcp.listen6('::1', bad) return s end)
	checkerr("bad argument #2 to 'connect' (invalid port)", function() local s = io.tcp.connect('127.0.0.1', bad) return s end)
	checkerr("bad argument #2 to 'connect' (invalid port)", function() local s = io.tls.connect('127.0.0.1', bad) return s end)
	checkerr("bad argument #2 to 'listen' (invalid port)", function()
		local s = io.tls.listen('127.0.0.1', bad, { cert = '/nonexistent', key = '/nonexistent' })
		return s
	end, what)
end

-- Good ones, as numbers and as strings.
local s = assert(io.tcp.listen('127.0.0.1', '0'))
local _, port = s:getsockname()
local c = assert(io.tcp.connect('127.0.0.1', tostring(port)))
c:close()
c = assert(io.tcp.connect('127.0.0.1', port))
c:close()
s:close()

-- URLs: an out-of-range port is an invalid url.
local client = require 'lem.http.client'
checkerr("bad argument #1 to 'get' (invalid url)", function() local r = client.new():get('http://127.0.0.1:99999/') return r end)
checkerr("bad argument #1 to 'get' (invalid url)", function() local r = client.new():get('https://127.0.0.1:65536/') return r end)
