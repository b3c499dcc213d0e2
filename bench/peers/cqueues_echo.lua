-- Line echo on cqueues, a peer for bench/io.sh: one coroutine per
-- connection, read('*l') then one write of the line and its newline.
--   luajit bench/peers/cqueues_echo.lua PORT     (Debian: luajit lua-cqueues)
local cqueues = require 'cqueues'
local socket = require 'cqueues.socket'
local port = tonumber(arg[1] or 8080)

local loop = cqueues.new()
local server = assert(socket.listen {
	host = '127.0.0.1', port = port, reuseaddr = true, backlog = 4096,
})

local function echo(conn)
	conn:setmode('tl', 'bn') -- line-buffered text in, unbuffered out
	while true do
		local line = conn:read('*l')
		if not line or not conn:write(line .. '\n') then break end
	end
end

loop:wrap(function()
	for conn in server:clients() do
		loop:wrap(function()
			-- A reset connection raises: it ends this client only.
			pcall(echo, conn)
			conn:close()
		end)
	end
end)
assert(loop:loop())
