//! Coroutines as tasks: the run queue, parking and waking, timers, and when
//! the process ends.
//!
//! Every lem coroutine (the main chunk, each `utils.spawn`, each connection
//! of `autospawn`) is a *task*: a Lua thread anchored in one registry table,
//! `threads[id] = thread`, where `id` comes from `luaL_ref`. Rust keeps only
//! the id and a few words of state per task, never a Lua reference, so the
//! number of parked coroutines is bounded by memory, not by a Lua stack (the
//! LuaJIT limit of ~8,000 slots that a reference-per-coroutine design hits).
//!
//! A suspending call is two steps:
//! 1. the native function calls [`Scheduler::prepare`] with a [`Commit`]
//!    saying what will wake the task, and returns [`crate::runtime::scheduler::suspend`];
//! 2. when the yield reaches the scheduler, the commit is applied: the task is
//!    parked under a fresh sequence number and the waker registered.
//!
//! If the yield never gets here (Lua cannot yield inside a `table.sort`
//! comparator, say), the commit is dropped unapplied, so no object is left
//! busy. Wakers hold a [`Waiter`] `(task, seq)`; waking a task that has moved
//! on (a stale timer, a late I/O completion) is a no-op.
//!
//! Values passed to a waking task (`sleeper:wakeup(...)`,
//! `utils.resume(co, ...)`) are moved straight onto the parked thread's stack,
//! as the original did, so nothing is held in Rust.

use std::cell::{Cell, RefCell};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::ffi::c_int;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::runtime::lua::{self, ffi, lua_State};

mod doom;
mod guard;
mod report;
mod run;
mod suspend;
mod timer;
mod waits;
use doom::hook;
#[cfg(feature = "luajit")]
pub use doom::note_suspender;
pub(crate) use doom::CATCHERS;
pub use doom::{doom_text, raise_doom};
#[cfg(not(feature = "luajit"))]
pub(crate) use guard::resume as guarded_resume;
pub use guard::Stall;
pub(crate) use report::{error_report, error_text};
pub use suspend::{doom_marker, is_doom, is_pending, pending, suspend};
pub use waits::WaitHandle;

/// A task's index in the `threads` table.
pub type TaskId = c_int;

/// One parking of one task: what a waker holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub task: TaskId,
    pub seq: u32,
}

/// How a woken task gets its return values.
pub enum Resume {
    /// `n` values were already moved onto the thread's stack.
    Staged(c_int),
    /// `nil, 'timeout'`.
    Timeout,
    /// A function that pushes the values onto the thread and returns how many.
    Push(Box<dyn FnOnce(*mut lua_State) -> c_int>),
    /// The object that suspended the task pushes them ([`Pending::push`]).
    Object(Rc<dyn Pending>),
    /// The task was cancelled or ran past a deadline: the suspending call
    /// raises `'cancelled'` or `'timeout'` instead of returning.
    Doom,
}

/// A future whose output resumes the task that waits on it.
pub type WaitFuture = Pin<Box<dyn Future<Output = Resume>>>;

