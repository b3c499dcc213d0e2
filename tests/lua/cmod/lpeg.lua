-- A standard Lua C module loads with require: Debian's lua-lpeg resolves the
-- Lua C API against the lem executable (see build.rs), calls back into Lua
-- (function captures) and raises Lua errors.
dofile('support.lua')

-- Found by the default package.cpath, as lua5.4 (luajit) finds it: the
-- harness runs this script with LUA_CPATH unset.
assert(os.getenv('LUA_CPATH') == nil and os.getenv('LUA_CPATH_5_4') == nil)

local ok, lpeg = pcall(require, 'lpeg')
assert(ok, tostring(lpeg) .. '\n(install lua-lpeg: scripts/deps)')
assert(type(lpeg.version()) == 'string')

local P, R, S, V, C, Ct, Cs = lpeg.P, lpeg.R, lpeg.S, lpeg.V, lpeg.C, lpeg.Ct, lpeg.Cs

-- Simple patterns: match returns the position after the match.
eq(lpeg.match(P'ab'^1, 'ababx'), 5, 'repetition')
eq(lpeg.match(P'ab'^1, 'xab'), nil, 'anchored')
eq(lpeg.type(P'a'), 'pattern', 'lpeg.type')
eq(Cs((P'a' / 'o' + 1)^0):match('banana'), 'bonono', 'substitution')
eq(Ct((C(R'az'^1) + 1)^0):match('one, two;three'), { 'one', 'two', 'three' }, 'captures')

-- A grammar: arithmetic with precedence, folded by Lua functions that lpeg
-- (C) calls.
local space = S' \t'^0
local function tok(p) return p * space end
local number = C(R'09'^1 * (P'.' * R'09'^1)^-1) / tonumber * space

local function fold(t)
	local acc = t[1]
	for i = 2, #t, 2 do
		local op, v = t[i], t[i + 1]
		if op == '+' then acc = acc + v
		elseif op == '-' then acc = acc - v
		elseif op == '*' then acc = acc * v
		else acc = acc / v end
	end
	return acc
end

local calc = space * P{
	'Exp',
	Exp = Ct(V'Term' * (tok(C(S'+-')) * V'Term')^0) / fold,
	Term = Ct(V'Factor' * (tok(C(S'*/')) * V'Factor')^0) / fold,
	Factor = number + tok'(' * V'Exp' * tok')',
} * -1

eq(calc:match('1 + 2 * 3'), 7, '1 + 2 * 3')
eq(calc:match('(1 + 2) * 3'), 9, '(1 + 2) * 3')
eq(calc:match('10 - 4 - 3'), 3, 'left associative')
eq(calc:match(' 7 / 2 '), 3.5, '7 / 2')
eq(calc:match('2 * (3 + 4) * 5'), 70, 'nested')
eq(calc:match('1 +'), nil, 'incomplete')
eq(calc:match('(1'), nil, 'unbalanced')

-- Errors from C code arrive as Lua errors; so do errors in Lua callbacks.
checkerr('bad argument', lpeg.match, P'a', 'a', {})
checkerr('boom', lpeg.match, P'a' / function() error('boom') end, 'a')

-- The module works from a coroutine other than the main one.
local co = coroutine.wrap(function(s) return calc:match(s) end)
eq(co('6 * 7'), 42, 'in a coroutine')

print('ok')
