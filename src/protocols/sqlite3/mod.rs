//! `lem.sqlite3.core`: SQLite connections and statements, each
//! connection's calls on a thread of its own (or, `inline`, on the loop
//! thread: see `exec.rs`). The Lua halves are `lua/lem/sqlite3.lua` (the
//! original's API, `nil, 'busy'` when a connection is in use) and
//! `lua/lem/sqlite3/queued.lua` (calls wait their turn). See
//! docs/sqlite3.md.
//!
//! The connection (a `rusqlite::Connection`, SQLite bundled) and its
//! prepared statements live behind one mutex that only jobs lock; the
//! loop side lets one caller at a time take its turn (a [`Turn`]), so the
//! second caller is told `'busy'` (or, queued, waits its turn) before any
//! job is queued. A cancelled caller gives its turn back at once; its job
//! still finishes on the connection's thread, and the next one waits
//! behind it there.
//! Statements are raw `sqlite3_stmt` handles kept in the connection's map
//! by id, finalized before the connection is closed.
//!
//! Here: the loop's side of a connection ([`Shared`], the two objects, how
//! a call takes its turn and runs) and the opener. `exec.rs` is where
//! jobs run; `conn.rs` is the SQLite side, under the mutex; `values.rs` the values between Lua
//! and SQLite; `db.rs` and `stmt.rs` the Connection's and the Statement's
//! methods.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, CStr};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::runtime::lua::{self, ffi, lua_State};
use crate::runtime::scheduler::{self, Commit, Resume, TaskId};
use crate::runtime::turn::{Held, Turn, WeakTurn};
use rusqlite::ffi as sq;

mod conn;
mod db;
mod exec;
mod stmt;
mod values;

use conn::{bind, lock, Conn, Stop};
use db::{open_db, DB_METHODS};
use exec::{Exec, Reply};
use stmt::STMT_METHODS;
use values::{Binds, Rows};

static DB: &CStr = c"lem.sqlite3.Connection";

static STMT: &CStr = c"lem.sqlite3.Statement";

/// The loop's side of a connection, shared by its Lua object, its
/// statements and the calls in flight.
struct Shared {
    conn: Arc<Mutex<Conn>>,
    /// Where its calls run: the loop thread or the connection's own.
    exec: Exec,
    /// The right to queue a job on the connection.
    turn: Turn,
    /// Calls wait their turn instead of failing with `'busy'`.
    queued: bool,
    closed: Cell<bool>,
    stop: Arc<Stop>,
    /// Numbers jobs for [`Stop`] (0 is never used).
    next_job: Cell<u64>,
    next_id: Cell<u64>,
    /// The statements' own turns, closed with the connection so that
    /// nobody waits for a statement forever.
    stmt_turns: RefCell<Vec<WeakTurn>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Nothing refers to the connection any more: close it after the
        // jobs in flight (its thread then ends).
        let conn = self.conn.clone();
        self.exec.detach(move || drop(lock(&conn).close()));
    }
}

/// A Connection object.
struct Db(Rc<Shared>);

/// Who holds a statement through `stmt:get()`.
#[derive(Default)]
struct Hold {
    holder: Cell<Option<TaskId>>,
    held: RefCell<Option<Held>>,
}

/// A Statement object.
struct Stmt {
    sh: Rc<Shared>,
    id: u64,
    nparams: usize,
    finalized: Rc<Cell<bool>>,
    /// Held by `get()`, or by a queued caller's call.
    turn: Turn,
    hold: Rc<Hold>,
    /// Rows stepped ahead by the row iterator, and where it is in them.
    ahead: Rc<RefCell<(Rows, usize)>>,
    /// Values bound but not yet given to SQLite (see `stmt_bind`).
    pending: RefCell<Option<Binds>>,
}

impl Drop for Stmt {
    fn drop(&mut self) {
        if !self.finalized.get() && !self.sh.closed.get() {
            let conn = self.sh.conn.clone();
            let id = self.id;
            self.sh.exec.detach(move || lock(&conn).finalize(id));
        }
    }
}

/// Prepare `commit` and suspend (raises outside a lem coroutine, after
/// dropping the commit).
unsafe fn suspend_with(l: *mut lua_State, commit: Commit) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        scheduler::prepare_or_raise(l, commit);
        crate::runtime::scheduler::suspend(l)
    }
}

