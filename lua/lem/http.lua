-- lem.http: registers the read formats 'HTTPRequest' and 'HTTPResponse',
-- and those of chunked bodies (native half: src/http/, lem.http.core);
-- http.read_chunked. See docs/http.md.
local core = require 'lem.http.core'
require 'lem.io'
local utils = require 'lem.utils'

local M = {}

-- The largest head read('HTTPRequest'/'HTTPResponse') accepts, in bytes.
M.head_limit = core.head_limit

-- The Date header value for now (formatted once a second).
M.date = core.date

local concat = table.concat
local now = utils.now

-- stream:read(fmt) before deadline, if there is one (utils.now() time):
-- the read's timeout is the time left.
local function read(stream, deadline, fmt)
	if deadline then
		local left = deadline - now()
		if left <= 0 then
			return nil, 'timeout'
		end
		stream:settimeout(left)
	end
	return stream:read(fmt)
end

-- The body's pieces as a stack whose strings shrink upwards: each new one
-- is merged with those below it that are not longer, so a body sent in
-- many small chunks is a few strings (O(n log n) copying), not a string
-- per chunk.
local function gather(parts, data)
	local n = #parts + 1
	parts[n] = data
	while n > 1 and #parts[n - 1] <= #parts[n] do
		parts[n - 1] = parts[n - 1] .. parts[n]
		parts[n] = nil
		n = n - 1
	end
end

local function read_body(stream, max, deadline, charge)
	local parts, total = {}, 0
	while true do
		local size, err = read(stream, deadline, 'HTTPChunkSize')
		if not size then
			return nil, err
		end
		if size == 0 then
			break
		end
		total = total + size
		if max and total > max then
			return nil, 'oversized'
		end
		local data, ok
		data, err = read(stream, deadline, size)
		if not data then
			return nil, err
		end
		-- What the body holds counts against the input budget.
		if not charge:add(#data) then
			return nil, 'out of buffer space'
		end
		gather(parts, data)
		ok, err = read(stream, deadline, 'HTTPChunkEnd')
		if not ok then
			return nil, err
		end
	end
	local ok, err = read(stream, deadline, 'HTTPTrailers')
	if not ok then
		return nil, err
	end
	return concat(parts)
end

local function read_chunked(stream, max, deadline)
	local charge = core.charge()
	local body, err = read_body(stream, max, deadline, charge)
	charge:release()
	return body, err
end

-- http.read_chunked(stream [, max [, deadline]]) -> body | nil, err: a
-- chunked body (RFC 9112 §7.1), its trailer fields checked and skipped.
-- The framing is read with the formats 'HTTPChunkSize', 'HTTPChunkEnd'
-- and 'HTTPTrailers' (src/http/chunked.rs), so a chunk line is hex digits
-- and extensions and nothing else. err is 'parse error' for bad framing,
-- 'oversized' past max bytes, 'out of buffer space' when the input
-- budget (io.setbudget) is spent, 'timeout' past deadline (in utils.now()
-- time: each read's timeout is set to the time left, and stays set so
-- after), or the stream's own error. Shared by the server (request
-- bodies) and the client (responses).
M.read_chunked = read_chunked

return M
