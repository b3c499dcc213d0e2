-- lem.http: registers the read formats 'HTTPRequest' and 'HTTPResponse'
-- (native half: src/http.rs, lem.http.core). See LEM-API.md "lem.http".
local core = require 'lem.http.core'
require 'lem.io'

local M = {}

-- The largest head read('HTTPRequest'/'HTTPResponse') accepts, in bytes.
M.head_limit = core.head_limit

-- The Date header value for now (formatted once a second).
M.date = core.date

return M
