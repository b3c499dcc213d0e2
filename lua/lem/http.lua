-- lem.http: registers the read formats 'HTTPRequest' and 'HTTPResponse'
-- (native half: src/http.rs, lem.http.core). See LEM-API.md "lem.http".
local core = require 'lem.http.core'
require 'lem.io'

local M = {}

-- The largest head read('HTTPRequest'/'HTTPResponse') accepts, in bytes.
M.head_limit = core.head_limit

-- The Date header value for now (formatted once a second).
M.date = core.date

local match, tonumber, concat = string.match, tonumber, table.concat

-- http.read_chunked(stream [, max]) -> body | nil, err: a chunked body
-- (RFC 9112 §7.1), trailer fields skipped. err is 'parse error' for bad
-- framing, 'oversized' past max bytes, or the stream's own error. Shared
-- by the server (request bodies) and the client (responses).
function M.read_chunked(stream, max)
	local parts, total = {}, 0
	while true do
		local line, err = stream:read('*l')
		if not line then
			return nil, err
		end
		local size = match(line, '^(%x+)[ \t]*;?[^\r]*\r?$')
		if not size or #size > 15 then
			return nil, 'parse error'
		end
		size = tonumber(size, 16)
		if size == 0 then
			break
		end
		total = total + size
		if max and total > max then
			return nil, 'oversized'
		end
		local data
		data, err = stream:read(size)
		if not data then
			return nil, err
		end
		parts[#parts + 1] = data
		line, err = stream:read('*l')
		if not line then
			return nil, err
		end
		if line ~= '' and line ~= '\r' then
			return nil, 'parse error'
		end
	end
	-- Trailer fields, up to the empty line (ignored).
	while true do
		local line, err = stream:read('*l')
		if not line then
			return nil, err
		end
		if line == '' or line == '\r' then
			break
		end
	end
	return concat(parts)
end

return M
