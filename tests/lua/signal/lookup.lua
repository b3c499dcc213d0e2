-- signal.lookup both ways; register/unregister/kill argument handling.
dofile('support.lua')
local signal = require 'lem.signal'

eq(signal.lookup('SIGTERM'), 15, 'SIGTERM')
eq(signal.lookup('term'), 15, 'term')
eq(signal.lookup('SigTerm'), 15, 'SigTerm')
eq(signal.lookup('sigint'), 2, 'sigint')
eq(signal.lookup('HUP'), 1, 'HUP')
eq(signal.lookup('KILL'), 9, 'KILL')
eq(signal.lookup('chld'), signal.lookup('SIGCHLD'), 'chld')
eq(signal.lookup('CLD'), signal.lookup('SIGCHLD'), 'CLD alias')
eq(signal.lookup('SIGNOPE'), nil, 'unknown name')
eq(signal.lookup('SIG'), nil, 'just SIG')
eq(signal.lookup(''), nil, 'empty')
eq(signal.lookup(15), 'SIGTERM', '15')
eq(signal.lookup(2), 'SIGINT', '2')
eq(signal.lookup(9), 'SIGKILL', '9')
eq(signal.lookup(signal.lookup('USR1')), 'SIGUSR1', 'round trip')
eq(signal.lookup(0), nil, '0')
eq(signal.lookup(1000), nil, '1000')
eq(signal.lookup(2.5), nil, '2.5')
checkerr('(string or number expected)', signal.lookup, {})

local f = function() end
eq({ signal.register('SIGNOPE', f) }, { nil, 'unknown signal' }, 'register unknown')
eq({ signal.unregister('SIGNOPE', f) }, { nil, 'unknown signal' }, 'unregister unknown')
checkerr("bad argument #1 to 'register' (signal name or number expected, got no value)", signal.register)
checkerr("bad argument #2 to 'register' (function expected, got no value)", signal.register, 'USR1')
checkerr("bad argument #2 to 'register' (function expected, got string)", signal.register, 'USR1', 'f')
-- SIGKILL and SIGSTOP cannot be caught
eq({ signal.register('KILL', f) }, { nil, 'Invalid argument' }, 'register KILL')
eq({ signal.register('SIGSTOP', f) }, { nil, 'Invalid argument' }, 'register STOP')
-- unregistering what was never registered is fine
eq(signal.unregister('USR2', f), true, 'unregister unknown handler')
-- by number
eq(signal.register(10, f), true, 'register by number')
eq(signal.unregister('usr1', f), true, 'unregister by name')

-- kill
eq(signal.kill(dofile('process/data/procs.lua').mypid(), 0), true, 'kill 0 on self')
eq({ signal.kill(0x7ffffff0, 'TERM') }, { nil, 'No such process' }, 'kill a missing pid')
eq({ signal.kill(1, 'NOPE') }, { nil, 'unknown signal' }, 'kill unknown signal')
checkerr("(signal name or number expected, got table)", signal.kill, 1, {})
checkerr("bad argument #1 to '", signal.kill, 'x', 'TERM')
