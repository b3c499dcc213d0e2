-- tests/lua/support.lua: helpers for the test scripts (run by tests/lua.rs).
--
-- Load with `dofile('support.lua')` (the harness runs scripts in tests/lua/);
-- it defines the globals checkerr, eq and tmpdir, as Lua's own testes define
-- checkerr, and returns them in a table with the other helpers (exec,
-- shell_quote, write_file, lem, certs, free_port, tcp_pair).

local M = {}

local type, tostring, pairs, ipairs, error, pcall = type, tostring, pairs, ipairs, error, pcall
local format, find = string.format, string.find
local concat, sort = table.concat, table.sort

-- A short readable rendering of v: strings quoted, tables expanded a few
-- levels deep with sorted keys.
local function show(v, depth)
	if type(v) == 'string' then
		return format('%q', v)
	elseif type(v) ~= 'table' then
		return tostring(v)
	end
	depth = depth or 0
	if depth > 3 then
		return '{...}'
	end
	local keys = {}
	for k in pairs(v) do
		keys[#keys + 1] = k
	end
	sort(keys, function(a, b)
		if type(a) == type(b) and (type(a) == 'number' or type(a) == 'string') then
			return a < b
		end
		return type(a) < type(b)
	end)
	local parts = {}
	for i, k in ipairs(keys) do
		if i > 20 then
			parts[#parts + 1] = '...'
			break
		end
		if k == i then -- the sequence part: {1, 2, 3}
			parts[#parts + 1] = show(v[k], depth + 1)
		else
			local key = (type(k) == 'string' and k:match('^[%a_][%w_]*$')) and k or '[' .. show(k, depth + 1) .. ']'
			parts[#parts + 1] = key .. ' = ' .. show(v[k], depth + 1)
		end
	end
	return '{' .. concat(parts, ', ') .. '}'
end
M.show = show

-- checkerr(msg, f, ...): calls f(...), which must raise a string error that
-- contains msg (plain text, not a pattern). Returns the message.
function M.checkerr(msg, f, ...)
	local ok, err = pcall(f, ...)
	if ok then
		error(format('expected an error containing %q, but the call succeeded', msg), 2)
	end
	if type(err) ~= 'string' then
		error(format('expected a string error containing %q, got a %s: %s', msg, type(err), tostring(err)), 2)
	end
	if not find(err, msg, 1, true) then
		error(format('expected an error containing %q, got %q', msg, err), 2)
	end
	return err
end

-- Where a and b first differ: nil if they are equal (the same primitive
-- value, so 1 == 1.0 and NaN == NaN, or tables with equal values under the
-- same keys, compared recursively), else the path ('' for a and b
-- themselves) and the two differing values.
local function diff(a, b, path, seen)
	if a == b or (a ~= a and b ~= b) then
		return nil
	end
	if type(a) ~= 'table' or type(b) ~= 'table' then
		return path, a, b
	end
	-- A pair already being compared is assumed equal (cycles).
	seen[a] = seen[a] or {}
	if seen[a][b] then
		return nil
	end
	seen[a][b] = true
	for k, v in pairs(a) do
		local p, x, y = diff(v, b[k], path .. '[' .. show(k) .. ']', seen)
		if p then
			return p, x, y
		end
	end
	for k, v in pairs(b) do
		if a[k] == nil then
			return path .. '[' .. show(k) .. ']', nil, v
		end
	end
	return nil
end

-- eq(actual, expected, what): asserts that actual equals expected (deep
-- for tables); what names the value in the failure message.
function M.eq(actual, expected, what)
	local path, x, y = diff(actual, expected, '', {})
	if not path then
		return actual
	end
	local msg = format('%s: expected %s, got %s', what or 'eq', show(expected), show(actual))
	if path ~= '' then
		msg = msg .. format('\n  first difference at %s: expected %s, got %s', path, show(y), show(x))
	end
	error(msg, 2)
end

-- tmpdir(): this test's fresh scratch directory (LEM_TEST_TMP).
function M.tmpdir()
	local dir = os.getenv('LEM_TEST_TMP')
	if not dir or dir == '' then
		error('LEM_TEST_TMP is not set: run through `cargo test`, or '
			.. 'LEM_TEST_TMP=$(mktemp -d) lem script.lua', 2)
	end
	return dir
end

-- exec(shell command) -> exit status, on Lua 5.4 and 5.1/LuaJIT alike.
function M.exec(cmd)
	local a, _, c = os.execute(cmd)
	if type(a) == 'number' then -- 5.1: the raw wait status
		return a % 256 == 0 and a / 256 or 128 + a % 256
	end
	return c
end

-- shell_quote(s): s as one word for /bin/sh.
function M.shell_quote(s)
	return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- write_file(name, text) -> the path of a file with that text, made in
-- tmpdir().
function M.write_file(name, text)
	local p = M.tmpdir() .. '/' .. name
	local f = io.open(p, 'w')
	f:write(text)
	f:close()
	return p
end

local function slurp(p)
	local f = io.open(p)
	local s = f:read('*a')
	f:close()
	return s
end

-- lem(args [, stdin text [, env]]) -> stdout, stderr, exit status: the
-- lem binary running this script (arg[-1]) run by /bin/sh with `args`
-- (already shell words) and `env` (assignments) before it, stdin from the
-- text or /dev/null, in blocking os.execute.
function M.lem(args, input, env)
	local dir = M.tmpdir()
	local out, err = dir .. '/out', dir .. '/err'
	local cmd = (env or '') .. ' ' .. M.shell_quote(arg[-1]) .. ' ' .. args .. ' >' .. out .. ' 2>' .. err
	if input then
		cmd = cmd .. ' <' .. M.write_file('in', input)
	else
		cmd = cmd .. ' </dev/null'
	end
	local code = M.exec(cmd)
	return slurp(out), slurp(err), code
end

-- certs([dir]) -> ca, cert, key: the paths of a CA made now and a
-- certificate it signed for localhost and 127.0.0.1 (with its key), in dir
-- (default tmpdir()), by openssl.
function M.certs(dir)
	dir = dir or M.tmpdir()
	local code = M.exec(([[
cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lem-test-ca \
  -keyout ca.key -out ca.pem >/dev/null 2>&1 &&
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out req.csr >/dev/null 2>&1 &&
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext.cnf &&
openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile ext.cnf -out cert.pem >/dev/null 2>&1]]):format(dir))
	assert(code == 0, 'openssl could not make the test certificates')
	return dir .. '/ca.pem', dir .. '/cert.pem', dir .. '/key.pem'
end

-- chromium() -> the path of a Chromium to drive ($CHROMIUM, else the first
-- of chromium, chromium-browser, google-chrome on PATH); without one the
-- test is skipped (it prints why and exits 0: scripts/deps installs it).
function M.chromium()
	local found = os.getenv('CHROMIUM')
	for _, name in ipairs({ 'chromium', 'chromium-browser', 'google-chrome' }) do
		if found then
			break
		end
		local p = io.popen('command -v ' .. name .. ' 2>/dev/null')
		local path = p:read('*l')
		p:close()
		if path and path ~= '' then
			found = path
		end
	end
	if not found then
		print('skip: chromium not found (run scripts/deps)')
		os.exit(0)
	end
	return found
end

-- free_port() -> a TCP port on 127.0.0.1 that was free a moment ago, for
-- a server the test starts as another process.
function M.free_port()
	local srv = assert(require('lem.io').tcp.listen4('127.0.0.1', 0))
	local _, port = srv:getsockname()
	srv:close()
	return port
end

-- tcp_pair(server) -> a, b: a connected pair over the lem.io listening
-- `server` (a: the client side, b: the accepted side).
function M.tcp_pair(server)
	local io, utils = require 'lem.io', require 'lem.utils'
	local _, port = server:getsockname()
	local a
	utils.spawn(function()
		a = assert(io.tcp.connect('127.0.0.1', port))
	end)
	local b = assert(server:accept())
	while not a do
		utils.yield()
	end
	return a, b
end

-- Lua 5.1/LuaJIT lack table.pack.
table.pack = table.pack or function(...)
	return { n = select('#', ...), ... }
end

checkerr, eq, tmpdir = M.checkerr, M.eq, M.tmpdir
return M
