//! `lem.utils.core`: the native half of `lem.utils` (spawning, yielding,
//! sleepers, turns (their class is in `turn.rs`), suspend/resume, loop
//! time, exit, the pool's sizing, and what tasks and deadlines need from
//! the scheduler). The Lua half,
//! `lua/lem/utils.lua`, adds `utils.task` and `utils.timeout`. See
//! docs/utils.md.

use std::cell::Cell;
use std::ffi::{c_int, CStr};
use std::time::{Duration, Instant};

use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::pool;
use crate::runtime::scheduler::{self, Commit, Waiter};
use crate::runtime::turn;

static SLEEPER: &CStr = c"lem.Sleeper";

/// A sleeper: at most one coroutine sleeps on it at a time.
struct Sleeper {
    /// The last parking on this sleeper; stale once that parking ended.
    waiter: Cell<Option<Waiter>>,
}

use scheduler::prepare_or_raise as prepare;

/// utils.spawn(f, ...) -> true
unsafe extern "C-unwind" fn spawn(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_type(l, 1, ffi::LUA_TFUNCTION);
        // The stack is exactly the function and its arguments.
        scheduler::get().spawn(l, ffi::lua_gettop(l) - 1);
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// utils.yield()
unsafe extern "C-unwind" fn yield_(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        prepare(l, Commit::Yield);
        crate::runtime::scheduler::suspend(l)
    }
}

/// utils.newsleeper() -> sleeper
unsafe extern "C-unwind" fn newsleeper(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::push_object(
            l,
            SLEEPER,
            Sleeper {
                waiter: Cell::new(None),
            },
        );
        1
    }
}

/// sleeper:sleep([t]) -> ... | nil, 'timeout' | nil, 'busy'
unsafe extern "C-unwind" fn sleeper_sleep(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s: &Sleeper = lua::check_object(l, 1, SLEEPER);
        let deadline = if lua::is_none_or_nil(l, 2) {
            None
        } else {
            let t = lua::check_number(l, 2);
            let now = Instant::now();
            Some(if t > 0.0 {
                Duration::try_from_secs_f64(t)
                    .ok()
                    .and_then(|d| now.checked_add(d))
                    .unwrap_or(now + Duration::from_secs(100 * 365 * 86400))
            } else {
                now
            })
        };
        let sched = scheduler::get();
        if s.waiter.get().is_some_and(|w| sched.is_parked(w)) {
            return lua::fail(l, "busy");
        }
        s.waiter.set(Some(prepare(l, Commit::Sleep(deadline))));
        crate::runtime::scheduler::suspend(l)
    }
}

/// sleeper:wakeup(...) -> true | nil, 'not sleeping'
unsafe extern "C-unwind" fn sleeper_wakeup(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s: &Sleeper = lua::check_object(l, 1, SLEEPER);
        match s.waiter.take() {
            Some(w) if scheduler::get().wake_with_values(w, l, 2) => {
                ffi::lua_pushboolean(l, 1);
                1
            }
            _ => lua::fail(l, "not sleeping"),
        }
    }
}

/// utils.thisthread() -> coroutine
unsafe extern "C-unwind" fn thisthread(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let sched = scheduler::get();
        match sched.current() {
            Some(id) => sched.push_thread(l, id),
            None => {
                ffi::lua_pushthread(l);
            }
        }
        1
    }
}

/// utils.suspend() -> ... (the values given to utils.resume)
unsafe extern "C-unwind" fn suspend(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        prepare(l, Commit::Suspend);
        crate::runtime::scheduler::suspend(l)
    }
}

/// utils.resume(co, ...) -> true | nil, 'not suspended'
unsafe extern "C-unwind" fn resume(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_type(l, 1, ffi::LUA_TTHREAD);
        let sched = scheduler::get();
        let resumed = match sched.task_of(ffi::lua_tothread(l, 1)) {
            Some(id) => sched.resume_suspended(id, l, 2),
            None => false,
        };
        if resumed {
            ffi::lua_pushboolean(l, 1);
            1
        } else {
            lua::fail(l, "not suspended")
        }
    }
}

