-- Drains that finish fast (issue 30): under `lem -w 1 --grace 120`, a
-- worker with open WebSockets (a Python websockets client and a lem one)
-- and a subscriber of lem.shared waiting for messages ends soon after
-- SIGTERM, not at the grace (which is longer than the test's deadline):
-- the WebSockets are closed with 1001 by lem.websocket itself, the
-- subscription's receive returns nil, 'closed', and utils.ondrain's hook
-- runs.
local support = dofile('support.lua')
local utils = require 'lem.utils'
local io = require 'lem.io'
local websocket = require 'lem.websocket'

local app = support.write_file('app.lua', [[
local utils = require 'lem.utils'
local http = require 'lem.http.server'
local websocket = require 'lem.websocket'
local shared = require 'lem.shared'
utils.ondrain(function() print('ondrain hook') end)
utils.spawn(function()
	local sub = shared.subscribe('news')
	while true do
		local m, err = sub:receive()
		if not m then print('subscriber', err) return end
	end
end)
local srv = assert(http.new('127.0.0.1', 0, function(req, res)
	local ws = assert(websocket.accept(req, res))
	while true do
		local data, kind, code = ws:receive()
		if not data then print('handler', kind, code) return end
		ws:send(data)
	end
end))
print('ready', select(2, srv:getsockname()))
print('run', srv:run())
]])
local sup = assert(io.spawn({ arg[-1], '-w', '1', '--grace', '120', app }, { stdout = 'pipe', stderr = 'pipe' }))
local first = assert(sup.stdout:read('*l'))
local port = assert(first:match('^ready\t(%d+)$'), first)
local url = 'ws://127.0.0.1:' .. port .. '/'

local py = support.write_file('client.py', [[
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        await ws.send('hi')
        print(await ws.recv(), flush=True)
        try:
            await ws.recv()
        except websockets.ConnectionClosed:
            pass
        print('closed', ws.close_code, ws.close_reason, flush=True)
asyncio.run(main())
]])
local pyc = assert(io.spawn({ '/usr/bin/python3', py, url }, { stdout = 'pipe' }))
eq(pyc.stdout:read('*l'), 'hi', 'the python client is connected')
local ws = assert(websocket.connect(url))
assert(ws:send('hello'))
eq(ws:receive(), 'hello', 'the lem client is connected')

assert(sup:kill('TERM'))
eq({ ws:receive() }, { nil, 'closed', 1001, 'going away' }, 'the lem client hears 1001')
eq(pyc.stdout:read('*a'), 'closed 1001 going away\n', 'the python client hears 1001')
assert(pyc:wait())
local out = assert(sup.stdout:read('*a'))
local err = assert(sup.stderr:read('*a'))
local how = assert(sup:wait())
eq({ how.type, how.status }, { 'exited', 0 }, 'the supervisor exits: ' .. err)
local lines = {}
for line in out:gmatch('[^\n]+') do lines[line] = (lines[line] or 0) + 1 end
eq(lines, {
	['ondrain hook'] = 1,
	['subscriber\tclosed'] = 1,
	['handler\tclosed\t1001'] = 2,
	['run\tnil\tinterrupted'] = 1,
}, 'the worker saw its stop')
assert(not err:find('cut off', 1, true), err)