/// An object (reference-counted anyway) that is itself a wait: the loop
/// polls it like a future and hands it back to resume the task
/// ([`Commit::Wait`], [`Resume::Object`]), so a wait on it allocates
/// nothing. A stream's read is one on every request of a keep-alive
/// connection.
pub trait Pending {
    /// The wait began: its waiter and handle (to cancel it).
    fn started(&self, w: Waiter, h: WaitHandle);
    /// Make progress, as `Future::poll`: ready when the task is to resume.
    fn poll(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()>;
    /// The task resumes: push its values onto `t`, return how many.
    ///
    /// # Safety
    /// `t` is the resumed thread, with room for the values pushed.
    unsafe fn push(&self, t: *mut lua_State) -> c_int;
}

/// What wakes a task that suspends, applied when its yield reaches the loop.
pub enum Commit {
    /// `utils.suspend()`: only `utils.resume(co, ...)` wakes it.
    Suspend,
    /// `utils.yield()`: back of the run queue.
    Yield,
    /// Sleep until woken through the waiter (or until the deadline).
    Sleep(Option<Instant>),
    /// Run the future on the loop; its output resumes the task. Keeps the
    /// process alive while pending.
    Future(WaitFuture),
    /// Hand the waiter to the function, which arranges the wake-up itself.
    Custom(Box<dyn FnOnce(Waiter)>),
    /// Poll the object on the loop (keeping the process alive meanwhile)
    /// until it is ready, then resume the task with it; it is told its
    /// waiter and handle first ([`Pending::started`]).
    Wait(Rc<dyn Pending>),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Free,
    Runnable,
    Running,
    Parked,
}

struct Task {
    thread: *mut lua_State,
    /// Sequence number of the current (or, once woken, the last) parking;
    /// 0 when that parking was cancelled, so the objects it used see it as
    /// over ([`Scheduler::is_live`]).
    seq: u32,
    /// The wait slot of the current parking ([`NO_SLOT`] if none), for a
    /// cancel to drop its future.
    slot: u32,
    state: State,
    /// The parking has a live timer entry counted in `live_timers`.
    timed: bool,
    /// Parked by `utils.suspend()` (or a bare `coroutine.yield()`): the only
    /// parkings `utils.resume` may end.
    suspended: bool,
    /// Parked by a native suspending call ([`crate::runtime::scheduler::suspend`]), not a bare
    /// `coroutine.yield()`: on Lua 5.4 its continuation raises a doom.
    native: bool,
    /// [`CANCELLED`] and [`TIMED_OUT`]: every suspension raises.
    doom: u8,
}

const NO_SLOT: u32 = u32::MAX;

/// `task:cancel()` was called: permanent.
pub const CANCELLED: u8 = 1;
/// A deadline of `utils.timeout` passed (until its frame ends).
pub const TIMED_OUT: u8 = 2;

const FREE: Task = Task {
    thread: std::ptr::null_mut(),
    state: State::Free,
    seq: 0,
    slot: NO_SLOT,
    timed: false,
    suspended: false,
    native: false,
    doom: 0,
};

/// The tasks to run, in order. An entry is 8 bytes, since a burst of
/// spawns or wake-ups queues one per coroutine; the functions of
/// [`Resume::Push`] wait in a queue of their own, in the same order.
#[derive(Default)]
struct RunQueue {
    wakes: VecDeque<Wake>,
    pushes: VecDeque<PushFn>,
}

struct Wake {
    task: TaskId,
    /// Values staged on the thread, `TIMEOUT` or `PUSH`.
    how: c_int,
}

enum PushFn {
    Fn(Box<dyn FnOnce(*mut lua_State) -> c_int>),
    Object(Rc<dyn Pending>),
}

const TIMEOUT: c_int = -1;
const PUSH: c_int = -2;
const DOOM: c_int = -3;

impl RunQueue {
    fn push(&mut self, task: TaskId, resume: Resume) {
        let how = match resume {
            Resume::Staged(n) => n,
            Resume::Timeout => TIMEOUT,
            Resume::Doom => DOOM,
            Resume::Push(f) => {
                self.pushes.push_back(PushFn::Fn(f));
                PUSH
            }
            Resume::Object(o) => {
                self.pushes.push_back(PushFn::Object(o));
                PUSH
            }
        };
        self.wakes.push_back(Wake { task, how });
    }

    fn pop(&mut self) -> Option<(TaskId, Resume)> {
        let w = self.wakes.pop_front()?;
        let resume = match w.how {
            TIMEOUT => Resume::Timeout,
            DOOM => Resume::Doom,
            PUSH => match self.pushes.pop_front()? {
                PushFn::Fn(f) => Resume::Push(f),
                PushFn::Object(o) => Resume::Object(o),
            },
            n => Resume::Staged(n),
        };
        Some((w.task, resume))
    }

    fn is_empty(&self) -> bool {
        self.wakes.is_empty()
    }

