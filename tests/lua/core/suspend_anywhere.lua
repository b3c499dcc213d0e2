-- Suspending calls work inside pcall/xpcall, metamethods, for-in iterators
-- and load()ed chunks, while other coroutines keep running.
dofile('support.lua')
local utils = require 'lem.utils'

local ticks = 0
local ticking = true
utils.spawn(function()
	while ticking do ticks = ticks + 1; utils.yield() end
end)

local function nap()
	local before = ticks
	eq({ utils.newsleeper():sleep(0.001) }, { nil, 'timeout' }, 'nap')
	return ticks > before
end

-- pcall / xpcall, nested, with values and errors through them
eq({ pcall(nap) }, { true, true }, 'pcall')
eq({ xpcall(nap, debug.traceback) }, { true, true }, 'xpcall')
eq({ pcall(pcall, nap) }, { true, true, true }, 'nested pcall')
local ok, err = pcall(function() nap(); error('after nap') end)
eq(ok, false, 'error after suspension caught')
assert(err:find('after nap', 1, true), err)
-- (a message handler itself cannot yield, in Lua as here)
local ok2, err2 = xpcall(function() nap(); error({ code = 1 }) end, function(e) return e end)
eq({ ok2, err2 }, { false, { code = 1 } }, 'xpcall error value')

-- metamethods
local mt = {
	__index = function(_, k) nap(); return k .. '!' end,
	__add = function(a, b) nap(); return 42 end,
	__call = function(self, x) nap(); return x * 2 end,
	__eq = function() nap(); return true end,
	__lt = function() nap(); return true end,
	__concat = function() nap(); return 'cat' end,
	__len = function() nap(); return 7 end,
}
local has_len = _VERSION ~= 'Lua 5.1' -- 5.1 ignores __len on tables
local o = setmetatable({}, mt)
eq(o.foo, 'foo!', '__index')
eq(o + 1, 42, '__add')
eq(o(21), 42, '__call')
eq(o == setmetatable({}, mt), true, '__eq')
eq(o < o, true, '__lt')
eq(o .. 'x', 'cat', '__concat')
if has_len then eq(#o, 7, '__len') end

-- for-in iterators
local seen = {}
local function iter(_, i)
	nap()
	if i < 3 then return i + 1 end
end
for i in iter, nil, 0 do seen[#seen + 1] = i end
eq(seen, { 1, 2, 3 }, 'iterator')

-- load()ed chunks
local f = assert(load('local nap = ...; return nap() and "loaded"'))
eq(f(nap), 'loaded', 'loaded chunk')

-- a suspension from a chunk loaded with a reader function
local parts = { 'return ', '"read"' }
local g = assert(load(function() return table.remove(parts, 1) end))
eq(g(), 'read', 'load with reader')

ticking = false
assert(ticks > 0, 'the ticker ran')
print('ok')