/// utils.now() -> seconds
unsafe extern "C-unwind" fn now(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        ffi::lua_pushnumber(l, scheduler::get().now());
        1
    }
}

/// utils.updatenow() -> seconds
unsafe extern "C-unwind" fn updatenow(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        ffi::lua_pushnumber(l, scheduler::get().update_now());
        1
    }
}

/// utils.exit([code]): ends the process once the loop regains control; the
/// caller never continues.
unsafe extern "C-unwind" fn exit(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let code = match ffi::lua_type(l, 1) {
            ffi::LUA_TNONE | ffi::LUA_TNIL => 0,
            ffi::LUA_TBOOLEAN => {
                if ffi::lua_toboolean(l, 1) != 0 {
                    0
                } else {
                    1
                }
            }
            _ => lua::check_integer(l, 1) as i32,
        };
        let sched = scheduler::get();
        sched.request_exit(code);
        if sched.current().is_some() && lua::is_yieldable(l) {
            prepare(l, Commit::Suspend);
            return crate::runtime::scheduler::suspend(l);
        }
        // Not yieldable (a sort comparator, say): unwind instead, so the caller
        // still does not continue; the loop exits before anyone sees the error.
        ffi::luaL_error(l, c"exiting".as_ptr());
        unreachable!()
    }
}

/// utils.poolconfig(delay, min, max)
unsafe extern "C-unwind" fn poolconfig(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let delay = lua::check_number(l, 1);
        if !(delay >= 0.0 && delay.is_finite()) {
            lua::arg_error(l, 1, c"delay must be a non-negative number of seconds");
        }
        let min = lua::check_integer(l, 2);
        if min < 0 {
            lua::arg_error(l, 2, c"min must not be negative");
        }
        let max = lua::check_integer(l, 3);
        if max < 1 {
            lua::arg_error(l, 3, c"max must be at least 1");
        }
        if min > max {
            lua::arg_error(l, 2, c"min must not be larger than max");
        }
        pool::global().configure(pool::Config {
            // A delay too long for a Duration (1e300) would panic: forever.
            delay: Duration::try_from_secs_f64(delay).unwrap_or(Duration::MAX),
            min: min as usize,
            max: max as usize,
        });
        0
    }
}

/// spawnthread(f, ...) -> coroutine: `utils.spawn` for `utils.task`, which
/// needs the task's thread to cancel it.
unsafe extern "C-unwind" fn spawnthread(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_type(l, 1, ffi::LUA_TFUNCTION);
        let sched = scheduler::get();
        let id = sched.spawn(l, ffi::lua_gettop(l) - 1);
        sched.push_thread(l, id);
        1
    }
}

/// The task of the coroutine argument, or `None` (not a lem task, or it
/// ended).
unsafe fn task_arg(l: *mut lua_State) -> Option<scheduler::TaskId> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::check_type(l, 1, ffi::LUA_TTHREAD);
        scheduler::get().task_of(ffi::lua_tothread(l, 1))
    }
}

/// cancel(co) -> bool: doom the task; false when it is not running.
unsafe extern "C-unwind" fn cancel(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let done = task_arg(l).is_some_and(|id| scheduler::get().doom(id, scheduler::CANCELLED));
        ffi::lua_pushboolean(l, done as c_int);
        1
    }
}

/// parked(co) -> bool: whether the task waits in a suspending call.
unsafe extern "C-unwind" fn parked(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let p = task_arg(l).is_some_and(|id| scheduler::get().is_task_parked(id));
        ffi::lua_pushboolean(l, p as c_int);
        1
    }
}

