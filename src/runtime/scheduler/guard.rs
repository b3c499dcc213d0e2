//! Guards on code that never suspends: a count hook that, every
//! [`EVERY`] instructions, makes a running task raise its doom
//! (`'cancelled'`, or `'timeout'` past a deadline of `utils.timeout`), and
//! reports (or stops) a task that holds the loop past the stall limit
//! (`lem --stall MS`, `utils.stall`).
//!
//! The hook is set only while a task that needs it runs: one with a doom,
//! a pending deadline, or any task while a stall limit is on. Without
//! those a resume costs one test more, and Lua runs hook-free.
//!
//! On Lua 5.4 hooks are per thread: the task's thread gets it for the
//! resume, so does the thread that starts a deadline, coroutines made
//! meanwhile inherit it (`lua_newthread` copies it), and the coroutine
//! glue's `resume` ([`resume`]) passes it to a coroutine made earlier. A
//! thread left with the hook after its task stopped needing it removes
//! it the next time it fires. On LuaJIT hooks are global, so one
//! setting covers every coroutine; but compiled code never runs hooks, so
//! the JIT compiler is off while a guarded task runs: with it off and a
//! count hook set, traces compiled earlier are not entered either (a loop
//! that ran hot before its deadline is reached: tests/lua/utils/busy.lua;
//! see docs/utils.md).
//!
//! A hook set by the script (`debug.sethook`) wins: a thread that has one
//! is not guarded.

use std::ffi::c_int;
use std::time::{Duration, Instant};

use super::*;

/// Instructions between two checks: a check reads the clock (~25 ns), so
/// this keeps a guarded loop within a few percent of its speed, and a
/// busy loop is stopped within microseconds of its deadline.
pub(crate) const EVERY: c_int = 1000;

/// The stall limit (`utils.stall`).
#[derive(Clone, Copy)]
pub struct Stall {
    /// How long one resume may run.
    pub after: Duration,
    /// Raise `'timeout'` in the task past it (else only report).
    pub kill: bool,
}

/// The guard's state, in the scheduler.
pub(super) struct Guard {
    pub stall: Cell<Option<Stall>>,
    /// A guarded task runs (the hook has work to do).
    pub on: Cell<bool>,
    /// When the running task's resume started (for stalls).
    pub since: Cell<Instant>,
    /// This resume's stall was reported.
    pub reported: Cell<bool>,
}

impl Guard {
    pub fn new() -> Guard {
        Guard {
            stall: Cell::new(None),
            on: Cell::new(false),
            since: Cell::new(Instant::now()),
            reported: Cell::new(false),
        }
    }
}

impl Scheduler {
    /// Set (or with `None`, clear) the stall limit.
    pub fn set_stall(&self, stall: Option<Stall>) {
        self.guard.stall.set(stall);
    }

    /// The stall limit.
    pub fn stall(&self) -> Option<Stall> {
        self.guard.stall.get()
    }

    /// Whether task `id` (with doom bits `doom`) must run guarded.
    #[inline]
    pub(super) fn wants_guard(&self, id: TaskId, doom: u8) -> bool {
        doom != 0
            || self.guard.stall.get().is_some()
            || (self.live_deadlines.get() != 0 && self.deadlines.borrow().contains_key(&id))
    }

    /// Task `id`, on thread `t`, is about to be resumed guarded.
    ///
    /// # Safety
    /// `t` is the task's thread.
    pub(super) unsafe fn guard_start(&self, t: *mut lua_State) {
        // SAFETY: `t` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            self.guard.on.set(true);
            self.guard.since.set(Instant::now());
            self.guard.reported.set(false);
            hook_thread(t);
            #[cfg(feature = "luajit")]
            jit::off(self.main);
        }
    }

    /// The guarded resume of the task on thread `t` is over.
    ///
    /// # Safety
    /// `t` is the task's thread (alive: it is anchored until `finish`).
    pub(super) unsafe fn guard_end(&self, t: *mut lua_State) {
        // SAFETY: `t` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            self.guard.on.set(false);
            unhook_thread(t);
            #[cfg(feature = "luajit")]
            jit::on(self.main);
        }
    }

    /// The running task now needs its guard (it started a deadline, or
    /// was doomed while it runs): guard thread `l`, which runs it, from
    /// now on.
    ///
    /// # Safety
    /// `l` is the running thread.
    pub(crate) unsafe fn guard_now(&self, l: *mut lua_State) {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            if self.current.get() == NO_TASK {
                return;
            }
            if !self.guard.on.replace(true) {
                self.guard.since.set(Instant::now());
                self.guard.reported.set(false);
                #[cfg(feature = "luajit")]
                jit::off(l);
            }
            hook_thread(l);
        }
    }
}

/// Give `l` the guard's hook, unless it has a hook of its own.
unsafe fn hook_thread(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match ffi::lua_gethook(l) {
            None => {
                ffi::lua_sethook(l, Some(check), ffi::LUA_MASKCOUNT, EVERY);
            }
            Some(h) if std::ptr::fn_addr_eq(h, check as ffi::lua_Hook) => {}
            Some(_) => {}
        }
    }
}

/// Take the guard's hook off `l` (a hook of the script's stays).
unsafe fn unhook_thread(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if let Some(h) = ffi::lua_gethook(l) {
            if std::ptr::fn_addr_eq(h, check as ffi::lua_Hook) {
                ffi::lua_sethook(l, None, 0, 0);
            }
        }
    }
}

