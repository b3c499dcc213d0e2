-- Cookies: lem.http.cookie (parse, format, sign, verify), req.cookies,
-- req:cookie, res:cookie giving one Set-Cookie field each (a list value in
-- res.headers, on the Rust path and the Lua one), repeated request fields
-- keeping every value, bad bytes refused; curl's cookie jar and a Python
-- requests session as clients.
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local cookie = require 'lem.http.cookie'
local io = require 'lem.io'

-- parse: first value of a name wins, quotes dropped, junk skipped.
eq(cookie.parse('a=1; b="two"; a=3;junk; c=; =x; d = 4 '), { a = '1', b = 'two', c = '', d = '4' })
eq(cookie.parse(nil), {})
eq(cookie.parse(''), {})

-- format: attributes in order, checked.
eq(cookie.format('sid', 'abc'), 'sid=abc')
eq(cookie.format('sid', 42, { path = '/', domain = 'example.org', max_age = 3600, expires = 86400,
	secure = true, httponly = true, samesite = 'strict' }),
	'sid=42; Path=/; Domain=example.org; Max-Age=3600; Expires=Fri, 02 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Strict')
eq(cookie.format('q', '"quoted"', { expires = 'Wed, 21 Oct 2015 07:28:00 GMT', secure = false }),
	'q="quoted"; Expires=Wed, 21 Oct 2015 07:28:00 GMT')
checkerr('is not a token', cookie.format, 'a b', 'x')
checkerr('is not a token', cookie.format, 'a=b', 'x')
checkerr('is not a token', cookie.format, '', 'x')
checkerr('string expected, got nil', cookie.format, nil, 'x')
for _, v in ipairs({ 'a;b', 'a b', 'a,b', 'a\\b', 'a"b', 'a\r\nSet-Cookie: x=y', 'a\0', '\127', '\200' }) do
	checkerr('has a byte cookies may not hold', cookie.format, 'n', v)
end
checkerr('string expected, got table', cookie.format, 'n', {})
checkerr('unknown option maxage', cookie.format, 'n', 'v', { maxage = 1 })
checkerr('option path', cookie.format, 'n', 'v', { path = '/;x' })
checkerr('option domain', cookie.format, 'n', 'v', { domain = 'a\nb' })
checkerr('max_age must be an integer', cookie.format, 'n', 'v', { max_age = 1.5 })
checkerr('samesite must be', cookie.format, 'n', 'v', { samesite = 'sometimes' })
checkerr('non-empty key', cookie.format, 'n', 'v', { sign = '' })

-- sign/verify: bound to the name and the key.
local s = cookie.sign('secret', 'sid', 'user42')
assert(s:find('^user42%.[%w_-]+$'), s)
eq(cookie.verify('secret', 'sid', s), 'user42')
eq(cookie.verify('other', 'sid', s), nil)
eq(cookie.verify('secret', 'uid', s), nil)
eq(cookie.verify('secret', 'sid', 'user43' .. s:sub(7)), nil)
eq(cookie.verify('secret', 'sid', s .. 'x'), nil)
eq(cookie.verify('secret', 'sid', 'user42'), nil)
eq(cookie.verify('secret', 'sid', nil), nil)
eq(cookie.verify('secret', 'a.b', cookie.sign('secret', 'a.b', 'x.y')), 'x.y')
checkerr('non-empty key', cookie.sign, nil, 'a', 'b')

