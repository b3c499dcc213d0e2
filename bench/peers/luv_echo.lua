-- Line echo on luv (libuv's callbacks, no coroutines), a peer for
-- bench/io.sh: each read appends to the connection's pending input, and
-- all its complete lines go back in one write.
--   luajit bench/peers/luv_echo.lua PORT     (Debian: luajit lua-luv)
local uv = require 'luv'
local port = tonumber(arg[1] or 8080)

local server = uv.new_tcp()
assert(server:bind('127.0.0.1', port))
assert(server:listen(4096, function(err)
	assert(not err, err)
	local conn = uv.new_tcp()
	server:accept(conn)
	local pending = ''
	conn:read_start(function(rerr, chunk)
		if rerr or not chunk then
			conn:close()
			return
		end
		pending = pending .. chunk
		local cut = pending:match('^.*()\n')
		if cut then
			conn:write(pending:sub(1, cut))
			pending = pending:sub(cut + 1)
		end
	end)
end))
uv.run()