/// deadline(seconds) -> id: a deadline on the running task.
unsafe extern "C-unwind" fn deadline(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let t = lua::check_number(l, 1);
        if t.is_nan() {
            lua::arg_error(l, 1, c"seconds must be a number, not NaN");
        }
        let after = Duration::try_from_secs_f64(t.max(0.0))
            .unwrap_or(Duration::from_secs(100 * 365 * 86400));
        let sched = scheduler::get();
        match sched.start_deadline(after) {
            Some(id) => {
                // Code that never suspends is reached too.
                sched.guard_now(l);
                ffi::lua_pushinteger(l, id as ffi::lua_Integer);
                1
            }
            None => scheduler::raise_outside(l),
        }
    }
}

/// undeadline(id) -> passed: the deadline's frame ended.
unsafe extern "C-unwind" fn undeadline(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let id = lua::check_integer(l, 1);
        let passed = scheduler::get().end_deadline(id as u32);
        ffi::lua_pushboolean(l, passed as c_int);
        1
    }
}

/// doomtext() -> 'cancelled' | 'timeout' | nil: the running task's doom.
pub(crate) unsafe extern "C-unwind" fn doomtext(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        match scheduler::get().current_doom() {
            0 => ffi::lua_pushnil(l),
            d => lua::push_str(l, scheduler::doom_text(d)),
        }
        1
    }
}

/// catcher(f): `f` takes the doom marker as a value where a suspending call
/// it protects was a tail call (see `scheduler::CATCHERS`).
unsafe extern "C-unwind" fn catcher(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_type(l, 1, ffi::LUA_TFUNCTION);
        if ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, scheduler::CATCHERS.as_ptr())
            != ffi::LUA_TTABLE
        {
            ffi::lua_pop(l, 1);
            ffi::lua_createtable(l, 0, 2);
            ffi::lua_pushvalue(l, -1);
            ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, scheduler::CATCHERS.as_ptr());
        }
        ffi::lua_pushvalue(l, 1);
        ffi::lua_pushboolean(l, 1);
        ffi::lua_rawset(l, -3);
        0
    }
}

/// worker() -> id, count: this worker's number and the worker count
/// (`1, 1` without `lem -w`).
unsafe extern "C-unwind" fn worker(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let (id, count) = crate::runtime::lifecycle::identity();
        ffi::lua_pushinteger(l, id as ffi::lua_Integer);
        ffi::lua_pushinteger(l, count as ffi::lua_Integer);
        2
    }
}

/// Default grace of a graceful stop outside `lem -w`, in seconds.
const GRACE: f64 = 10.0;

/// shutdown([grace]) -> started: begin a graceful stop (false if one is
/// under way).
unsafe extern "C-unwind" fn shutdown(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let default = crate::runtime::lifecycle::grace().unwrap_or(GRACE);
        let grace = lua::opt_number(l, 1, default);
        if grace.is_nan() || grace < 0.0 {
            lua::arg_error(l, 1, c"grace must be a non-negative number of seconds");
        }
        let grace =
            Duration::try_from_secs_f64(grace).unwrap_or(Duration::from_secs(100 * 365 * 86400));
        let started = crate::runtime::lifecycle::shutdown(grace);
        ffi::lua_pushboolean(l, started as c_int);
        1
    }
}

/// draining() -> bool: a graceful stop is under way.
unsafe extern "C-unwind" fn draining(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        ffi::lua_pushboolean(l, crate::runtime::lifecycle::draining() as c_int);
        1
    }
}

/// stall(ms | nil [, 'kill']): report a coroutine that holds the loop
/// longer than `ms` milliseconds without suspending (with `'kill'`, also
/// raise `'timeout'` in it); nil turns it off.
unsafe extern "C-unwind" fn stall(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let stall = if lua::is_none_or_nil(l, 1) {
            None
        } else {
            let ms = lua::check_number(l, 1);
            if ms.is_nan() || ms <= 0.0 {
                lua::arg_error(l, 1, c"milliseconds must be a positive number");
            }
            let kill = match lua::to_bytes(l, 2) {
                _ if lua::is_none_or_nil(l, 2) => false,
                Some(b"kill") => true,
                _ => lua::arg_error(l, 2, c"'kill' or nil expected"),
            };
            let after = Duration::try_from_secs_f64(ms / 1000.0)
                .unwrap_or(Duration::from_secs(100 * 365 * 86400));
            Some(scheduler::Stall { after, kill })
        };
        let sched = scheduler::get();
        sched.set_stall(stall);
        if stall.is_some() {
            // The running coroutine is watched from now on too.
            sched.guard_now(l);
        }
        0
    }
}

