//! The Statement object: the `stmt:` methods, the row iterator's batches
//! and holding a statement across calls (`stmt:get`/`stmt:put`).

use std::cell::RefCell;
use std::ffi::c_int;

use rusqlite::ffi as sq;

use super::conn::{bind, bind_stack, column_names, errmsg, lock, step_rows};
use super::values::{
    check_bindable, check_binds, check_table, push_first, push_row, push_rows, table_binds, Rows,
};
use super::{call, call_as, failed, push_true, suspend_with, Stmt, STMT};
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::scheduler::{self, Commit, Resume};

/// Rows stepped per job by a statement's row iterator.
const ROWS_BATCH: usize = 256;

unsafe fn check_stmt<'a>(l: *mut lua_State) -> &'a Stmt {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { lua::check_object(l, 1, STMT) }
}

/// stmt:bind(...) -> true | nil, err
unsafe extern "C-unwind" fn stmt_bind(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
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
        if !s.sh.queued && (held_by_other || s.sh.turn.is_held()) {
            return lua::fail(l, "busy");
        }
        if !by_table && !held_by_other && s.sh.exec.is_inline() {
            // Inline, the values go to SQLite now, straight from the stack.
            for i in 2..=top {
                check_bindable(l, i, i);
            }
            if let Some(held) = s.sh.turn.try_take() {
                *s.ahead.borrow_mut() = (Rows::default(), 0);
                s.pending.borrow_mut().take();
                let r = {
                    let c = lock(&s.sh.conn);
                    c.stmt(s.id)
                        .and_then(|st| bind_stack(c.handle()?, st, l, 2, top))
                };
                drop(held);
                return match r {
                    Ok(()) => push_true(l),
                    Err(e) => lua::fail(l, &e),
                };
            }
        }
        let binds = check_binds(l, 2);
        if !held_by_other {
            // The values go to SQLite with the statement's next call, which
            // is then one job instead of two.
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
}

/// stmt:execmany(list) -> count | nil, err, index
///
/// For each entry of `list` (a table of values, by position or by name):
/// bind it and step the statement to its end, all in one job.
unsafe extern "C-unwind" fn stmt_execmany(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
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
                        {
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
                        sq::sqlite3_reset(st);
                        return Ok(Err((e, i + 1)));
                    }
                }
                sq::sqlite3_reset(st);
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
}

/// stmt:step() -> row | true | nil, err
unsafe extern "C-unwind" fn stmt_step(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
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
}

/// stmt:reset() -> true | nil, err
unsafe extern "C-unwind" fn stmt_reset(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
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
                sq::sqlite3_reset(st);
                Ok(())
            },
            |t, ()| push_true(t),
        )
    }
}

/// stmt:column_names() -> { name, ... }
unsafe extern "C-unwind" fn stmt_column_names(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
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
}

/// stmt:finalize() -> true | nil, 'closed'
unsafe extern "C-unwind" fn stmt_finalize(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
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
}

/// stmt:fetchall() -> rows | nil, err (from the start; reset after)
unsafe extern "C-unwind" fn stmt_fetchall(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_stmt(l);
        let id = s.id;
        call(
            l,
            &s.sh,
            Some(s),
            move |c| {
                let st = c.stmt(id)?;
                // SAFETY: a live statement; run from its start, left reset.
                sq::sqlite3_reset(st);
                let r = step_rows(c.handle()?, st, usize::MAX);
                sq::sqlite3_reset(st);
                r
            },
            |t, rows| push_rows(t, &rows),
        )
    }
}

/// stmt:fetchone() -> row | true | nil, err (from the start; reset after)
unsafe extern "C-unwind" fn stmt_fetchone(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_stmt(l);
        let id = s.id;
        call(
            l,
            &s.sh,
            Some(s),
            move |c| {
                let st = c.stmt(id)?;
                // SAFETY: a live statement; run from its start, left reset.
                sq::sqlite3_reset(st);
                let r = step_rows(c.handle()?, st, 1);
                sq::sqlite3_reset(st);
                r
            },
            |t, rows| push_first(t, &rows),
        )
    }
}

/// Push the next row stepped ahead onto `t`, or nil at the end (`Some(1)`
/// either way); `None` if nothing is buffered.
unsafe fn push_ahead(t: *mut lua_State, ahead: &RefCell<(Rows, usize)>) -> Option<c_int> {
    // SAFETY: `t` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        // May raise: before the borrow.
        ffi::luaL_checkstack(t, 4, std::ptr::null());
        let mut a = ahead.borrow_mut();
        let (rows, at) = &mut *a;
        if rows.ncols > 0 && *at + rows.ncols <= rows.vals.len() {
            let (from, to) = (*at, *at + rows.ncols);
            // Raised under a memory cap once the rows are given back (see
            // `lua::push_protected`).
            let pushed = lua::push_protected(t, &mut |t| {
                push_row(t, &rows.vals[from..to]);
                1
            });
            if pushed.is_none() {
                drop(a);
                ffi::lua_error(t);
            }
            *at = to;
            return Some(1);
        }
        if rows.done {
            *a = (Rows::default(), 0);
            ffi::lua_pushnil(t);
            return Some(1);
        }
        None
    }
}

/// stmt:_next() -> row | nil (the end: the statement is reset) | false, err
///
/// The row iterator's step: rows are stepped [`ROWS_BATCH`] at a time.
unsafe extern "C-unwind" fn stmt_next(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
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
                    sq::sqlite3_reset(st);
                }
                r
            },
            move |t, rows| {
                *ahead.borrow_mut() = (rows, 0);
                push_ahead(t, &ahead).unwrap_or(0)
            },
        )
    }
}

/// stmt:get() -> true: hold the statement for this coroutine (queued: wait
/// for it); others' calls on it are 'busy' (queued: wait) until `put()`.
unsafe extern "C-unwind" fn stmt_get(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_stmt(l);
        if s.finalized.get() || s.sh.closed.get() {
            return lua::fail(l, "closed");
        }
        let me = scheduler::get().current();
        if s.hold.holder.get().is_some() && s.hold.holder.get() == me {
            return push_true(l);
        }
        if !s.sh.queued {
            return match s.turn.try_take() {
                Some(h) => {
                    s.hold.holder.set(me);
                    *s.hold.held.borrow_mut() = Some(h);
                    push_true(l)
                }
                None => lua::fail(l, "busy"),
            };
        }
        let turn = s.turn.clone();
        let hold = s.hold.clone();
        let fut = async move {
            match turn.take().await {
                Some(h) => {
                    hold.holder.set(me);
                    *hold.held.borrow_mut() = Some(h);
                    Resume::Push(Box::new(|t| push_true(t)))
                }
                None => failed("closed".into()),
            }
        };
        suspend_with(l, Commit::Future(Box::pin(fut)))
    }
}

/// stmt:put() -> true: give back what `get()` took.
unsafe extern "C-unwind" fn stmt_put(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
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
        s.hold.held.borrow_mut().take();
        push_true(l)
    }
}

pub(super) const STMT_METHODS: &[Reg] = &[
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
