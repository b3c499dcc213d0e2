-- A chunked request body counts against the input budget while it is
-- gathered (io.setbudget): past it the handler gets nil, 'out of buffer
-- space'; and a body sent in many small chunks is read whole.
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local io = require 'lem.io'

local got = {}
local srv, port = common.serve(function(req, res)
	local body, err = req:body()
	got[#got + 1] = body and #body or err
	res:add('%s', tostring(body and #body or err))
end)

-- 200,000 chunks of one byte: read whole.
local many = {}
for i = 1, 200000 do
	many[i] = '1\r\nx\r\n'
end
local post = 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n'
local out = common.raw(port, post .. table.concat(many) .. '0\r\n\r\n')
assert(out:find('\r\n\r\n200000$'), out:sub(1, 200))

-- 1.5 MB in 1 KiB chunks against a 1 MiB budget.
assert(io.setbudget(1024 * 1024))
local chunk = ('400\r\n' .. ('y'):rep(1024) .. '\r\n')
out = common.raw(port, post .. chunk:rep(1500) .. '0\r\n\r\n')
assert(out:find('out of buffer space$'), out:sub(1, 200))
eq(got, { 200000, 'out of buffer space' })
-- Nothing is left counted once the request is over.
eq(select(2, io.budget()), 0, 'released')
assert(io.setbudget(nil))
srv:close()
