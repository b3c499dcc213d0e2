#!/usr/bin/env lem
-- A chat server: every line a client sends goes to all other clients.
-- usage: lem examples/chat.lua [port]   then: nc localhost 5555
local io    = require 'lem.io'
local queue = require 'lem.io.queue'

local port = arg[1] or '5555'
local socket = assert(io.tcp.listen('*', port))
local clients = {}

print(('chat: listening on port %s'):format(port))

socket:autospawn(function(client)
	-- Writes from many coroutines to one client: queue them.
	local self = queue.wrap(client)
	local name = ('%s:%s'):format(client:getpeer())
	clients[self] = true
	self:write('welcome, ', name, '\n')
	for line in client:lines() do
		if line == '/quit' then break end
		for c in pairs(clients) do
			if c ~= self then
				c:write(name, ': ', line, '\n')
			end
		end
	end
	clients[self] = nil
	client:close()
end)
