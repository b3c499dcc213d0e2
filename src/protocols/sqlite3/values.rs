//! Values between Lua and SQLite: a [`Val`] read from a column or bound to
//! a parameter, rows as SQLite steps them ([`Rows`]) and as Lua gets them
//! (arrays with `n`), and a call's arguments as values to bind ([`Binds`]).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};

use rusqlite::ffi as sq;

use super::push_true;
use crate::runtime::lua::{self, ffi, lua_State};

/// A value going into or coming out of SQLite.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Val {
    Null,
    Int(i64),
    Float(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

/// The value of column `i` of the current row.
///
/// # Safety
/// `st` must be a statement positioned on a row.
pub(super) unsafe fn column(st: *mut sq::sqlite3_stmt, i: c_int) -> Val {
    // SAFETY: the callers keep the contract in this function's `# Safety`
    // section, which is all the calls below rely on.
    unsafe {
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
}

/// Rows as one flat vector of `ncols` values each.
#[derive(Debug, Default)]
pub(super) struct Rows {
    pub(super) ncols: usize,
    pub(super) vals: Vec<Val>,
    /// The statement ran to its end.
    pub(super) done: bool,
}

/// Values to bind: by position, or from a table by name and index.
#[derive(Debug)]
pub(super) enum Binds {
    None,
    Pos(Vec<Val>),
    Table {
        names: HashMap<Vec<u8>, Val>,
        index: HashMap<i64, Val>,
    },
}

/// A value to bind, borrowed from where it is (a [`Val`], a Lua stack).
#[derive(Clone, Copy)]
pub(super) enum ValRef<'a> {
    Null,
    Int(i64),
    Float(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

impl Val {
    fn as_ref(&self) -> ValRef<'_> {
        match self {
            Val::Null => ValRef::Null,
            Val::Int(n) => ValRef::Int(*n),
            Val::Float(f) => ValRef::Float(*f),
            Val::Text(s) => ValRef::Text(s),
            Val::Blob(s) => ValRef::Blob(s),
        }
    }
}

/// Bind one value to parameter `i`.
///
/// # Safety
/// `st` must be a live, reset statement.
pub(super) unsafe fn bind_one(st: *mut sq::sqlite3_stmt, i: c_int, v: &Val) -> c_int {
    // SAFETY: as this function's own contract.
    unsafe { bind_ref(st, i, v.as_ref()) }
}

/// Bind one borrowed value to parameter `i` (SQLite copies strings).
///
/// # Safety
/// `st` must be a live, reset statement.
pub(super) unsafe fn bind_ref(st: *mut sq::sqlite3_stmt, i: c_int, v: ValRef<'_>) -> c_int {
    // SAFETY: the callers keep the contract in this function's `# Safety`
    // section, which is all the calls below rely on.
    unsafe {
        match v {
            ValRef::Null => sq::sqlite3_bind_null(st, i),
            ValRef::Int(n) => sq::sqlite3_bind_int64(st, i, n),
            ValRef::Float(f) => sq::sqlite3_bind_double(st, i, f),
            ValRef::Text(s) => sq::sqlite3_bind_text64(
                st,
                i,
                s.as_ptr() as *const c_char,
                s.len() as u64,
                sq::SQLITE_TRANSIENT(),
                sq::SQLITE_UTF8 as u8,
            ),
            ValRef::Blob(s) => sq::sqlite3_bind_blob64(
                st,
                i,
                s.as_ptr() as *const _,
                s.len() as u64,
                sq::SQLITE_TRANSIENT(),
            ),
        }
    }
}

unsafe fn push_val(l: *mut lua_State, v: &Val) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match v {
            Val::Null => ffi::lua_pushnil(l),
            Val::Int(n) => ffi::lua_pushinteger(l, *n as _),
            Val::Float(f) => ffi::lua_pushnumber(l, *f as _),
            Val::Text(s) | Val::Blob(s) => lua::push_bytes(l, s),
        }
    }
}

/// Push one row: an array of its values (NULL leaves a hole) with the
/// column count in `n`.
pub(super) unsafe fn push_row(l: *mut lua_State, row: &[Val]) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
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
}

/// Push every row of `rows` as an array of rows.
pub(super) unsafe fn push_rows(l: *mut lua_State, rows: &Rows) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
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
}

/// The first row, or `true` when there is none.
pub(super) unsafe fn push_first(l: *mut lua_State, rows: &Rows) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if rows.ncols == 0 || rows.vals.is_empty() {
            return push_true(l);
        }
        ffi::luaL_checkstack(l, 4, std::ptr::null());
        push_row(l, &rows.vals[..rows.ncols]);
        1
    }
}

/// Raise unless the value at `idx` can be bound.
pub(super) unsafe fn check_bindable(l: *mut lua_State, idx: c_int, arg: c_int) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
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
}

/// The value at `idx` (already checked) as a [`Val`].
unsafe fn to_val(l: *mut lua_State, idx: c_int) -> Val {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    match unsafe { to_val_ref(l, idx) } {
        ValRef::Null => Val::Null,
        ValRef::Int(n) => Val::Int(n),
        ValRef::Float(f) => Val::Float(f),
        ValRef::Text(s) => Val::Text(s.to_vec()),
        ValRef::Blob(s) => Val::Blob(s.to_vec()),
    }
}

/// The value at `idx` (already checked), borrowed while it stays on the
/// stack. A string is TEXT if it is valid UTF-8, a BLOB otherwise.
pub(super) unsafe fn to_val_ref<'a>(l: *mut lua_State, idx: c_int) -> ValRef<'a> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match ffi::lua_type(l, idx) {
            ffi::LUA_TBOOLEAN => ValRef::Int(ffi::lua_toboolean(l, idx) as i64),
            ffi::LUA_TNUMBER => {
                #[cfg(not(feature = "luajit"))]
                {
                    if ffi::lua_isinteger(l, idx) != 0 {
                        return ValRef::Int(ffi::lua_tointeger(l, idx) as i64);
                    }
                    ValRef::Float(ffi::lua_tonumber(l, idx) as f64)
                }
                #[cfg(feature = "luajit")]
                {
                    let f = ffi::lua_tonumber(l, idx) as f64;
                    if f.fract() == 0.0 && ((i64::MIN as f64)..-(i64::MIN as f64)).contains(&f) {
                        ValRef::Int(f as i64)
                    } else {
                        ValRef::Float(f)
                    }
                }
            }
            ffi::LUA_TSTRING => {
                let b = lua::to_bytes(l, idx).unwrap_or_default();
                if std::str::from_utf8(b).is_ok() {
                    ValRef::Text(b)
                } else {
                    ValRef::Blob(b)
                }
            }
            _ => ValRef::Null,
        }
    }
}

/// The values from argument `first` on: one table (names and indices) or
/// values by position. Raises for a value that cannot be bound.
pub(super) unsafe fn check_binds(l: *mut lua_State, first: c_int) -> Binds {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
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
}

/// Binds from the table at `idx` (already checked): names and indices,
/// or, without string keys, values by position (`1..n`, where `n` is the
/// field `n` or the length).
pub(super) unsafe fn table_binds(l: *mut lua_State, idx: c_int) -> Binds {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
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
}

/// Raise unless every value of the table at `idx` can be bound.
pub(super) unsafe fn check_table(l: *mut lua_State, idx: c_int, arg: c_int) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
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
}
