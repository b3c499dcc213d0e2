-- Glue run once at start-up: lets lem's suspending calls pass through
-- coroutines the user made with coroutine.create/wrap.
--
-- A suspending call yields a private marker. When a user coroutine yields
-- it, coroutine.resume does not hand it to the user: it yields the marker
-- on to its own coroutine (and so on up to the lem coroutine, which the
-- scheduler parks), then resumes the inner coroutine with whatever woke
-- the chain.
-- The second argument, on Lua 5.4, is a resume that also passes the
-- hook that guards a busy coroutine on to the one it resumes; the third
-- says the running task's doom ('cancelled', 'timeout' or nil).
local PENDING, guarded_resume, doomtext = ...

local coroutine = coroutine
local create, yield, status = coroutine.create, coroutine.yield, coroutine.status
local resume = guarded_resume or coroutine.resume
local error, select = error, select

local function pass(co, ok, ...)
	if ok and (...) == PENDING and status(co) == 'suspended' then
		return pass(co, resume(co, yield(PENDING)))
	end
	return ok, ...
end

function coroutine.resume(co, ...)
	return pass(co, resume(co, ...))
end

-- Lua 5.4's wrap adds the caller's position to a string error; 5.1's does not.
local level = _VERSION == 'Lua 5.1' and 0 or 2

-- As Lua 5.4's wrap, a coroutine that raised is closed (its to-be-closed
-- variables run) and the error is the one closing ends with. close is
-- true for a coroutine that was dead already ("cannot resume dead
-- coroutine").
local close = coroutine.close

local function unwrap(co, ok, ...)
	if ok then return ... end
	local err = ...
	if close and status(co) == 'dead' then
		local closed, cerr = close(co)
		if not closed then err = cerr end
	end
	-- A doom raised inside stays the bare word scripts compare.
	if type(err) == 'string' and level > 0 and err ~= doomtext() then
		error(err, level + 1)
	end
	error(err, 0)
end

function coroutine.wrap(f)
	local co = create(f)
	return function(...)
		return unwrap(co, pass(co, resume(co, ...)))
	end
end
