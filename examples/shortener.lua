-- A link shortener as a JSON API: the code of docs/guide-json-api.md.
-- Links live in PostgreSQL, Redis caches them and counts their hits, and
-- a WebSocket feed tells every watcher of each new link and hit, across
-- all the workers of `lem -w N`.
--
--   usage: lem [-w N] examples/shortener.lua [port [host]]
--   env:   DATABASE    a PostgreSQL conninfo (default: user postgres on 127.0.0.1)
--          REDIS       host:port or a Unix socket path (default 127.0.0.1:6379)
--          TLS_CERT, TLS_KEY  PEM files: serve https:// (and HTTP/2) instead
--          ACCESS_LOG  a file name for the access log (default: none)
local hathaway = require 'lem.hathaway'
local io = require 'lem.io'
local json = require 'lem.json'
local postgres = require 'lem.postgres'
local redis = require 'lem.redis'
local server = require 'lem.http.server'
local shared = require 'lem.shared'
local utils = require 'lem.utils'
local websocket = require 'lem.websocket'

local db = postgres.pool(os.getenv 'DATABASE' or 'host=127.0.0.1 user=postgres dbname=postgres', { size = 8 })
local where = os.getenv 'REDIS' or '127.0.0.1:6379'
local rhost, rport = where:match '^(.+):(%d+)$'
local cache = rhost and redis.pool(rhost, tonumber(rport), { size = 8 }) or redis.pool(where, { size = 8 })

-- The table, made by whichever worker comes first. The statements run as
-- one transaction, and the advisory lock it takes keeps another worker
-- waiting until the table is committed.
assert(db:exec [[
SELECT pg_advisory_xact_lock(7203);
CREATE TABLE IF NOT EXISTS links (
	code text PRIMARY KEY,
	url text NOT NULL,
	created timestamptz NOT NULL DEFAULT now()
)]])

-- Every answer is JSON, errors too.
local function reply(res, status, value)
	res.status = status
	res.headers['Content-Type'] = 'application/json'
	res:add(assert(json.encode(value)))
end

local app = hathaway.new()
app.not_found = function(req, res)
	reply(res, 404, { error = 'no such resource: ' .. req.path })
end
app.method_not_allowed = function(req, res)
	reply(res, 405, { error = req.method .. ' is not allowed on ' .. req.path })
end

-- Browser pages from anywhere may call the API.
app:use(hathaway.cors())

local alphabet = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789'
local function new_code()
	local c = {}
	for i = 1, 7 do
		local k = math.random(#alphabet)
		c[i] = alphabet:sub(k, k)
	end
	return table.concat(c)
end

-- Watchers of the feed, in any worker, hear of every event.
local function announce(event)
	shared.publish('feed', assert(json.encode(event)))
end

-- POST /links {"url": "https://example.com/"} -> 201 {"code", "url", "short"}
app:POST('/links', function(req, res)
	local body = req:body(4096)
	local v = body and json.decode(body)
	if type(v) ~= 'table' or type(v.url) ~= 'string' or #v.url > 2048 or not v.url:match '^https?://[^%s]+$' then
		return reply(res, 400, { error = 'expected a JSON object {"url": "http(s)://..."}' })
	end
	-- A code already taken is a duplicate key: draw another.
	for _ = 1, 5 do
		local code = new_code()
		local ok, err = db:exec('INSERT INTO links (code, url) VALUES ($1, $2)', code, v.url)
		if ok then
			announce { event = 'created', code = code, url = v.url }
			return reply(res, 201, { code = code, url = v.url, short = '/r/' .. code })
		elseif not err:find('duplicate key', 1, true) then
			return reply(res, 503, { error = 'the database failed: ' .. err })
		end
	end
	reply(res, 503, { error = 'no free code found' })
end)

-- GET /links?limit=n -> {"links": [{"code", "url"}, ...]}, the newest first
app:GET('/links', function(req, res)
	local limit = tonumber(req.query.limit or 10)
	if not limit or limit ~= math.floor(limit) or limit < 1 or limit > 100 then
		return reply(res, 400, { error = 'limit must be a whole number from 1 to 100' })
	end
	local r, err = db:exec('SELECT code, url FROM links ORDER BY created DESC, code LIMIT $1', limit)
	if not r then
		return reply(res, 503, { error = 'the database failed: ' .. err })
	end
	local links = json.array()
	for i, row in ipairs(r) do
		links[i] = { code = row[1], url = row[2] }
	end
	reply(res, 200, { links = links })
end)

-- The URL of a code: from Redis when it is cached there, else from
-- PostgreSQL (and then cached for an hour). nil for an unknown code.
local function lookup(code)
	local url = cache:call('GET', 'url:' .. code)
	if type(url) == 'string' then
		return url
	end
	local r = assert(db:exec('SELECT url FROM links WHERE code = $1', code))
	url = r[1] and r[1][1]
	if url then
		cache:call('SET', 'url:' .. code, url, 'EX', 3600)
	end
	return url
end

-- GET /links/<code> -> {"code", "url", "hits"}
app:GETM('^/links/(%w+)$', function(_, res, code)
	local url = lookup(code)
	if not url then
		return reply(res, 404, { error = 'no link ' .. code })
	end
	local hits = cache:call('GET', 'hits:' .. code)
	reply(res, 200, { code = code, url = url, hits = tonumber(hits) or 0 })
end)

-- GET /r/<code> -> 302 to the link, counted
app:GETM('^/r/(%w+)$', function(_, res, code)
	local url = lookup(code)
	if not url then
		return reply(res, 404, { error = 'no link ' .. code })
	end
	local hits = cache:call('INCR', 'hits:' .. code)
	announce { event = 'hit', code = code, hits = hits }
	res.status = 302
	res.headers['Location'] = url
end)

-- GET /feed: a WebSocket of the events above, as JSON text messages.
app:GET('/feed', function(req, res)
	local ws = websocket.accept(req, res)
	if not ws then
		return -- accept answered the bad upgrade itself
	end
	local feed = shared.subscribe('feed')
	-- The first message says the watcher will hear of everything from now on.
	ws:send(assert(json.encode { event = 'watching' }))
	-- Read what the watcher sends (nothing, but a close): when it leaves,
	-- the subscription ends, and so does the loop below.
	utils.spawn(function()
		while ws:receive() do
		end
		feed:close()
	end)
	while true do
		local event = feed:receive()
		if not event or not ws:send(event) then
			break
		end
	end
	feed:close()
end)

-- Listen first, so that port 0 (any free port) prints the port it got.
local port, host = tonumber(arg[1]) or 8080, arg[2] or '127.0.0.1'
local cert, key = os.getenv 'TLS_CERT', os.getenv 'TLS_KEY'
local sock
if cert and key then
	sock = assert(io.tls.listen(host, port, { cert = cert, key = key }))
else
	sock = assert(io.tcp.listen(host, port))
end
local _, bound = sock:getsockname()
if utils.worker() == 1 then
	print(('listening on %s://%s:%d/'):format(cert and 'https' or 'http', host, bound))
	_G.io.stdout:flush() -- for a parent reading our stdout through a pipe
end
local srv = assert(server.new(sock, app.handler))
srv.access_log = os.getenv 'ACCESS_LOG'
srv:run()
