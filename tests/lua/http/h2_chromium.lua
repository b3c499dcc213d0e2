-- A real browser over HTTP/2: headless Chromium (driven by
-- http/data/h2_browser.py) loads a page from lem.http.server over
-- https:// (ALPN picks h2) and fetches 20 resources at once on the same
-- connection; the page and every fetch came over 'h2'. Skipped only when
-- no Chromium is installed (scripts/deps installs Debian's `chromium`).
local support = dofile('support.lua')
package.path = 'http/data/?.lua;' .. package.path
local common = require 'common'
local io = require 'lem.io'
local utils = require 'lem.utils'
local server = require 'lem.http.server'

local chromium = support.chromium()

local _, cert, key = support.certs()
local versions = {}
local srv = server.new(assert(io.tls.listen('127.0.0.1', 0, { cert = cert, key = key })), function(req, res)
	versions[req.version] = true
	local n = req.path:match('^/n/(%d+)$')
	if n then
		res.headers['Content-Type'] = 'text/plain'
		res[1] = n
	elseif req.path == '/' then
		res.headers['Content-Type'] = 'text/html'
		res[1] = '<!doctype html><title>over h2</title><p>hello'
	else
		res.status = 404
	end
end)
local _, port = srv:getsockname()
utils.spawn(function() srv:run() end)

local profile = tmpdir() .. '/chromium-h2'
assert(os.execute('mkdir -p ' .. profile))
local out = common.sh(('/usr/bin/python3 -B http/data/h2_browser.py %s https://localhost:%d/ %s 2>&1'):format(chromium, port, profile))
local got = {}
for k, v in out:gmatch('([^\t\n]+)\t([^\n]*)') do
	got[k] = v
end
local nums = {}
for i = 0, 19 do nums[#nums + 1] = tostring(i) end
eq(got, {
	title = 'over h2',
	protocol = 'h2',
	fetched = table.concat(nums, ','),
	['fetch protocols'] = 'h2',
}, 'what the browser saw: ' .. out)
eq(versions, { ['2.0'] = true }, 'every request came over HTTP/2')
srv:close()