-- The server.
local seen = {}
local srv, port, url = common.serve(function(req, res)
	local p = req.path
	if p == '/set' then
		res:cookie('a', '1')
		res:cookie('b', '2', { path = '/', httponly = true })
		res:cookie('sid', 'user42', { sign = 'k' })
		res:add('set')
	elseif p == '/get' then
		local keys = {}
		for k, v in pairs(req.cookies) do
			keys[#keys + 1] = k .. '=' .. v
		end
		table.sort(keys)
		res:add('%s|%s', table.concat(keys, ';'), tostring(req:cookie('sid', 'k')))
	elseif p == '/forged' then
		res:add('%s %s', tostring(req:cookie('sid')), tostring(req:cookie('sid', 'k')))
	elseif p == '/headers' then
		seen.headers = req.headers
	elseif p == '/mixed' then
		-- A string first, then res:cookie: both go out.
		res.headers['Set-Cookie'] = 'first=1'
		res:cookie('second', '2')
		res.headers.Link = { '</a>; rel=preload', '</b>; rel=preload' }
		res.headers['X-Empty'] = {}
	elseif p == '/lua' then
		-- A value with __tostring sends the whole head through the Lua half.
		res.headers['X-Obj'] = setmetatable({}, { __tostring = function() return 'obj' end })
		res:cookie('c', '3')
		res:cookie('d', '4')
		res:add('lua')
	elseif p == '/stream' then
		res:cookie('e', '5')
		res:cookie('f', '6')
		res:write('streamed')
	elseif p == '/badlist' then
		res.headers['X-Bad'] = { 'ok', 'no\r\nInjected: 1' }
	elseif p == '/badelem' then
		res.headers['X-Bad'] = { 'ok', {} }
	elseif p == '/badlength' then
		res.headers['Content-Length'] = { '2' }
		res:add('ab')
	elseif p == '/badcookie' then
		local ok, err = pcall(res.cookie, res, 'x', 'a;b')
		res:add('%s %s', tostring(ok), err)
	end
end)

-- The fields of a response, read raw.
local function fields(path, extra)
	local c = assert(io.tcp.connect('127.0.0.1', port))
	assert(c:write('GET ' .. path .. ' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n' .. (extra or '') .. '\r\n'))
	local r = assert(c:read('HTTPResponse'))
	c:close()
	local out = {}
	for _, f in ipairs(r.fields) do
		if f[1] ~= 'date' and f[1] ~= 'server' and f[1] ~= 'connection' and f[1] ~= 'content-length'
			and f[1] ~= 'content-type' and f[1] ~= 'transfer-encoding' then
			out[#out + 1] = f[1] .. ': ' .. f[2]
		end
	end
	return out, r.status
end

eq(fields('/set'), { 'set-cookie: a=1', 'set-cookie: b=2; Path=/; HttpOnly', 'set-cookie: ' .. cookie.format('sid', 'user42', { sign = 'k' }) })
local mixed = fields('/mixed')
table.sort(mixed)
eq(mixed, { 'link: </a>; rel=preload', 'link: </b>; rel=preload', 'set-cookie: first=1', 'set-cookie: second=2' })
local lua = fields('/lua')
table.sort(lua)
eq(lua, { 'set-cookie: c=3', 'set-cookie: d=4', 'x-obj: obj' })
eq(fields('/stream'), { 'set-cookie: e=5', 'set-cookie: f=6' })
local _, status = fields('/badlist')
eq(status, 500, 'a CR LF in a list element')
_, status = fields('/badelem')
eq(status, 500, 'a table in a list')
_, status = fields('/badlength')
eq(status, 500, 'a list Content-Length')

-- Repeated request fields: joined with ', ', Cookie with '; '.
fields('/headers', 'Accept: a\r\nX-Y: 1\r\naccept: b\r\nCookie: a=1\r\nCookie: b=2\r\nX-Y: 2\r\nX-Y: 3\r\n')
eq(seen.headers.accept, 'a, b')
eq(seen.headers['x-y'], '1, 2, 3')
eq(seen.headers.cookie, 'a=1; b=2')
eq(seen.headers.host, 'x')

-- curl: a cookie jar across two requests; a forged signature.
local jar = tmpdir() .. '/jar'
eq(common.sh(('curl -sS -c %s %s/set'):format(jar, url)), 'set')
eq(common.sh(('curl -sS -b %s %s/get'):format(jar, url)),
	'a=1;b=2;sid=' .. cookie.sign('k', 'sid', 'user42') .. '|user42')
eq(common.sh(("curl -sS -b 'sid=admin.AAAA' %s/forged"):format(url)), 'admin.AAAA nil')
eq(common.sh(("curl -sS %s/badcookie"):format(url)):match('^false .*has a byte cookies may not hold') ~= nil, true)

-- Python requests: a session keeps the cookies it was sent.
local script = tmpdir() .. '/cookie.py'
local f = assert(_G.io.open(script, 'w'))
f:write(([[
import requests
s = requests.Session()
r = s.get('%s/set')
assert r.status_code == 200, r.status_code
assert s.cookies.get('a') == '1' and s.cookies.get('b') == '2', s.cookies
r = s.get('%s/get')
assert r.text.endswith('|user42'), r.text
assert r.text.startswith('a=1;b=2;sid=user42.'), r.text
print('ok')
]]):format(url, url))
f:close()
eq(common.sh('python3 ' .. script), 'ok\n', 'python requests')
srv:close()