    fn len(&self) -> usize {
        self.wakes.len()
    }
}

/// Timer heap entry: ordered by deadline, then by sequence (FIFO for equal
/// deadlines).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    /// Nanoseconds since the scheduler's `epoch`.
    deadline: u64,
    seq: u32,
    task: TaskId,
}

/// One deadline of `utils.timeout`.
struct Deadline {
    id: u32,
    passed: bool,
}

/// The outcome of running the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing left to run or wait for.
    Idle,
    /// The awaited task finished.
    Done,
    /// `utils.exit(code)` or an uncaught error (code 1).
    Exit(i32),
}

/// The scheduler: one per Lua state, on the loop's thread.
pub struct Scheduler {
    main: *mut lua_State,
    /// Registry reference of the `threads` table.
    threads_ref: c_int,
    tasks: RefCell<Vec<Task>>,
    /// Live tasks.
    count: Cell<usize>,
    /// Thread -> task, where a thread cannot carry its id itself.
    #[cfg(feature = "luajit")]
    by_thread: RefCell<HashMap<usize, TaskId>>,
    runq: RefCell<RunQueue>,
    timers: RefCell<BinaryHeap<std::cmp::Reverse<Timer>>>,
    live_timers: Cell<usize>,
    /// The deadlines of `utils.timeout`, per task, innermost last.
    deadlines: RefCell<HashMap<TaskId, Vec<Deadline>>>,
    /// Their timer heap (`seq` is the deadline's id).
    deadline_heap: RefCell<BinaryHeap<std::cmp::Reverse<Timer>>>,
    /// Deadlines set and not yet passed.
    live_deadlines: Cell<usize>,
    deadline_id: Cell<u32>,
    /// LuaJIT: the thread of the last native suspension, and per task the
    /// thread of a parking inside a user coroutine, which a doom's hook
    /// must wait for.
    #[cfg(feature = "luajit")]
    suspender: Cell<*mut lua_State>,
    #[cfg(feature = "luajit")]
    nested: RefCell<HashMap<TaskId, *mut lua_State>>,
    /// Things in flight that will wake a task or spawn one (native code's
    /// own loop tasks, through `hold`; waits count by themselves).
    holds: Cell<usize>,
    current: Cell<TaskId>,
    seq: Cell<u32>,
    commit: RefCell<Option<(u32, Commit)>>,
    exit: Cell<Option<i32>>,
    /// The futures parked tasks wait on.
    waits: waits::Waits,
    /// Something for the loop to do came from outside a loop turn (a spawn
    /// from a loop task, a wake, a hold let go): checked before it idles.
    signalled: Cell<bool>,
    /// The loop awaits its idle future (other loop tasks run meanwhile):
    /// a signal must wake it.
    idling: Cell<bool>,
    now: Cell<f64>,
    /// The same on the monotonic clock.
    instant: Cell<Instant>,
    /// Origin of timer deadlines.
    epoch: Instant,
    /// The guards on code that never suspends.
    guard: guard::Guard,
}

const NO_TASK: TaskId = 0;

/// While coroutines keep the run queue busy, the loop still polls I/O and
/// runs other loop tasks at least this often (seconds).
const IO_POLL_INTERVAL: f64 = 0.000_5;

thread_local! {
    static CURRENT: Cell<*const Scheduler> = const { Cell::new(std::ptr::null()) };
}

/// The scheduler of this thread's runtime.
///
/// # Panics
/// When called on a thread without a running [`Runtime`](crate::Runtime).
pub fn get() -> &'static Scheduler {
    try_get().expect("no lem runtime on this thread")
}

/// The scheduler of this thread's runtime, if there is one.
pub fn try_get() -> Option<&'static Scheduler> {
    let p = CURRENT.with(|c| c.get());
    // SAFETY: the pointer is set by `Scheduler::install` from a leaked-for-
    // the-runtime's-life allocation and cleared when the runtime drops.
    (!p.is_null()).then(|| unsafe { &*p })
}