/// A failure's values: `nil, msg`.
fn failed(msg: String) -> Resume {
    // SAFETY: the scheduler calls a Resume::Push closure with the resumed
    // thread `t`, with room for the values it pushes.
    Resume::Push(Box::new(move |t| unsafe { lua::fail(t, &msg) }))
}

/// Run `job` with the connection, then `push` its result;
/// `nil, err` for its error. `'closed'` and `'busy'` (or, queued, a wait)
/// come first. With `stmt`, a statement another coroutine holds through
/// `get()` is `'busy'` too (queued: its turn is awaited).
///
/// # Safety
/// The `return` expression of a `lua_CFunction`, every argument checked.
unsafe fn call<T: Send + 'static>(
    l: *mut lua_State,
    sh: &Rc<Shared>,
    stmt: Option<&Stmt>,
    job: impl FnOnce(&mut Conn) -> Result<T, String> + Send + 'static,
    push: impl FnOnce(*mut lua_State, T) -> c_int + 'static,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { call_as(l, sh, stmt, false, job, push) }
}

/// `nil, msg`, or with `iter`, `false, msg` (the row iterator's failure).
unsafe fn fail_as(l: *mut lua_State, iter: bool, msg: &str) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if iter {
            ffi::lua_pushboolean(l, 0);
            lua::push_str(l, msg);
            2
        } else {
            lua::fail(l, msg)
        }
    }
}

/// [`call`], failing with `false, msg` when `iter` is set.
///
/// # Safety
/// As [`call`].
unsafe fn call_as<T: Send + 'static>(
    l: *mut lua_State,
    sh: &Rc<Shared>,
    stmt: Option<&Stmt>,
    iter: bool,
    job: impl FnOnce(&mut Conn) -> Result<T, String> + Send + 'static,
    push: impl FnOnce(*mut lua_State, T) -> c_int + 'static,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let failed = move |msg: String| -> Resume {
            Resume::Push(Box::new(move |t| fail_as(t, iter, &msg)))
        };
        if sh.closed.get() || stmt.is_some_and(|s| s.finalized.get()) {
            return fail_as(l, iter, "closed");
        }
        if !sh.exec.is_inline() && !lua::is_yieldable(l) {
            drop((job, push));
            raise_unyieldable(l);
        }
        let me = scheduler::get().current();
        let mut gate = None;
        if let Some(s) = stmt {
            let holder = s.hold.holder.get();
            if holder.is_some() && holder != me {
                if !sh.queued {
                    return fail_as(l, iter, "busy");
                }
                gate = Some(s.turn.clone());
            }
        }
        let mut held = None;
        if !sh.queued {
            match sh.turn.try_take() {
                Some(h) => held = Some(h),
                None => return fail_as(l, iter, "busy"),
            }
        }
        // Values bound since the last call go with this one; rows the
        // iterator stepped ahead are stale after any other call.
        let pending = stmt.and_then(|s| {
            if !iter {
                *s.ahead.borrow_mut() = (Rows::default(), 0);
            }
            s.pending.borrow_mut().take().map(|b| (s.id, b))
        });
        let conn = sh.conn.clone();
        let job_id = sh.next_job.get();
        sh.next_job.set(job_id + 1);
        // Each job notes its number (for `Stop`), binds what is pending, runs.
        let work = move || {
            let mut c = lock(&conn);
            c.stop.running.store(job_id, Ordering::Relaxed);
            if c.stop.now() {
                return Err("interrupted".into());
            }
            if let Some((id, b)) = &pending {
                bind(c.handle()?, c.stmt(*id)?, b)?;
            }
            job(&mut c)
        };
        if gate.is_none() {
            if let Some(h) = held.take().or_else(|| sh.turn.try_take()) {
                // The turn is at hand: run now, or on the connection's
                // thread; a short job's caller returns without suspending.
                return match sh.exec.run(work).wait_briefly() {
                    Ok(r) => {
                        drop(h);
                        match r {
                            Ok(v) => push(l, v),
                            Err(e) => fail_as(l, iter, &e),
                        }
                    }
                    Err(reply) => {
                        // The job is under way: from now on, a caller that
                        // goes away (its future dropped, polled or not)
                        // stops it.
                        let guard = Abandon(Some((sh.stop.clone(), job_id)));
                        let fut = async move {
                            let _held = h;
                            finish(reply, guard, iter, push).await
                        };
                        suspend_with(l, Commit::Future(Box::pin(fut)))
                    }
                };
            }
        }
        // Queued: wait for the statement held by another coroutine, then for
        // the connection.
        let sh = sh.clone();
        let held = held.take();
        let fut = async move {
            let _gate = match gate {
                Some(g) => match g.take().await {
                    Some(h) => Some(h),
                    None => return failed("closed".into()),
                },
                None => None,
            };
            let _held = match held {
                Some(h) => h,
                None => match sh.turn.take().await {
                    Some(h) => h,
                    None => return failed("closed".into()),
                },
            };
            let guard = Abandon(Some((sh.stop.clone(), job_id)));
            let reply = sh.exec.run(work);
            finish(reply, guard, iter, push).await
        };
        suspend_with(l, Commit::Future(Box::pin(fut)))
    }
}

