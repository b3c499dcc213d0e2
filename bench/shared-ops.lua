-- One kind of lem.shared operation n times, for bench/shared-instr.sh:
-- `lem bench/shared-ops.lua set|get|incr|loop n`. The dictionary first
-- gets its 1,000 keys and counters (so every operation finds its entry);
-- `loop` is the loop alone, without the call.
local shared = require 'lem.shared'
local op, N = arg[1], tonumber(arg[2]) or 0
local d = shared.dict('bench', '64m')
local keys, counters = {}, {}
for i = 1, 1000 do
	keys[i] = 'key' .. i
	counters[i] = 'counter' .. i
end
for i = 1, 1000 do
	d:set(keys[i], 'value')
	d:incr(counters[i], 1, 0)
end
if op == 'set' then
	for i = 1, N do d:set(keys[i % 1000 + 1], 'value') end
elseif op == 'get' then
	for i = 1, N do d:get(keys[i % 1000 + 1]) end
elseif op == 'incr' then
	for i = 1, N do d:incr(counters[i % 1000 + 1], 1, 0) end
elseif op == 'loop' then
	for i = 1, N do local _ = keys[i % 1000 + 1] end
else
	error('usage: shared-ops.lua set|get|incr|loop n')
end
