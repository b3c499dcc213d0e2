-- Query strings and urlencoded forms: lem.http.form (parse, encode,
-- escape, unescape), req.query built on first use, req:form() from curl
-- and Python requests, server.urlencode, malformed escapes.
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local form = require 'lem.http.form'
local server = require 'lem.http.server'

-- parse: repeated keys become lists in order, a key alone true, empty
-- pieces skipped, '+' and %XX decoded, a bad escape kept as it is.
eq(form.parse('a=1&b=2&a=3&c&&d=&=e'), { a = { '1', '3' }, b = '2', c = true, d = '', [''] = 'e' })
eq(form.parse(''), {})
eq(form.parse('x=a+b%20c%2B'), { x = 'a b c+' })
eq(form.parse('x=%zz&y=%4&z=%'), { x = '%zz', y = '%4', z = '%' })
eq(form.parse('n%00=%00v'), { ['n\0'] = '\0v' })
eq(form.parse('a=1&a=2&a=3'), { a = { '1', '2', '3' } })
eq(form.parse('k=v=w'), { k = 'v=w' })
eq({ form.parse(('x&'):rep(10), 9) }, { nil, 'too many fields' })
eq(form.parse(('x&'):rep(10), 10), { x = { true, true, true, true, true, true, true, true, true, true } })
checkerr('string expected', form.parse, nil)

-- escape/unescape/encode.
eq(form.escape('a b&c=d/é~-._'), 'a%20b%26c%3Dd%2F%C3%A9~-._')
eq(form.escape(12), '12')
checkerr('string expected', form.escape, {})
eq(form.unescape('a%20b+c%zz'), 'a b c%zz')
eq(form.encode({ b = '2', a = { '1', '3' }, c = true, [5] = 'x' }), '5=x&a=1&a=3&b=2&c')
checkerr('is a function', form.encode, { f = print })
eq(form.parse(form.encode({ q = 'a&b=c d', r = { 'x', 'y' } })), { q = 'a&b=c d', r = { 'x', 'y' } })
eq(server.urlencode, form.escape)
eq(server.max_form, 1024 * 1024)
eq(form.max_fields, 1000)
for _, s in ipairs({ '', 'plain', 'a b+c', '%%%', '\0\1\255', 'ünï' }) do
	eq(server.urldecode(server.urlencode(s)), s, 'round trip')
end

-- The server: req.query on first read (stored then), req:form().
local seen = {}
local srv, port, url = common.serve(function(req, res)
	if req.path == '/q' then
		seen.raw = rawget(req, 'query')
		local q = req.query
		seen.same = rawget(req, 'query') == q
		local keys = {}
		for k, v in pairs(q) do
			keys[#keys + 1] = k .. '=' .. (type(v) == 'table' and table.concat(v, ',') or tostring(v))
		end
		table.sort(keys)
		res:add('%s', table.concat(keys, ';'))
	elseif req.path == '/form' then
		local t, err = req:form()
		if not t then
			res.status = 400
			res:add('%s', err)
			return
		end
		local keys = {}
		for k, v in pairs(t) do
			keys[#keys + 1] = k .. '=' .. (type(v) == 'table' and table.concat(v, ',') or tostring(v))
		end
		table.sort(keys)
		res:add('%s', table.concat(keys, ';'))
	elseif req.path == '/small' then
		local t, err = req:form(10)
		res:add(tostring(t) .. ' ' .. tostring(err))
	end
end)

local function curl(args)
	return common.sh('curl -sS ' .. args)
end
eq(curl(("'%s/q?a=1&b=x+y&a=2&flag&e=%%zz&n=%%00'"):format(url)), 'a=1,2;b=x y;e=%zz;flag=true;n=\0')
eq(seen.raw, nil, 'not built before the first read')
eq(seen.same, true, 'stored once built')
eq(curl(url .. '/q'), '')
eq(curl(("'%s/q?'"):format(url)), '')
eq(curl(("'%s/q?x=1#frag'"):format(url)), 'x=1')
eq(curl(("-d 'a=1&a=2&name=J%%C3%%BCrgen+X' %s/form"):format(url)), 'a=1,2;name=Jürgen X')
eq(curl(("-H 'Content-Type: application/x-www-form-urlencoded; charset=UTF-8' -d 'x=%%zz' %s/form"):format(url)), 'x=%zz')
eq(curl(("-H 'Content-Type: text/plain' -d 'a=1' %s/form"):format(url)), 'not a form')
eq(curl(("-d 'a=1234567890' %s/small"):format(url)), 'nil oversized')
eq(curl(("-d '%s' %s/form"):format(('x&'):rep(1001), url)), 'too many fields')

-- Python requests: a dict with a list value, and params.
local script = tmpdir() .. '/form.py'
local f = assert(_G.io.open(script, 'w'))
f:write(([[
import requests
r = requests.post('%s/form', data={'tag': ['a', 'b&c'], 'name': 'x y=z'})
assert r.status_code == 200, r.status_code
assert r.text == 'name=x y=z;tag=a,b&c', r.text
r = requests.get('%s/q', params={'q': 'lem é', 'n': ['1', '2']})
assert r.text == 'n=1,2;q=lem é', r.text
print('ok')
]]):format(url, url))
f:close()
eq(common.sh('python3 ' .. script), 'ok\n', 'python requests')
srv:close()
