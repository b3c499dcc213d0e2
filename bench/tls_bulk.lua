-- TLS throughput on loopback: MB through a lem TLS server that echoes,
-- the writer and the reader in one process (bench/README.md "TLS").
--   lem bench/tls_bulk.lua CERTDIR [MB]   (CERTDIR has cert.pem, key.pem)
local io = require 'lem.io'
local utils = require 'lem.utils'
local dir, mb = assert(arg[1], 'CERTDIR'), tonumber(arg[2]) or 200
local server = assert(io.tls.listen('127.0.0.1', 0, { cert = dir .. '/cert.pem', key = dir .. '/key.pem' }))
local _, port = server:getsockname()
utils.spawn(function()
	server:autospawn(function(c)
		while true do
			local d = c:read()
			if not d or not c:write(d) then
				break
			end
		end
		c:close()
	end)
end)
local c = assert(io.tls.connect('127.0.0.1', port, { insecure = true }))
local chunk = ('x'):rep(64 * 1024)
local n = mb * 1024 * 1024 / #chunk
local t0 = utils.updatenow()
utils.spawn(function()
	for _ = 1, n do
		assert(c:write(chunk))
	end
end)
local got = 0
while got < n * #chunk do
	got = got + #assert(c:read())
end
local dt = utils.updatenow() - t0
print(('%d MB echoed over TLS in %.2f s: %.0f MB/s'):format(mb, dt, mb / dt))
c:close()
server:close()