impl Scheduler {
    /// Create the scheduler for `main` and make it this thread's current one.
    ///
    /// # Safety
    /// `main` must be the main thread of a Lua state that outlives the result.
    pub(crate) unsafe fn install(main: *mut lua_State) -> Box<Scheduler> {
        // SAFETY: the callers keep the contract in this function's `# Safety`
        // section, which is all the calls below rely on.
        unsafe {
            ffi::lua_createtable(main, 0, 0);
            let threads_ref = ffi::luaL_ref(main, ffi::LUA_REGISTRYINDEX);
            let s = Box::new(Scheduler {
                main,
                threads_ref,
                tasks: RefCell::new(Vec::new()),
                count: Cell::new(0),
                #[cfg(feature = "luajit")]
                by_thread: RefCell::new(HashMap::new()),
                runq: RefCell::new(RunQueue::default()),
                timers: RefCell::new(BinaryHeap::new()),
                live_timers: Cell::new(0),
                deadlines: RefCell::new(HashMap::new()),
                deadline_heap: RefCell::new(BinaryHeap::new()),
                live_deadlines: Cell::new(0),
                deadline_id: Cell::new(0),
                #[cfg(feature = "luajit")]
                suspender: Cell::new(std::ptr::null_mut()),
                #[cfg(feature = "luajit")]
                nested: RefCell::new(HashMap::new()),
                holds: Cell::new(0),
                current: Cell::new(NO_TASK),
                seq: Cell::new(0),
                commit: RefCell::new(None),
                exit: Cell::new(None),
                waits: waits::Waits::new(),
                signalled: Cell::new(false),
                idling: Cell::new(false),
                now: Cell::new(wall_clock()),
                instant: Cell::new(Instant::now()),
                epoch: Instant::now(),
                guard: guard::Guard::new(),
            });
            CURRENT.with(|c| c.set(&*s));
            s
        }
    }

    pub(crate) fn uninstall(&self) {
        CURRENT.with(|c| {
            if std::ptr::eq(c.get(), self) {
                c.set(std::ptr::null())
            }
        });
    }