/// Where the caller cannot suspend (a C function's callback), a call that
/// may have to raises before its job starts, as any suspending call would.
///
/// # Safety
/// Raises: nothing owned may be alive in the caller's frame.
unsafe fn raise_unyieldable(l: *mut lua_State) -> ! {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::luaL_error(l, c"attempt to yield across a C-call boundary".as_ptr());
        unreachable!("luaL_error returned")
    }
}

/// Await a job's reply; the values to resume its caller with. A caller
/// cancelled or timed out while its job runs interrupts the job: the
/// connection is free again soon, not after the query.
async fn finish<T: Send + 'static>(
    reply: Reply<Result<T, String>>,
    mut guard: Abandon,
    iter: bool,
    push: impl FnOnce(*mut lua_State, T) -> c_int + 'static,
) -> Resume {
    let r = reply.wait().await;
    guard.0 = None;
    let r = r.unwrap_or_else(|| Err("the SQLite job failed".into()));
    match r {
        Ok(v) => Resume::Push(Box::new(move |t| push(t, v))),
        // SAFETY: the scheduler calls a Resume::Push closure with the
        // resumed thread `t`, with room for the values it pushes.
        Err(e) => Resume::Push(Box::new(move |t| unsafe { fail_as(t, iter, &e) })),
    }
}

/// Stops a job when dropped (its caller went away) unless disarmed.
struct Abandon(Option<(Arc<Stop>, u64)>);

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some((stop, id)) = self.0.take() {
            stop.abandoned.store(id, Ordering::Relaxed);
        }
    }
}

unsafe fn push_true(l: *mut lua_State) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// The flag constants, as SQLite numbers them.
const FLAGS: &[(&CStr, c_int)] = &[
    (c"READONLY", sq::SQLITE_OPEN_READONLY),
    (c"READWRITE", sq::SQLITE_OPEN_READWRITE),
    (c"CREATE", sq::SQLITE_OPEN_CREATE),
    (c"URI", sq::SQLITE_OPEN_URI),
    (c"NOMUTEX", sq::SQLITE_OPEN_NOMUTEX),
    (c"FULLMUTEX", sq::SQLITE_OPEN_FULLMUTEX),
    (c"SHAREDCACHE", sq::SQLITE_OPEN_SHAREDCACHE),
    (c"PRIVATECACHE", sq::SQLITE_OPEN_PRIVATECACHE),
];

/// luaopen for `lem.sqlite3.core`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::new_lib(l, &[(c"open", open_db)]);
        for (name, v) in FLAGS {
            ffi::lua_pushinteger(l, *v as _);
            ffi::lua_setfield(l, -2, name.as_ptr());
        }
        lua::new_class(l, DB, DB_METHODS, Some(lua::gc::<Db>));
        ffi::lua_setfield(l, -2, c"Connection".as_ptr());
        lua::new_class(l, STMT, STMT_METHODS, Some(lua::gc::<Stmt>));
        ffi::lua_setfield(l, -2, c"Statement".as_ptr());
        lua::push_str(l, rusqlite::version());
        ffi::lua_setfield(l, -2, c"version".as_ptr());
        1
    }
}
