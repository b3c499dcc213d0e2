//! What every `lem.io` object that suspends shares: the [`Op`] slot of a
//! suspended operation (busy from the committed suspension until its
//! coroutine resumes), whether the caller may suspend at all, and the
//! `settimeout`/`setlimit` methods every class gets from [`Settings`], and
//! the [`ReadTimer`] of a wait with a deadline.

use std::cell::Cell;
use std::ffi::{c_int, CStr};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::runtime::lua::{self, ffi, lua_State};
use crate::runtime::scheduler::{self, Resume, Waiter};

/// Raise unless the running code is a lem coroutine that may suspend.
///
/// # Safety
/// May raise: call before creating owned values.
pub(crate) unsafe fn check_suspendable(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if !can_suspend(l) {
            cannot_suspend(l);
        }
    }
}

/// Whether the running code may suspend.
///
/// # Safety
/// `l` must be the running thread.
pub(crate) unsafe fn can_suspend(l: *mut lua_State) -> bool {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { crate::runtime::scheduler::get().current().is_some() && lua::is_yieldable(l) }
}

/// Raise `attempt to suspend outside a lem coroutine`.
///
/// # Safety
/// Raises: nothing owned may be alive in the caller's frame.
pub(crate) unsafe fn cannot_suspend(l: *mut lua_State) -> ! {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { crate::runtime::scheduler::raise_outside(l) }
}

/// Read the optional timeout argument of `settimeout`: nil or a number of
/// seconds (`0` means "do not wait": the call times out at once unless it
/// can finish without waiting). A negative number or NaN is misuse.
///
/// # Safety
/// May raise.
unsafe fn check_timeout(l: *mut lua_State, arg: c_int) -> Option<Duration> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if lua::is_none_or_nil(l, arg) {
            return None;
        }
        let t = lua::check_number(l, arg);
        if t.is_nan() || t < 0.0 {
            lua::arg_error(l, arg, c"timeout must be a number of seconds");
        }
        Some(Duration::try_from_secs_f64(t).unwrap_or(Duration::from_secs(100 * 365 * 86400)))
    }
}

/// One suspended operation on an object (a stream has one per direction):
/// busy from the committed suspension until its coroutine resumes.
#[derive(Default)]
pub(crate) struct Op {
    /// From the committed suspension until the coroutine resumes.
    active: Cell<bool>,
    waiter: Cell<Option<Waiter>>,
    wait: Cell<Option<scheduler::WaitHandle>>,
}

impl Op {
    /// Start waiting: called from the commit.
    pub(crate) fn begin(&self, w: Waiter, fut: scheduler::WaitFuture) {
        self.started(w, scheduler::get().spawn_wait(w, fut));
    }

    /// The wait `h` of `w` began (a [`scheduler::Pending`] was told).
    pub(crate) fn started(&self, w: Waiter, h: scheduler::WaitHandle) {
        self.active.set(true);
        self.waiter.set(Some(w));
        self.wait.set(Some(h));
    }

    /// The coroutine resumed: no longer busy.
    pub(crate) fn end(&self) {
        self.active.set(false);
        self.waiter.set(None);
        self.wait.set(None);
    }

    /// Whether an operation is under way (`'busy'` for a second one). One
    /// whose coroutine was cancelled meanwhile is over: its wait was dropped
    /// and the object is free again.
    pub(crate) fn is_active(&self) -> bool {
        if !self.active.get() {
            return false;
        }
        match self.waiter.get() {
            Some(w) if !scheduler::get().is_live(w) => {
                self.end();
                false
            }
            _ => true,
        }
    }

    /// Abort the wait and wake its coroutine with `nil, msg`; `false` when
    /// nothing was waiting.
    pub(crate) fn cancel(&self, msg: &'static str) -> bool {
        if !self.is_active() {
            return false;
        }
        if let Some(h) = self.wait.take() {
            scheduler::get().abort_wait(h);
        }
        self.active.set(false);
        if let Some(w) = self.waiter.take() {
            scheduler::get().wake(
                w,
                // SAFETY: the scheduler calls a Resume::Push closure with the resumed
                // thread `t`, with room for the values it pushes.
                Resume::Push(Box::new(move |t| unsafe { lua::fail(t, msg) })),
            );
        }
        true
    }
}

/// An object with the settings `settimeout` and `setlimit` change: the
/// classes hand out their cells, and one pair of methods serves them all.
pub(crate) trait Settings {
    /// The metatable name of the class.
    const CLASS: &'static CStr;
    /// The timeout applied to each suspending call.
    fn timeout(&self) -> &Cell<Option<Duration>>;
    /// The bound on buffered input (objects that read only).
    fn limit(&self) -> &Cell<usize> {
        unreachable!("setlimit is not a method of this class")
    }
}

/// obj:settimeout(seconds | nil) -> true
pub(crate) unsafe extern "C-unwind" fn settimeout<T: Settings>(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let o: &T = lua::check_object(l, 1, T::CLASS);
        o.timeout().set(check_timeout(l, 2));
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// obj:setlimit(bytes) -> true: the most input a delimited format may
/// buffer before `read` returns `nil, 'line too long'`.
pub(crate) unsafe extern "C-unwind" fn setlimit<T: Settings>(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let o: &T = lua::check_object(l, 1, T::CLASS);
        let n = lua::check_integer(l, 2);
        if n < 1 {
            lua::arg_error(l, 2, c"limit must be positive");
        }
        o.limit().set(n as usize);
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// A timer that is only moved when a deadline comes earlier than the one
/// it is set for: each read of a busy stream pushes its deadline a little
/// later, and moving a tokio timer costs a trip through the timer driver.
/// One set too early fires, finds the deadline not reached and is set again.
pub(crate) struct ReadTimer {
    sleep: Pin<Box<Sleep>>,
    set_for: Instant,
}

impl ReadTimer {
    pub(crate) fn new(deadline: Instant) -> ReadTimer {
        ReadTimer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            set_for: deadline,
        }
    }

    /// Ready once `deadline` has passed.
    pub(crate) fn poll_until(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.set_for > deadline || (self.set_for < deadline && self.sleep.is_elapsed()) {
                self.sleep.as_mut().reset(deadline);
                self.set_for = deadline;
            }
            std::task::ready!(self.sleep.as_mut().poll(cx));
            if self.set_for >= deadline {
                return Poll::Ready(());
            }
        }
    }
}

/// When a wait of `timeout` that starts now ends: from the loop time, as
/// the original's libev timers.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|d| Instant::from_std(scheduler::get().now_instant()) + d)
}

/// Whether `deadline`, if there is one, has passed; if not, the timer kept
/// in `timer` (made on first use, then reused) wakes the wait when it does.
pub(crate) fn timed_out(
    timer: &Cell<Option<ReadTimer>>,
    deadline: Option<Instant>,
    cx: &mut Context<'_>,
) -> bool {
    let Some(d) = deadline else {
        return false;
    };
    let mut t = timer.take().unwrap_or_else(|| ReadTimer::new(d));
    let done = t.poll_until(d, cx).is_ready();
    timer.set(Some(t));
    done
}
