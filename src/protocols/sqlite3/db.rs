//! The Connection object: `open` and the `db:` methods.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, CStr, CString};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::conn::{errmsg, exec, lock, prepare_one, run_once, Conn, RawStmt};
use super::exec::Exec;
use super::stmt::STMT_METHODS;
use super::values::{check_binds, push_first, push_rows, Rows};
use super::{
    call, failed, push_true, raise_unyieldable, suspend_with, Db, Hold, Shared, Stmt, DB, STMT,
};
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::scheduler::{Commit, Resume};
use crate::runtime::turn::Turn;
use rusqlite::ffi as sq;

unsafe fn check_db<'a>(l: *mut lua_State) -> &'a Db {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { lua::check_object(l, 1, DB) }
}

/// The options of `sqlite3.open`: whether the calls run on the loop thread.
unsafe fn check_open_options(l: *mut lua_State, arg: c_int) -> bool {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let mut inline = false;
        if lua::is_none_or_nil(l, arg) {
            return inline;
        }
        lua::check_type(l, arg, ffi::LUA_TTABLE);
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, arg) != 0 {
            let known = ffi::lua_type(l, -2) == ffi::LUA_TSTRING
                && lua::to_bytes(l, -2) == Some(&b"inline"[..]);
            if !known {
                let k = lua::display(l, -2);
                ffi::lua_pop(l, 2);
                lua::push_str(l, &format!("unknown option '{k}'"));
                drop(k);
                lua::arg_error_ptr(l, arg, ffi::lua_tostring(l, -1));
            }
            if ffi::lua_type(l, -1) != ffi::LUA_TBOOLEAN {
                lua::arg_error(l, arg, c"inline must be a boolean");
            }
            inline = ffi::lua_toboolean(l, -1) != 0;
            ffi::lua_pop(l, 1);
        }
        inline
    }
}

/// Open `path` with `sqlite3_open_v2`, with extended result codes and a
/// busy timeout of 5 s; a failure is SQLite's message as it is
/// (`'unable to open database file'`).
fn open_conn(path: &CStr, mut flags: c_int) -> Result<Conn, String> {
    let mut db = std::ptr::null_mut();
    flags |= sq::SQLITE_OPEN_EXRESCODE;
    // One thread at a time uses a connection (its jobs take the mutex of
    // `Conn`), so SQLite's own locking of it is not needed, unless asked for.
    if flags & sq::SQLITE_OPEN_FULLMUTEX == 0 {
        flags |= sq::SQLITE_OPEN_NOMUTEX;
    }
    // SAFETY: `path` is a C string; `db` receives a handle (or null).
    let rc = unsafe { sq::sqlite3_open_v2(path.as_ptr(), &mut db, flags, std::ptr::null()) };
    if rc != sq::SQLITE_OK {
        let msg = if db.is_null() {
            // SAFETY: sqlite3_errstr returns a static string for any code.
            unsafe { CStr::from_ptr(sq::sqlite3_errstr(rc)) }
                .to_string_lossy()
                .into_owned()
        } else {
            errmsg(db)
        };
        // SAFETY: the handle of a failed open is closed once, here (a
        // null one is a no-op).
        unsafe { sq::sqlite3_close(db) };
        return Err(msg);
    }
    // SAFETY: `db` is a live connection of ours.
    let rc = unsafe { sq::sqlite3_busy_timeout(db, 5000) };
    if rc != sq::SQLITE_OK {
        let msg = errmsg(db);
        // SAFETY: closed once, here; nothing else has the handle.
        unsafe { sq::sqlite3_close(db) };
        return Err(msg);
    }
    // SAFETY: `db` was opened here and is handed over: rusqlite closes it.
    let db = unsafe { rusqlite::Connection::from_handle_owned(db) }.map_err(|e| e.to_string())?;
    Ok(Conn::new(db))
}

/// Push a new Connection for `conn`.
unsafe fn push_db(l: *mut lua_State, conn: Conn, exec: Exec, queued: bool) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let stop = conn.stop.clone();
        let sh = Shared {
            conn: Arc::new(Mutex::new(conn)),
            exec,
            turn: Turn::new(),
            queued,
            closed: Cell::new(false),
            stop,
            next_job: Cell::new(1),
            next_id: Cell::new(1),
            stmt_turns: RefCell::new(Vec::new()),
        };
        lua::new_class(l, DB, DB_METHODS, Some(lua::gc::<Db>));
        ffi::lua_pop(l, 1);
        lua::push_object(l, DB, Db(Rc::new(sh)));
        1
    }
}

