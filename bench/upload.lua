-- Uploads: curl sends a SIZE MiB file (default 200) as multipart/form-data
-- to a server in this process, three ways in one run: req:multipart()
-- with part:save(fn) dropping the pieces, part:save(path) to a file under
-- /tmp, and the same bytes as a plain body read whole by req:body() (the
-- floor: the socket and the reads, no parsing). Prints MiB/s for each
-- (the best of REPS runs) and the largest Lua heap seen during the
-- streamed uploads.  usage: lem bench/upload.lua [SIZE [REPS]]
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'

local SIZE = tonumber(arg[1]) or 200
local REPS = tonumber(arg[2]) or 3
local dir = os.getenv('TMPDIR') or '/tmp'
local file = dir .. '/lem-upload-bench.bin'
local saved = dir .. '/lem-upload-bench.saved'
do
	local f = assert(_G.io.open(file, 'wb'))
	local t = {}
	for i = 0, 255 do
		t[#t + 1] = string.char(i)
	end
	local mib = table.concat(t):rep(4096)
	for _ = 1, SIZE do
		f:write(mib)
	end
	f:close()
end

local peak = 0
local function note()
	local kb = collectgarbage('count')
	if kb > peak then
		peak = kb
	end
end

local srv = assert(server.new('127.0.0.1', 0, function(req, res)
	if req.path == '/raw' then
		local body = assert(req:body())
		res:add('%d', #body)
		return
	end
	local parts = assert(req:multipart { max_part = SIZE * 1048576 })
	local n = 0
	for part in parts do
		if req.path == '/file' then
			n = n + assert(part:save(saved))
			note()
		else
			n = n + assert(part:save(function() note() end))
		end
	end
	assert(not parts.error, parts.error)
	res:add('%d', n)
end))
srv.max_body = SIZE * 1048576 + 65536
local _, port = srv:getsockname()
utils.spawn(function() srv:run() end)

local function run(cmd)
	local p = assert(io.popen(cmd))
	local out = p:read('*a')
	p:close()
	return out
end

local function best(path, args)
	local t = math.huge
	for _ = 1, REPS do
		local t0 = utils.now()
		local out = run(('curl -sS %s http://127.0.0.1:%d%s'):format(args, port, path))
		local dt = utils.now() - t0
		assert(tonumber(out) == SIZE * 1048576, out)
		t = math.min(t, dt)
	end
	return SIZE / t
end

collectgarbage('collect')
local base = collectgarbage('count')
local drop = best('/drop', ("-F 'f=@%s'"):format(file))
local tofile = best('/file', ("-F 'f=@%s'"):format(file))
local growth = peak - base
local raw = best('/raw', ("-H 'Content-Type: application/octet-stream' --data-binary @%s"):format(file))
print(('multipart, pieces dropped: %.0f MiB/s'):format(drop))
print(('multipart, saved to a file: %.0f MiB/s'):format(tofile))
print(('plain body, req:body() whole: %.0f MiB/s'):format(raw))
print(('ratio multipart/plain: %.2f'):format(drop / raw))
print(('Lua heap growth while streaming %d MiB: %.0f KiB'):format(SIZE, growth))
os.remove(file)
os.remove(saved)
srv:close()
