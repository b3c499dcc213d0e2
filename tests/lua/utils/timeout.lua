-- utils.timeout: results pass through, errors are raised again, a deadline
-- raises 'timeout' at the suspension point (pcall handlers run), nested
-- deadlines (the nearest wins), a timeout inside a cancelled task, and
-- argument errors.
dofile('support.lua')
local utils = require 'lem.utils'
local forever = utils.newsleeper()

eq({ utils.timeout(1, function(...) return ... end, 1, nil, 3) }, { 1, nil, 3 }, 'results')
eq(select('#', utils.timeout(1, function() return 1, nil end)), 2, 'result count')
local e = {}
local ok, err = pcall(utils.timeout, 1, function() error(e) end)
eq({ ok, err }, { false, e }, 'error raised again')

-- Past the deadline: the suspending call raises, cleanup runs.
local cleaned
eq({ utils.timeout(0.02, function()
	local ok, err = pcall(function() forever:sleep() end)
	cleaned = err
	error(err, 0)
end) }, { nil, 'timeout' }, 'timeout')
eq(cleaned, 'timeout', 'pcall saw the timeout')
-- A function that catches the timeout and returns: its results.
eq({ utils.timeout(0.02, function()
	pcall(function() forever:sleep() end)
	return 'caught'
end) }, { 'caught' }, 'caught timeout')
-- The deadline is gone after: suspending works again.
eq({ forever:sleep(0.01) }, { nil, 'timeout' }, 'plain sleep after')
-- A tail call of the suspending function.
eq({ utils.timeout(0.02, function() return forever:sleep() end) }, { nil, 'timeout' }, 'tail call')
eq({ utils.timeout(0, function() utils.yield() end) }, { nil, 'timeout' }, 'zero deadline')
eq({ utils.timeout(-1, function() return 'no suspension' end) }, { 'no suspension' }, 'nothing to interrupt')

-- Nested: the nearest deadline wins.
local t0 = utils.updatenow()
eq({ utils.timeout(5, function()
	local r, e = utils.timeout(0.02, function() forever:sleep() end)
	return 'inner', r, e
end) }, { 'inner', nil, 'timeout' }, 'inner deadline first')
eq({ utils.timeout(0.02, function()
	local r, e = utils.timeout(5, function() forever:sleep() end)
	return 'not reached', r, e
end) }, { nil, 'timeout' }, 'outer deadline first')
-- Both passed: the inner returns nil, 'timeout'; the outer's next
-- suspension raises again.
eq({ utils.timeout(0.01, function()
	local r, e = utils.timeout(0.01, function() forever:sleep(0.05) end)
	utils.yield()
	return 'not reached', r, e
end) }, { nil, 'timeout' }, 'both passed')
assert(utils.updatenow() - t0 < 4, 'no 5 s wait')

-- In a task: timeouts inside, and a cancel wins over a deadline.
local t = utils.task(function()
	local r, e = utils.timeout(0.01, function() forever:sleep() end)
	assert(r == nil and e == 'timeout')
	return utils.timeout(10, function() forever:sleep() end)
end)
utils.yield()
forever:sleep(0.05)
t:cancel()
eq({ t:join() }, { nil, 'cancelled' }, 'cancel inside a timeout')

-- Many deadlines that end early leave nothing behind.
for _ = 1, 5000 do utils.timeout(3600, function() end) end

checkerr("bad argument #1 to 'timeout' (number expected, got nil)", utils.timeout)
checkerr("bad argument #2 to 'timeout' (function expected, got nil)", utils.timeout, 1, nil)
print('ok')
