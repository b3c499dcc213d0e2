-- lem.http.multipart: multipart/form-data bodies (RFC 7578) read as a
-- stream of parts, each part's body in pieces, so an upload never has to
-- be in memory whole. The delimiters and part heads are found in Rust
-- (src/protocols/http/multipart.rs: core.multipart_scan, core.part_head);
-- here only what the scanner could not decide yet is kept (fewer bytes
-- than a delimiter and its padding). The server's req:multipart() gives
-- it the request's body. See docs/http-multipart.md.
local io = require 'lem.io'
local core = require 'lem.http.core'

local type, tostring, pairs, error, setmetatable = type, tostring, pairs, error, setmetatable
local format, match, gmatch, sub, lower = string.format, string.match, string.gmatch, string.sub, string.lower
local concat = table.concat
local scan, part_head = core.multipart_scan, core.part_head
local remove = os.remove

local M = {}

-- The defaults of the limits (opts of multipart.new and req:multipart).
M.max_parts = 100               -- parts in a body
M.max_fields = 100              -- parts without a filename
M.max_part = 10 * 1024 * 1024   -- bytes of one part's body
M.max_head = 8192               -- bytes of one part's head

local limits = { max_parts = true, max_fields = true, max_part = true, max_head = true }

-- multipart.boundary(content_type) -> boundary | nil, err: the boundary
-- parameter of a multipart/form-data Content-Type (1 to 70 characters,
-- RFC 2046 §5.1.1), quoted or not.
function M.boundary(ct)
	if type(ct) ~= 'string' then
		return nil, 'not multipart'
	end
	local mt, params = match(ct, '^[ \t]*([^; \t]*)(.*)$')
	if lower(mt) ~= 'multipart/form-data' then
		return nil, 'not multipart'
	end
	local b
	for p in gmatch(params, '[^;]+') do
		local k, v = match(p, '^[ \t]*([^=]-)[ \t]*=[ \t]*(.-)[ \t]*$')
		if k and lower(k) == 'boundary' then
			b = match(v, '^"(.*)"$') or v
		end
	end
	if not b or #b < 1 or #b > 70 or match(b, "[^%w'()+_,%-./:=? ]") or sub(b, -1) == ' ' then
		return nil, 'bad boundary'
	end
	return b
end

-- The parts of one body, read in order (a Parts object, callable).
local Parts = {}
Parts.__index = Parts
M.Parts = Parts

-- One part: name, filename, type, headers; its body read in pieces.
local Part = {}
Part.__index = Part
M.Part = Part

-- multipart.new(read, boundary [, opts]) -> parts: the parts of a body
-- whose bytes read() returns piece by piece (a string, or nil, 'eof' at
-- the end, or nil, err).
function M.new(read, boundary, opts)
	if type(read) ~= 'function' then
		error(format("bad argument #1 to 'new' (function expected, got %s)", type(read)), 2)
	end
	if type(boundary) ~= 'string' or boundary == '' then
		error("bad argument #2 to 'new' (a boundary expected)", 2)
	end
	local self = setmetatable({
		_read = read,
		_delim = '\r\n--' .. boundary,
		-- The body's bytes not yet given out; the CR LF makes the first
		-- delimiter look like the others.
		_buf = '\r\n',
		_state = 'preamble',
		_parts = 0,
		_fields = 0,
		max_parts = M.max_parts,
		max_fields = M.max_fields,
		max_part = M.max_part,
		max_head = M.max_head,
	}, Parts)
	if opts ~= nil then
		if type(opts) ~= 'table' then
			error(format("bad argument #3 to 'new' (table expected, got %s)", type(opts)), 2)
		end
		for k, v in pairs(opts) do
			if not limits[k] then
				error(format("bad argument #3 to 'new' (unknown option %s)", tostring(k)), 2)
			end
			if type(v) ~= 'number' or v < 0 then
				error(format("bad argument #3 to 'new' (option %s must be a number, not %s)", k, tostring(v)), 2)
			end
			self[k] = v
		end
	end
	return self
end

-- The body failed (or is malformed): every later call says so.
local function fail(self, err)
	self.error = err
	self._state = 'done'
	self._buf = ''
	return nil, err
end

-- Read the next piece of the body into the buffer.
local function fill(self)
	local data, err = self._read()
	if not data then
		if err == 'eof' then
			err = 'truncated'
		end
		return fail(self, err)
	end
	self._buf = self._buf .. data
	return true
end

