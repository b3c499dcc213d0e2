-- Unregistering the last handler of a signal restores its default action
-- (SIG_DFL), not the disposition lem inherited: run under a shell that
-- ignores SIGUSR1, the signal must not be ignored afterwards.
local support = dofile('support.lua')
local signal = require 'lem.signal'

-- Whether signal n is in this process's SigIgn mask.
local function ignored(n)
	local f = assert(io.open('/proc/self/status'))
	local s = f:read('*a')
	f:close()
	local hex = assert(s:match('SigIgn:%s*(%x+)'))
	local pos = #hex - math.floor((n - 1) / 4)
	local digit = tonumber(hex:sub(pos, pos), 16)
	return math.floor(digit / 2 ^ ((n - 1) % 4)) % 2 == 1
end

local USR1 = signal.lookup('USR1')
if arg[1] ~= 'child' then
	local cmd = ("trap '' USR1; exec '%s' signal/unregister_default.lua child"):format(arg[-1])
	eq(support.exec("sh -c \"" .. cmd .. "\""), 0, 'the child passed')
	return
end

assert(ignored(USR1), 'inherited: ignored')
local function h() end
assert(signal.register('USR1', h))
assert(not ignored(USR1), 'caught while registered')
assert(signal.unregister('USR1', h))
assert(not ignored(USR1), 'default action after the last unregister, not the inherited SIG_IGN')

-- SIGPIPE stays ignored (lem always ignores it).
local PIPE = signal.lookup('PIPE')
assert(ignored(PIPE), 'SIGPIPE ignored')
assert(signal.register('PIPE', h))
assert(signal.unregister('PIPE', h))
assert(ignored(PIPE), 'SIGPIPE ignored again after unregister')
