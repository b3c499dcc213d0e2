-- Chunk echo server for bench/io.sh's bulk run: read() whatever arrived,
-- write it back.  usage: lem bench/io_bulk.lua PORT
local io = require 'lem.io'
local sock = assert(io.tcp.listen4('127.0.0.1', arg[1] or '8080'))
sock:autospawn(function(c)
	while true do
		local d = c:read()
		if not d then break end
		if not c:write(d) then break end
	end
	c:close()
end)
