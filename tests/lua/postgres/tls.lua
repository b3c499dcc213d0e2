-- lem.postgres over TLS (sslmode): a cluster with ssl=on and a certificate
-- from a CA made here; require (no verification), verify-full with the CA
-- (and refused without it, or for the wrong name), verify-ca (the chain,
-- not the name), prefer, disable; client certificates (mutual TLS); and a
-- server without TLS refusing require.
dofile('support.lua')
local support = dofile('support.lua')
local postgres = require 'lem.postgres'
local S = dofile('postgres/data/server.lua')

-- Readable by the server, which runs as nobody when the tests run as root.
local p = _G.io.popen('mktemp -d /tmp/lem-pgtls-XXXXXX')
local dir = p:read('*l')
p:close()
local ca = support.certs(dir)
assert(support.exec(('cd %s && chmod 600 key.pem && chmod 755 . && { [ "$(id -u)" != 0 ] || chown nobody key.pem cert.pem; }')
	:format(dir)) == 0, 'the key is the server user\'s')

local srv = S.start { 'ssl=on', 'ssl_cert_file=' .. dir .. '/cert.pem', 'ssl_key_file=' .. dir .. '/key.pem' }
local base = ('host=127.0.0.1 port=%d user=postgres dbname=postgres '):format(srv.port)
local function ssl(db)
	return db:exec('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')[1][1]
end

local db = assert(postgres.connect(base .. 'sslmode=require'))
eq(ssl(db), 't', 'require: TLS')
eq(db:exec('SELECT 1 + 1')[1][1], '2', 'queries over TLS')
local big = string.rep('x', 4 * 1048576)
eq(db:exec('SELECT length($1)', big)[1][1], tostring(#big), '4 MiB over TLS')
db:close()
db = assert(postgres.connect(base .. 'sslmode=verify-full sslrootcert=' .. ca))
eq(ssl(db), 't', 'verify-full with the CA')
db:close()
local ok, err = postgres.connect(base .. 'sslmode=verify-full')
assert(not ok and err:find('tls error', 1, true), 'verify-full without the CA: ' .. tostring(err))
ok, err = postgres.connect(('host=localhost hostaddr=127.0.0.1 port=%d user=postgres sslmode=verify-full sslrootcert=%s')
	:format(srv.port, ca))
assert(ok, 'localhost is in the certificate: ' .. tostring(err))
ok:close()
db = assert(postgres.connect(base))
eq(ssl(db), 't', 'prefer (the default) takes TLS when offered')
db:close()
db = assert(postgres.connect(base .. 'sslmode=disable'))
eq(ssl(db), 'f', 'disable')
db:close()
-- verify-ca checks the chain but not the name (as libpq); verify-full
-- checks both.
local other = ('host=lem-test.invalid hostaddr=127.0.0.1 port=%d user=postgres dbname=postgres '):format(srv.port)
db = assert(postgres.connect(other .. 'sslmode=verify-ca sslrootcert=' .. ca))
eq(ssl(db), 't', 'verify-ca with another name')
db:close()
ok, err = postgres.connect(other .. 'sslmode=verify-full sslrootcert=' .. ca)
eq(ok, nil, 'verify-full with another name')
assert(err:find('certificate name mismatch', 1, true), err)
ok, err = postgres.connect(other .. 'sslmode=verify-ca')
assert(not ok and err:find('certificate', 1, true), 'verify-ca without the CA: ' .. tostring(err))
-- The tls table: the same check from the options instead of sslrootcert.
db = assert(postgres.connect(base .. 'sslmode=verify-full', { tls = { cafile = ca } }))
eq(ssl(db), 't', 'verify-full with tls = {cafile = ...}')
db:close()
ok, err = postgres.connect(base .. 'sslmode=sometimes')
assert(not ok and err:find("invalid sslmode 'sometimes'", 1, true), err)
S.stop(srv)

-- Mutual TLS: a server that wants a client certificate signed by the CA
-- (hba clientcert=verify-ca), given as sslcert/sslkey or as the tls table.
local hba = dir .. '/hba.conf'
local f = assert(_G.io.open(hba, 'w'))
f:write('local all all trust\nhostssl all postgres 127.0.0.1/32 trust clientcert=verify-ca\n')
f:close()
assert(support.exec(('cp %s/key.pem %s/client.key && chmod 600 %s/client.key && chmod 644 %s')
	:format(dir, dir, dir, hba)) == 0)
local mtls = S.start { 'ssl=on', 'ssl_cert_file=' .. dir .. '/cert.pem', 'ssl_key_file=' .. dir .. '/key.pem',
	'ssl_ca_file=' .. ca, 'hba_file=' .. hba }
base = ('host=localhost hostaddr=127.0.0.1 port=%d user=postgres dbname=postgres '):format(mtls.port)
local cert, key = dir .. '/cert.pem', dir .. '/client.key'
db = assert(postgres.connect(base .. ('sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s'):format(ca, cert, key)))
eq(ssl(db), 't', 'a client certificate from sslcert and sslkey')
db:close()
db = assert(postgres.connect(base .. 'sslmode=require', { tls = { cert = cert, key = key } }))
eq(ssl(db), 't', 'a client certificate from the tls table')
db:close()
ok, err = postgres.connect(base .. 'sslmode=require')
eq(ok, nil, 'no client certificate: refused')
print('postgres without a client certificate: ' .. tostring(err))
S.stop(mtls)

local plain = S.start()
base = ('host=127.0.0.1 port=%d user=postgres dbname=postgres '):format(plain.port)
ok, err = postgres.connect(base .. 'sslmode=require')
eq({ ok, err }, { nil, 'server does not support SSL, but SSL was required' }, 'require without TLS')
db = assert(postgres.connect(base .. 'sslmode=prefer'))
eq(ssl(db), 'f', 'prefer falls back')
db:close()
S.stop(plain)
support.exec('rm -rf ' .. dir)

-- io.tls.upgrade itself: a closed stream, and a peer that is no TLS server.
local io = require 'lem.io'
local utils = require 'lem.utils'
local lsrv = assert(io.tcp.listen('127.0.0.1', 0))
local _, lport = lsrv:getsockname()
utils.spawn(function()
	local c = lsrv:accept()
	c:write('this is not TLS\r\n')
	c:close()
end)
local s = assert(io.tcp.connect('127.0.0.1', lport))
local t, e = io.tls.upgrade(s, 'localhost')
assert(not t and e:find('tls error with', 1, true), tostring(e))
assert(s:closed(), 'the plain stream is closed')
eq({ io.tls.upgrade(s, 'localhost') }, { nil, 'closed' }, 'upgrade of a closed stream')
lsrv:close()
