//! Cancellation and deadlines: dooming a task (`task:cancel()`,
//! `utils.timeout`), the deadlines' heap, and making a doomed coroutine
//! raise where it is: from its suspending call's continuation, or from a
//! one-shot count hook where there is none (a bare `coroutine.yield()`,
//! every suspension on LuaJIT).

use std::time::Duration;

use super::*;

impl Scheduler {
    /// Doom task `id` (`why` is [`CANCELLED`] or [`TIMED_OUT`]): if it is
    /// parked, its wait is dropped and it resumes raising; otherwise its
    /// next suspension raises. `false` when there is no such task.
    pub fn doom(&self, id: TaskId, why: u8) -> bool {
        let parked = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(t) = tasks
                .get_mut(id as usize)
                .filter(|t| t.state != State::Free)
            else {
                return false;
            };
            t.doom |= why;
            if t.state == State::Running && !self.guard.on.get() {
                // SAFETY: the running task's thread is alive; its code
                // now runs guarded, to raise at its next check.
                unsafe { self.guard_now(t.thread) };
            }
            (t.state == State::Parked).then_some((
                Waiter {
                    task: id,
                    seq: t.seq,
                },
                t.slot,
            ))
        };
        if let Some((w, slot)) = parked {
            if slot != NO_SLOT {
                // Dropping the future may run code that uses the scheduler:
                // no borrow is held here.
                self.waits.abort_for(slot, w);
            }
            if self.unpark(w) {
                self.tasks.borrow_mut()[id as usize].seq = 0;
                self.runq.borrow_mut().push(id, Resume::Doom);
                self.signal();
            }
        }
        true
    }
    /// The doom of the running task (0 if none).
    pub fn current_doom(&self) -> u8 {
        let id = self.current.get();
        self.tasks.borrow().get(id as usize).map_or(0, |t| t.doom)
    }
    /// Put a deadline `after` from now on the running task; returns its id
    /// for [`end_deadline`](Self::end_deadline). `None` outside a task.
    pub fn start_deadline(&self, after: Duration) -> Option<u32> {
        let task = self.current()?;
        let id = self.deadline_id.get().wrapping_add(1);
        self.deadline_id.set(id);
        let at = Instant::now()
            .checked_add(after)
            .unwrap_or(self.epoch + Duration::from_secs(100 * 365 * 86400));
        let at = at.saturating_duration_since(self.epoch).as_nanos();
        self.deadline_heap
            .borrow_mut()
            .push(std::cmp::Reverse(Timer {
                deadline: at.min(u64::MAX as u128) as u64,
                seq: id,
                task,
            }));
        self.deadlines
            .borrow_mut()
            .entry(task)
            .or_default()
            .push(Deadline { id, passed: false });
        self.live_deadlines.set(self.live_deadlines.get() + 1);
        Some(id)
    }
    /// Remove the running task's deadline `id`; returns whether it had
    /// passed. The task stays timed out while a deadline that passed is
    /// left.
    pub fn end_deadline(&self, id: u32) -> bool {
        let Some(task) = self.current() else {
            return false;
        };
        let mut passed = false;
        let mut map = self.deadlines.borrow_mut();
        if let Some(v) = map.get_mut(&task) {
            if let Some(i) = v.iter().rposition(|d| d.id == id) {
                let d = v.remove(i);
                passed = d.passed;
                if !passed {
                    self.live_deadlines.set(self.live_deadlines.get() - 1);
                }
            }
            let still = v.iter().any(|d| d.passed);
            if v.is_empty() {
                map.remove(&task);
            }
            drop(map);
            let mut tasks = self.tasks.borrow_mut();
            let t = &mut tasks[task as usize];
            if !still {
                t.doom &= !TIMED_OUT;
            }
        } else {
            drop(map);
        }
        let mut heap = self.deadline_heap.borrow_mut();
        // Drop entries of deadlines that ended early once they dominate.
        if heap.len() > 1024 && heap.len() > 4 * self.live_deadlines.get() {
            let map = self.deadlines.borrow();
            heap.retain(|std::cmp::Reverse(t)| {
                map.get(&t.task)
                    .is_some_and(|v| v.iter().any(|d| d.id == t.seq && !d.passed))
            });
        }
        passed
    }
    pub(super) fn fire_deadlines(&self) {
        if self.deadline_heap.borrow().is_empty() {
            return;
        }
        let now = self.epoch.elapsed().as_nanos() as u64;
        loop {
            let t = {
                let mut heap = self.deadline_heap.borrow_mut();
                match heap.peek() {
                    Some(std::cmp::Reverse(top)) if top.deadline <= now => {}
                    _ => return,
                }
                let Some(std::cmp::Reverse(t)) = heap.pop() else {
                    return;
                };
                t
            };
            let hit = self
                .deadlines
                .borrow_mut()
                .get_mut(&t.task)
                .and_then(|v| v.iter_mut().find(|d| d.id == t.seq && !d.passed))
                .map(|d| d.passed = true)
                .is_some();
            if hit {
                self.live_deadlines.set(self.live_deadlines.get() - 1);
                self.doom(t.task, TIMED_OUT);
            }
        }
    }
    /// A doomed task is about to resume: unless the continuation of its
    /// native suspension will raise (Lua 5.4), set the hook that raises at
    /// the first instruction it runs. Returns whether the hook was set.
    ///
    /// # Safety
    /// `t` is the task's thread, about to be resumed.
    pub(super) unsafe fn arm_doom(&self, id: TaskId, t: *mut lua_State) -> bool {
        // SAFETY: `t` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            #[cfg(not(feature = "luajit"))]
            {
                if self.tasks.borrow()[id as usize].native {
                    return false;
                }
                hook::arm(t);
            }
            #[cfg(feature = "luajit")]
            {
                let target = self.nested.borrow_mut().remove(&id).unwrap_or(t);
                hook::arm(target);
            }
            true
        }
    }
    /// LuaJIT: remember the thread of a native suspension inside a user
    /// coroutine, which a doom's hook must wait for.
    #[cfg(feature = "luajit")]
    pub(super) fn note_nested(&self, id: TaskId) {
        let s = self.suspender.replace(std::ptr::null_mut());
        let t = self.tasks.borrow()[id as usize].thread;
        if !s.is_null() && s != t {
            self.nested.borrow_mut().insert(id, s);
        } else {
            self.nested.borrow_mut().remove(&id);
        }
    }
}

