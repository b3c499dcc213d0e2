-- Line echo server for bench/io.sh: read('*l'), then write(line, '\n') as
-- one vectored send.  usage: lem bench/io_echo.lua PORT
local io = require 'lem.io'
local sock = assert(io.tcp.listen4('127.0.0.1', arg[1] or '8080'))
sock:autospawn(function(c)
	while true do
		local l = c:read('*l')
		if not l then break end
		if not c:write(l, '\n') then break end
	end
	c:close()
end)
