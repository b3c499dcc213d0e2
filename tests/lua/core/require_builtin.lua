-- Built-in modules load even when package.path/cpath point elsewhere, and
-- registered chunk names point at the repository's files.
dofile('support.lua')
package.path = '?.lua'
package.cpath = ''
package.loaded['lem.queue'] = nil
local queue = require 'lem.queue'
eq(type(queue.new), 'function', 'lem.queue loads')
eq(type(require 'lem.utils'.spawn), 'function', 'lem.utils loads')
eq(require 'lem.utils', require 'lem.utils', 'modules are cached')
local info = debug.getinfo(queue.new, 'S')
eq(info.source, '@lua/lem/queue.lua', 'chunk name of an embedded module')
local ok, err = pcall(require, 'lem.nonexistent')
eq(ok, false, 'unknown module')
assert(err:find("module 'lem.nonexistent' not found", 1, true), err)
print('ok')