/// The count hook: raise the running task's doom, fire deadlines that
/// passed, report or stop a stall.
unsafe extern "C-unwind" fn check(l: *mut lua_State, _: *mut ffi::lua_Debug) {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let Some(s) = try_get() else {
            return;
        };
        if !s.guard.on.get() {
            // Left on a thread by a task that no longer needs it.
            unhook_thread(l);
            return;
        }
        s.fire_deadlines();
        if s.current_doom() != 0 && !hook::in_catcher(l) {
            raise_doom(l);
        }
        let Some(stall) = s.guard.stall.get() else {
            return;
        };
        let ran = s.guard.since.get().elapsed();
        if ran < stall.after {
            return;
        }
        if !s.guard.reported.replace(true) {
            report_stall(l, ran);
        }
        if stall.kill && !hook::in_catcher(l) {
            lua::push_str(l, "timeout");
            ffi::lua_error(l);
        }
    }
}

/// Write the stalling coroutine's traceback to stderr, as one message.
unsafe fn report_stall(l: *mut lua_State, ran: Duration) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if ffi::lua_checkstack(l, 4) == 0 {
            return;
        }
        let (id, count) = crate::runtime::lifecycle::identity();
        let who = if count > 1 {
            format!(" (worker {id})")
        } else {
            String::new()
        };
        let head = format!(
            "stall: a coroutine has held the loop for {:.0} ms without suspending{who}",
            ran.as_secs_f64() * 1000.0
        );
        lua::push_str(l, &head);
        let msg = ffi::lua_tostring(l, -1);
        ffi::luaL_traceback(l, l, msg, 0);
        let text = lua::to_bytes(l, -1).map(String::from_utf8_lossy);
        if let Some(text) = text {
            eprintln!("{}: {}", crate::runtime::progname(), text);
        }
        ffi::lua_pop(l, 2);
    }
}

/// `resume(co, ...)` for the coroutine glue (`lua/lem/coroutine.lua`), as
/// Lua 5.4's `coroutine.resume` but for one thing: while a guarded task
/// runs, the coroutine gets the guard's hook first (it may have been made
/// before the task needed it).
#[cfg(not(feature = "luajit"))]
pub(crate) unsafe extern "C-unwind" fn resume(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let co = ffi::lua_tothread(l, 1);
        if co.is_null() {
            lua::type_error(l, 1, "coroutine");
        }
        if try_get().is_some_and(|s| s.guard.on.get()) {
            hook_thread(co);
        }
        let narg = ffi::lua_gettop(l) - 1;
        let r = if ffi::lua_checkstack(co, narg) == 0 {
            lua::push_str(l, "too many arguments to resume");
            -1
        } else {
            ffi::lua_xmove(l, co, narg);
            let mut nres: c_int = 0;
            match ffi::lua_resume(co, l, narg, &mut nres) {
                ffi::LUA_OK | ffi::LUA_YIELD => {
                    if ffi::lua_checkstack(l, nres + 1) == 0 {
                        ffi::lua_pop(co, nres);
                        lua::push_str(l, "too many results to resume");
                        -1
                    } else {
                        ffi::lua_xmove(co, l, nres);
                        nres
                    }
                }
                _ => {
                    ffi::lua_xmove(co, l, 1);
                    -1
                }
            }
        };
        if r < 0 {
            ffi::lua_pushboolean(l, 0);
            ffi::lua_insert(l, -2);
            2
        } else {
            ffi::lua_pushboolean(l, 1);
            ffi::lua_insert(l, -(r + 1));
            r + 1
        }
    }
}

/// LuaJIT: hooks never run in compiled code, so the compiler is off while
/// a guarded task runs.
#[cfg(feature = "luajit")]
mod jit {
    use std::ffi::c_int;

    use crate::runtime::lua::lua_State;

    extern "C" {
        fn luaJIT_setmode(l: *mut lua_State, idx: c_int, mode: c_int) -> c_int;
    }

    const MODE_ENGINE: c_int = 0;
    const MODE_ON: c_int = 0x0100;
    const MODE_OFF: c_int = 0x0000;

    std::thread_local! {
        /// The compiler was on when the guard turned it off.
        static WAS_ON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Whether the compiler is on (`jit.status()`'s first value); `l`
    /// must be a thread that may call (the main one, or the running one).
    unsafe fn is_on(l: *mut lua_State) -> bool {
        // SAFETY: `l` is a live thread of lem's state that may call (the
        // contract of every function that takes one, see runtime/lua.rs).
        unsafe {
            use crate::runtime::lua::ffi;
            let top = ffi::lua_gettop(l);
            ffi::lua_getglobal(l, c"jit".as_ptr());
            let mut on = false;
            if ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
                ffi::lua_getfield(l, -1, c"status".as_ptr());
                if ffi::lua_pcall(l, 0, 1, 0) == 0 {
                    on = ffi::lua_toboolean(l, -1) != 0;
                }
            }
            ffi::lua_settop(l, top);
            on
        }
    }

    pub(super) unsafe fn off(l: *mut lua_State) {
        // SAFETY: `l` is a live thread of lem's state that may call (the
        // contract of every function that takes one, see runtime/lua.rs).
        unsafe {
            if is_on(l) {
                WAS_ON.with(|w| w.set(true));
                luaJIT_setmode(l, 0, MODE_ENGINE | MODE_OFF);
            }
        }
    }

    pub(super) unsafe fn on(l: *mut lua_State) {
        // SAFETY: `l` is a live thread of lem's state that may call (the
        // contract of every function that takes one, see runtime/lua.rs).
        unsafe {
            if WAS_ON.with(|w| w.replace(false)) {
                luaJIT_setmode(l, 0, MODE_ENGINE | MODE_ON);
            }
        }
    }
}