/// memlimit(bytes | size | nil): cap the Lua heap (`'512m'`, `2^30`;
/// nil or 0: no cap).
unsafe extern "C-unwind" fn memlimit(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let bytes = if lua::is_none_or_nil(l, 1) {
            0
        } else if ffi::lua_type(l, 1) == ffi::LUA_TNUMBER {
            let n = ffi::lua_tonumber(l, 1);
            if n.is_nan() || n < 0.0 {
                lua::arg_error(l, 1, c"size must be 0 or more bytes");
            }
            n.min(usize::MAX as f64) as usize
        } else {
            let size = lua::to_bytes(l, 1)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(crate::runtime::parse_size);
            match size {
                Some(n) => n,
                None => lua::arg_error(l, 1, c"size expected (bytes, or a number with k, m or g)"),
            }
        };
        crate::runtime::alloc::set_limit(scheduler::get().main_thread(), bytes);
        0
    }
}

/// memory() -> {lua =, buffers =, limit =}: bytes of Lua heap, bytes of
/// input buffered under the `io.setbudget` budget, and the cap (nil if
/// none).
unsafe extern "C-unwind" fn memory(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let heap = ffi::lua_gc(l, ffi::LUA_GCCOUNT, 0) as usize * 1024
            + ffi::lua_gc(l, ffi::LUA_GCCOUNTB, 0) as usize;
        let (_, limit) = crate::runtime::alloc::usage(scheduler::get().main_thread());
        let (_, buffered) = crate::runtime::parsers::budget::get();
        ffi::lua_createtable(l, 0, 3);
        ffi::lua_pushinteger(l, heap as ffi::lua_Integer);
        ffi::lua_setfield(l, -2, c"lua".as_ptr());
        ffi::lua_pushinteger(l, buffered as ffi::lua_Integer);
        ffi::lua_setfield(l, -2, c"buffers".as_ptr());
        if limit != 0 {
            ffi::lua_pushinteger(l, limit as ffi::lua_Integer);
            ffi::lua_setfield(l, -2, c"limit".as_ptr());
        }
        1
    }
}

const FUNCS: &[Reg] = &[
    (c"spawn", spawn),
    (c"yield", yield_),
    (c"newsleeper", newsleeper),
    (c"newturn", turn::newturn),
    (c"thisthread", thisthread),
    (c"suspend", suspend),
    (c"resume", resume),
    (c"now", now),
    (c"updatenow", updatenow),
    (c"exit", exit),
    (c"poolconfig", poolconfig),
    (c"spawnthread", spawnthread),
    (c"cancel", cancel),
    (c"parked", parked),
    (c"deadline", deadline),
    (c"undeadline", undeadline),
    (c"doomtext", doomtext),
    (c"catcher", catcher),
    (c"worker", worker),
    (c"shutdown", shutdown),
    (c"draining", draining),
    (c"stall", stall),
    (c"memlimit", memlimit),
    (c"memory", memory),
];

const SLEEPER_METHODS: &[Reg] = &[(c"sleep", sleeper_sleep), (c"wakeup", sleeper_wakeup)];

/// luaopen for `lem.utils.core`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::new_class(l, SLEEPER, SLEEPER_METHODS, None);
        ffi::lua_pop(l, 1);
        turn::register(l);
        lua::new_lib(l, FUNCS);
        ffi::lua_pushlightuserdata(l, crate::runtime::scheduler::doom_marker());
        ffi::lua_setfield(l, -2, c"DOOM".as_ptr());
        1
    }
}
