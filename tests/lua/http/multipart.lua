-- multipart/form-data read as a stream: lem.http.multipart over bodies cut
-- into pieces of every size, req:multipart() from curl -F and Python
-- requests (files saved to disk, memory staying small), and hostile
-- bodies: 10,000 parts, a boundary that never comes, a 10 GB declared
-- body, heads too large, bad delimiters.
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local multipart = require 'lem.http.multipart'
local io = require 'lem.io'
local utils = require 'lem.utils'

-- boundary()
eq(multipart.boundary('multipart/form-data; boundary=abc'), 'abc')
eq(multipart.boundary('Multipart/Form-Data;charset=x; BOUNDARY="a b:c"'), 'a b:c')
eq({ multipart.boundary('text/plain') }, { nil, 'not multipart' })
eq({ multipart.boundary(nil) }, { nil, 'not multipart' })
eq({ multipart.boundary('multipart/form-data') }, { nil, 'bad boundary' })
eq({ multipart.boundary('multipart/form-data; boundary=') }, { nil, 'bad boundary' })
eq({ multipart.boundary('multipart/form-data; boundary=' .. ('x'):rep(71)) }, { nil, 'bad boundary' })
eq({ multipart.boundary('multipart/form-data; boundary="a\rb"') }, { nil, 'bad boundary' })

-- A body as pieces of n bytes.
local function reader(body, n)
	local pos = 1
	return function()
		if pos > #body then
			return nil, 'eof'
		end
		local s = body:sub(pos, pos + n - 1)
		pos = pos + n
		return s
	end
end

