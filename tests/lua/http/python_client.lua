-- lem.http.server against Python's http.client: keep-alive over one
-- connection, a POST, HEAD, chunked upload.
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'

local port, url = common.spawn_app()
local script = tmpdir() .. '/client.py'
local f = assert(_G.io.open(script, 'w'))
f:write(([[
import http.client
c = http.client.HTTPConnection('127.0.0.1', %d, timeout=10)
for i in range(3):
    c.request('GET', '/n%%d' %% i)
    r = c.getresponse()
    assert r.status == 200, r.status
    assert r.read() == b'Hello, /n%%d!\n' %% i
    assert r.getheader('Server') == 'lem'
sock = c.sock
c.request('POST', '/echo', body=b'x' * 100000, headers={'Content-Type': 'application/octet-stream'})
r = c.getresponse()
assert r.status == 200 and r.read() == b'x' * 100000
c.request('HEAD', '/h')
r = c.getresponse()
assert r.status == 200 and r.getheader('Content-Length') == '11' and r.read() == b''
c.request('POST', '/echo', body=iter([b'ab', b'cd']), encode_chunked=True)
r = c.getresponse()
assert r.read() == b'abcd'
assert c.sock is sock, 'one connection'
print('ok')
]]):format(port))
f:close()
eq(common.run('python3 ' .. script), 'ok\n', 'python client')
common.quit(url)