/// open(path, flags, options, queued) -> Connection | nil, err
pub(super) unsafe extern "C-unwind" fn open_db(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let path = lua::check_bytes(l, 1);
        let Ok(path) = CString::new(path) else {
            lua::arg_error(l, 1, c"path contains a NUL byte");
        };
        let flags = lua::opt_integer(
            l,
            2,
            (sq::SQLITE_OPEN_READWRITE | sq::SQLITE_OPEN_CREATE) as i64,
        );
        let Ok(flags) = c_int::try_from(flags) else {
            drop(path);
            lua::arg_error(l, 2, c"flags out of range");
        };
        let inline = check_open_options(l, 3);
        let queued = ffi::lua_toboolean(l, 4) != 0;
        if inline {
            return match open_conn(&path, flags) {
                Ok(conn) => push_db(l, conn, Exec::Inline, queued),
                Err(e) => lua::fail(l, &e),
            };
        }
        let exec = match Exec::thread() {
            Ok(exec) => exec,
            Err(e) => return lua::fail(l, &e),
        };
        let fut = async move {
            match exec.run(move || open_conn(&path, flags)).wait().await {
                Some(Ok(conn)) => Resume::Push(Box::new(move |t| push_db(t, conn, exec, queued))),
                Some(Err(e)) => failed(e),
                None => failed("the SQLite job failed".into()),
            }
        };
        suspend_with(l, Commit::Future(Box::pin(fut)))
    }
}

/// db:close() -> true | nil, 'closed'. A call in flight is interrupted;
/// callers waiting their turn get `nil, 'closed'`.
unsafe extern "C-unwind" fn db_close(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let db = check_db(l);
        let sh = &db.0;
        if sh.closed.get() {
            return lua::fail(l, "closed");
        }
        if !sh.exec.is_inline() && !lua::is_yieldable(l) {
            raise_unyieldable(l);
        }
        sh.closed.set(true);
        sh.stop.closing.store(true, Ordering::Relaxed);
        sh.turn.close();
        for g in sh.stmt_turns.borrow_mut().drain(..) {
            if let Some(g) = g.upgrade() {
                g.close();
            }
        }
        let conn = sh.conn.clone();
        let reply = match sh.exec.run(move || lock(&conn).close()).wait_briefly() {
            Ok(Ok(())) => return push_true(l),
            Ok(Err(e)) => return lua::fail(l, &e),
            Err(reply) => reply,
        };
        let fut = async move {
            match reply.wait().await {
                Some(Ok(())) => Resume::Push(Box::new(|t| push_true(t))),
                Some(Err(e)) => failed(e),
                None => failed("the SQLite job failed".into()),
            }
        };
        suspend_with(l, Commit::Future(Box::pin(fut)))
    }
}

/// db:exec(sql) -> true | nil, err
unsafe extern "C-unwind" fn db_exec(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let db = check_db(l);
        let sql = lua::check_bytes(l, 2).to_vec();
        call(
            l,
            &db.0,
            None,
            move |c| exec(c.handle()?, &sql),
            |t, ()| push_true(t),
        )
    }
}

/// db:prepare(sql) -> Statement | nil, err
unsafe extern "C-unwind" fn db_prepare(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let db = check_db(l);
        let sql = lua::check_bytes(l, 2).to_vec();
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
                        Ok({ sq::sqlite3_bind_parameter_count(st) } as usize)
                    }
                    (None, _) => Err("no SQL statement in the text to prepare".into()),
                }
            },
            move |t, nparams| {
                let turn = Turn::new();
                sh2.stmt_turns.borrow_mut().retain(|g| !g.is_gone());
                sh2.stmt_turns.borrow_mut().push(turn.downgrade());
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
                        turn,
                        hold: Rc::new(Hold::default()),
                        ahead: Rc::new(RefCell::new((Rows::default(), 0))),
                        pending: RefCell::new(None),
                    },
                );
                1
            },
        )
    }
}

/// A counter of the connection (0 once closed), read where the calls run.
unsafe fn db_counter(l: *mut lua_State, get: fn(&rusqlite::Connection) -> i64) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
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
}

/// db:last_insert_rowid() -> integer
unsafe extern "C-unwind" fn db_last_insert_rowid(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { db_counter(l, |d| d.last_insert_rowid()) }
}

/// db:changes() -> integer
unsafe extern "C-unwind" fn db_changes(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { db_counter(l, |d| d.changes() as i64) }
}

/// db:autocommit() -> boolean
unsafe extern "C-unwind" fn db_autocommit(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
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
}

/// db:fetchall(sql, ...) -> rows | nil, err
unsafe extern "C-unwind" fn db_fetchall(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let db = check_db(l);
        lua::check_bytes(l, 2);
        let binds = check_binds(l, 3);
        let sql = lua::check_bytes(l, 2).to_vec();
        call(
            l,
            &db.0,
            None,
            move |c| run_once(c, &sql, &binds, usize::MAX),
            |t, rows| push_rows(t, &rows),
        )
    }
}

/// db:fetchone(sql, ...) -> row | true | nil, err
unsafe extern "C-unwind" fn db_fetchone(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let db = check_db(l);
        lua::check_bytes(l, 2);
        let binds = check_binds(l, 3);
        let sql = lua::check_bytes(l, 2).to_vec();
        call(
            l,
            &db.0,
            None,
            move |c| run_once(c, &sql, &binds, 1),
            |t, rows| push_first(t, &rows),
        )
    }
}

pub(super) const DB_METHODS: &[Reg] = &[
    (c"close", db_close),
    (c"exec", db_exec),
    (c"prepare", db_prepare),
    (c"last_insert_rowid", db_last_insert_rowid),
    (c"changes", db_changes),
    (c"autocommit", db_autocommit),
    (c"fetchall", db_fetchall),
    (c"fetchone", db_fetchone),
];
