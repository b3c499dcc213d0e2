//! The Connection object: `open` and the `db:` methods.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::conn::{exec, lock, prepare_one, run_once, Conn, RawStmt};
use super::stmt::STMT_METHODS;
use super::values::{check_binds, push_first, push_rows, Rows};
use super::{call, failed, push_true, suspend_with, Db, Hold, Shared, Stmt, DB, STMT};
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::pool;
use crate::runtime::scheduler::{Commit, Resume};
use crate::runtime::turn::Turn;
use rusqlite::ffi as sq;

unsafe fn check_db<'a>(l: *mut lua_State) -> &'a Db {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { lua::check_object(l, 1, DB) }
}

/// open(path, flags, queued) -> Connection | nil, err
pub(super) unsafe extern "C-unwind" fn open_db(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
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
        let path = std::path::PathBuf::from(OsStr::from_bytes(lua::check_bytes(l, 1)));
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
                        turn: Turn::new(),
                        queued,
                        closed: Cell::new(false),
                        stop,
                        next_job: Cell::new(1),
                        next_id: Cell::new(1),
                        stmt_turns: RefCell::new(Vec::new()),
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
        sh.closed.set(true);
        sh.stop.closing.store(true, Ordering::Relaxed);
        sh.turn.close();
        for g in sh.stmt_turns.borrow_mut().drain(..) {
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

/// A counter of the connection (0 once closed), read on the pool.
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
