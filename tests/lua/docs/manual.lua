-- The manual (docs/*.md) names exactly what lem exports: every function,
-- value and class table of every built-in module, every method of every
-- kind of object, the hathaway globals and the read formats. The naming
-- convention is defined in docs/README.md ("How the manual names
-- things"); this script parses the pages strictly, makes real objects,
-- and prints each name missing from the manual and each entry that names
-- nothing.
dofile('support.lua')
local lio = require 'lem.io'
local utils = require 'lem.utils'
local lfs = require 'lem.lfs'

local DOCS = '../../docs/'
local MODULES_RS = '../../src/modules.rs'

local format, find, match, sub = string.format, string.find, string.match, string.sub
local sort, concat = table.sort, table.concat

local problems = {}
local function problem(fmt, ...)
	problems[#problems + 1] = format(fmt, ...)
end

local function readlines(path)
	local f = assert(io.open(path, 'r'))
	local lines = {}
	for line in f:lines() do
		lines[#lines + 1] = line
	end
	f:close()
	return lines
end

-- The receivers: each makes a real object of its kind (docs/README.md
-- has the same list as a table). Objects are made in order; `ctx` passes
-- what a later one needs and what must be closed at the end.
local ctx = {}
local receivers = {
	{ 'stream', function()
		local sock = assert(lio.tcp.listen('127.0.0.1', 0))
		local _, port = sock:getsockname()
		local peer
		utils.spawn(function() peer = sock:accept() end)
		local s = assert(lio.tcp.connect('127.0.0.1', port))
		utils.yield()
		ctx.stream, ctx.closing = s, { s, peer, sock }
		return s
	end },
	{ 'file', function()
		local f = assert(lio.open(DOCS .. 'README.md', 'r'))
		ctx.closing[#ctx.closing + 1] = f
		return f
	end },
	{ 'server', function()
		local sock = assert(lio.tcp.listen('127.0.0.1', 0))
		ctx.closing[#ctx.closing + 1] = sock
		return sock
	end },
	{ 'resolver', function() return lio.resolver { servers = { '127.0.0.1' } } end },
	{ 'sock', function()
		local sock = assert(lio.udp.bind('127.0.0.1', 0))
		ctx.closing[#ctx.closing + 1] = sock
		return sock
	end },
	-- Made without certificates: its class is what counts.
	{ 'tlsserver', function() return setmetatable({}, lio.tls.Server) end },
	-- Made without a server: their classes are what counts.
	{ 'pg', function() return setmetatable({}, require('lem.postgres').Connection) end },
	{ 'pool', function() return setmetatable({}, require('lem.postgres').Pool) end },
	{ 'qpg', function() return setmetatable({}, require('lem.postgres.queued').Connection) end },
	{ 'r', function() return setmetatable({}, require('lem.redis').Connection) end },
	{ 'rpool', function() return setmetatable({}, require('lem.redis').Pool) end },
	{ 'qr', function() return setmetatable({}, require('lem.redis.queued').Connection) end },
	{ 'proc', function()
		local p = assert(lio.spawn({ 'true' }, { stdin = 'pipe', stdout = 'pipe', stderr = 'pipe' }))
		assert(p:wait())
		ctx.closing[#ctx.closing + 1] = p.stdin
		ctx.closing[#ctx.closing + 1] = p.stdout
		ctx.closing[#ctx.closing + 1] = p.stderr
		return p
	end },
	{ 'sleeper', function() return utils.newsleeper() end },
	{ 'turn', function() return utils.newturn() end },
	{ 'task', function() return utils.task(function() end) end },
	{ 'q', function() return require('lem.queue').new() end },
	{ 'qstream', function() return require('lem.io.queue').wrap(ctx.stream) end },
	{ 'cpool', function() return require('lem.io.pool').new { open = function() end } end },
	{ 'dir', function()
		local _, d = assert(lfs.dir('.'))
		d:close()
		return d
	end },
	{ 'lock', function()
		local l = assert(lfs.lock_dir(tmpdir()))
		l:free()
		return l
	end },
	{ 'srv', function()
		local server = require 'lem.http.server'
		local sock = assert(lio.tcp.listen('127.0.0.1', 0))
		local srv = assert(server.new(sock, function(req, res)
			ctx.req, ctx.res = req, res
			res:add('hello')
		end))
		utils.spawn(function() srv:run() end)
		ctx.srv, ctx.port = srv, select(2, sock:getsockname())
		return srv
	end },
	{ 'c', function()
		ctx.client = require('lem.http.client').new()
		return ctx.client
	end },
	{ 'resp', function()
		local resp = assert(ctx.client:get(format('http://127.0.0.1:%d/x?y', ctx.port)))
		assert(resp:body())
		return resp
	end },
	{ 'parts', function()
		local body = '--b\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n'
			.. 'Content-Type: text/plain\r\n\r\ndata\r\n--b--'
		ctx.parts = require('lem.http.multipart').new(function()
			local b = body
			body = nil
			return b, 'eof'
		end, 'b')
		return ctx.parts
	end },
	{ 'part', function() return assert(ctx.parts:next()) end },
	{ 'req', function() return assert(ctx.req) end },
	{ 'res', function() return assert(ctx.res) end },
	{ 'app', function() return require('lem.hathaway').new() end },
	{ 'ws', function()
		local websocket = require 'lem.websocket'
		local server = require 'lem.http.server'
		local sock = assert(lio.tcp.listen('127.0.0.1', 0))
		local wsrv = assert(server.new(sock, function(req, res)
			local ws = assert(websocket.accept(req, res, { protocols = { 'chat' } }))
			ws:receive()
		end))
		utils.spawn(function() wsrv:run() end)
		local ws = assert(websocket.connect(format('ws://127.0.0.1:%d/', select(2, sock:getsockname())), { protocols = { 'chat' } }))
		ctx.closing[#ctx.closing + 1] = ws
		ctx.closing[#ctx.closing + 1] = sock
		return ws
	end },
	{ 'db', function()
		ctx.db = assert(require('lem.sqlite3').open(':memory:'))
		return ctx.db
	end },
	{ 'stmt', function() return assert(ctx.db:prepare('select 1')) end },
	{ 'd', function() return require('lem.shared').dict('manual', '8k') end },
	{ 'sub', function()
		local sub = require('lem.shared').subscribe('manual')
		sub:close()
		return sub
	end },
}

-- receiver name -> object, -> set of method names; class table -> receiver.
local objects, methods, classof = {}, {}, {}
for _, r in ipairs(receivers) do
	local name, make = r[1], r[2]
	local obj = make()
	objects[name] = obj
	local mt = getmetatable(obj)
	assert(type(mt) == 'table', name .. ' has no metatable')
	local idx = rawget(mt, '__index')
	local class = type(idx) == 'table' and idx or mt
	classof[mt], classof[class] = name, name
	local set = {}
	for k, v in pairs(class) do
		if type(k) == 'string' and type(v) == 'function' and sub(k, 1, 1) ~= '_' then
			assert(obj[k] == v, name .. ':' .. k .. ' is not what the object finds')
			set[k] = true
		end
	end
	methods[name] = set
end

-- The globals hathaway.import installs.
local imported = {}
do
	local env = {}
	require('lem.hathaway').import(env)
	for k in pairs(env) do
		imported[k] = true
	end
end

---------------------------------------------------------------------------
-- The pages.

local pages = {}
for name in lfs.dir(DOCS) do
	if match(name, '%.md$') then
		pages[#pages + 1] = name
	end
end
sort(pages)
assert(#pages > 0, 'no pages in ' .. DOCS)

-- aliases[page][alias] = module; declared[module] = page; alias_of[module]
local aliases, declared, alias_of = {}, {}, {}
-- entries[key] = { where = 'page:line', heading = id, assign = bool,
--                  kind = 'module' | 'method' | 'field' | 'bare', ... }
local entries = {}
local formats_doc = {}
local receivers_doc = {}

-- Parse one code span of an API heading into an entry. A page's module
-- name comes before a receiver of the same name (lem.http.server's page
-- calls the module `server`; its servers are `srv`).
local function parse_entry(span, page, where, heading)
	local head, rest = match(span, '^([%a_][%w_]*)(.*)$')
	if not head then
		return problem('%s: cannot read the entry `%s`', where, span)
	end
	local parts, seps = {}, {}
	while true do
		local sep, name, more = match(rest, '^([%.:])([%a_][%w_]*)(.*)$')
		if not sep then
			break
		end
		seps[#seps + 1], parts[#parts + 1], rest = sep, name, more
	end
	local assign = false
	if rest == '' then
		-- a value or a class table
	elseif match(rest, '^%(.*%)$') then
		-- a call
	elseif match(rest, '^ = %S') then
		assign = true
	else
		return problem('%s: cannot read the entry `%s` (after the name: %q)', where, span, rest)
	end
	for i = 1, #seps - 1 do
		if seps[i] == ':' then
			return problem('%s: `%s`: a method call must come last', where, span)
		end
	end
	local entry = { where = where, heading = heading, assign = assign, span = span }
	local key
	local module = aliases[page][head]
	if module then
		if #parts == 0 then
			return problem('%s: `%s` names the module itself; entries name its fields', where, span)
		end
		if seps[#seps] == ':' then
			return problem('%s: `%s`: methods are written with a receiver (docs/README.md)', where, span)
		end
		entry.kind, entry.module, entry.path, entry.page = 'module', module, parts, page
		key = module .. ' ' .. concat(parts, '.')
	elseif objects[head] then
		if #parts ~= 1 then
			return problem('%s: `%s`: write `receiver:method` or `receiver.field`', where, span)
		end
		entry.receiver, entry.name = head, parts[1]
		entry.kind = seps[1] == ':' and 'method' or 'field'
		key = head .. seps[1] .. parts[1]
	elseif #parts == 0 then
		entry.kind, entry.name = 'bare', head
		key = head
	else
		return problem("%s: `%s`: '%s' is neither a module name declared on %s nor a receiver", where, span, head, page)
	end
	local old = entries[key]
	if old and old.heading ~= heading then
		return problem('%s: `%s` is documented twice (first at %s)', where, span, old.where)
	end
	entries[key] = old or entry
end

local function parse_heading(text, page, where)
	local pos, n = 1, 0
	while true do
		if sub(text, pos, pos) ~= '`' then
			return problem('%s: an API heading is code spans separated by ", " (at %q)', where, sub(text, pos))
		end
		local close = find(text, '`', pos + 1, true)
		if not close then
			return problem('%s: unclosed code span in heading', where)
		end
		parse_entry(sub(text, pos + 1, close - 1), page, where, where)
		n = n + 1
		pos = close + 1
		if pos > #text then
			return
		end
		if sub(text, pos, pos + 1) ~= ', ' then
			return problem('%s: an API heading is code spans separated by ", " (at %q)', where, sub(text, pos))
		end
		pos = pos + 2
	end
end

-- Declarations first (a page may name a module below its first use).
local lines_of = {}
for _, page in ipairs(pages) do
	local lines = readlines(DOCS .. page)
	lines_of[page] = lines
	aliases[page] = {}
	local fenced = false
	for i, line in ipairs(lines) do
		if match(line, '^```') then
			fenced = not fenced
		elseif not fenced then
			local alias, module = match(line, "^`local ([%a_][%w_]*) = require '([%w_%.]+)'`")
			if alias then
				if aliases[page][alias] then
					problem('docs/%s:%d: `%s` declared twice on the page', page, i, alias)
				end
				aliases[page][alias] = module
				alias_of[module] = alias
				if declared[module] then
					problem('docs/%s:%d: %s is declared on %s already', page, i, module, declared[module])
				end
				declared[module] = page
			end
		end
	end
	if fenced then
		problem('docs/%s: a code fence is not closed', page)
	end
end

for _, page in ipairs(pages) do
	local fenced = false
	for i, line in ipairs(lines_of[page]) do
		local where = format('docs/%s:%d', page, i)
		if match(line, '^```') then
			fenced = not fenced
		elseif not fenced then
			local text = match(line, '^#+%s+(.*)$')
			if text and sub(text, 1, 1) == '`' then
				parse_heading(text, page, where)
			end
			if page == 'parsers.md' then
				local fmt = match(line, "^| `'(.-)'` |")
				if fmt then
					formats_doc[fmt] = where
				end
			elseif page == 'README.md' then
				local r = match(line, '^| `([%a_][%w_]*)` |')
				if r then
					receivers_doc[r] = where
				end
			end
		end
	end
end

---------------------------------------------------------------------------
-- What exists.

-- The built-in modules, from src/modules.rs.
local builtins = {}
for _, line in ipairs(readlines(MODULES_RS)) do
	local name = match(line, '^%s*%("(lem[%w_%.]*)", ')
	if name then
		builtins[#builtins + 1] = name
	end
end
assert(#builtins > 10, 'no modules found in ' .. MODULES_RS)

local function is_class(t)
	return type(t) == 'table' and rawget(t, '__index') == t
end

-- A plain table of functions (and more such tables, or classes): walked.
local function is_namespace(t)
	if type(t) ~= 'table' or getmetatable(t) ~= nil or classof[t] or is_class(t) then
		return false
	end
	local any = false
	for k, v in pairs(t) do
		if type(k) ~= 'string' then
			return false
		end
		if sub(k, 1, 1) ~= '_' then
			if not (type(v) == 'function' or classof[v] or is_namespace(v)) then
				return false
			end
			any = true
		end
	end
	return any
end

-- expected[key] = { show = the entry as the manual would write it, what =
-- where it belongs }, for every name the manual must have.
local expected, reached = {}, {}
local function walk(t, module, path, page)
	reached[t] = true
	for k, v in pairs(t) do
		if type(k) == 'string' and sub(k, 1, 1) ~= '_' then
			local p = path == '' and k or path .. '.' .. k
			local key = module .. ' ' .. p
			local show = alias_of[module] .. '.' .. p
			if classof[v] then
				expected[key] = { show = show, what = format('docs/%s: the class table of `%s`', page, classof[v]) }
			elseif is_namespace(v) then
				walk(v, module, p, page)
			elseif is_class(v) then
				problem('%s exports `%s`, a class no receiver covers: add a receiver (docs/README.md and tests/lua/docs/manual.lua)', module, show)
			else
				expected[key] = { show = show, what = format('docs/%s: a %s of %s', page, type(v), module) }
			end
		end
	end
end

for module, page in pairs(declared) do
	local ok, m = pcall(require, module)
	if not ok then
		problem('docs/%s declares %s, which cannot be required: %s', page, module, tostring(m))
	elseif type(m) ~= 'table' then
		problem('docs/%s declares %s, which is a %s', page, module, type(m))
	else
		walk(m, module, '', page)
	end
end

for _, module in ipairs(builtins) do
	if not match(module, '%.core$') and not declared[module] then
		local ok, m = pcall(require, module)
		if not (ok and reached[m]) then
			problem('module %s (src/modules.rs) has no page: declare it with a line `local NAME = require \'%s\'`', module, module)
		end
	end
end

for _, r in ipairs(receivers) do
	local name = r[1]
	-- Where this receiver's methods are documented, to say where a new
	-- one goes.
	local home = 'the page of its class'
	for _, e in pairs(entries) do
		if e.receiver == name and e.kind == 'method' then
			home = match(e.where, '^[^:]*')
		end
	end
	for m in pairs(methods[name]) do
		local key = name .. ':' .. m
		expected[key] = { show = key .. '(...)', what = format('%s: a method of `%s`', home, name) }
	end
	if not receivers_doc[name] then
		problem('receiver `%s` is missing from the table in docs/README.md', name)
	end
end
for name, where in pairs(receivers_doc) do
	if not objects[name] then
		problem('%s: receiver `%s` is not in tests/lua/docs/manual.lua', where, name)
	end
end
for k in pairs(imported) do
	expected[k] = { show = k .. '(...)', what = 'docs/hathaway.md: a global of hathaway.import' }
end

local lookup = require('lem.parsers').lookup
require 'lem.http'
for fmt in pairs(lookup) do
	if not formats_doc[fmt] then
		problem("read format '%s' is missing from the table in docs/parsers.md", fmt)
	end
end
for fmt, where in pairs(formats_doc) do
	if lookup[fmt] == nil then
		problem("%s: read format '%s' does not exist", where, fmt)
	end
end

---------------------------------------------------------------------------
-- Compare.

local missing = {}
for key, e in pairs(expected) do
	if not entries[key] then
		missing[#missing + 1] = format('%s: `%s` is not documented', e.what, e.show)
	end
end
sort(missing)
for _, m in ipairs(missing) do
	problem('missing: %s', m)
end

-- An entry that is not expected must still name something that exists.
local function exists(entry)
	if entry.assign then
		return true
	end
	if entry.kind == 'module' then
		local v = require(entry.module)
		for _, k in ipairs(entry.path) do
			if type(v) ~= 'table' then
				return false
			end
			v = v[k]
		end
		return v ~= nil
	elseif entry.kind == 'method' then
		return methods[entry.receiver][entry.name] == true
	elseif entry.kind == 'field' then
		return objects[entry.receiver][entry.name] ~= nil
	else
		return imported[entry.name] == true
	end
end
local extra = {}
for key, entry in pairs(entries) do
	if not expected[key] and not exists(entry) then
		extra[#extra + 1] = format('%s: `%s` names nothing that exists', entry.where, entry.span)
	end
end
sort(extra)
for _, e in ipairs(extra) do
	problem('%s', e)
end

-- Done with the objects.
ctx.client:close()
ctx.srv:close()
for _, o in pairs(ctx.closing) do
	if not o:closed() then
		o:close()
	end
end

local count = 0
for _ in pairs(entries) do
	count = count + 1
end
if #problems > 0 then
	io.stderr:write(concat(problems, '\n'), '\n')
	error(format('%d problems between the manual and the binary', #problems), 0)
end
print(format('manual: %d entries on %d pages match the binary', count, #pages))