local B = 'XyZzy'
local function body(parts, close)
	local t = { 'preamble, ignored' }
	for _, p in ipairs(parts) do
		t[#t + 1] = '\r\n--' .. B .. '\r\n' .. p
	end
	t[#t + 1] = '\r\n--' .. B .. (close or '--\r\nepilogue')
	return table.concat(t)
end

local sample = body({
	'Content-Disposition: form-data; name="a"\r\n\r\n1',
	'Content-Disposition: form-data; name="file"; filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
		.. 'line\r\n--XyZz not a boundary\r\n\r\n--' .. ('\0'):rep(100),
	'Content-Disposition: form-data; name="empty"\r\n\r\n',
	'content-disposition: form-data; name=b\r\n\r\n2',
})

-- Every piece size gives the same parts.
for _, n in ipairs({ 1, 2, 3, 7, 13, 64, 100000 }) do
	local parts = multipart.new(reader(sample, n), B)
	local got = {}
	for part in parts do
		got[#got + 1] = { part.name, part.filename or false, part.type or false, assert(part:body()) }
	end
	eq(parts.error, nil, 'no error, pieces of ' .. n)
	eq(got, {
		{ 'a', false, false, '1' },
		{ 'file', 'x.bin', 'application/octet-stream', 'line\r\n--XyZz not a boundary\r\n\r\n--' .. ('\0'):rep(100) },
		{ 'empty', false, false, '' },
		{ 'b', false, false, '2' },
	}, 'pieces of ' .. n)
end

-- Parts not read are skipped; chunks(); save(fn); headers.
do
	local parts = multipart.new(reader(sample, 5), B)
	local p1 = parts()
	eq(p1.headers, { ['content-disposition'] = 'form-data; name="a"' })
	local p2 = parts()
	eq(p1:read(), nil, 'an earlier part reads nothing more')
	local t = {}
	for data in p2:chunks() do
		t[#t + 1] = data
	end
	assert(#t > 1, 'in pieces')
	eq(#table.concat(t), 133)
	local p3 = parts()
	local saved = {}
	eq(p3:save(function(s) saved[#saved + 1] = s end), 0)
	eq(parts():body(), '2')
	eq(parts(), nil)
	eq(parts(), nil)
	checkerr('a path or a function', p3.save, p3, 42)
end

-- Malformed bodies: the error ends the parts and stays.
local function first_error(text, opts, n)
	local parts = multipart.new(reader(text, n or 50), B, opts)
	for part in parts do
		local _, err = part:body()
		if err then
			eq(parts.error, err)
		end
	end
	return parts.error
end
eq(first_error(body({ 'Content-Disposition: form-data; name="a"\r\n\r\n1' }, '')), 'truncated', 'no close delimiter')
eq(first_error('no delimiter at all, ever'), 'truncated')
eq(first_error(''), 'truncated')
eq(first_error(body({ 'Content-Disposition: form-data; name="a"\r\n\r\n1' }, 'x--')), 'bad delimiter')
eq(first_error(body({ 'Content-Type: text/plain\r\n\r\n1' })), 'a part without a form-data name')
eq(first_error(body({ 'Content-Disposition: form-data; name="a\r\n\r\n1' })), 'bad part head')
eq(first_error(body({ 'Bad Name: x\r\n\r\n' })), 'bad part head')
eq(first_error(body({ ('X: y\r\n'):rep(17) .. '\r\n' })), 'too many fields in a part head')
eq(first_error(body({ 'X: ' .. ('y'):rep(10000) .. '\r\n\r\n' })), 'part head too large')
eq(first_error(body({ 'Content-Disposition: form-data; name="a"\r\n\r\n' .. ('x'):rep(1001) }), { max_part = 1000 }),
	'part too large')
eq(first_error(body({ 'Content-Disposition: form-data; name="a"\r\n\r\n' .. ('x'):rep(1000) }), { max_part = 1000 }), nil)
checkerr('unknown option max_size', multipart.new, reader('', 1), B, { max_size = 1 })
checkerr('must be a number', multipart.new, reader('', 1), B, { max_part = 'big' })
checkerr('function expected', multipart.new, 'body', B)

-- 10,000 parts: refused past max_parts (default 100) and max_fields;
-- read whole when the limits allow.
local many = {}
for i = 1, 10000 do
	many[i] = ('Content-Disposition: form-data; name="f%d"; filename="%d"\r\n\r\n%d'):format(i, i, i)
end
many = body(many)
eq(first_error(many, nil, 65536), 'too many parts')
local fields = body({ 'Content-Disposition: form-data; name="f"\r\n\r\nv' })
local manyfields = {}
for i = 1, 200 do
	manyfields[i] = 'Content-Disposition: form-data; name="f"\r\n\r\n' .. i
end
eq(first_error(body(manyfields), { max_parts = 1000 }), 'too many fields')
eq(first_error(fields), nil)
do
	local parts = multipart.new(reader(many, 65536), B, { max_parts = 10000 })
	local n, last = 0, nil
	for part in parts do
		n = n + 1
		last = part:body()
	end
	eq({ n, last, parts.error }, { 10000, '10000', nil })
end

-- The server.
local file = tmpdir() .. '/upload.bin'
do
	-- 20 MB of bytes of every value, without the boundary curl picks.
	local f = assert(_G.io.open(file, 'wb'))
	local chunk = {}
	for i = 0, 255 do
		chunk[#chunk + 1] = string.char(i)
	end
	chunk = table.concat(chunk):rep(4096) -- 1 MiB
	for _ = 1, 20 do
		f:write(chunk)
	end
	f:close()
end
local function slurp(p)
	local f = assert(_G.io.open(p, 'rb'))
	local s = f:read('*a')
	f:close()
	return s
end

local peak = 0
local seen_error
local srv, port, url = common.serve(function(req, res)
	local opts = { max_part = 64 * 1024 * 1024 }
	if req.path == '/small' then
		opts = { max_part = 1024 * 1024 }
	end
	local parts, err = req:multipart(opts)
	if not parts then
		res.status = 415
		res:add('%s', err)
		return
	end
	eq(req:multipart(), parts, 'the same parts again')
	local out = {}
	for part in parts do
		if part.filename then
			local n, serr = part:save(tmpdir() .. '/saved-' .. part.name, function() end)
			if not n then
				break
			end
			out[#out + 1] = ('%s=%s:%s:%d'):format(part.name, part.filename, tostring(part.type), n)
			collectgarbage('collect')
			peak = math.max(peak, collectgarbage('count'))
		else
			out[#out + 1] = part.name .. '=' .. assert(part:body())
		end
	end
	if parts.error then
		seen_error = parts.error
		res.status = parts.error == 'part too large' and 413 or 400
		res:add('%s', parts.error)
		return
	end
	res:add('%s', table.concat(out, ';'))
end)
-- A save that checks memory while the file comes in.
local Part = multipart.Part
local save = Part.save
function Part:save(path)
	local f = assert(io.open(path, 'w'))
	local n, err = save(self, function(data)
		assert(f:write(data))
		peak = math.max(peak, collectgarbage('count'))
	end)
	f:close()
	return n, err
end

-- curl -F: a field and a 20 MB file, which arrives whole on disk while
-- the Lua heap stays small.
collectgarbage('collect')
local base = collectgarbage('count')
srv.max_body = 64 * 1024 * 1024
eq(common.sh(("curl -sS -F a=1 -F 'up=@%s;type=application/x-test' -F b=two %s/"):format(file, url)),
	'a=1;up=upload.bin:application/x-test:20971520;b=two')
assert(slurp(tmpdir() .. '/saved-up') == slurp(file), 'the file arrived whole')
assert(peak - base < 8 * 1024, ('the Lua heap grew by %.0f KiB for a 20 MiB upload'):format(peak - base))
-- Chunked, with Expect: 100-continue.
eq(common.sh(("curl -sS -H 'Transfer-Encoding: chunked' -F a=1 -F 'up=@%s' %s/"):format(file, url)),
	'a=1;up=upload.bin:application/octet-stream:20971520')
assert(slurp(tmpdir() .. '/saved-up') == slurp(file), 'the chunked file arrived whole')
eq(common.sh(("curl -sS -F 'up=@%s' %s/small"):format(file, url)), 'part too large')
eq(common.sh(("curl -sS -d a=1 %s/"):format(url)), 'not multipart')
eq(common.sh(("curl -sS -H 'Content-Type: multipart/form-data' -d a=1 %s/"):format(url)), 'bad boundary')

-- Python requests: files and data together, a keep-alive session.
local script = tmpdir() .. '/upload.py'
local f = assert(_G.io.open(script, 'w'))
f:write(([[
import requests
s = requests.Session()
for i in range(2):
    r = s.post('%s/', data={'name': 'lem', 'n': str(i)},
        files={'doc': ('r\u00e9sum\u00e9.txt', b'hello\r\n--world\r\n', 'text/plain')})
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.text == 'name=lem;n=%%d;doc=r\u00e9sum\u00e9.txt:text/plain:16' %% i, r.text
print('ok')
]]):format(url))
f:close()
eq(common.sh('python3 ' .. script), 'ok\n', 'python requests')
eq(slurp(tmpdir() .. '/saved-doc'), 'hello\r\n--world\r\n')

-- 10,000 parts sent by curl: refused once past max_parts, answered 400.
local manyfile = tmpdir() .. '/many.txt'
do
	local mf = assert(_G.io.open(manyfile, 'wb'))
	mf:write(many)
	mf:close()
end
eq(common.sh(("curl -sS -H 'Content-Type: multipart/form-data; boundary=%s' --data-binary @%s %s/"):format(B, manyfile, url)),
	'too many parts')

-- Hostile clients over raw sockets.
local function raw(head, send)
	local c = assert(io.tcp.connect('127.0.0.1', port))
	assert(c:write(head))
	if send then
		send(c)
	end
	if c:closed() then
		return nil, 'closed'
	end
	local r, err = c:read('HTTPResponse')
	local text = r and c:read(tonumber(r.headers['content-length']))
	c:close()
	return r and r.status, text or err
end
local ct = 'Content-Type: multipart/form-data; boundary=' .. B .. '\r\n'
local part = '--' .. B .. '\r\nContent-Disposition: form-data; name="f"; filename="big"\r\n\r\n'

-- A 10 GB declared body: refused before the handler by srv.max_body; with
-- the limit raised, the part's own limit stops it after 1 MiB.
eq(raw('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n' .. ct .. '\r\n'), 413, '10 GB')
srv.max_body = 2 ^ 40
local status, text = raw('POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n' .. ct .. '\r\n' .. part,
	function(c)
		-- Whole 64 KiB pieces: the server reads exactly that many bytes at once.
		assert(c:write(('z'):rep(2 * 1024 * 1024)))
	end)
eq({ status, text }, { 413, 'part too large' }, 'a 10 GB part stops at max_part')
seen_error = nil
-- A boundary that never comes, chunked, the client going away: the
-- handler sees the error.
status, text = raw('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n' .. ct .. '\r\n', function(c)
	local data = part .. ('y'):rep(1000)
	assert(c:write(('%x\r\n%s\r\n'):format(#data, data)))
	c:close()
end)
eq({ status, text }, { nil, 'closed' }, 'a body cut off')
while not seen_error do
	utils.newsleeper():sleep(0.01)
end
eq(seen_error, 'closed', 'the handler saw the body cut off')
-- Bad chunked framing inside a multipart body: 400.
status = raw('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n' .. ct .. '\r\n', function(c)
	assert(c:write('zz\r\n'))
end)
eq(status, 400, 'bad framing')
-- Keep-alive after a whole multipart body.
do
	local c = assert(io.tcp.connect('127.0.0.1', port))
	local b = body({ 'Content-Disposition: form-data; name="a"\r\n\r\n1' }, '--')
	local req = ('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n%s'):format(#b, ct, b)
	assert(c:write(req .. req))
	for _ = 1, 2 do
		local r = assert(c:read('HTTPResponse'))
		eq(r.status, 200)
		eq(c:read(tonumber(r.headers['content-length'])), 'a=1')
	end
	c:close()
end
srv:close()
