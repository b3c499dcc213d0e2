-- lem.http.cookie: HTTP cookies (RFC 6265): the Cookie field parsed,
-- Set-Cookie values made and checked, and values signed with
-- HMAC-SHA256 (in Rust, with ring: lem.http.core's hmac_sha256 and
-- hmac_verify, a constant-time comparison). The server's req.cookies,
-- req:cookie and res:cookie use it. See docs/http-cookie.md.
local core = require 'lem.http.core'

local type, tostring, pairs, ipairs, error = type, tostring, pairs, ipairs, error
local format, find, match, sub, lower, byte = string.format, string.find, string.match, string.sub, string.lower, string.byte
local floor = math.floor
local osdate = os.date
local hmac, verify = core.hmac_sha256, core.hmac_verify

local M = {}

-- cookie.parse(header) -> table: 'a=1; b="2"' gives {a = '1', b = '2'}.
-- A name seen twice keeps its first value (the browser sends the most
-- specific path first); pieces without '=' are skipped; values are not
-- unescaped (cookies have no escape of their own).
function M.parse(header)
	local t = {}
	if type(header) ~= 'string' then
		return t
	end
	for piece in header:gmatch('[^;]+') do
		local name, value = match(piece, '^[ \t]*([^=]-)[ \t]*=[ \t]*(.-)[ \t]*$')
		if name and name ~= '' and t[name] == nil then
			if #value >= 2 and byte(value, 1) == 34 and byte(value, -1) == 34 then
				value = sub(value, 2, -2)
			end
			t[name] = value
		end
	end
	return t
end

-- A cookie name is a token (RFC 9110 §5.6.2), a value cookie-octets
-- (RFC 6265 §4.1.1: no CTLs, whitespace, DQUOTE, comma, semicolon or
-- backslash), optionally between double quotes.
local function badname(name)
	if type(name) ~= 'string' then
		return 'string expected, got ' .. type(name)
	end
	if not find(name, "^[%w!#$%%&'*+%-.^_`|~]+$") then
		return format('cookie name %q is not a token', name)
	end
end

local function badvalue(value)
	if type(value) == 'number' then
		value = tostring(value)
	elseif type(value) ~= 'string' then
		return 'string expected, got ' .. type(value)
	end
	local inner = match(value, '^"(.*)"$') or value
	local c = find(inner, '[^!#-+%-./0-9:<=>?@A-Z%[%]%^_`a-z{|}~]')
	if c then
		return format('cookie value %q has a byte cookies may not hold (%q at %d)', value, sub(inner, c, c), c)
	end
end

-- An attribute value: no CTL and no ';'.
local function badattr(k, v)
	if type(v) ~= 'string' then
		return format('option %s must be a string, not %s', k, type(v))
	end
	if find(v, '[%c;]') then
		return format('option %s %q has a control byte or a \';\'', k, v)
	end
end

local samesites = { strict = 'Strict', lax = 'Lax', none = 'None' }

-- The options of a Set-Cookie, in the order they are written.
local options = { 'path', 'domain', 'max_age', 'expires', 'secure', 'httponly', 'samesite', 'sign' }
local known = {}
for _, k in pairs(options) do
	known[k] = true
end

-- cookie.sign(key, name, value) -> value .. '.' .. signature: the
-- signature is HMAC-SHA256 of name=value under key, in base64url, so a
-- signed value cannot be moved to another cookie name.
function M.sign(key, name, value)
	if type(key) ~= 'string' or key == '' then
		error("bad argument #1 to 'sign' (a non-empty key expected)", 2)
	end
	value = tostring(value)
	return value .. '.' .. hmac(key, name .. '=' .. value)
end

-- cookie.verify(key, name, signed) -> value | nil: the value if its
-- signature is right (compared in constant time), else nil.
function M.verify(key, name, signed)
	if type(key) ~= 'string' or key == '' then
		error("bad argument #1 to 'verify' (a non-empty key expected)", 2)
	end
	if type(signed) ~= 'string' then
		return nil
	end
	local value, mac = match(signed, '^(.*)%.([%w_%-]+)$')
	if not value or not verify(key, name .. '=' .. value, mac) then
		return nil
	end
	return value
end

-- The value of a Set-Cookie field, or nil and the argument error for a
-- bad name, value or option, or an unknown option.
local function build(name, value, opts)
	local bad = badname(name)
	if bad then
		return nil, format("bad argument #1 to 'cookie' (%s)", bad)
	end
	bad = badvalue(value)
	if bad then
		return nil, format("bad argument #2 to 'cookie' (%s)", bad)
	end
	value = tostring(value)
	if opts == nil then
		return name .. '=' .. value
	end
	if type(opts) ~= 'table' then
		return nil, format("bad argument #3 to 'cookie' (table expected, got %s)", type(opts))
	end
	for k in pairs(opts) do
		if not known[k] then
			return nil, format("bad argument #3 to 'cookie' (unknown option %s)", tostring(k))
		end
	end
	if opts.sign ~= nil then
		if type(opts.sign) ~= 'string' or opts.sign == '' then
			return nil, "bad argument #3 to 'cookie' (option sign must be a non-empty key)"
		end
		value = M.sign(opts.sign, name, value)
	end
	local out = { name .. '=' .. value }
	for _, k in ipairs({ 'path', 'domain' }) do
		local v = opts[k]
		if v ~= nil then
			bad = badattr(k, v)
			if bad then
				return nil, format("bad argument #3 to 'cookie' (%s)", bad)
			end
			out[#out + 1] = (k == 'path' and 'Path=' or 'Domain=') .. v
		end
	end
	local age = opts.max_age
	if age ~= nil then
		if type(age) ~= 'number' or age ~= floor(age) then
			return nil, format("bad argument #3 to 'cookie' (option max_age must be an integer, not %s)", tostring(age))
		end
		out[#out + 1] = format('Max-Age=%d', age)
	end
	local expires = opts.expires
	if expires ~= nil then
		if type(expires) == 'number' then
			expires = osdate('!%a, %d %b %Y %H:%M:%S GMT', floor(expires))
		end
		bad = badattr('expires', expires)
		if bad then
			return nil, format("bad argument #3 to 'cookie' (%s)", bad)
		end
		out[#out + 1] = 'Expires=' .. expires
	end
	if opts.secure then
		out[#out + 1] = 'Secure'
	end
	if opts.httponly then
		out[#out + 1] = 'HttpOnly'
	end
	local same = opts.samesite
	if same ~= nil then
		local v = type(same) == 'string' and samesites[lower(same)]
		if not v then
			return nil, format("bad argument #3 to 'cookie' (option samesite must be 'Strict', 'Lax' or 'None', not %s)",
				tostring(same))
		end
		out[#out + 1] = 'SameSite=' .. v
	end
	return table.concat(out, '; ')
end
M._build = build

-- cookie.format(name, value [, opts]) -> the value of a Set-Cookie field.
-- Raises (an argument error naming the culprit) for a bad name, value or
-- option, and for an unknown option.
function M.format(name, value, opts)
	local v, err = build(name, value, opts)
	if not v then
		error(err, 2)
	end
	return v
end

return M
