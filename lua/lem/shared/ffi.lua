-- lem.shared on LuaJIT: a dictionary's get, set, add, replace, incr and
-- delete as ffi calls of plain C functions (src/shared/jit.rs), which
-- LuaJIT compiles into its traces, where a Lua C function would end one
-- and pay for the C API on both sides. src/shared/mod.rs loads this chunk
-- once with the functions' addresses (light userdata, so nothing is
-- exported by name) and the errors' texts; it returns a function that
-- puts the ffi methods into a new dictionary object, or nil when there is
-- no `ffi`, and then the C methods stay.
--
-- Every argument is checked here before a call: a call the checks do not
-- pass (another self, a key that is not a string, a numeric string...)
-- goes on, as a tail call with the very same arguments, to the object's
-- C method, which does what it always did and raises the same errors,
-- named as they were (a tail call leaves the script's frame as the
-- caller). The dictionary's pointer is an upvalue of the methods, never a
-- field a script can change.
local fns = ...
local found, ffi = pcall(require, 'ffi')
if not found or type(ffi) ~= 'table' then return nil end
local cast, new, typeof, tostr = ffi.cast, ffi.new, ffi.typeof, ffi.string
local type = type

local get_t = typeof('int (*)(const void *, const char *, size_t, void *, uint8_t *, uint32_t)')
local set_t = typeof('int (*)(const void *, int, const char *, size_t, int, const char *, size_t, double, double, uint32_t)')
local incr_t = typeof('int (*)(const void *, const char *, size_t, double, int, double, double, double *)')
local C_get, C_set, C_incr = cast(get_t, fns.get), cast(set_t, fns.set), cast(incr_t, fns.incr)
local errors = fns.errors

-- What a call gives besides its code, and where a string value comes out:
-- one of each for the state. A string longer than the buffer gets a
-- bigger one (up to 1 MiB; longer ones go by the C method). Between a call
-- and the reading of these nothing allocates, so no finalizer can run and
-- call in between; and were one to, each call keeps the buffer it passed
-- and its size (`b`, `c`), so what is read stays within that buffer.
local out = new(typeof('struct { double num; uint32_t flags; uint32_t len; }'))
local num = new('double[1]')
local buf_t = typeof('uint8_t[?]')
local MAXBUF = 1048576
local cap = 4096
local buf = new(buf_t, cap)

-- Codes: src/shared/jit.rs.
local GOT_STR, GOT_NUM, GOT_TRUE, GOT_FALSE, GOT_LIST = 1, 2, 3, 4, 5
local VAL_NIL, VAL_STR, VAL_NUM, VAL_TRUE, VAL_FALSE = 0, 1, 2, 3, 4
local SET, ADD, REPLACE = 0, 1, 2

return function(obj, dict)
	local p = cast('const void *', dict)

	local c_get = obj.get
	-- The value at `rc`, `GOT_STR` with its bytes in `b` (`c` bytes long)
	-- or a number in `out`; nil, true when the buffer was too short.
	local function value(rc, b, c)
		if rc == GOT_STR then
			local n = out.len
			if n > c then return nil, true end
			return tostr(b, n)
		elseif rc == GOT_NUM then return out.num
		end
		return rc == GOT_TRUE
	end
	function obj.get(...)
		local self, key = ...
		if self == obj and type(key) == 'string' then
			local klen = #key
			if klen > 0 and klen <= 65535 then
				for _ = 1, 2 do
					local b, c = buf, cap
					local rc = C_get(p, key, klen, out, b, c)
					if rc == 0 then return nil end
					if rc == GOT_LIST then return nil, 'value is a list' end
					local flags = out.flags
					local v, short = value(rc, b, c)
					if not short then
						if flags ~= 0 then return v, flags end
						return v
					end
					-- A longer string than the buffer holds: a bigger buffer
					-- (up to 1 MiB) and once more, or the C method.
					local n = out.len
					if n > MAXBUF then break end
					while cap < n do cap = cap * 2 end
					buf = new(buf_t, cap)
				end
			end
		end
		return c_get(...)
	end

	local function setter(mode, c_set)
		return function(...)
			local self, key, value, ttl, flags = ...
			if self == obj and type(key) == 'string' then
				local klen = #key
				if ttl == nil then ttl = 0 end
				if flags == nil then flags = 0 end
				if klen > 0 and klen <= 65535 and type(ttl) == 'number' and ttl >= 0
					and type(flags) == 'number' and flags >= 0 and flags <= 4294967295 and flags % 1 == 0 then
					local tv, rc = type(value), nil
					if tv == 'string' then
						rc = C_set(p, mode, key, klen, VAL_STR, value, #value, 0, ttl, flags)
					elseif tv == 'number' then
						rc = C_set(p, mode, key, klen, VAL_NUM, nil, 0, value, ttl, flags)
					elseif tv == 'boolean' then
						rc = C_set(p, mode, key, klen, value and VAL_TRUE or VAL_FALSE, nil, 0, 0, ttl, flags)
					elseif value == nil and mode == SET then
						rc = C_set(p, SET, key, klen, VAL_NIL, nil, 0, 0, ttl, flags)
					end
					if rc == 0 then return true
					elseif rc == 1 then return true, 'forcible'
					elseif rc then return nil, errors[-rc]
					end
				end
			end
			return c_set(...)
		end
	end
	obj.set = setter(SET, obj.set)
	obj.add = setter(ADD, obj.add)
	obj.replace = setter(REPLACE, obj.replace)

	local c_incr = obj.incr
	function obj.incr(...)
		local self, key, n, init, ttl = ...
		if self == obj and type(key) == 'string' and type(n) == 'number' then
			local klen = #key
			local ti = type(init)
			if ttl == nil then ttl = 0 end
			if klen > 0 and klen <= 65535 and (ti == 'number' or ti == 'nil')
				and type(ttl) == 'number' and ttl >= 0 then
				local rc = C_incr(p, key, klen, n, init and 1 or 0, init or 0, ttl, num)
				if rc == 0 then return num[0] end
				return nil, errors[-rc]
			end
		end
		return c_incr(...)
	end

	local c_delete = obj.delete
	function obj.delete(...)
		local self, key = ...
		if self == obj and type(key) == 'string' then
			local klen = #key
			if klen > 0 and klen <= 65535 then
				C_set(p, SET, key, klen, VAL_NIL, nil, 0, 0, 0, 0)
				return true
			end
		end
		return c_delete(...)
	end
end