/// The error a doom raises: `'cancelled'`, or `'timeout'` past a deadline
/// (a plain string, no position, so scripts can compare it).
pub fn doom_text(doom: u8) -> &'static str {
    if doom & CANCELLED == 0 && doom & TIMED_OUT != 0 {
        "timeout"
    } else {
        "cancelled"
    }
}

/// Raise the running task's doom ([`doom_text`]).
///
/// # Safety
/// Raises: nothing owned may be alive in the caller's frame.
pub unsafe fn raise_doom(l: *mut lua_State) -> ! {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let doom = try_get().map_or(CANCELLED, |s| s.current_doom());
        lua::push_str(l, doom_text(doom));
        ffi::lua_error(l)
    }
}

pub(crate) use hook::CATCHERS;

/// LuaJIT: [`crate::runtime::scheduler::suspend`] tells which thread suspends (a user coroutine's,
/// inside a task).
#[cfg(feature = "luajit")]
pub fn note_suspender(l: *mut lua_State) {
    if let Some(s) = try_get() {
        s.suspender.set(l);
    }
}

/// The hook that makes a doomed coroutine raise where no continuation can
/// (a bare `coroutine.yield()`, and every suspension on LuaJIT, whose hooks
/// are global): armed for one resume, it fires at the first instruction the
/// target thread runs, puts back the hook it replaced and raises.
pub(super) mod hook {
    use std::cell::Cell;
    use std::ffi::c_int;

    use crate::runtime::lua::{ffi, lua_State};

    #[derive(Clone, Copy)]
    struct Armed {
        target: *mut lua_State,
        prev: Option<ffi::lua_Hook>,
        mask: c_int,
        count: c_int,
    }

    thread_local! {
        static ARMED: Cell<Option<Armed>> = const { Cell::new(None) };
    }

    pub(in crate::runtime::scheduler) unsafe fn arm(target: *mut lua_State) {
        // SAFETY: `target` is the thread about to be resumed (the caller's
        // contract); the hook set here is put back by `disarm`.
        unsafe {
            let armed = Armed {
                target,
                prev: ffi::lua_gethook(target),
                mask: ffi::lua_gethookmask(target),
                count: ffi::lua_gethookcount(target),
            };
            ARMED.with(|a| a.set(Some(armed)));
            ffi::lua_sethook(target, Some(fire), ffi::LUA_MASKCOUNT, 1);
        }
    }

    /// The resume is over: if the hook did not fire, put the old one back.
    pub(in crate::runtime::scheduler) unsafe fn disarm() {
        // SAFETY: `a.target` is the thread `arm` hooked during this same resume,
        // still alive.
        unsafe {
            if let Some(a) = ARMED.with(|c| c.take()) {
                ffi::lua_sethook(a.target, a.prev, a.mask, a.count);
            }
        }
    }

    unsafe extern "C-unwind" fn fire(l: *mut lua_State, _: *mut ffi::lua_Debug) {
        // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
        // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
        // here) and the values it pushes (the rules of runtime/lua.rs).
        unsafe {
            let Some(a) = ARMED.with(|c| c.get()) else {
                return;
            };
            if a.target != l {
                // LuaJIT: hooks are global; the glue of outer coroutines runs
                // first.
                return;
            }
            ARMED.with(|c| c.set(None));
            ffi::lua_sethook(l, a.prev, a.mask, a.count);
            if !in_catcher(l) {
                super::raise_doom(l);
            }
        }
    }

    /// Registry key of the set of functions that take a doom as a value
    /// (the task runner and `utils.timeout`): a suspending call tail-called
    /// by the function they protect returns the doom marker to them
    /// instead of raising in them, outside their protected call.
    pub(crate) const CATCHERS: &std::ffi::CStr = c"lem.doom.catchers";

    /// Whether the function running on `l` is one of [`CATCHERS`].
    pub(in crate::runtime::scheduler) unsafe fn in_catcher(l: *mut lua_State) -> bool {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let mut ar: ffi::lua_Debug = std::mem::zeroed();
            if ffi::lua_getstack(l, 0, &mut ar) == 0 || ffi::lua_checkstack(l, 3) == 0 {
                return false;
            }
            ffi::lua_getinfo(l, c"f".as_ptr(), &mut ar);
            ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, CATCHERS.as_ptr());
            let found = if ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
                ffi::lua_pushvalue(l, -2);
                ffi::lua_rawget(l, -2);
                let b = ffi::lua_toboolean(l, -1) != 0;
                ffi::lua_pop(l, 1);
                b
            } else {
                false
            };
            ffi::lua_pop(l, 2);
            found
        }
    }
}
