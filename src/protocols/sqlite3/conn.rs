//! The SQLite side of a connection, used by jobs only (see exec.rs), under its
//! mutex: the `rusqlite::Connection` and its prepared statements ([`Conn`]),
//! stopping a job whose caller went away ([`Stop`]), and running, stepping
//! and binding statements.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::ffi as sq;

use super::values::{bind_one, bind_ref, column, to_val_ref, Binds, Rows};
use crate::runtime::lua::lua_State;

/// A prepared statement handle, only touched under the connection's mutex.
pub(super) struct RawStmt(pub(super) *mut sq::sqlite3_stmt);

// SAFETY: the handle is used by one thread at a time (under the mutex).
unsafe impl Send for RawStmt {}

/// The hash of a statement's id (numbered from 1 by the connection, never
/// chosen by a script): a multiplication spreads them over the table, where
/// SipHash would cost more than the rest of a short call's bookkeeping.
#[derive(Default)]
pub(super) struct IdHash(u64);

impl Hasher for IdHash {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What the jobs share: the open connection and its statements.
pub(super) struct Conn {
    pub(super) db: Option<rusqlite::Connection>,
    pub(super) stmts: HashMap<u64, RawStmt, BuildHasherDefault<IdHash>>,
    /// Read by the progress handler (so they live as long as `db`).
    pub(super) stop: Arc<Stop>,
}

/// When a running job stops: SQLite's progress handler asks every
/// [`PROGRESS_OPS`] virtual machine instructions, and a job that has not
/// started yet asks first. (`sqlite3_interrupt` alone is not enough: its
/// flag is cleared when a statement starts on an idle connection, so a
/// job that had not quite started when it was called would run in full.)
#[derive(Default)]
pub(super) struct Stop {
    /// The connection is being closed: every job stops.
    pub(super) closing: AtomicBool,
    /// The job running now, and the last one whose caller went away (0:
    /// none; jobs are numbered from 1).
    pub(super) running: AtomicU64,
    pub(super) abandoned: AtomicU64,
}

impl Stop {
    pub(super) fn now(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
            || match self.abandoned.load(Ordering::Relaxed) {
                0 => false,
                id => id == self.running.load(Ordering::Relaxed),
            }
    }
}

const PROGRESS_OPS: c_int = 1000;

unsafe extern "C" fn progress(p: *mut std::ffi::c_void) -> c_int {
    unsafe {
        // SAFETY: `p` is the connection's `Stop`, alive while it is open.
        (*(p as *const Stop)).now() as c_int
    }
}

impl Conn {
    pub(super) fn new(db: rusqlite::Connection) -> Conn {
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
            stmts: HashMap::default(),
            stop,
        }
    }
}

impl Conn {
    pub(super) fn handle(&self) -> Result<*mut sq::sqlite3, String> {
        match &self.db {
            // SAFETY: the handle is only used while `self` is borrowed.
            Some(db) => Ok(unsafe { db.handle() }),
            None => Err("closed".into()),
        }
    }

    pub(super) fn stmt(&self, id: u64) -> Result<*mut sq::sqlite3_stmt, String> {
        self.handle()?;
        self.stmts
            .get(&id)
            .map(|s| s.0)
            .ok_or_else(|| "closed".into())
    }

    pub(super) fn finalize(&mut self, id: u64) {
        if let Some(s) = self.stmts.remove(&id) {
            // SAFETY: a live handle of this connection, removed from the map.
            unsafe { sq::sqlite3_finalize(s.0) };
        }
    }

    /// Finalize every statement and close. Errors only if SQLite refuses.
    pub(super) fn close(&mut self) -> Result<(), String> {
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

pub(super) fn lock(c: &Mutex<Conn>) -> MutexGuard<'_, Conn> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

/// SQLite's message for the last failure on `db`.
pub(super) fn errmsg(db: *mut sq::sqlite3) -> String {
    // SAFETY: `db` is a live connection; the message is copied at once.
    unsafe { CStr::from_ptr(sq::sqlite3_errmsg(db)) }
        .to_string_lossy()
        .into_owned()
}

/// Run every statement of `sql`, stepping each to its end.
pub(super) fn exec(db: *mut sq::sqlite3, sql: &[u8]) -> Result<(), String> {
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
pub(super) fn prepare_one(
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

/// Step `st` up to `max` rows (or to its end).
pub(super) fn step_rows(
    db: *mut sq::sqlite3,
    st: *mut sq::sqlite3_stmt,
    max: usize,
) -> Result<Rows, String> {
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

/// Reset `st` and bind `binds` (every parameter a table does not name is
/// NULL).
pub(super) fn bind(
    db: *mut sq::sqlite3,
    st: *mut sq::sqlite3_stmt,
    binds: &Binds,
) -> Result<(), String> {
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

/// Reset `st` and bind the values at `first..=top` of `l`'s stack
/// (checked, no more than the statement's parameters) by position.
///
/// # Safety
/// `l` is a live Lua thread with those values; `st` a live statement of
/// `db`, used under the mutex.
pub(super) unsafe fn bind_stack(
    db: *mut sq::sqlite3,
    st: *mut sq::sqlite3_stmt,
    l: *mut lua_State,
    first: c_int,
    top: c_int,
) -> Result<(), String> {
    // SAFETY: the callers keep the contract in this function's `# Safety`
    // section, which is all the calls below rely on.
    unsafe {
        sq::sqlite3_reset(st);
        sq::sqlite3_clear_bindings(st);
        for idx in first..=top {
            if bind_ref(st, idx - first + 1, to_val_ref(l, idx)) != sq::SQLITE_OK {
                return Err(errmsg(db));
            }
        }
        Ok(())
    }
}

/// The column names of `st`.
pub(super) fn column_names(st: *mut sq::sqlite3_stmt) -> Vec<Vec<u8>> {
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

/// Prepare `sql`, bind, step up to `max` rows, finalize: one job.
pub(super) fn run_once(
    c: &mut Conn,
    sql: &[u8],
    binds: &Binds,
    max: usize,
) -> Result<Rows, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::sqlite3::values::Val;

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
            // SAFETY: `st` came from prepare_one and is finalized once.
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
