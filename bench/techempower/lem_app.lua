-- TechEmpower's six tests on hathaway + lem.postgres + lem.json, for
-- bench/techempower.sh. usage: CONNINFO='host=... dbname=...' lem lem_app.lua PORT
local hathaway = require 'lem.hathaway'
local postgres = require 'lem.postgres'
local json = require 'lem.json'

local port, conninfo = tonumber(arg[1]), assert(os.getenv 'CONNINFO', 'CONNINFO: the database to use')
local pool = postgres.pool(conninfo, { size = tonumber(os.getenv 'POOL') or 16 })

-- Each pooled connection prepares the statements once.
local ready = setmetatable({}, { __mode = 'k' })
local function conn()
	local pg = assert(pool:get())
	if not ready[pg] then
		assert(pg:prepare('world', 'SELECT id, randomnumber FROM world WHERE id = $1'))
		assert(pg:prepare('fortunes', 'SELECT id, message FROM fortune'))
		ready[pg] = true
	end
	return pg
end

local function world(pg, id)
	local r = assert(pg:run('world', id))
	return { id = tonumber(r[1][1]), randomNumber = tonumber(r[1][2]) }
end

-- The `queries` parameter, clamped to 1..500 as the rules say.
local function count(req)
	local n = tonumber((req.uri or ''):match '[?&]queries=(%d+)') or 1
	return n < 1 and 1 or n > 500 and 500 or n
end

local function send_json(res, v)
	res.headers['Content-Type'] = 'application/json'
	res.headers['Server'] = 'lem'
	res:add(assert(json.encode(v)))
end

hathaway.import()

GET('/plaintext', function(_, res)
	res.headers['Content-Type'] = 'text/plain'
	res.headers['Server'] = 'lem'
	res:add 'Hello, World!'
end)

GET('/json', function(_, res)
	send_json(res, { message = 'Hello, World!' })
end)

GET('/db', function(_, res)
	local pg = conn()
	local w = world(pg, math.random(1, 10000))
	pool:put(pg)
	send_json(res, w)
end)

GET('/queries', function(req, res)
	local pg, out = conn(), {}
	for i = 1, count(req) do
		out[i] = world(pg, math.random(1, 10000))
	end
	pool:put(pg)
	send_json(res, out)
end)

GET('/updates', function(req, res)
	local pg, out = conn(), {}
	local n = count(req)
	for i = 1, n do
		local w = world(pg, math.random(1, 10000))
		w.randomNumber = math.random(1, 10000)
		out[i] = w
	end
	-- One statement updates them all, as the rules allow; rows in id order
	-- so that two concurrent updates lock them in the same order (else
	-- PostgreSQL finds deadlocks).
	local sorted, ids, nums = {}, {}, {}
	for i = 1, n do sorted[i] = out[i] end
	table.sort(sorted, function(a, b) return a.id < b.id end)
	for i = 1, n do ids[i], nums[i] = sorted[i].id, sorted[i].randomNumber end
	local ok, err = pg:exec(
		'UPDATE world SET randomnumber = v.r FROM (SELECT unnest($1::int[]) AS i, unnest($2::int[]) AS r) v WHERE world.id = v.i',
		'{' .. table.concat(ids, ',') .. '}',
		'{' .. table.concat(nums, ',') .. '}'
	)
	pool:put(pg)
	assert(ok, err)
	send_json(res, out)
end)

local escapes = { ['&'] = '&amp;', ['<'] = '&lt;', ['>'] = '&gt;', ['"'] = '&quot;', ["'"] = '&#39;' }

GET('/fortunes', function(_, res)
	local pg = conn()
	local r = assert(pg:run 'fortunes')
	pool:put(pg)
	local list = {}
	for i = 1, #r do
		list[i] = { id = r[i][1], message = r[i][2] }
	end
	list[#list + 1] = { id = '0', message = 'Additional fortune added at request time.' }
	table.sort(list, function(a, b)
		return a.message < b.message
	end)
	local html = { '<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>' }
	for _, f in ipairs(list) do
		html[#html + 1] = ('<tr><td>%s</td><td>%s</td></tr>'):format(f.id, (f.message:gsub('[&<>"\']', escapes)))
	end
	html[#html + 1] = '</table></body></html>'
	res.headers['Content-Type'] = 'text/html; charset=utf-8'
	res.headers['Server'] = 'lem'
	res:add(table.concat(html))
end)

Hathaway('127.0.0.1', port)
