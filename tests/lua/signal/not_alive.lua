-- Watching a signal does not keep the process alive: the script ends with
-- handlers registered, and lem exits.
local signal = require 'lem.signal'
assert(signal.register('SIGUSR2', function() end))
assert(signal.register('SIGHUP', function() end))
assert(signal.register('SIGCHLD', function() end))
print('done')
