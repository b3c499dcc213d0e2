-- The guide's example (examples/shortener.lua, docs/guide-json-api.md)
-- run as a user would: under `lem -w 2` against a real PostgreSQL and a
-- real redis-server started here, driven by lem's HTTP client and a
-- WebSocket watcher of its feed (which, with two workers, hears of what
-- the other worker did); then once more over TLS with HTTP/2, by curl.
-- First, every Lua block of the guide must be in the example, as it is.
local support = dofile('support.lua')
local free_port, certs, exec, shell_quote = support.free_port, support.certs, support.exec, support.shell_quote
local io = require 'lem.io'
local client = require 'lem.http.client'
local websocket = require 'lem.websocket'
local json = require 'lem.json'
local PG = dofile('postgres/data/server.lua')
local R = dofile('redis/data/server.lua')

local function slurp(path)
	local f = assert(_G.io.open(path))
	local s = f:read('*a')
	f:close()
	return s
end

local example = slurp('../../examples/shortener.lua')
local blocks, n, fence = 0, 0, nil
for line in slurp('../../docs/guide-json-api.md'):gmatch('([^\n]*)\n') do
	n = n + 1
	if fence then
		if line == '```' then
			blocks = blocks + 1
			local code = table.concat(fence, '\n') .. '\n'
			assert(example:find(code, 1, true),
				('docs/guide-json-api.md: the block ending on line %d is not in examples/shortener.lua:\n%s'):format(n, code))
			fence = nil
		else
			fence[#fence + 1] = line
		end
	elseif line == '```lua' then
		fence = {}
	end
end
assert(not fence, 'docs/guide-json-api.md: a code block is not closed')
assert(blocks >= 10, 'the guide shows the example in ' .. blocks .. ' blocks only')

local pg = PG.start()
local rd = R.start()

-- The example in a child, until it prints where it listens.
local function start(workers, env)
	local argv = { 'env', ('DATABASE=host=%s port=%d user=postgres dbname=postgres'):format(pg.dir, pg.port),
		'REDIS=' .. rd.sock }
	for _, e in ipairs(env or {}) do argv[#argv + 1] = e end
	for _, a in ipairs { arg[-1], '-w', tostring(workers), '../../examples/shortener.lua', tostring(free_port()) } do
		argv[#argv + 1] = a
	end
	local app = assert(io.spawn(argv, { stdout = 'pipe' }))
	local line = assert(app.stdout:read('*l'), 'the example printed nothing')
	local url = assert(line:match '^listening on (https?://127%.0%.0%.1:%d+/)$', line)
	return app, url
end

local function stop(app)
	app:kill('TERM')
	local how = app:wait()
	eq(how.type, 'exited', 'the example stops on SIGTERM')
end

local log = support.tmpdir() .. '/access.log'
local app, base = start(2, { 'ACCESS_LOG=' .. log })
local ok, err = xpcall(function()
	local c = client.new()

	-- A watcher of the feed first: it hears of every link made from now on.
	local ws = assert(websocket.connect(base:gsub('^http', 'ws') .. 'feed', { timeout = 10 }))
	eq(json.decode((assert(ws:receive()))), { event = 'watching' }, 'the feed greets its watcher')

	-- Make links: each is announced on the feed, whichever worker made it.
	local codes = {}
	for i = 1, 4 do
		local resp = assert(c:request('POST', base .. 'links', { json = { url = 'https://example.com/' .. i } }))
		eq(resp.status, 201, 'a link is made')
		eq(resp.headers['content-type'], 'application/json', 'JSON comes back')
		local v = assert(resp:json())
		assert(type(v.code) == 'string' and #v.code == 7, 'a seven-letter code')
		eq(v.url, 'https://example.com/' .. i, 'the URL back')
		eq(v.short, '/r/' .. v.code, 'its short path')
		codes[i] = v.code
		local event = assert(json.decode((assert(ws:receive()))))
		eq(event, { event = 'created', code = v.code, url = v.url }, 'the feed hears of it')
	end

	-- Follow one: a counted redirect, announced too.
	for n = 1, 3 do
		local resp = assert(c:request('GET', base .. 'r/' .. codes[2]))
		eq(resp.status, 302, 'a redirect')
		eq(resp.headers['location'], 'https://example.com/2', 'to the link')
		resp:body()
		eq(json.decode((assert(ws:receive()))), { event = 'hit', code = codes[2], hits = n }, 'the hit on the feed')
	end
	local info = assert(assert(c:request('GET', base .. 'links/' .. codes[2])):json())
	eq(info, { code = codes[2], url = 'https://example.com/2', hits = 3 }, 'the hits are counted')
	info = assert(assert(c:request('GET', base .. 'links/' .. codes[1])):json())
	eq(info.hits, 0, 'an unvisited link')

	-- The newest links first, as many as asked for.
	local list = assert(assert(c:request('GET', base .. 'links', { query = { limit = 3 } })):json())
	eq(#list.links, 3, 'three links listed')
	eq(list.links, {
		{ code = codes[4], url = 'https://example.com/4' },
		{ code = codes[3], url = 'https://example.com/3' },
		{ code = codes[2], url = 'https://example.com/2' },
	}, 'the newest three')
	local empty = assert(c:request('GET', base .. 'links?limit=1&limit=2'))
	eq({ empty.status, empty:json().error }, { 400, 'limit must be a whole number from 1 to 100' }, 'a repeated limit')
	for _, bad in ipairs { '0', '101', '1.5', 'x' } do
		local resp = assert(c:request('GET', base .. 'links?limit=' .. bad))
		eq(resp.status, 400, 'limit=' .. bad)
		resp:body()
	end

	-- Errors are JSON too.
	for _, bad in ipairs { '', 'not json', '[1]', '{"url": 42}', '{"url": "ftp://x"}', '{"url": "http://a b"}' } do
		local resp = assert(c:request('POST', base .. 'links', { body = bad }))
		eq(resp.status, 400, 'refused: ' .. bad)
		assert(resp:json().error:find('expected a JSON object', 1, true), bad)
	end
	local resp = assert(c:request('GET', base .. 'links/nosuch'))
	eq({ resp.status, resp:json() }, { 404, { error = 'no link nosuch' } }, 'an unknown code')
	resp = assert(c:request('GET', base .. 'r/nosuch'))
	eq(resp.status, 404, 'an unknown redirect')
	resp:body()
	resp = assert(c:request('GET', base .. 'nowhere'))
	eq({ resp.status, resp.headers['content-type'], resp:json() }, { 404, 'application/json', { error = 'no such resource: /nowhere' } }, 'no route')
	resp = assert(c:request('DELETE', base .. 'links'))
	eq({ resp.status, resp:json() }, { 405, { error = 'DELETE is not allowed on /links' } }, 'no such method')

	-- A page from another origin may call it (CORS), preflight included.
	resp = assert(c:request('GET', base .. 'links/' .. codes[1], { headers = { Origin = 'https://app.example' } }))
	eq(resp.headers['access-control-allow-origin'], '*', 'CORS allows it')
	resp:body()
	resp = assert(c:request('OPTIONS', base .. 'links', { headers = { Origin = 'https://app.example',
		['Access-Control-Request-Method'] = 'POST', ['Access-Control-Request-Headers'] = 'content-type' } }))
	eq(resp.status, 204, 'a preflight answered')
	assert(resp.headers['access-control-allow-methods']:find('POST', 1, true), 'POST allowed')
	resp:body()

	-- The links are in PostgreSQL, not only in Redis's cache.
	rd.proc:kill()
	rd.proc:wait()
	local db = assert(require('lem.postgres').connect(('host=%s port=%d user=postgres dbname=postgres'):format(pg.dir, pg.port)))
	local r = assert(db:exec('SELECT count(*) FROM links'))
	eq(r[1][1], '4', 'four links in the table')
	db:close()
	rd = R.start()

	ws:close()
	c:close()
end, debug.traceback)
stop(app)
assert(ok, err)
local lines = slurp(log)
assert(lines:find('"POST /links HTTP/1.1" 201 ', 1, true), 'the access log has the POSTs:\n' .. lines)
assert(lines:find('"GET /nowhere HTTP/1.1" 404 ', 1, true), 'and the 404s:\n' .. lines)

-- Over TLS: curl speaks HTTP/2 to it, by ALPN.
local ca, cert, key = certs()
app, base = start(1, { 'TLS_CERT=' .. cert, 'TLS_KEY=' .. key })
ok, err = xpcall(function()
	assert(base:find '^https://', base)
	local out = tmpdir() .. '/curl.out'
	local code = exec(('curl -s --http2 --cacert %s -o %s -w %%{http_version}:%%{http_code} -H "Content-Type: application/json" -d %s %slinks > %s.w')
		:format(ca, out, shell_quote('{"url":"https://lem.example/"}'), base, out))
	eq(code, 0, 'curl ran')
	local f = assert(_G.io.open(out .. '.w'))
	eq(f:read('*a'), '2:201', 'made over HTTP/2')
	f:close()
	f = assert(_G.io.open(out))
	local v = assert(json.decode(f:read('*a')))
	f:close()
	eq(v.url, 'https://lem.example/', 'the link back over TLS')
end, debug.traceback)
stop(app)
assert(ok, err)

R.stop(rd)
PG.stop(pg)
print('ok')
