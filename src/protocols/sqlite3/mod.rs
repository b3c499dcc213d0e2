//! `lem.sqlite3.core`: SQLite connections and statements, every call on
//! the blocking pool. The Lua halves are `lua/lem/sqlite3.lua` (the
//! original's API, `nil, 'busy'` when a connection is in use) and
//! `lua/lem/sqlite3/queued.lua` (calls wait their turn). See
//! docs/sqlite3.md.
//!
//! The connection (a `rusqlite::Connection`, SQLite bundled) and its
//! prepared statements live behind one mutex that only pool jobs lock; the
//! loop side hands out one permit at a time (a semaphore), so the second
//! caller is told `'busy'` (or, queued, waits for the permit) before any
//! job is queued. A cancelled caller drops its permit at once; its job
//! still finishes on the pool, and the next job waits for the mutex.
//! Statements are raw `sqlite3_stmt` handles kept in the connection's map
//! by id, finalized before the connection is closed.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::ffi::{c_char, c_int, CStr};
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use rusqlite::ffi as sq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::pool;
use crate::runtime::scheduler::{self, Commit, Resume, TaskId};

static DB: &CStr = c"lem.sqlite3.Connection";
static STMT: &CStr = c"lem.sqlite3.Statement";

/// Rows stepped per pool job by a statement's row iterator.
const ROWS_BATCH: usize = 256;

