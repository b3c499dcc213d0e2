-- lem.sqlite3: SQLite (built in), each connection's calls on a thread of
-- its own (or, opened with {inline = true}, on the loop thread).
-- A connection is used by one coroutine at a time: another gets
-- nil, 'busy' (lem.sqlite3.queued waits its turn instead). The native half
-- is src/protocols/sqlite3/. See docs/sqlite3.md.
local core = require 'lem.sqlite3.core'

local error, select = error, select

local M = {}
for _, k in ipairs { 'READONLY', 'READWRITE', 'CREATE', 'URI', 'NOMUTEX',
		'FULLMUTEX', 'SHAREDCACHE', 'PRIVATECACHE', 'version' } do
	M[k] = core[k]
end

local Connection, Statement = core.Connection, core.Statement
M.Connection, M.Statement = Connection, Statement

local open = core.open
function M.open(path, flags, options)
	return open(path, flags, options, false)
end

local next_row = Statement._next

-- for row in stmt:rows() do ... end: one row a turn (stepped ahead in
-- batches); the statement is reset at the end. A failure raises.
function Statement:rows()
	return function()
		local row, err = next_row(self)
		if row == false then error(err, 2) end
		return row
	end
end

-- for row in db:rows(sql, ...) do ... end: a statement of its own,
-- finalized at the end (or when collected, if the loop is left early).
function Connection:rows(sql, ...)
	local stmt, err = self:prepare(sql)
	if not stmt then error(err, 2) end
	if select('#', ...) > 0 then
		local ok, berr = stmt:bind(...)
		if not ok then
			stmt:finalize()
			error(berr, 2)
		end
	end
	local done = false
	return function()
		if done then return nil end
		local row, rerr = next_row(stmt)
		if row == false then
			done = true
			stmt:finalize()
			error(rerr, 2)
		elseif row == nil then
			done = true
			stmt:finalize()
		end
		return row
	end
end

return M
