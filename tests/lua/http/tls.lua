-- TLS: a certificate made at test time (openssl), lem.http.server over
-- io.tls.listen, curl and lem.http.client over https (CA file, insecure
-- mode), and the errors for an unknown issuer and a name mismatch.
dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local io = require 'lem.io'
local client = require 'lem.http.client'

local ca, cert, key = dofile('support.lua').certs()

local port = common.spawn_app(('tls %s %s'):format(cert, key))
local url = ('https://localhost:%d'):format(port)

-- curl verifies against the CA and keeps the connection alive.
local out = common.run(('curl -sv --cacert %s %s/a %s/b 2>&1'):format(ca, url, url))
assert(out:find('Hello, /a!'), out)
assert(out:find('Hello, /b!'), out)
assert(out:find('Re%-using existing connection'), out)

-- lem.http.client with the CA file.
local c = client.new({ tls = { cafile = ca } })
local res = assert(c:get(url .. '/lem'))
eq(res.status, 200, 'status over TLS')
eq(res:body(), 'Hello, /lem!\n', 'body over TLS')
res = assert(c:request('POST', ('https://127.0.0.1:%d/echo'):format(port), nil, ('z'):rep(100000)))
eq(res:body(), ('z'):rep(100000), 'POST over TLS, by IP')
c:close()

-- A raw TLS stream with ALPN offered.
local s = assert(io.tls.connect('localhost', port, { cafile = ca, alpn = { 'http/1.1' } }))
assert(s:write('GET /raw HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'))
local all = s:read('*a')
assert(all:find('Hello, /raw!'), all)
s:close()

-- Errors name the host and the reason.
local r, err = io.tls.connect('localhost', port)
eq(r, nil, 'unknown issuer')
eq(err, ("tls error with 'localhost:%d': certificate has an unknown issuer"):format(port), 'unknown issuer text')
r, err = io.tls.connect('127.0.0.1', port, { cafile = ca, sni = 'example.org' })
eq(r, nil, 'name mismatch')
eq(err, ("tls error with '127.0.0.1:%d': certificate name mismatch"):format(port), 'name mismatch text')
-- Insecure mode accepts it.
s = assert(io.tls.connect('127.0.0.1', port, { insecure = true }))
s:close()

-- Without a CA file the system trust store decides: a child lem whose
-- SSL_CERT_FILE names the test CA trusts the server (the store is read once
-- per process, hence the child).
local probe = ("local s, e = require('lem.io').tls.connect('localhost', %d) io.write(s and 'trusted' or e)"):format(port)
eq(common.run(("SSL_CERT_FILE=%s '%s' -e \"%s\""):format(ca, arg[-1], probe)), 'trusted', 'system trust store')

-- The server survives a client that is not speaking TLS.
local answer = common.raw(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n') or ''
assert(not answer:find('^HTTP'), answer)
eq(common.run(('curl -s --cacert %s %s/after'):format(ca, url)), 'Hello, /after!\n', 'served after')
eq(common.run(('curl -s --cacert %s %s/quit'):format(ca, url)), 'bye\n', 'quit')
