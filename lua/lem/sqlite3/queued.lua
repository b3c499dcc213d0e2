-- lem.sqlite3.queued: lem.sqlite3 whose connections and statements wait
-- their turn instead of answering nil, 'busy'. Same classes, same methods;
-- stmt:get() / stmt:put() hold a statement across several calls.
-- See docs/sqlite3.md.
local sqlite3 = require 'lem.sqlite3'
local core = require 'lem.sqlite3.core'

local M = {}
for k, v in pairs(sqlite3) do
	M[k] = v
end

local open = core.open
function M.open(path, flags, options)
	return open(path, flags, options, true)
end

return M