-- After the close delimiter: the epilogue is read and dropped (up to
-- max_part bytes), so that the whole body has been read (the server then
-- keeps the connection).
local function drain(self)
	local read, left = self._read, self.max_part
	while left >= 0 do
		local data = read()
		if not data then
			return
		end
		left = left - #data
	end
end

-- The next bytes of the current part's body: a string, or nil at its end
-- (or nil, err). Also used to skip the preamble and unread parts.
local function piece(self, part)
	local state = self._state
	if state ~= 'body' and state ~= 'preamble' then
		return nil, self.error
	end
	while true do
		local buf = self._buf
		local n, what, at = scan(buf, self._delim)
		if what == 'bad' then
			return fail(self, 'bad delimiter')
		end
		local data
		if n > 0 then
			data = sub(buf, 1, n)
			if part then
				local size = part.size + n
				part.size = size
				if size > self.max_part then
					return fail(self, 'part too large')
				end
			end
		end
		if what == 'next' then
			self._buf = sub(buf, at)
			self._state = 'head'
		elseif what == 'end' then
			self._buf = ''
			self._state = 'end'
			drain(self)
		elseif n > 0 then
			self._buf = sub(buf, n + 1)
		end
		if data then
			return data
		end
		if what then
			return nil
		end
		local ok, err = fill(self)
		if not ok then
			return nil, err
		end
	end
end

-- parts:next() -> part | nil (no more parts) | nil, err. What is left of
-- the part before is skipped.
function Parts:next()
	local state = self._state
	if state == 'done' or state == 'end' then
		return nil, self.error
	end
	local cur = self._current
	if cur and not cur._done or state == 'preamble' then
		while true do
			local data, err = piece(self, cur)
			if not data then
				if err then
					return nil, err
				end
				break
			end
		end
		if cur then
			cur._done = true
		end
		state = self._state
		if state == 'end' then
			return nil
		end
	end
	-- The head of the next part.
	while true do
		local consumed, headers, name, filename = part_head(self._buf)
		if consumed and consumed > self.max_head then
			return fail(self, 'part head too large')
		elseif consumed then
			self._parts = self._parts + 1
			if self._parts > self.max_parts then
				return fail(self, 'too many parts')
			end
			if not filename then
				self._fields = self._fields + 1
				if self._fields > self.max_fields then
					return fail(self, 'too many fields')
				end
			end
			self._buf = sub(self._buf, consumed + 1)
			self._state = 'body'
			local part = setmetatable({
				name = name,
				filename = filename,
				type = headers['content-type'],
				headers = headers,
				size = 0,
				_parts = self,
			}, Part)
			self._current = part
			return part
		elseif consumed == false then
			return fail(self, headers)
		end
		if #self._buf > self.max_head then
			return fail(self, 'part head too large')
		end
		local ok, err = fill(self)
		if not ok then
			return nil, err
		end
	end
end

Parts.__call = Parts.next

-- part:read() -> piece | nil (the part's end) | nil, err: the next bytes
-- of the part's body, as they arrive.
function Part:read()
	if self._done then
		return nil
	end
	local parts = self._parts
	if parts._current ~= self then
		return nil
	end
	local data, err = piece(parts, self)
	if not data then
		self._done = true
		return nil, err
	end
	return data
end

-- part:chunks() -> iterator of the body's pieces (for data in
-- part:chunks() do ... end); an error ends it, and is in parts.error.
function Part:chunks()
	return function()
		return self:read()
	end
end

-- part:body() -> string | nil, err: the rest of the part's body whole
-- (at most max_part bytes).
function Part:body()
	local t = {}
	while true do
		local data, err = self:read()
		if not data then
			if err then
				return nil, err
			end
			return concat(t)
		end
		t[#t + 1] = data
	end
end

-- part:save(path | fn) -> bytes | nil, err: the rest of the part's body
-- written to a new file at path (removed again if the body fails), or
-- given piece by piece to fn (which may suspend).
function Part:save(dest)
	local total = 0
	if type(dest) == 'function' then
		while true do
			local data, err = self:read()
			if not data then
				if err then
					return nil, err
				end
				return total
			end
			total = total + #data
			dest(data)
		end
	end
	if type(dest) ~= 'string' then
		error(format("bad argument #1 to 'save' (a path or a function expected, got %s)", type(dest)), 2)
	end
	local f, ferr = io.open(dest, 'w')
	if not f then
		return nil, ferr
	end
	while true do
		local data, err = self:read()
		if not data then
			f:close()
			if err then
				remove(dest)
				return nil, err
			end
			return total
		end
		total = total + #data
		local ok, werr = f:write(data)
		if not ok then
			f:close()
			remove(dest)
			return nil, werr
		end
	end
end

return M
