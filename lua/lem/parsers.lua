-- lem.parsers: the read formats (native half: src/parsers/, lem.parsers.core).
-- See docs/parsers.md.
local core = require 'lem.parsers.core'

local type = type

local M = {}

-- Format name -> parser; native modules add entries (lem.http adds
-- 'HTTPRequest' and 'HTTPResponse').
M.lookup = core.lookup

local lookup = M.lookup

-- newreader(readp) -> read: a read method built on a low-level
-- readp(self, parser, ...), as LEM's objects build theirs. Formats are
-- resolved here: nil (what is available), a count, or a lookup name.
function M.newreader(readp)
	return function(self, fmt, ...)
		if fmt == nil then
			return readp(self, lookup.available)
		elseif type(fmt) == 'number' then
			return readp(self, lookup.count, fmt)
		end
		local parser = lookup[fmt]
		if parser == nil then
			error("bad argument #1 to 'read' (invalid format)", 2)
		end
		return readp(self, parser, ...)
	end
end

return M