    /// Start a task running the function on top of `l`'s stack, with the
    /// `nargs` values above it as arguments. Pops them all. The task runs
    /// after the current one suspends or yields.
    ///
    /// # Safety
    /// `l` must be a thread of this scheduler's state with `nargs + 1` values
    /// on top, the function first.
    pub unsafe fn spawn(&self, l: *mut lua_State, nargs: c_int) -> TaskId {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let t = ffi::lua_newthread(l);
            // A new thread has room for LUA_MINSTACK values only.
            if ffi::lua_checkstack(t, nargs + 1) == 0 {
                ffi::luaL_error(l, c"too many arguments to spawn".as_ptr());
            }
            ffi::lua_insert(l, -(nargs + 2));
            ffi::lua_xmove(l, t, nargs + 1);
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, self.threads_ref as _);
            ffi::lua_insert(l, -2);
            let id = ffi::luaL_ref(l, -2);
            ffi::lua_pop(l, 1);
            {
                let mut tasks = self.tasks.borrow_mut();
                let i = id as usize;
                if tasks.len() <= i {
                    tasks.resize_with(i + 1, || FREE);
                }
                tasks[i] = Task {
                    thread: t,
                    state: State::Runnable,
                    ..FREE
                };
            }
            self.set_task_of(t, id);
            self.count.set(self.count.get() + 1);
            self.runq.borrow_mut().push(id, Resume::Staged(nargs));
            // Spawns from loop futures (autospawn's accept loop) must wake a
            // loop that sleeps.
            self.signal();
            id
        }
    }

    /// The state's main thread.
    pub fn main_thread(&self) -> *mut lua_State {
        self.main
    }

    /// Whether a coroutine is ready to run (woken, waiting in the run
    /// queue), so that the running one should not keep the loop.
    pub fn has_runnable(&self) -> bool {
        !self.runq.borrow().is_empty()
    }

    /// The running task, or `None` outside any task.
    pub fn current(&self) -> Option<TaskId> {
        let c = self.current.get();
        (c != NO_TASK).then_some(c)
    }

    /// Push the thread of task `id` onto `l`.
    ///
    /// # Safety
    /// `l` must be a thread of this scheduler's state.
    pub unsafe fn push_thread(&self, l: *mut lua_State, id: TaskId) {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, self.threads_ref as _);
            ffi::lua_rawgeti(l, -1, id as _);
            ffi::lua_remove(l, -2);
            #[cfg(feature = "luajit")]
            if let Some(t) = self.tasks.borrow().get(id as usize) {
                self.by_thread.borrow_mut().insert(t.thread as usize, id);
            }
        }
    }

    /// The task whose Lua thread is `thread`, if it is one.
    ///
    /// # Safety
    /// `thread` must be a live thread of this scheduler's state.
    pub unsafe fn task_of(&self, thread: *mut lua_State) -> Option<TaskId> {
        #[cfg_attr(feature = "luajit", allow(unused_unsafe))]
        // SAFETY: every thread has the extra space; ours hold a TaskId,
        // others the main thread's zero.
        unsafe {
            #[cfg(not(feature = "luajit"))]
            let id = *(ffi::lua_getextraspace(thread) as *const TaskId);
            #[cfg(feature = "luajit")]
            let id = self
                .by_thread
                .borrow()
                .get(&(thread as usize))
                .copied()
                .or_else(|| {
                    // Not handed out by `push_thread` (e.g. `coroutine.running()`):
                    // rare enough for a scan.
                    let tasks = self.tasks.borrow();
                    tasks
                        .iter()
                        .position(|t| t.thread == thread)
                        .map(|i| i as TaskId)
                })?;
            let tasks = self.tasks.borrow();
            let t = tasks.get(id as usize)?;
            (id != NO_TASK && t.thread == thread && t.state != State::Free).then_some(id)
        }
    }

    /// Record (or, with `NO_TASK`, forget) the task of a thread. On Lua 5.4
    /// the id lives in the thread's extra space. LuaJIT threads have none, so
    /// a map keeps the threads that [`push_thread`](Self::push_thread) gave
    /// out (`utils.thisthread()`), and only those: a parked coroutine costs
    /// no map entry unless someone asked for its thread.
    fn set_task_of(&self, thread: *mut lua_State, id: TaskId) {
        #[cfg(feature = "luajit")]
        if id == NO_TASK {
            self.by_thread.borrow_mut().remove(&(thread as usize));
        }
        // SAFETY: LUA_EXTRASPACE is pointer-sized, larger than a TaskId.
        #[cfg(not(feature = "luajit"))]
        unsafe {
            *(ffi::lua_getextraspace(thread) as *mut TaskId) = id;
        }
    }

    /// Say how the running task will be woken; the caller then returns
    /// [`crate::runtime::scheduler::suspend`]. Returns the waiter the wake-up must name.
    ///
    /// Returns `None` outside a task (then the caller raises).
    pub fn prepare(&self, commit: Commit) -> Option<Waiter> {
        let task = self.current()?;
        let seq = self.next_seq();
        *self.commit.borrow_mut() = Some((seq, commit));
        Some(Waiter { task, seq })
    }

    /// Whether the waiter's task is still parked in that parking.
    pub fn is_parked(&self, w: Waiter) -> bool {
        let tasks = self.tasks.borrow();
        tasks
            .get(w.task as usize)
            .is_some_and(|t| t.state == State::Parked && t.seq == w.seq)
    }

    /// Wake the waiter's task with `resume`. Returns `false` (and drops
    /// `resume`) when it is no longer parked there.
    pub fn wake(&self, w: Waiter, resume: Resume) -> bool {
        if !self.unpark(w) {
            return false;
        }
        self.runq.borrow_mut().push(w.task, resume);
        self.signal();
        true
    }

    /// Wake the waiter's task with the values at `first..=top` of `l`, moved
    /// onto its stack. Returns `false` when it is no longer parked there.
    ///
    /// # Safety
    /// `l` must be the running thread of this scheduler's state.
    pub unsafe fn wake_with_values(&self, w: Waiter, l: *mut lua_State, first: c_int) -> bool {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let n = (ffi::lua_gettop(l) - first + 1).max(0);
            let t = match self.tasks.borrow().get(w.task as usize) {
                Some(t) if t.state == State::Parked && t.seq == w.seq => t.thread,
                _ => return false,
            };
            if n > 0 {
                if ffi::lua_checkstack(t, n) == 0 {
                    return false;
                }
                ffi::lua_xmove(l, t, n);
            }
            self.wake(w, Resume::Staged(n))
        }
    }

    /// `utils.resume(co, ...)`: wake a task parked in `utils.suspend()`.
    ///
    /// # Safety
    /// As [`wake_with_values`](Self::wake_with_values).
    pub unsafe fn resume_suspended(&self, id: TaskId, l: *mut lua_State, first: c_int) -> bool {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let w = match self.tasks.borrow().get(id as usize) {
                Some(t) if t.state == State::Parked && t.suspended => Waiter {
                    task: id,
                    seq: t.seq,
                },
                _ => return false,
            };
            self.wake_with_values(w, l, first)
        }
    }

    fn unpark(&self, w: Waiter) -> bool {
        let mut tasks = self.tasks.borrow_mut();
        match tasks.get_mut(w.task as usize) {
            Some(t) if t.state == State::Parked && t.seq == w.seq => {
                t.state = State::Runnable;
                t.slot = NO_SLOT;
                t.suspended = false;
                if t.timed {
                    t.timed = false;
                    self.live_timers.set(self.live_timers.get() - 1);
                }
                true
            }
            _ => false,
        }
    }

    /// Run `fut` on the loop and wake `w` with its output; the process stays
    /// alive meanwhile. The returned handle aborts it (e.g. when the object
    /// it waits on is closed and the waiter is woken another way).
    pub fn spawn_wait(&'static self, w: Waiter, fut: WaitFuture) -> WaitHandle {
        let h = self.waits.start(w, waits::Wait::Future(fut));
        self.note_slot(w, h);
        h
    }

    /// Record the wait of a parking, so a cancel can drop it.
    fn note_slot(&self, w: Waiter, h: WaitHandle) {
        if let Some(t) = self.tasks.borrow_mut().get_mut(w.task as usize) {
            if t.state == State::Parked && t.seq == w.seq {
                t.slot = h.slot;
            }
        }
    }

    /// Whether the parking `w` is still under way: parked, or woken and not
    /// yet resumed past it, and not cancelled. An object whose operation's
    /// coroutine was cancelled is no longer busy with it.
    pub fn is_live(&self, w: Waiter) -> bool {
        self.tasks
            .borrow()
            .get(w.task as usize)
            .is_some_and(|t| t.state != State::Free && t.seq == w.seq)
    }

    /// Whether task `id` is parked (in a suspending call).
    pub fn is_task_parked(&self, id: TaskId) -> bool {
        self.tasks
            .borrow()
            .get(id as usize)
            .is_some_and(|t| t.state == State::Parked)
    }

    /// Drop a wait's future without waking its task; a no-op once it ended.
    pub fn abort_wait(&self, h: WaitHandle) {
        self.waits.abort(h);
    }

    /// Drop every wait's future (the runtime is ending).
    pub(crate) fn clear_waits(&self) {
        self.waits.clear();
    }

    /// Make sure the loop looks for work before it idles, and wake it if it
    /// idles already.
    fn signal(&self) {
        self.signalled.set(true);
        // In a turn, the loop looks at `signalled` before it idles again.
        if self.idling.get() {
            self.waits.wake_idle_loop();
        }
    }

    /// Keep the process alive while the returned guard lives (a listening
    /// server, an operation that will spawn or wake a task later).
    pub fn hold(&'static self) -> Hold {
        self.holds.set(self.holds.get() + 1);
        Hold(self)
    }

    /// Ask the loop to end the process with `code` once the running task
    /// yields.
    pub fn request_exit(&self, code: i32) {
        if self.exit.get().is_none() {
            self.exit.set(Some(code));
        }
        self.signal();
    }

    /// Loop time: wall-clock seconds, cached per loop iteration.
    pub fn now(&self) -> f64 {
        self.now.get()
    }

    /// Loop time on the monotonic clock, for deadlines measured from it (as
    /// libev's timers are): one clock read per loop turn, not one per wait.
    pub fn now_instant(&self) -> Instant {
        self.instant.get()
    }

    /// Refresh and return the loop time.
    pub fn update_now(&self) -> f64 {
        let t = wall_clock();
        self.now.set(t);
        self.instant.set(Instant::now());
        t
    }

    /// Number of live tasks (for tests and statistics).
    pub fn task_count(&self) -> usize {
        self.count.get()
    }

    /// A parking number; never 0, which marks "not parked".
    fn next_seq(&self) -> u32 {
        let seq = self.seq.get().wrapping_add(1).max(1);
        self.seq.set(seq);
        seq
    }
}

