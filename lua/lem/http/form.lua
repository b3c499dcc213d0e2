-- lem.http.form: query strings and application/x-www-form-urlencoded
-- bodies, both ways (WHATWG URL "application/x-www-form-urlencoded").
-- The server's req.query and req:form() use form.parse; server.urlencode
-- is form.escape. See docs/http-form.md.
local type, tostring, pairs, ipairs, error = type, tostring, pairs, ipairs, error
local char, byte, format, gsub, find, sub = string.char, string.byte, string.format, string.gsub, string.find, string.sub
local concat, sort = table.concat, table.sort
local tonumber = tonumber

local M = {}

-- The largest number of fields form.parse keeps by default: past it the
-- rest of the string is refused (a form is read whole, so its size is
-- bounded by whoever read it; the count bounds the table).
M.max_fields = 1000

local function hexdigit(h)
	return char(tonumber(h, 16))
end

-- form.unescape(s): '+' -> ' ', %XX -> the byte; a '%' not followed by
-- two hex digits stays as it is.
local function unescape(s)
	if not find(s, '[%%+]') then
		return s
	end
	return (gsub(gsub(s, '+', ' '), '%%(%x%x)', hexdigit))
end
M.unescape = unescape

local function hexbyte(c)
	return format('%%%02X', byte(c))
end

-- form.escape(s): every byte but ALPHA DIGIT and '-._~' as %XX (RFC 3986
-- unreserved), so the result is safe in a path segment, a query value or
-- a form; a space becomes %20, which unescape also reads.
function M.escape(s)
	if type(s) == 'number' then
		s = tostring(s)
	elseif type(s) ~= 'string' then
		error(format("bad argument #1 to 'escape' (string expected, got %s)", type(s)), 2)
	end
	return (gsub(s, '[^%w%-._~]', hexbyte))
end

local escape = M.escape

-- Add value under key k: the first value as it is, a second turns the
-- entry into a list of values in order.
local function add(t, k, v)
	local old = t[k]
	if old == nil then
		t[k] = v
	elseif type(old) == 'table' then
		old[#old + 1] = v
	else
		t[k] = { old, v }
	end
end

-- form.parse(s [, max_fields]) -> table | nil, err: the fields of a query
-- string or a urlencoded body, split at '&' (empty pieces skipped), names
-- and values unescaped: a key given once maps to its value, a key given
-- several times to the list of its values in order, a key without '='
-- to true. nil, 'too many fields' past max_fields (default
-- form.max_fields).
function M.parse(s, max_fields)
	if type(s) ~= 'string' then
		error(format("bad argument #1 to 'parse' (string expected, got %s)", type(s)), 2)
	end
	max_fields = max_fields or M.max_fields
	local t, n = {}, 0
	local pos, len = 1, #s
	while pos <= len do
		local amp = find(s, '&', pos, true) or len + 1
		if amp > pos then
			n = n + 1
			if n > max_fields then
				return nil, 'too many fields'
			end
			local eq = find(s, '=', pos, true)
			if eq and eq < amp then
				add(t, unescape(sub(s, pos, eq - 1)), unescape(sub(s, eq + 1, amp - 1)))
			else
				add(t, unescape(sub(s, pos, amp - 1)), true)
			end
		end
		pos = amp + 1
	end
	return t
end

-- The fields of t as a string, keys sorted (so the same table gives the
-- same string): a list value gives one field per element, true a key
-- alone; strings and numbers only. nil and why for anything else. Also
-- lem.http.client's `query` option.
local function encode(t)
	local keys = {}
	for k in pairs(t) do
		if type(k) ~= 'string' and type(k) ~= 'number' then
			return nil, format('a %s key', type(k))
		end
		keys[#keys + 1] = tostring(k)
	end
	sort(keys)
	local out = {}
	local function one(k, v)
		if v == true then
			out[#out + 1] = escape(k)
		elseif type(v) == 'string' or type(v) == 'number' then
			out[#out + 1] = escape(k) .. '=' .. escape(v)
		else
			return format('field %q is a %s', k, type(v))
		end
	end
	for _, k in ipairs(keys) do
		local v = t[k]
		if v == nil then
			v = t[tonumber(k)]
		end
		local err
		if type(v) == 'table' then
			for i = 1, #v do
				err = err or one(k, v[i])
			end
		else
			err = one(k, v)
		end
		if err then
			return nil, err
		end
	end
	return concat(out, '&')
end
M._encode = encode

-- form.encode(t) -> string: the inverse of parse (see encode above).
function M.encode(t)
	if type(t) ~= 'table' then
		error(format("bad argument #1 to 'encode' (table expected, got %s)", type(t)), 2)
	end
	local s, err = encode(t)
	if not s then
		error(format("bad argument #1 to 'encode' (%s)", err), 2)
	end
	return s
end

return M