/// A value going into or coming out of SQLite.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Null,
    Int(i64),
    Float(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

/// A prepared statement handle, only touched under the connection's mutex.
struct RawStmt(*mut sq::sqlite3_stmt);
// SAFETY: the handle is used by one thread at a time (under the mutex).
unsafe impl Send for RawStmt {}

/// What the pool jobs share: the open connection and its statements.
struct Conn {
    db: Option<rusqlite::Connection>,
    stmts: HashMap<u64, RawStmt>,
    /// Read by the progress handler (so they live as long as `db`).
    stop: Arc<Stop>,
}

/// When a running job stops: SQLite's progress handler asks every
/// [`PROGRESS_OPS`] virtual machine instructions, and a job that has not
/// started yet asks first. (`sqlite3_interrupt` alone is not enough: its
/// flag is cleared when a statement starts on an idle connection, so a
/// job that had not quite started when it was called would run in full.)
#[derive(Default)]
struct Stop {
    /// The connection is being closed: every job stops.
    closing: AtomicBool,
    /// The job running now, and the last one whose caller went away (0:
    /// none; jobs are numbered from 1).
    running: AtomicU64,
    abandoned: AtomicU64,
}

impl Stop {
    fn now(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
            || match self.abandoned.load(Ordering::Relaxed) {
                0 => false,
                id => id == self.running.load(Ordering::Relaxed),
            }
    }
}

const PROGRESS_OPS: c_int = 1000;

unsafe extern "C" fn progress(p: *mut std::ffi::c_void) -> c_int {
    // SAFETY: `p` is the connection's `Stop`, alive while it is open.
    (*(p as *const Stop)).now() as c_int
}

impl Conn {
    fn new(db: rusqlite::Connection) -> Conn {
        let stop = Arc::new(Stop::default());
        // SAFETY: `stop` is kept in the Conn, which closes `db` first.
        unsafe {
            sq::sqlite3_progress_handler(
                db.handle(),
                PROGRESS_OPS,
                Some(progress),
                Arc::as_ptr(&stop) as *mut _,
            )
        };
        Conn {
            db: Some(db),
            stmts: HashMap::new(),
            stop,
        }
    }
}

impl Conn {
    fn handle(&self) -> Result<*mut sq::sqlite3, String> {
        match &self.db {
            // SAFETY: the handle is only used while `self` is borrowed.
            Some(db) => Ok(unsafe { db.handle() }),
            None => Err("closed".into()),
        }
    }

    fn stmt(&self, id: u64) -> Result<*mut sq::sqlite3_stmt, String> {
        self.handle()?;
        self.stmts
            .get(&id)
            .map(|s| s.0)
            .ok_or_else(|| "closed".into())
    }

    fn finalize(&mut self, id: u64) {
        if let Some(s) = self.stmts.remove(&id) {
            // SAFETY: a live handle of this connection, removed from the map.
            unsafe { sq::sqlite3_finalize(s.0) };
        }
    }

    /// Finalize every statement and close. Errors only if SQLite refuses.
    fn close(&mut self) -> Result<(), String> {
        let ids: Vec<u64> = self.stmts.keys().copied().collect();
        for id in ids {
            self.finalize(id);
        }
        match self.db.take() {
            Some(db) => db.close().map_err(|(_, e)| e.to_string()),
            None => Ok(()),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn lock(c: &Mutex<Conn>) -> MutexGuard<'_, Conn> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

/// SQLite's message for the last failure on `db`.
fn errmsg(db: *mut sq::sqlite3) -> String {
    // SAFETY: `db` is a live connection; the message is copied at once.
    unsafe { CStr::from_ptr(sq::sqlite3_errmsg(db)) }
        .to_string_lossy()
        .into_owned()
}

/// Run every statement of `sql`, stepping each to its end.
fn exec(db: *mut sq::sqlite3, sql: &[u8]) -> Result<(), String> {
    let mut rest = sql;
    while !rest.is_empty() {
        let (st, used) = prepare_one(db, rest)?;
        rest = &rest[used..];
        let Some(st) = st else { continue };
        let r = loop {
            // SAFETY: `st` is a fresh statement of `db`.
            match unsafe { sq::sqlite3_step(st) } {
                sq::SQLITE_ROW => continue,
                sq::SQLITE_DONE => break Ok(()),
                _ => break Err(errmsg(db)),
            }
        };
        // SAFETY: finalized once, here.
        unsafe { sq::sqlite3_finalize(st) };
        r?;
    }
    Ok(())
}

/// Prepare the first statement of `sql`: the handle (`None` for only
/// blanks or comments) and how many bytes it took.
fn prepare_one(
    db: *mut sq::sqlite3,
    sql: &[u8],
) -> Result<(Option<*mut sq::sqlite3_stmt>, usize), String> {
    if sql.is_empty() {
        return Ok((None, 0));
    }
    let len = c_int::try_from(sql.len()).map_err(|_| "SQL text too long".to_string())?;
    let mut st = std::ptr::null_mut();
    let mut tail: *const c_char = std::ptr::null();
    let start = sql.as_ptr() as *const c_char;
    // SAFETY: `sql` outlives the call; SQLite reads at most `len` bytes.
    let rc = unsafe { sq::sqlite3_prepare_v2(db, start, len, &mut st, &mut tail) };
    if rc != sq::SQLITE_OK {
        return Err(errmsg(db));
    }
    let used = if tail.is_null() {
        sql.len()
    } else {
        // SAFETY: `tail` points into `sql`.
        (unsafe { tail.offset_from(start) } as usize).clamp(1, sql.len())
    };
    Ok(((!st.is_null()).then_some(st), used))
}

/// The value of column `i` of the current row.
///
/// # Safety
/// `st` must be a statement positioned on a row.
unsafe fn column(st: *mut sq::sqlite3_stmt, i: c_int) -> Val {
    let bytes = |p: *const u8| {
        let n = sq::sqlite3_column_bytes(st, i) as usize;
        if p.is_null() || n == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(p, n).to_vec()
        }
    };
    match sq::sqlite3_column_type(st, i) {
        sq::SQLITE_INTEGER => Val::Int(sq::sqlite3_column_int64(st, i)),
        sq::SQLITE_FLOAT => Val::Float(sq::sqlite3_column_double(st, i)),
        sq::SQLITE_TEXT => Val::Text(bytes(sq::sqlite3_column_text(st, i))),
        sq::SQLITE_BLOB => Val::Blob(bytes(sq::sqlite3_column_blob(st, i) as *const u8)),
        _ => Val::Null,
    }
}

/// Rows as one flat vector of `ncols` values each.
#[derive(Debug, Default)]
struct Rows {
    ncols: usize,
    vals: Vec<Val>,
    /// The statement ran to its end.
    done: bool,
}

/// Step `st` up to `max` rows (or to its end).
fn step_rows(db: *mut sq::sqlite3, st: *mut sq::sqlite3_stmt, max: usize) -> Result<Rows, String> {
    // SAFETY: `st` is a live statement of `db`, used under the mutex.
    unsafe {
        let ncols = sq::sqlite3_column_count(st).max(0) as usize;
        let mut rows = Rows {
            ncols,
            ..Rows::default()
        };
        let mut n = 0;
        while n < max {
            match sq::sqlite3_step(st) {
                sq::SQLITE_ROW => {
                    rows.vals.reserve(ncols);
                    for i in 0..ncols {
                        rows.vals.push(column(st, i as c_int));
                    }
                    n += 1;
                }
                sq::SQLITE_DONE => {
                    rows.done = true;
                    break;
                }
                _ => {
                    let e = errmsg(db);
                    sq::sqlite3_reset(st);
                    return Err(e);
                }
            }
        }
        Ok(rows)
    }
}

/// Values to bind: by position, or from a table by name and index.
#[derive(Debug)]
enum Binds {
    None,
    Pos(Vec<Val>),
    Table {
        names: HashMap<Vec<u8>, Val>,
        index: HashMap<i64, Val>,
    },
}

/// Bind one value to parameter `i`.
///
/// # Safety
/// `st` must be a live, reset statement.
unsafe fn bind_one(st: *mut sq::sqlite3_stmt, i: c_int, v: &Val) -> c_int {
    match v {
        Val::Null => sq::sqlite3_bind_null(st, i),
        Val::Int(n) => sq::sqlite3_bind_int64(st, i, *n),
        Val::Float(f) => sq::sqlite3_bind_double(st, i, *f),
        Val::Text(s) => sq::sqlite3_bind_text64(
            st,
            i,
            s.as_ptr() as *const c_char,
            s.len() as u64,
            sq::SQLITE_TRANSIENT(),
            sq::SQLITE_UTF8 as u8,
        ),
        Val::Blob(s) => sq::sqlite3_bind_blob64(
            st,
            i,
            s.as_ptr() as *const _,
            s.len() as u64,
            sq::SQLITE_TRANSIENT(),
        ),
    }
}

/// Reset `st` and bind `binds` (every parameter a table does not name is
/// NULL).
fn bind(db: *mut sq::sqlite3, st: *mut sq::sqlite3_stmt, binds: &Binds) -> Result<(), String> {
    // SAFETY: `st` is a live statement of `db`, used under the mutex.
    unsafe {
        sq::sqlite3_reset(st);
        sq::sqlite3_clear_bindings(st);
        let count = sq::sqlite3_bind_parameter_count(st);
        let check = |rc: c_int| {
            if rc == sq::SQLITE_OK {
                Ok(())
            } else {
                Err(errmsg(db))
            }
        };
        match binds {
            Binds::None => {}
            Binds::Pos(vals) => {
                if vals.len() > count as usize {
                    return Err(format!(
                        "{} values to bind to a statement with {count} parameters",
                        vals.len()
                    ));
                }
                for (i, v) in vals.iter().enumerate() {
                    check(bind_one(st, i as c_int + 1, v))?;
                }
            }
            Binds::Table { names, index } => {
                for i in 1..=count {
                    let name = sq::sqlite3_bind_parameter_name(st, i);
                    let mut v = None;
                    if !name.is_null() {
                        let name = CStr::from_ptr(name).to_bytes();
                        if name.first() != Some(&b'?') {
                            v = names.get(name).or_else(|| names.get(&name[1..]));
                        }
                    }
                    if let Some(v) = v.or_else(|| index.get(&(i as i64))) {
                        check(bind_one(st, i, v))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The column names of `st`.
fn column_names(st: *mut sq::sqlite3_stmt) -> Vec<Vec<u8>> {
    // SAFETY: `st` is a live statement, used under the mutex.
    unsafe {
        (0..sq::sqlite3_column_count(st))
            .map(|i| {
                let p = sq::sqlite3_column_name(st, i);
                if p.is_null() {
                    Vec::new()
                } else {
                    CStr::from_ptr(p).to_bytes().to_vec()
                }
            })
            .collect()
    }
}

/// The loop's side of a connection, shared by its Lua object, its
/// statements and the calls in flight.
struct Shared {
    conn: Arc<Mutex<Conn>>,
    /// One permit: the right to queue a job on the connection.
    permit: Arc<Semaphore>,
    /// Calls wait their turn instead of failing with `'busy'`.
    queued: bool,
    closed: Cell<bool>,
    stop: Arc<Stop>,
    /// Numbers jobs for [`Stop`] (0 is never used).
    next_job: Cell<u64>,
    next_id: Cell<u64>,
    /// The statements' own semaphores, closed with the connection so that
    /// nobody waits for a statement forever.
    stmt_gates: RefCell<Vec<Weak<Semaphore>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Nothing refers to the connection any more: close it, on the pool
        // (a job in flight may still hold the mutex).
        let conn = self.conn.clone();
        pool::global().execute(move || drop(lock(&conn).close()));
    }
}

/// A Connection object.
struct Db(Rc<Shared>);

/// Who holds a statement through `stmt:get()`.
#[derive(Default)]
struct Hold {
    holder: Cell<Option<TaskId>>,
    permit: RefCell<Option<OwnedSemaphorePermit>>,
}

/// A Statement object.
struct Stmt {
    sh: Rc<Shared>,
    id: u64,
    nparams: usize,
    finalized: Rc<Cell<bool>>,
    /// One permit: held by `get()`, or by a queued caller's call.
    gate: Arc<Semaphore>,
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
            pool::global().execute(move || lock(&conn).finalize(id));
        }
    }
}

/// Prepare `commit` and suspend (raises outside a lem coroutine, after
/// dropping the commit).
unsafe fn suspend_with(l: *mut lua_State, commit: Commit) -> c_int {
    scheduler::prepare_or_raise(l, commit);
    crate::runtime::scheduler::suspend(l)
}

/// A failure's values: `nil, msg`.
fn failed(msg: String) -> Resume {
    Resume::Push(Box::new(move |t| unsafe { lua::fail(t, &msg) }))
}

/// Run `job` on the pool with the connection, then `push` its result;
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
    call_as(l, sh, stmt, false, job, push)
}

/// `nil, msg`, or with `iter`, `false, msg` (the row iterator's failure).
unsafe fn fail_as(l: *mut lua_State, iter: bool, msg: &str) -> c_int {
    if iter {
        ffi::lua_pushboolean(l, 0);
        lua::push_str(l, msg);
        2
    } else {
        lua::fail(l, msg)
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
    let failed = move |msg: String| -> Resume {
        Resume::Push(Box::new(move |t| unsafe { fail_as(t, iter, &msg) }))
    };
    if sh.closed.get() || stmt.is_some_and(|s| s.finalized.get()) {
        return fail_as(l, iter, "closed");
    }
    let me = scheduler::get().current();
    let mut gate = None;
    if let Some(s) = stmt {
        let holder = s.hold.holder.get();
        if holder.is_some() && holder != me {
            if !sh.queued {
                return fail_as(l, iter, "busy");
            }
            gate = Some(s.gate.clone());
        }
    }
    let mut permit = None;
    if !sh.queued {
        match sh.permit.clone().try_acquire_owned() {
            Ok(p) => permit = Some(p),
            Err(_) => return fail_as(l, iter, "busy"),
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
    let sem = sh.permit.clone();
    let conn = sh.conn.clone();
    let stop = sh.stop.clone();
    let job_id = sh.next_job.get();
    sh.next_job.set(job_id + 1);
    let fut = async move {
        let _gate = match gate {
            Some(g) => match g.acquire_owned().await {
                Ok(p) => Some(p),
                Err(_) => return failed("closed".into()),
            },
            None => None,
        };
        let _permit = match permit {
            Some(p) => p,
            None => match sem.acquire_owned().await {
                Ok(p) => p,
                Err(_) => return failed("closed".into()),
            },
        };
        // A caller cancelled or timed out while its job runs interrupts
        // the job: the connection is free again soon, not after the query.
        let mut guard = Abandon(Some((stop, job_id)));
        let r = pool::run(move || {
            let mut c = lock(&conn);
            c.stop.running.store(job_id, Ordering::Relaxed);
            if c.stop.now() {
                return Err("interrupted".into());
            }
            if let Some((id, b)) = &pending {
                bind(c.handle()?, c.stmt(*id)?, b)?;
            }
            job(&mut c)
        })
        .await;
        guard.0 = None;
        match r {
            Ok(v) => Resume::Push(Box::new(move |t| push(t, v))),
            Err(e) => failed(e),
        }
    };
    suspend_with(l, Commit::Future(Box::pin(fut)))
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
    ffi::lua_pushboolean(l, 1);
    1
}

unsafe fn push_val(l: *mut lua_State, v: &Val) {
    match v {
        Val::Null => ffi::lua_pushnil(l),
        Val::Int(n) => ffi::lua_pushinteger(l, *n as _),
        Val::Float(f) => ffi::lua_pushnumber(l, *f as _),
        Val::Text(s) | Val::Blob(s) => lua::push_bytes(l, s),
    }
}

/// Push one row: an array of its values (NULL leaves a hole) with the
/// column count in `n`.
unsafe fn push_row(l: *mut lua_State, row: &[Val]) {
    ffi::lua_createtable(l, row.len() as c_int, 1);
    for (i, v) in row.iter().enumerate() {
        if *v != Val::Null {
            push_val(l, v);
            ffi::lua_rawseti(l, -2, (i + 1) as _);
        }
    }
    ffi::lua_pushinteger(l, row.len() as _);
    ffi::lua_setfield(l, -2, c"n".as_ptr());
}

/// Push every row of `rows` as an array of rows.
unsafe fn push_rows(l: *mut lua_State, rows: &Rows) -> c_int {
    let n = rows.vals.len().checked_div(rows.ncols).unwrap_or(0);
    ffi::luaL_checkstack(l, 4, std::ptr::null());
    ffi::lua_createtable(l, n as c_int, 0);
    if rows.ncols > 0 {
        for (i, row) in rows.vals.chunks(rows.ncols).enumerate() {
            push_row(l, row);
            ffi::lua_rawseti(l, -2, (i + 1) as _);
        }
    }
    1
}

/// The first row, or `true` when there is none.
unsafe fn push_first(l: *mut lua_State, rows: &Rows) -> c_int {
    if rows.ncols == 0 || rows.vals.is_empty() {
        return push_true(l);
    }
    ffi::luaL_checkstack(l, 4, std::ptr::null());
    push_row(l, &rows.vals[..rows.ncols]);
    1
}

/// Raise unless the value at `idx` can be bound.
unsafe fn check_bindable(l: *mut lua_State, idx: c_int, arg: c_int) {
    match ffi::lua_type(l, idx) {
        ffi::LUA_TNIL | ffi::LUA_TBOOLEAN | ffi::LUA_TNUMBER | ffi::LUA_TSTRING => {}
        t => {
            let name = CStr::from_ptr(ffi::lua_typename(l, t)).to_string_lossy();
            lua::push_str(
                l,
                &format!("cannot bind a {name} (nil, boolean, number or string expected)"),
            );
            let p = ffi::lua_tostring(l, -1);
            lua::arg_error_ptr(l, arg, p)
        }
    }
}

/// The value at `idx` (already checked) as a [`Val`]. A string is TEXT if
/// it is valid UTF-8, a BLOB otherwise.
unsafe fn to_val(l: *mut lua_State, idx: c_int) -> Val {
    match ffi::lua_type(l, idx) {
        ffi::LUA_TBOOLEAN => Val::Int(ffi::lua_toboolean(l, idx) as i64),
        ffi::LUA_TNUMBER => {
            #[cfg(not(feature = "luajit"))]
            {
                if ffi::lua_isinteger(l, idx) != 0 {
                    return Val::Int(ffi::lua_tointeger(l, idx) as i64);
                }
                Val::Float(ffi::lua_tonumber(l, idx) as f64)
            }
            #[cfg(feature = "luajit")]
            {
                let f = ffi::lua_tonumber(l, idx) as f64;
                if f.fract() == 0.0 && ((i64::MIN as f64)..-(i64::MIN as f64)).contains(&f) {
                    Val::Int(f as i64)
                } else {
                    Val::Float(f)
                }
            }
        }
        ffi::LUA_TSTRING => {
            let b = lua::to_bytes(l, idx).unwrap_or_default();
            if std::str::from_utf8(b).is_ok() {
                Val::Text(b.to_vec())
            } else {
                Val::Blob(b.to_vec())
            }
        }
        _ => Val::Null,
    }
}

/// The values from argument `first` on: one table (names and indices) or
/// values by position. Raises for a value that cannot be bound.
unsafe fn check_binds(l: *mut lua_State, first: c_int) -> Binds {
    let top = ffi::lua_gettop(l);
    if top < first {
        return Binds::None;
    }
    if top == first && ffi::lua_type(l, first) == ffi::LUA_TTABLE {
        // Check every value first: nothing owned while raising.
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, first) != 0 {
            let kt = ffi::lua_type(l, -2);
            if kt != ffi::LUA_TSTRING && kt != ffi::LUA_TNUMBER {
                lua::arg_error(l, first, c"table keys must be names or indices");
            }
            check_bindable(l, -1, first);
            ffi::lua_pop(l, 1);
        }
        let mut names = HashMap::new();
        let mut index = HashMap::new();
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, first) != 0 {
            let v = to_val(l, -1);
            if ffi::lua_type(l, -2) == ffi::LUA_TSTRING {
                names.insert(lua::to_bytes(l, -2).unwrap_or_default().to_vec(), v);
            } else {
                let k = ffi::lua_tonumber(l, -2) as f64;
                if k.fract() == 0.0 {
                    index.insert(k as i64, v);
                }
            }
            ffi::lua_pop(l, 1);
        }
        return Binds::Table { names, index };
    }
    for i in first..=top {
        check_bindable(l, i, i);
    }
    Binds::Pos((first..=top).map(|i| to_val(l, i)).collect())
}

unsafe fn check_db<'a>(l: *mut lua_State) -> &'a Db {
    lua::check_object(l, 1, DB)
}

unsafe fn check_stmt<'a>(l: *mut lua_State) -> &'a Stmt {
    lua::check_object(l, 1, STMT)
}

/// Read argument `arg` as bytes (a string or number).
unsafe fn check_bytes<'a>(l: *mut lua_State, arg: c_int) -> &'a [u8] {
    let mut len = 0usize;
    let p = lua::check_lstring(l, arg, &mut len);
    std::slice::from_raw_parts(p as *const u8, len)
}

/// open(path, flags, queued) -> Connection | nil, err
unsafe extern "C-unwind" fn open_db(l: *mut lua_State) -> c_int {
    lua::check_lstring(l, 1, std::ptr::null_mut());
    let flags = lua::opt_integer(
        l,
        2,
        (sq::SQLITE_OPEN_READWRITE | sq::SQLITE_OPEN_CREATE) as i64,
    );
    let Ok(flags) = c_int::try_from(flags) else {
        lua::arg_error(l, 2, c"flags out of range");
    };
    let queued = ffi::lua_toboolean(l, 3) != 0;
    let path = std::path::PathBuf::from(OsStr::from_bytes(check_bytes(l, 1)));
    let fut = async move {
        let r = pool::run(move || {
            let f = rusqlite::OpenFlags::from_bits_retain(flags);
            rusqlite::Connection::open_with_flags(&path, f).map_err(|e| e.to_string())
        })
        .await;
        match r {
            Ok(db) => Resume::Push(Box::new(move |t| {
                let conn = Conn::new(db);
                let stop = conn.stop.clone();
                let sh = Shared {
                    conn: Arc::new(Mutex::new(conn)),
                    permit: Arc::new(Semaphore::new(1)),
                    queued,
                    closed: Cell::new(false),
                    stop,
                    next_job: Cell::new(1),
                    next_id: Cell::new(1),
                    stmt_gates: RefCell::new(Vec::new()),
                };
                lua::new_class(t, DB, DB_METHODS, Some(lua::gc::<Db>));
                ffi::lua_pop(t, 1);
                lua::push_object(t, DB, Db(Rc::new(sh)));
                1
            })),
            Err(e) => failed(e),
        }
    };
    suspend_with(l, Commit::Future(Box::pin(fut)))
}

/// db:close() -> true | nil, 'closed'. A call in flight is interrupted;
/// callers waiting their turn get `nil, 'closed'`.
unsafe extern "C-unwind" fn db_close(l: *mut lua_State) -> c_int {
    let db = check_db(l);
    let sh = &db.0;
    if sh.closed.get() {
        return lua::fail(l, "closed");
    }
    sh.closed.set(true);
    sh.stop.closing.store(true, Ordering::Relaxed);
    sh.permit.close();
    for g in sh.stmt_gates.borrow_mut().drain(..) {
        if let Some(g) = g.upgrade() {
            g.close();
        }
    }
    let conn = sh.conn.clone();
    let fut = async move {
        match pool::run(move || lock(&conn).close()).await {
            Ok(()) => Resume::Push(Box::new(|t| push_true(t))),
            Err(e) => failed(e),
        }
    };
    suspend_with(l, Commit::Future(Box::pin(fut)))
}

/// db:exec(sql) -> true | nil, err
unsafe extern "C-unwind" fn db_exec(l: *mut lua_State) -> c_int {
    let db = check_db(l);
    let sql = check_bytes(l, 2).to_vec();
    call(
        l,
        &db.0,
        None,
        move |c| exec(c.handle()?, &sql),
        |t, ()| push_true(t),
    )
}

/// db:prepare(sql) -> Statement | nil, err
unsafe extern "C-unwind" fn db_prepare(l: *mut lua_State) -> c_int {
    let db = check_db(l);
    let sql = check_bytes(l, 2).to_vec();
    let sh = db.0.clone();
    let id = sh.next_id.get();
    sh.next_id.set(id + 1);
    let sh2 = sh.clone();
    call(
        l,
        &sh,
        None,
        move |c| {
            let db = c.handle()?;
            match prepare_one(db, &sql)? {
                (Some(st), _) => {
                    c.stmts.insert(id, RawStmt(st));
                    // SAFETY: a live statement.
                    Ok(unsafe { sq::sqlite3_bind_parameter_count(st) } as usize)
                }
                (None, _) => Err("no SQL statement in the text to prepare".into()),
            }
        },
        move |t, nparams| {
            let gate = Arc::new(Semaphore::new(1));
            sh2.stmt_gates.borrow_mut().retain(|g| g.strong_count() > 0);
            sh2.stmt_gates.borrow_mut().push(Arc::downgrade(&gate));
            lua::new_class(t, STMT, STMT_METHODS, Some(lua::gc::<Stmt>));
            ffi::lua_pop(t, 1);
            lua::push_object(
                t,
                STMT,
                Stmt {
                    sh: sh2,
                    id,
                    nparams,
                    finalized: Rc::new(Cell::new(false)),
                    gate,
                    hold: Rc::new(Hold::default()),
                    ahead: Rc::new(RefCell::new((Rows::default(), 0))),
                    pending: RefCell::new(None),
                },
            );
            1
        },
    )
}

/// A counter of the connection (0 once closed), read on the pool.
unsafe fn db_counter(l: *mut lua_State, get: fn(&rusqlite::Connection) -> i64) -> c_int {
    let db = check_db(l);
    call(
        l,
        &db.0,
        None,
        move |c| Ok(c.db.as_ref().map_or(0, get)),
        |t, n| {
            ffi::lua_pushinteger(t, n as _);
            1
        },
    )
}

/// db:last_insert_rowid() -> integer
unsafe extern "C-unwind" fn db_last_insert_rowid(l: *mut lua_State) -> c_int {
    db_counter(l, |d| d.last_insert_rowid())
}

/// db:changes() -> integer
unsafe extern "C-unwind" fn db_changes(l: *mut lua_State) -> c_int {
    db_counter(l, |d| d.changes() as i64)
}

/// db:autocommit() -> boolean
unsafe extern "C-unwind" fn db_autocommit(l: *mut lua_State) -> c_int {
    let db = check_db(l);
    call(
        l,
        &db.0,
        None,
        |c| Ok(c.db.as_ref().is_some_and(|d| d.is_autocommit())),
        |t, b| {
            ffi::lua_pushboolean(t, b as c_int);
            1
        },
    )
}

/// Prepare `sql`, bind, step up to `max` rows, finalize: one pool job.
fn run_once(c: &mut Conn, sql: &[u8], binds: &Binds, max: usize) -> Result<Rows, String> {
    let db = c.handle()?;
    let st = match prepare_one(db, sql)? {
        (Some(st), _) => st,
        (None, _) => return Err("no SQL statement in the text given".into()),
    };
    let r = bind(db, st, binds).and_then(|()| step_rows(db, st, max));
    // SAFETY: finalized once, here.
    unsafe { sq::sqlite3_finalize(st) };
    r
}

/// db:fetchall(sql, ...) -> rows | nil, err
unsafe extern "C-unwind" fn db_fetchall(l: *mut lua_State) -> c_int {
    let db = check_db(l);
    check_bytes(l, 2);
    let binds = check_binds(l, 3);
    let sql = check_bytes(l, 2).to_vec();
    call(
        l,
        &db.0,
        None,
        move |c| run_once(c, &sql, &binds, usize::MAX),
        |t, rows| push_rows(t, &rows),
    )
}

/// db:fetchone(sql, ...) -> row | true | nil, err
unsafe extern "C-unwind" fn db_fetchone(l: *mut lua_State) -> c_int {
    let db = check_db(l);
    check_bytes(l, 2);
    let binds = check_binds(l, 3);
    let sql = check_bytes(l, 2).to_vec();
    call(
        l,
        &db.0,
        None,
        move |c| run_once(c, &sql, &binds, 1),
        |t, rows| push_first(t, &rows),
    )
}

/// stmt:bind(...) -> true | nil, err
unsafe extern "C-unwind" fn stmt_bind(l: *mut lua_State) -> c_int {
    let s = check_stmt(l);
    let top = ffi::lua_gettop(l);
    let by_table = top == 2 && ffi::lua_type(l, 2) == ffi::LUA_TTABLE;
    if !by_table && (top - 1) as usize > s.nparams {
        let msg = format!(
            "{} values to bind to a statement with {} parameters",
            top - 1,
            s.nparams
        );
        lua::push_str(l, &msg);
        drop(msg);
        let p = ffi::lua_tostring(l, -1);
        lua::arg_error_ptr(l, s.nparams as c_int + 2, p);
    }
    if s.finalized.get() || s.sh.closed.get() {
        return lua::fail(l, "closed");
    }
    let me = scheduler::get().current();
    let holder = s.hold.holder.get();
    let held_by_other = holder.is_some() && holder != me;
    if !s.sh.queued && (held_by_other || s.sh.permit.available_permits() == 0) {
        return lua::fail(l, "busy");
    }
    let binds = check_binds(l, 2);
    if !held_by_other {
        // The values go to SQLite with the statement's next call, which
        // is then one trip to the pool instead of two.
        *s.ahead.borrow_mut() = (Rows::default(), 0);
        *s.pending.borrow_mut() = Some(binds);
        return push_true(l);
    }
    // Queued, held by another coroutine: wait for it, then bind.
    let id = s.id;
    call(
        l,
        &s.sh,
        Some(s),
        move |c| bind(c.handle()?, c.stmt(id)?, &binds),
        |t, ()| push_true(t),
    )
}

/// Binds from the table at `idx` (already checked): names and indices,
/// or, without string keys, values by position (`1..n`, where `n` is the
/// field `n` or the length).
unsafe fn table_binds(l: *mut lua_State, idx: c_int) -> Binds {
    let mut names = HashMap::new();
    let mut index = HashMap::new();
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, idx) != 0 {
        let v = to_val(l, -1);
        if ffi::lua_type(l, -2) == ffi::LUA_TSTRING {
            let k = lua::to_bytes(l, -2).unwrap_or_default();
            if k != b"n" {
                names.insert(k.to_vec(), v);
            }
        } else {
            let k = ffi::lua_tonumber(l, -2) as f64;
            if k.fract() == 0.0 {
                index.insert(k as i64, v);
            }
        }
        ffi::lua_pop(l, 1);
    }
    if names.is_empty() {
        let n = index.keys().copied().max().unwrap_or(0).max(0);
        Binds::Pos(
            (1..=n)
                .map(|i| index.remove(&i).unwrap_or(Val::Null))
                .collect(),
        )
    } else {
        Binds::Table { names, index }
    }
}

/// Raise unless every value of the table at `idx` can be bound.
unsafe fn check_table(l: *mut lua_State, idx: c_int, arg: c_int) {
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, idx) != 0 {
        let kt = ffi::lua_type(l, -2);
        if kt != ffi::LUA_TSTRING && kt != ffi::LUA_TNUMBER {
            lua::arg_error(l, arg, c"table keys must be names or indices");
        }
        check_bindable(l, -1, arg);
        ffi::lua_pop(l, 1);
    }
}

/// stmt:execmany(list) -> count | nil, err, index
///
/// For each entry of `list` (a table of values, by position or by name):
/// bind it and step the statement to its end, all in one pool job.
unsafe extern "C-unwind" fn stmt_execmany(l: *mut lua_State) -> c_int {
    let s = check_stmt(l);
    lua::check_type(l, 2, ffi::LUA_TTABLE);
    let n = ffi::lua_rawlen(l, 2) as i64;
    ffi::luaL_checkstack(l, 4, std::ptr::null());
    for i in 1..=n {
        lua::push_index(l, 2, i as _);
        if ffi::lua_type(l, -1) != ffi::LUA_TTABLE {
            lua::arg_error(l, 2, c"a list of tables of values expected");
        }
        check_table(l, ffi::lua_gettop(l), 2);
        ffi::lua_pop(l, 1);
    }
    let mut list = Vec::with_capacity(n as usize);
    for i in 1..=n {
        lua::push_index(l, 2, i as _);
        list.push(table_binds(l, ffi::lua_gettop(l)));
        ffi::lua_pop(l, 1);
    }
    let id = s.id;
    call(
        l,
        &s.sh,
        Some(s),
        move |c| {
            let db = c.handle()?;
            let st = c.stmt(id)?;
            for (i, b) in list.iter().enumerate() {
                let r = bind(db, st, b).and_then(|()| {
                    // SAFETY: a live statement of `db`.
                    unsafe {
                        loop {
                            match sq::sqlite3_step(st) {
                                sq::SQLITE_ROW => continue,
                                sq::SQLITE_DONE => break Ok(()),
                                _ => break Err(errmsg(db)),
                            }
                        }
                    }
                });
                if let Err(e) = r {
                    // SAFETY: as above.
                    unsafe { sq::sqlite3_reset(st) };
                    return Ok(Err((e, i + 1)));
                }
            }
            // SAFETY: as above.
            unsafe { sq::sqlite3_reset(st) };
            Ok(Ok(list.len()))
        },
        |t, r| match r {
            Ok(n) => {
                ffi::lua_pushinteger(t, n as _);
                1
            }
            Err((e, i)) => {
                lua::fail(t, &e);
                ffi::lua_pushinteger(t, i as _);
                3
            }
        },
    )
}

/// stmt:step() -> row | true | nil, err
unsafe extern "C-unwind" fn stmt_step(l: *mut lua_State) -> c_int {
    let s = check_stmt(l);
    let id = s.id;
    call(
        l,
        &s.sh,
        Some(s),
        move |c| step_rows(c.handle()?, c.stmt(id)?, 1),
        |t, rows| push_first(t, &rows),
    )
}

/// stmt:reset() -> true | nil, err
unsafe extern "C-unwind" fn stmt_reset(l: *mut lua_State) -> c_int {
    let s = check_stmt(l);
    let id = s.id;
    *s.ahead.borrow_mut() = (Rows::default(), 0);
    call(
        l,
        &s.sh,
        Some(s),
        move |c| {
            let st = c.stmt(id)?;
            // SAFETY: a live statement. The last step's error, if any, was
            // reported by that step.
            unsafe { sq::sqlite3_reset(st) };
            Ok(())
        },
        |t, ()| push_true(t),
    )
}

/// stmt:column_names() -> { name, ... }
unsafe extern "C-unwind" fn stmt_column_names(l: *mut lua_State) -> c_int {
    let s = check_stmt(l);
    let id = s.id;
    call(
        l,
        &s.sh,
        Some(s),
        move |c| Ok(column_names(c.stmt(id)?)),
        |t, names| {
            ffi::luaL_checkstack(t, 3, std::ptr::null());
            ffi::lua_createtable(t, names.len() as c_int, 0);
            for (i, n) in names.iter().enumerate() {
                lua::push_bytes(t, n);
                ffi::lua_rawseti(t, -2, (i + 1) as _);
            }
            1
        },
    )
}

/// stmt:finalize() -> true | nil, 'closed'
unsafe extern "C-unwind" fn stmt_finalize(l: *mut lua_State) -> c_int {
    let s = check_stmt(l);
    let id = s.id;
    let finalized = s.finalized.clone();
    call(
        l,
        &s.sh,
        Some(s),
        move |c| {
            c.finalize(id);
            Ok(())
        },
        move |t, ()| {
            finalized.set(true);
            push_true(t)
        },
    )
}

/// stmt:fetchall() -> rows | nil, err (from the start; reset after)
unsafe extern "C-unwind" fn stmt_fetchall(l: *mut lua_State) -> c_int {
    let s = check_stmt(l);
    let id = s.id;
    call(
        l,
        &s.sh,
        Some(s),
        move |c| {
            let st = c.stmt(id)?;
            // SAFETY: a live statement; run from its start, left reset.
            unsafe { sq::sqlite3_reset(st) };
            let r = step_rows(c.handle()?, st, usize::MAX);
            // SAFETY: as above.
            unsafe { sq::sqlite3_reset(st) };
            r
        },
        |t, rows| push_rows(t, &rows),
    )
}

/// stmt:fetchone() -> row | true | nil, err (from the start; reset after)
unsafe extern "C-unwind" fn stmt_fetchone(l: *mut lua_State) -> c_int {
    let s = check_stmt(l);
    let id = s.id;
    call(
        l,
        &s.sh,
        Some(s),
        move |c| {
            let st = c.stmt(id)?;
            // SAFETY: a live statement; run from its start, left reset.
            unsafe { sq::sqlite3_reset(st) };
            let r = step_rows(c.handle()?, st, 1);
            // SAFETY: as above.
            unsafe { sq::sqlite3_reset(st) };
            r
        },
        |t, rows| push_first(t, &rows),
    )
}

/// Push the next row stepped ahead onto `t`, or nil at the end (`Some(1)`
/// either way); `None` if nothing is buffered.
unsafe fn push_ahead(t: *mut lua_State, ahead: &RefCell<(Rows, usize)>) -> Option<c_int> {
    let mut a = ahead.borrow_mut();
    let (rows, at) = &mut *a;
    if rows.ncols > 0 && *at + rows.ncols <= rows.vals.len() {
        ffi::luaL_checkstack(t, 4, std::ptr::null());
        push_row(t, &rows.vals[*at..*at + rows.ncols]);
        *at += rows.ncols;
        return Some(1);
    }
    if rows.done {
        *a = (Rows::default(), 0);
        ffi::lua_pushnil(t);
        return Some(1);
    }
    None
}

/// stmt:_next() -> row | nil (the end: the statement is reset) | false, err
///
/// The row iterator's step: rows are stepped [`ROWS_BATCH`] at a time.
unsafe extern "C-unwind" fn stmt_next(l: *mut lua_State) -> c_int {
    let s = check_stmt(l);
    if !s.finalized.get() && !s.sh.closed.get() && push_ahead(l, &s.ahead).is_some() {
        return 1;
    }
    let id = s.id;
    let ahead = s.ahead.clone();
    call_as(
        l,
        &s.sh,
        Some(s),
        true,
        move |c| {
            let st = c.stmt(id)?;
            let r = step_rows(c.handle()?, st, ROWS_BATCH);
            if let Ok(Rows { done: true, .. }) = r {
                // SAFETY: a live statement.
                unsafe { sq::sqlite3_reset(st) };
            }
            r
        },
        move |t, rows| {
            *ahead.borrow_mut() = (rows, 0);
            push_ahead(t, &ahead).unwrap_or(0)
        },
    )
}

/// stmt:get() -> true: hold the statement for this coroutine (queued: wait
/// for it); others' calls on it are 'busy' (queued: wait) until `put()`.
unsafe extern "C-unwind" fn stmt_get(l: *mut lua_State) -> c_int {
    let s = check_stmt(l);
    if s.finalized.get() || s.sh.closed.get() {
        return lua::fail(l, "closed");
    }
    let me = scheduler::get().current();
    if s.hold.holder.get().is_some() && s.hold.holder.get() == me {
        return push_true(l);
    }
    if !s.sh.queued {
        return match s.gate.clone().try_acquire_owned() {
            Ok(p) => {
                s.hold.holder.set(me);
                *s.hold.permit.borrow_mut() = Some(p);
                push_true(l)
            }
            Err(_) => lua::fail(l, "busy"),
        };
    }
    let gate = s.gate.clone();
    let hold = s.hold.clone();
    let fut = async move {
        match gate.acquire_owned().await {
            Ok(p) => {
                hold.holder.set(me);
                *hold.permit.borrow_mut() = Some(p);
                Resume::Push(Box::new(|t| push_true(t)))
            }
            Err(_) => failed("closed".into()),
        }
    };
    suspend_with(l, Commit::Future(Box::pin(fut)))
}

/// stmt:put() -> true: give back what `get()` took.
unsafe extern "C-unwind" fn stmt_put(l: *mut lua_State) -> c_int {
    let s = check_stmt(l);
    let me = scheduler::get().current();
    if s.hold.holder.get().is_none() || s.hold.holder.get() != me {
        ffi::luaL_error(
            l,
            c"statement not held by this coroutine (see stmt:get)".as_ptr(),
        );
        unreachable!()
    }
    s.hold.holder.set(None);
    s.hold.permit.borrow_mut().take();
    push_true(l)
}

const DB_METHODS: &[Reg] = &[
    (c"close", db_close),
    (c"exec", db_exec),
    (c"prepare", db_prepare),
    (c"last_insert_rowid", db_last_insert_rowid),
    (c"changes", db_changes),
    (c"autocommit", db_autocommit),
    (c"fetchall", db_fetchall),
    (c"fetchone", db_fetchone),
];

const STMT_METHODS: &[Reg] = &[
    (c"bind", stmt_bind),
    (c"step", stmt_step),
    (c"reset", stmt_reset),
    (c"column_names", stmt_column_names),
    (c"finalize", stmt_finalize),
    (c"fetchall", stmt_fetchall),
    (c"fetchone", stmt_fetchone),
    (c"execmany", stmt_execmany),
    (c"get", stmt_get),
    (c"put", stmt_put),
    (c"_next", stmt_next),
];

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

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> Conn {
        Conn::new(rusqlite::Connection::open_in_memory().unwrap())
    }

    #[test]
    fn exec_runs_every_statement_and_reports_errors() {
        let c = mem();
        let db = c.handle().unwrap();
        exec(
            db,
            b"create table t(a); insert into t values(1); -- done\n  ",
        )
        .unwrap();
        let rows = {
            let (st, _) = prepare_one(db, b"select count(*) from t").unwrap();
            let st = st.unwrap();
            let r = step_rows(db, st, 10).unwrap();
            unsafe { sq::sqlite3_finalize(st) };
            r
        };
        assert_eq!(rows.vals, vec![Val::Int(1)]);
        assert!(rows.done);
        let e = exec(db, b"insert into nope values(1)").unwrap_err();
        assert!(e.contains("no such table"), "{e}");
    }

    #[test]
    fn binds_by_name_with_or_without_prefix_and_by_index() {
        let mut c = mem();
        let mut names = HashMap::new();
        names.insert(b"a".to_vec(), Val::Int(1));
        names.insert(b"@b".to_vec(), Val::Text(b"x\0y".to_vec()));
        let mut index = HashMap::new();
        index.insert(3, Val::Float(2.5));
        let binds = Binds::Table { names, index };
        let r = run_once(&mut c, b"select :a, @b, ?3, $d", &binds, 5).unwrap();
        assert_eq!(
            r.vals,
            vec![
                Val::Int(1),
                Val::Text(b"x\0y".to_vec()),
                Val::Float(2.5),
                Val::Null
            ]
        );
    }

    #[test]
    fn too_many_positional_values_are_an_error() {
        let mut c = mem();
        let e = run_once(
            &mut c,
            b"select ?",
            &Binds::Pos(vec![Val::Null, Val::Null]),
            1,
        )
        .unwrap_err();
        assert!(e.contains("2 values"), "{e}");
    }

    #[test]
    fn close_finalizes_open_statements() {
        let mut c = mem();
        let db = c.handle().unwrap();
        let (st, _) = prepare_one(db, b"select 1").unwrap();
        c.stmts.insert(1, RawStmt(st.unwrap()));
        c.close().unwrap();
        assert_eq!(c.stmt(1).unwrap_err(), "closed");
    }

    #[test]
    fn a_stopped_job_is_interrupted() {
        let mut c = mem();
        c.stop.running.store(7, Ordering::Relaxed);
        c.stop.abandoned.store(7, Ordering::Relaxed);
        let long = b"with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c";
        let e = run_once(&mut c, long, &Binds::None, 1).unwrap_err();
        assert_eq!(e, "interrupted");
        c.stop.running.store(8, Ordering::Relaxed);
        let r = run_once(&mut c, b"select 1", &Binds::None, 1).unwrap();
        assert_eq!(r.vals, vec![Val::Int(1)]);
    }
}