/// [`Scheduler::prepare`] for a native function: raises `attempt to suspend
/// outside a lem coroutine` outside a task (the commit, and all it owns, is
/// dropped first).
///
/// # Safety
/// May raise: nothing owned may be alive in the caller's frame.
pub unsafe fn prepare_or_raise(l: *mut lua_State, commit: Commit) -> Waiter {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match get().prepare(commit) {
            Some(w) => w,
            None => raise_outside(l),
        }
    }
}

/// Raise `attempt to suspend outside a lem coroutine`.
///
/// # Safety
/// Raises: nothing owned may be alive in the caller's frame.
pub unsafe fn raise_outside(l: *mut lua_State) -> ! {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::luaL_error(l, c"attempt to suspend outside a lem coroutine".as_ptr());
        unreachable!("luaL_error returned")
    }
}

/// Keeps the process alive while it lives; see [`Scheduler::hold`].
pub struct Hold(&'static Scheduler);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.holds.set(self.0.holds.get() - 1);
        self.0.signal();
    }
}

fn wall_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_coroutine_entries_stay_small() {
        // One of each per live or queued coroutine: their size is memory per
        // coroutine (see bench/README.md).
        assert_eq!(std::mem::size_of::<Wake>(), 8);
        assert_eq!(std::mem::size_of::<Task>(), 24);
        assert_eq!(std::mem::size_of::<Timer>(), 16);
    }

    /// A [`Pending`] that pushes a number it was given.
    struct Counted(c_int);

    impl Pending for Counted {
        fn started(&self, _: Waiter, _: WaitHandle) {}
        fn poll(&self, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
            std::task::Poll::Ready(())
        }
        unsafe fn push(&self, _: *mut lua_State) -> c_int {
            self.0
        }
    }

    #[test]
    fn run_queue_keeps_order_and_pushes() {
        let mut q = RunQueue::default();
        q.push(1, Resume::Staged(2));
        q.push(2, Resume::Push(Box::new(|_| 20)));
        q.push(3, Resume::Timeout);
        q.push(4, Resume::Object(Rc::new(Counted(30))));
        q.push(5, Resume::Push(Box::new(|_| 40)));
        q.push(6, Resume::Doom);
        assert_eq!(q.len(), 6);
        let mut seen = Vec::new();
        while let Some((task, resume)) = q.pop() {
            seen.push(match resume {
                Resume::Staged(n) => (task, n),
                Resume::Timeout => (task, -1),
                Resume::Doom => (task, -3),
                Resume::Push(f) => (task, f(std::ptr::null_mut())),
                // SAFETY: Counted pushes nothing.
                Resume::Object(o) => (task, unsafe { o.push(std::ptr::null_mut()) }),
            });
        }
        assert_eq!(seen, [(1, 2), (2, 20), (3, -1), (4, 30), (5, 40), (6, -3)]);
        assert!(q.is_empty());
    }
}
