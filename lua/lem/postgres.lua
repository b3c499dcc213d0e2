-- lem.postgres: a PostgreSQL client speaking the wire protocol (version 3)
-- over a lem Stream, so a query that waits on the server suspends only its
-- coroutine and holds no thread. The API is the original lem-postgres's:
-- connect(conninfo), exec with $n parameters and several statements,
-- prepare/run, COPY (put/done/get), reset, close; results are tables of
-- rows of strings (NULL as nil) with the column names at index 0. Beyond
-- it: URLs, settimeout, LISTEN/NOTIFY and a pool. Messages are read by the
-- 'PgMessage' format of lem.postgres.core, which hands data rows over in
-- batches.

local io = require 'lem.io'
local iopool = require 'lem.io.pool'
local core = require 'lem.postgres.core'

local frame, extended, errtext, int32 =
	core.frame, core.extended, core.error, core.int32
local setmetatable, select, type, tostring, tonumber, error, pcall =
	setmetatable, select, type, tostring, tonumber, error, pcall
local byte = string.byte
local unpack = table.unpack or unpack
local getenv = os.getenv

local M = {}

local Connection = {}
Connection.__index = Connection
M.Connection = Connection

-- conninfo ------------------------------------------------------------

-- 'key=value key2 = 'quoted \' value'' -> table | nil, err
local function parse_keywords(s)
	local t, i = {}, 1
	while true do
		i = s:find('%S', i)
		if not i then return t end
		local key, after = s:match('^([%w_]+)%s*=%s*()', i)
		if not key then
			return nil, ("malformed conninfo at %q"):format(s:sub(i, i + 20))
		end
		i = after
		-- A value: quoted ('...', ending at the closing quote) or bare
		-- (ending at white space); a backslash takes the next character
		-- as it is in both.
		local quoted = s:sub(i, i) == "'"
		if quoted then i = i + 1 end
		local buf = {}
		while true do
			local c = s:sub(i, i)
			if c == '' then
				if quoted then return nil, 'unterminated quoted value in conninfo' end
				break
			end
			if c == '\\' then
				buf[#buf + 1] = s:sub(i + 1, i + 1)
				i = i + 2
			elseif quoted and c == "'" then
				i = i + 1
				break
			elseif not quoted and c:match('%s') then
				break
			else
				buf[#buf + 1] = c
				i = i + 1
			end
		end
		local value = table.concat(buf)
		t[key] = value
	end
end

local function unescape(s)
	return (s:gsub('%%(%x%x)', function(h) return string.char(tonumber(h, 16)) end))
end

-- 'postgresql://user:pw@host:port/db?k=v' -> table | nil, err
local function parse_url(s)
	local rest = s:match('^postgres[q]?[l]?://(.*)$')
	if not rest then return nil, ('malformed conninfo URL %q'):format(s) end
	local t = {}
	local query
	rest, query = rest:match('^([^?]*)%??(.*)$')
	local auth, hostpart = rest:match('^(.*)@(.*)$')
	if not auth then hostpart = rest end
	if auth then
		local u, p = auth:match('^([^:]*):(.*)$')
		t.user = unescape(u or auth)
		if p then t.password = unescape(p) end
	end
	local hostport, db = hostpart:match('^([^/]*)/?(.*)$')
	if db ~= '' then t.dbname = unescape(db) end
	local host, port = hostport:match('^%[(.-)%]:?(%d*)$')
	if not host then host, port = hostport:match('^([^:]*):?(%d*)$') end
	if not host then return nil, ('malformed host in conninfo URL %q'):format(s) end
	if host ~= '' then t.host = unescape(host) end
	if port ~= '' then t.port = port end
	for k, v in query:gmatch('([^&=]+)=([^&]*)') do
		t[unescape(k)] = unescape(v)
	end
	return t
end

local function parse_conninfo(s)
	if s:match('^postgres[q]?[l]?://') then return parse_url(s) end
	return parse_keywords(s)
end
M.parse_conninfo = parse_conninfo

-- messages --------------------------------------------------------------

local function quote_ident(s)
	return '"' .. s:gsub('"', '""') .. '"'
end

-- The next message that is not asynchronous: t, body | nil, err. Notices
-- are dropped, parameter changes noted, notifications queued (or returned,
-- with `async`).
local function recv(self, async)
	local stream = self.stream
	while true do
		local t, body = stream:read('PgMessage')
		if not t then return nil, body end
		if t == 'A' then
			if async then return t, body end
			self.notes[#self.notes + 1] = body
		elseif t == 'S' then
			local k, v = body:match('^(%Z*)%z(%Z*)')
			if k then self.parameters[k] = v end
		elseif t ~= 'N' then
			return t, body
		end
	end
end

-- An I/O failure: the connection is closed (its replies would be out of
-- step); a close from another coroutine meanwhile reads as 'interrupted'.
local function broken(self, err)
	self.busy = false
	self.copy = nil
	if self._closed then return nil, 'interrupted' end
	self._closed = true
	self.stream:close()
	return nil, err
end

local function send(self, msg)
	local ok, err = self.stream:write(msg)
	if not ok then return broken(self, err) end
	return true
end

local function begin(self)
	if self._closed then return nil, 'closed' end
	if self.busy or self.copy then return nil, 'busy' end
	self.busy = true
	return true
end

local forget

local function copy(t)
	return { unpack(t) }
end

-- Message types as read('PgReply') gives them (bytes of its kinds).
local D, T, C, Z, E, BIND, PARSE, A, S, G, H =
	68, 84, 67, 90, 69, 50, 49, 65, 83, 71, 72

-- Read a query's answers up to ReadyForQuery: true for commands only, each
-- result table of the statements that return rows, or nil, err. With
-- `names` (a cache hit, sent without Describe), the rows take those column
-- names; with `entry` (a statement being prepared for the cache), what the
-- server says of it is noted there: `parsed` once it exists, `names` from
-- its description. After it, self.status is the transaction status ('I',
-- 'T' or 'E') and self.stale tells that the call failed in Bind because its
-- statement is gone (26000) or its plan changed its result type (0A000),
-- before anything ran. The reply is read with 'PgReply': all of it that
-- is buffered in one call (usually the whole of it).
local function results(self, names, entry)
	-- The first result is kept apart: most queries have one at most, and
	-- need no table of them.
	-- `cur`: the result being read, once its first rows came (the first
	-- batch of rows becomes it); `head`: the column names before that.
	local first, out, nout, cur, head, err, stale, bound = nil, nil, 0, nil, nil, nil, false, false
	if names then head = copy(names) end
	local stream = self.stream
	while true do
		local kinds, list = stream:read('PgReply')
		if not kinds then return broken(self, list) end
		for i = 1, #kinds do
			local k, v = byte(kinds, i), list[i]
			if k == D then
				if cur then
					local n = #cur
					for r = 1, #v do cur[n + r] = v[r] end
				elseif head then
					v[0] = head
					cur, head = v, nil
				end
			elseif k == BIND then
				bound = true
			elseif k == C then
				if head then
					cur, head = { [0] = head }, nil
				end
				if cur then
					nout = nout + 1
					if nout == 1 then
						first = cur
					elseif nout == 2 then
						out = { first, cur }
					else
						out[nout] = cur
					end
					cur = nil
				end
				-- 'DEALLOCATE ...' or 'DISCARD ALL' (only tags starting
				-- with D come): the cache's statements may be gone.
				if v and self.cache then forget(self, v) end
			elseif k == Z then
				self.busy = false
				self.status = v
				if err then
					self.stale = stale
					return nil, err
				end
				if nout <= 1 then return first or true end
				return unpack(out, 1, nout)
			elseif k == T then
				if entry then
					entry.names = v
					v = copy(v)
				end
				head = v
			elseif k == E then
				local code
				err, code = errtext(v)
				stale = not bound and (code == '26000' or code == '0A000')
				cur, head = nil, nil
			elseif k == PARSE then
				if entry then entry.parsed = true end
			elseif k == A then
				self.notes[#self.notes + 1] = v
			elseif k == S then
				local key, value = v:match('^(%Z*)%z(%Z*)')
				if key then self.parameters[key] = value end
			elseif k == G then
				self.busy = false
				self.copy = 'in'
				return true
			elseif k == H then
				self.busy = false
				self.copy = 'out'
				return true
			elseif k == 82 or k == 75 then
				return broken(self, 'unexpected message from the server: ' .. kinds:sub(i, i))
			end
			-- N, '1' without an entry, '3', 'n', 't', 'I': nothing to keep.
		end
	end
end

-- the statement cache ------------------------------------------------------

-- Each connection (session) keeps the statements that exec with parameters
-- prepared, by query text: at most `size`, the least recently used closed
-- first. An entry is { query =, name =, names = (column names, nil for a
-- statement without rows), newer =, older = } in a list from the most
-- recently used (head) to the least (tail). Names are '__lem_<n>', never
-- reused in a session. Statements to close on the server (evicted, or
-- dropped as stale) wait in `closing` and go in front of the next cached
-- query's messages (closing one that no longer exists is not an error;
-- and Close works in a failed transaction).

local function new_cache(size)
	return { size = size, count = 0, map = {}, head = nil, tail = nil, closing = {}, serial = 0 }
end

local function unlink(c, e)
	if e.newer then e.newer.older = e.older else c.head = e.older end
	if e.older then e.older.newer = e.newer else c.tail = e.newer end
	e.newer, e.older = nil, nil
end

local function push_head(c, e)
	e.older = c.head
	if c.head then c.head.newer = e else c.tail = e end
	c.head = e
end

-- Take e out of the cache; with `close`, its statement is closed on the
-- server with the next query.
local function drop(c, e, close)
	unlink(c, e)
	c.map[e.query] = nil
	c.count = c.count - 1
	if close then c.closing[#c.closing + 1] = e.name end
end

-- The Close messages waiting, as one string ('' when none).
local function closes(c)
	local list = c.closing
	if #list == 0 then return '' end
	for i = 1, #list do list[i] = frame('C', 'S' .. list[i] .. '\0') end
	local s = table.concat(list)
	c.closing = {}
	return s
end

-- A command of the session dropped prepared statements: 'DISCARD ALL' and
-- 'DEALLOCATE ALL' all of them (the cache is emptied), 'DEALLOCATE name'
-- one (which one is not said: all are closed, closing the missing one does
-- no harm).
forget = function(self, tag)
	local c = self.cache
	local all = tag:find('^DISCARD ALL') or tag:find('^DEALLOCATE ALL')
	if not all and not tag:find('^DEALLOCATE') then return end
	while c.head do drop(c, c.head, not all) end
end

-- connecting -------------------------------------------------------------

local start_tls

local function fail_open(self, err)
	if self.stream then self.stream:close() end
	self._closed = true
	return nil, err
end

-- sslmode -> whether to ask for TLS.
local tls_modes = {
	disable = false, allow = false, prefer = true,
	require = true, ['verify-ca'] = true, ['verify-full'] = true,
}

-- SSLRequest on a fresh TCP stream: the TLS stream, the same stream when
-- the server says no and sslmode allows that, or nil, err.
start_tls = function(stream, host, sslmode, o, tls)
	local ok, err = stream:write(core.frame('', '\4\210\22\47'))
	local answer
	if ok then answer, err = stream:read(1) end
	if not answer then
		stream:close()
		return nil, err
	end
	if answer ~= 'S' then
		if sslmode == 'prefer' then return stream end
		stream:close()
		return nil, 'server does not support SSL, but SSL was required'
	end
	-- The TLS options: the conninfo's files, then the tls table's fields
	-- over them. As libpq: verify-ca checks the chain, not the host name;
	-- only verify-full checks both; below, nothing is checked.
	local t = {
		cafile = o.sslrootcert or getenv('PGSSLROOTCERT'),
		cert = o.sslcert or getenv('PGSSLCERT'),
		key = o.sslkey or getenv('PGSSLKEY'),
		insecure = not (sslmode == 'verify-ca' or sslmode == 'verify-full'),
		verify_name = sslmode == 'verify-full',
	}
	for k, v in pairs(tls or {}) do t[k] = v end
	if t.key and not t.cert then t.key = nil end
	local s, e = io.tls.upgrade(stream, host, t)
	if not s then return nil, e end
	return s
end

-- Connect and authenticate with self.opts: true | nil, err.
local function open(self)
	local o = self.opts
	local host = o.host or getenv('PGHOST') or '/var/run/postgresql'
	host = host:match('^[^,]*')
	local port = o.port or getenv('PGPORT') or '5432'
	local user = o.user or getenv('PGUSER') or getenv('USER') or 'postgres'
	local dbname = o.dbname or getenv('PGDATABASE') or user
	local password = o.password or getenv('PGPASSWORD')
	local sslmode = o.sslmode or getenv('PGSSLMODE') or 'prefer'
	local tls = tls_modes[sslmode]
	if tls == nil then
		return nil, ("invalid sslmode '%s' (disable, allow, prefer, require, verify-ca or verify-full)")
			:format(sslmode)
	end
	local stream, err
	if host:sub(1, 1) == '/' or host:sub(1, 1) == '@' then
		-- No TLS over a Unix socket, as with libpq.
		stream, err = io.unix.connect(host .. '/.s.PGSQL.' .. port)
	else
		stream, err = io.tcp.connect(o.hostaddr or host, tonumber(port) or port)
		if stream and tls then
			stream, err = start_tls(stream, host, sslmode, o, self.tls)
		end
	end
	if not stream then return nil, err end
	self.stream, self._closed, self.busy, self.copy = stream, false, false, nil
	self.parameters = {}
	-- A new session: none of the cache's statements exist in it.
	if self.cache_size > 0 then self.cache = new_cache(self.cache_size) end
	stream:setlimit(core.max_message + 5)
	local timeout = tonumber(o.connect_timeout)
	if timeout and timeout > 0 then stream:settimeout(timeout) end
	local params = { 'user', user, 'database', dbname, 'client_encoding', 'UTF8' }
	if o.application_name then params[#params + 1] = 'application_name'; params[#params + 1] = o.application_name end
	if o.options then params[#params + 1] = 'options'; params[#params + 1] = o.options end
	local ok
	ok, err = stream:write(core.startup(params))
	if not ok then return fail_open(self, err) end
	local nonce, signature
	local function need_password()
		if not password then
			fail_open(self, 'fe_sendauth: no password supplied')
			return false
		end
		return true
	end
	while true do
		local t, body = recv(self)
		if not t then return fail_open(self, body) end
		if t == 'R' then
			local code = int32(body, 0)
			local answer
			if code == 3 then
				if not need_password() then return nil, 'fe_sendauth: no password supplied' end
				answer = frame('p', password .. '\0')
			elseif code == 5 then
				if not need_password() then return nil, 'fe_sendauth: no password supplied' end
				answer = frame('p', core.md5(user, password, body:sub(5, 8)) .. '\0')
			elseif code == 10 then
				if not body:find('SCRAM-SHA-256\0', 5, true) then
					return fail_open(self, 'the server offers no SASL mechanism lem.postgres knows (SCRAM-SHA-256)')
				end
				if not need_password() then return nil, 'fe_sendauth: no password supplied' end
				local first
				first, nonce = core.scram_first()
				answer = frame('p', first)
			elseif code == 11 then
				local final
				final, signature = core.scram_final(password or '', nonce or '', body:sub(5))
				if not final then return fail_open(self, signature) end
				answer = frame('p', final)
			elseif code == 12 then
				if not signature or not core.scram_verify(body:sub(5), signature) then
					return fail_open(self, "the server's SCRAM signature is wrong")
				end
			elseif code ~= 0 then
				return fail_open(self, ('authentication method %d is not supported by lem.postgres'):format(code))
			end
			if answer then
				ok, err = stream:write(answer)
				if not ok then return fail_open(self, err) end
			end
		elseif t == 'K' then
			self.pid = int32(body, 0)
		elseif t == 'E' then
			return fail_open(self, (errtext(body)))
		elseif t == 'Z' then
			stream:settimeout(self.timeout)
			return true
		end
	end
end

-- Raises (at the script's call) for an options table that is not one, or
-- holds an unknown name or a bad tls table.
local function check_options(options, fname, argn, known)
	if options == nil then return end
	if type(options) ~= 'table' then
		error(("bad argument #%d to '%s' (table expected, got %s)"):format(argn, fname, type(options)), 3)
	end
	for k in pairs(options) do
		if not known[k] then
			error(("bad argument #%d to '%s' (unknown option '%s')"):format(argn, fname, tostring(k)), 3)
		end
	end
	local msg = io.tls.check(options.tls)
	if msg then
		error(("bad argument #%d to '%s' (%s)"):format(argn, fname, msg), 3)
	end
end

local CONNECT_OPTIONS = { tls = true, statement_cache = true }

-- The statements exec prepares and keeps per connection, by default.
local CACHE_SIZE = 100

-- The option statement_cache (a size, 0 or false for none) as a size;
-- raises (at the script's call) for another value.
local function cache_size(options, fname)
	local v = options and options.statement_cache
	if v == nil then return CACHE_SIZE end
	if v == false then return 0 end
	if type(v) ~= 'number' or v < 0 or v % 1 ~= 0 then
		error(("bad argument #2 to '%s' (statement_cache must be a size or false, got %s)")
			:format(fname, tostring(v)), 3)
	end
	return v
end

local function connect(conninfo, options, size)
	local opts, err = parse_conninfo(conninfo)
	if not opts then return nil, err end
	local self = setmetatable({
		opts = opts, tls = options and options.tls, notes = {}, _closed = true, busy = false,
		cache_size = size,
	}, Connection)
	local ok
	ok, err = open(self)
	if not ok then return nil, err end
	return self
end

-- postgres.connect(conninfo [, {tls = {...}, statement_cache = n | false}])
-- -> Connection | nil, err
function M.connect(conninfo, options)
	if type(conninfo) ~= 'string' then
		error(("bad argument #1 to 'connect' (string expected, got %s)"):format(type(conninfo)), 2)
	end
	check_options(options, 'connect', 2, CONNECT_OPTIONS)
	return connect(conninfo, options, cache_size(options, 'connect'))
end

-- calls -------------------------------------------------------------------

local function check_string(v, n, fname)
	if type(v) ~= 'string' then
		error(("bad argument #%d to '%s' (string expected, got %s)"):format(n, fname, type(v)), 3)
	end
end

-- A parameter core.extended refused: the call's argument error, numbered as
-- the script's call counts (core.extended's first parameter is its 5th
-- argument, the call's 2nd).
local function raise(self, msg, fname)
	self.busy = false
	msg = tostring(msg):gsub("^bad argument #(%d+) to 'extended'", function(k)
		return ("bad argument #%d to '%s'"):format(tonumber(k) - 3, fname)
	end)
	error(msg, 3)
end

-- A query with parameters on a connection with a statement cache: a hit
-- sends Bind, Execute and Sync only (the column names are the cache's); a
-- miss prepares the statement as well (Parse, Describe), closing the least
-- recently used one if the cache is full, and keeps it once the server has
-- it. A hit whose statement turns out gone or stale (see results) is
-- dropped and, outside a transaction, made once again as a miss: it failed
-- in Bind, so nothing of it ran, and with no transaction open there is none
-- the retry could land in after its failure. Inside one, the error is
-- returned (the server has aborted the transaction).
local function cached(self, c, query, n, ...)
	local e = c.map[query]
	if e then
		if c.head ~= e then
			unlink(c, e)
			push_head(c, e)
		end
		local good, msg = pcall(extended, e.name, nil, '', n, ...)
		if not good then raise(self, msg, 'exec') end
		if #c.closing > 0 then msg = closes(c) .. msg end
		local ok, err = send(self, msg)
		if not ok then return nil, err end
		local r, rerr = results(self, e.names)
		if r ~= nil or not self.stale then return r, rerr end
		if c.map[query] == e then drop(c, e, true) end
		if self.status ~= 'I' or self._closed then return nil, rerr end
		self.busy = true
	end
	local serial = c.serial + 1
	c.serial = serial
	e = { query = query, name = '__lem_' .. serial }
	local good, msg = pcall(extended, e.name, query, 'S', n, ...)
	if not good then raise(self, msg, 'exec') end
	if c.count >= c.size then drop(c, c.tail, true) end
	if #c.closing > 0 then msg = closes(c) .. msg end
	local ok, err = send(self, msg)
	if not ok then return nil, err end
	local function kept(...)
		if e.parsed then
			push_head(c, e)
			c.map[query] = e
			c.count = c.count + 1
		end
		return ...
	end
	return kept(results(self, nil, e))
end

-- db:exec(query, ...) -> true | result, ... | nil, err
function Connection:exec(query, ...)
	check_string(query, 1, 'exec')
	local ok, err = begin(self)
	if not ok then return nil, err end
	local n = select('#', ...)
	local msg
	if n == 0 then
		msg = frame('Q', query .. '\0')
	elseif self.cache then
		return cached(self, self.cache, query, n, ...)
	else
		local good, m = pcall(extended, '', query, 'P', n, ...)
		if not good then raise(self, m, 'exec') end
		msg = m
	end
	ok, err = send(self, msg)
	if not ok then return nil, err end
	return results(self)
end

-- db:prepare(name, query) -> true | nil, err
function Connection:prepare(name, query)
	check_string(name, 1, 'prepare')
	check_string(query, 2, 'prepare')
	local ok, err = begin(self)
	if not ok then return nil, err end
	ok, err = send(self, frame('P', name .. '\0' .. query .. '\0\0\0') .. frame('S', ''))
	if not ok then return nil, err end
	return results(self)
end

-- db:run(name, ...) -> as exec
function Connection:run(name, ...)
	check_string(name, 1, 'run')
	local ok, err = begin(self)
	if not ok then return nil, err end
	local good, msg = pcall(extended, name, nil, 'P', select('#', ...), ...)
	if not good then raise(self, msg, 'run') end
	ok, err = send(self, msg)
	if not ok then return nil, err end
	return results(self)
end

-- db:put(data) -> true | nil, err (after COPY ... FROM STDIN)
function Connection:put(data)
	check_string(data, 1, 'put')
	if self._closed then return nil, 'closed' end
	if self.copy ~= 'in' then return nil, 'not in COPY FROM STDIN' end
	if self.busy then return nil, 'busy' end
	self.busy = true
	local ok, err = send(self, frame('d', data))
	if not ok then return nil, err end
	self.busy = false
	return true
end

-- db:done([errmsg]) -> true | nil, err: end the COPY FROM STDIN (with
-- errmsg: abort it).
function Connection:done(errmsg)
	if errmsg ~= nil then check_string(errmsg, 1, 'done') end
	if self._closed then return nil, 'closed' end
	if self.copy ~= 'in' then return nil, 'not in COPY FROM STDIN' end
	if self.busy then return nil, 'busy' end
	self.busy, self.copy = true, nil
	local msg = errmsg and frame('f', errmsg .. '\0') or frame('c', '')
	local ok, err = send(self, msg)
	if not ok then return nil, err end
	return results(self)
end

-- db:get() -> row text | true at the end | nil, err (after COPY ... TO STDOUT)
function Connection:get()
	if self._closed then return nil, 'closed' end
	if self.copy ~= 'out' then return nil, 'not in COPY TO STDOUT' end
	if self.busy then return nil, 'busy' end
	self.busy = true
	local t, body = recv(self)
	if not t then return broken(self, body) end
	if t == 'd' then
		self.busy = false
		return body
	end
	self.copy = nil
	if t == 'E' then
		local err = errtext(body)
		local ok, e2 = results(self)
		if ok == nil and e2 == 'interrupted' then return nil, e2 end
		return nil, err
	end
	-- 'c' (CopyDone): the command's completion and ReadyForQuery follow.
	return results(self)
end

-- db:listen(channel) -> true | nil, err
function Connection:listen(channel)
	check_string(channel, 1, 'listen')
	return self:exec('LISTEN ' .. quote_ident(channel))
end

-- db:notification() -> channel, payload, pid | nil, err (suspends)
function Connection:notification()
	local notes = self.notes
	if #notes > 0 then
		return core.notification(table.remove(notes, 1))
	end
	local ok, err = begin(self)
	if not ok then return nil, err end
	local t, body = recv(self, true)
	if not t then return broken(self, body) end
	self.busy = false
	if t == 'A' then return core.notification(body) end
	if t == 'E' then
		-- A fatal error from the server (shutdown): the connection ends.
		return broken(self, (errtext(body)))
	end
	return broken(self, 'unexpected message from the server: ' .. t)
end

-- db:settimeout(s | nil): a call waiting longer fails with 'timeout' and
-- closes the connection.
function Connection:settimeout(s)
	if s ~= nil and type(s) ~= 'number' then
		error(("bad argument #1 to 'settimeout' (number expected, got %s)"):format(type(s)), 2)
	end
	self.timeout = s
	if not self._closed then self.stream:settimeout(s) end
	return true
end

-- db:reset() -> true | nil, err: a new connection with the same conninfo.
function Connection:reset()
	if self.busy then return nil, 'busy' end
	if not self._closed then
		self.stream:write(frame('X', ''))
		self.stream:close()
	end
	self._closed = true
	self.copy = nil
	self.notes = {}
	return open(self)
end

-- db:close() -> true | nil, 'already closed'
function Connection:close()
	if self._closed then return nil, 'already closed' end
	self._closed = true
	if not self.busy and not self.copy then
		self.stream:write(frame('X', ''))
	end
	self.stream:close()
	return true
end

-- db:closed() -> bool
function Connection:closed()
	return self._closed
end

-- the pool ------------------------------------------------------------------

-- lem.io.pool's methods, copied (the manual's test and a reader see them here).
local Pool = {}
for k, v in pairs(iopool.Pool) do Pool[k] = v end
Pool.__index = Pool
M.Pool = Pool

local POOL_OPTIONS = { size = true, tls = true, statement_cache = true }

-- A pooled connection serves another call unless it closed or was left
-- inside a call or a COPY.
local function usable(db)
	return not (db._closed or db.busy or db.copy)
end

-- A call may be made again when the idle connection turned out closed (the
-- server restarted or dropped it), not after a timeout (it may have run).
local function stale(db, err)
	return db._closed and err ~= 'timeout'
end

-- postgres.pool(conninfo [, {size = n, tls = {...}, statement_cache = n |
-- false}]) -> Pool (lem.io.pool's); each connection has its own cache.
function M.pool(conninfo, opts)
	check_string(conninfo, 1, 'pool')
	check_options(opts, 'pool', 2, POOL_OPTIONS)
	local cache = cache_size(opts, 'pool')
	local size = opts and opts.size or 10
	if type(size) ~= 'number' or size < 1 or size % 1 ~= 0 then
		error("bad argument #2 to 'pool' (size must be a positive integer)", 2)
	end
	local pool = iopool.new {
		size = size, usable = usable, stale = stale,
		open = function() return connect(conninfo, opts, cache) end,
	}
	return setmetatable(pool, Pool)
end

-- The original's names for acquire and release.
Pool.get = iopool.Pool.acquire
Pool.put = iopool.Pool.release

local function exec(db, ...) return db:exec(...) end

-- pool:exec(...) -> as db:exec, on a connection checked out for the call
-- (see lem.io.pool's run: a restart costs no call).
function Pool:exec(...)
	return self:run(exec, ...)
end

return M
