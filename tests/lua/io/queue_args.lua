-- queue.wrap wants a stream: nil or a number is misuse, raised with the
-- function's name and the caller's position.
dofile('support.lua')
local queue = require 'lem.io.queue'

local err = checkerr("bad argument #1 to 'wrap' (stream expected, got no value)", queue.wrap)
checkerr("bad argument #1 to 'wrap' (stream expected, got number)", queue.wrap, 5)
assert(not err:find('queue.lua', 1, true), 'no internal position: ' .. err)
