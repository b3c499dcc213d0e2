//! The Rust API for native lem modules: what the original's `lem.h` gave C
//! modules (queue coroutines, push blocking work to the pool and resume the
//! caller with the result), for Rust code using [`mlua`].
//!
//! - [`register_module`]: make `require(name)` find a module built in Rust.
//! - [`async_function`]: a Lua function backed by a Rust future; the calling
//!   coroutine suspends until the future completes, others keep running.
//! - [`blocking`]: run a closure on lem's thread pool (the future of
//!   `lem_async_do`); await it inside an [`async_function`].
//! - [`spawn`]: start a Lua function in a new coroutine.
//!
//! Lua-facing conventions apply: an `Err` returned by an async function's
//! future reaches Lua as `nil, message` (an I/O failure is a value); an `Err`
//! returned before suspending raises, as a Lua string.
//!
//! # Example
//!
//! A module `demo` with `demo.slowsum(a, b)` that adds on the pool:
//!
//! ```
//! use lem::{native, Options, Outcome, Runtime};
//!
//! let mut rt = Runtime::new(Options::default()).unwrap();
//! let lua = rt.lua();
//! let slowsum = native::async_function(lua, |_lua, (a, b): (i64, i64)| async move {
//!     Ok(native::blocking(move || a + b).await)
//! })
//! .unwrap();
//! let module = lua.create_table().unwrap();
//! module.set("slowsum", slowsum).unwrap();
//! native::register_module(lua, "demo", module).unwrap();
//!
//! let main = lua
//!     .load(r#"
//!         local utils = require 'lem.utils'
//!         local sum, ticks = nil, 0
//!         utils.spawn(function() while not sum do ticks = ticks + 1; utils.yield() end end)
//!         sum = require('demo').slowsum(40, 2)
//!         assert(sum == 42 and ticks > 0)
//!         result = sum
//!     "#)
//!     .into_function()
//!     .unwrap();
//! rt.spawn(main, ()).unwrap();
//! assert_eq!(rt.run(), Outcome::Idle);
//! assert_eq!(rt.lua().globals().get::<i64>("result").unwrap(), 42);
//! ```

use std::ffi::c_int;
use std::future::Future;

use mlua::{FromLuaMulti, Function, IntoLua, IntoLuaMulti, LightUserData, Lua, MultiValue};

use crate::modules::REGISTERED;
use crate::runtime::lua::{self, ffi, lua_State};
use crate::runtime::scheduler::{self, Commit, Resume};

/// Make `require(name)` return `value` (usually a module table; any value,
/// a function included). Registered modules are found before
/// `package.path` is searched.
pub fn register_module(lua: &Lua, name: &str, value: impl IntoLua) -> mlua::Result<()> {
    let value = value.into_lua(lua)?;
    let loader = lua.create_function(move |_, ()| Ok(value.clone()))?;
    let table: mlua::Table =
        lua.named_registry_value(REGISTERED.to_str().unwrap_or("lem.modules"))?;
    table.raw_set(name, loader)
}

/// Run `f` on lem's blocking pool (sized by `utils.poolconfig`) and await
/// its result without stalling the loop.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    crate::runtime::pool::run(f).await
}

/// Start `f(args...)` in a new coroutine; it runs after the current one
/// suspends or yields. Must be called on the loop's thread.
pub fn spawn(lua: &Lua, f: Function, args: impl IntoLuaMulti) -> mlua::Result<()> {
    let sched = scheduler::get();
    // SAFETY: exec_raw gives a stack holding exactly the function and args.
    unsafe {
        lua.exec_raw::<()>((f, args), |l| {
            sched.spawn(l, ffi::lua_gettop(l) - 1);
        })
    }
}

/// A Lua function backed by a Rust future. Calling it suspends the calling
/// coroutine until the future completes; its `Ok` values are returned to
/// Lua, an `Err` becomes `nil, message`.
pub fn async_function<A, R, F, Fut>(lua: &Lua, f: F) -> mlua::Result<Function>
where
    A: FromLuaMulti,
    R: IntoLuaMulti + 'static,
    F: Fn(Lua, A) -> Fut + 'static,
    Fut: Future<Output = mlua::Result<R>> + 'static,
{
    let inner = lua.create_function(move |lua, args: A| {
        let fut = f(lua.clone(), args);
        let lua = lua.clone();
        let wait = Box::pin(async move {
            let result = fut.await;
            Resume::Push(Box::new(move |t| push_result(&lua, t, result)))
        });
        match scheduler::get().prepare(Commit::Future(wait)) {
            Some(_) => Ok(LightUserData(crate::runtime::scheduler::pending())),
            None => Err(mlua::Error::runtime(
                "attempt to suspend outside a lem coroutine",
            )),
        }
    })?;
    wrap_suspending(lua, inner)
}

/// Wrap an mlua function so that (a) an error it raises reaches Lua as a
/// string, and (b) when it returns the pending marker (after
/// [`Scheduler::prepare`](scheduler::Scheduler::prepare)), the calling
/// coroutine suspends.
pub fn wrap_suspending(lua: &Lua, inner: Function) -> mlua::Result<Function> {
    // SAFETY: the closure only builds a C closure over the pushed function.
    unsafe {
        lua.exec_raw(inner, |l| {
            ffi::lua_pushcclosure(l, trampoline, 1);
        })
    }
}

unsafe extern "C-unwind" fn trampoline(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let nargs = ffi::lua_gettop(l);
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
        ffi::lua_insert(l, 1);
        if ffi::lua_pcall(l, nargs, ffi::LUA_MULTRET, 0) != ffi::LUA_OK {
            let msg = error_message(l);
            lua::push_str(l, &msg);
            drop(msg);
            ffi::lua_error(l)
        }
        let nres = ffi::lua_gettop(l);
        if nres >= 1 && crate::runtime::scheduler::is_pending(l, 1) {
            ffi::lua_settop(l, 0);
            return crate::runtime::scheduler::suspend(l);
        }
        nres
    }
}

/// The text of the error on top of `l` (popped): mlua's errors as Lua
/// would word them, without mlua's traceback; other values as `lua.c`
/// prints them.
unsafe fn error_message(l: *mut lua_State) -> String {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if ffi::lua_type(l, -1) != ffi::LUA_TUSERDATA {
            let msg = scheduler::error_text(l, -1);
            ffi::lua_pop(l, 1);
            return msg;
        }
        let lua = Lua::get_or_init_from_ptr(l);
        let value = lua.exec_raw::<mlua::Value>((), |main| {
            if main != l {
                ffi::lua_xmove(l, main, 1);
            }
        });
        match value {
            Ok(mlua::Value::Error(e)) => lua_error_message(&e),
            _ => {
                let msg = scheduler::error_text(l, -1);
                ffi::lua_pop(l, 1);
                msg
            }
        }
    }
}

/// An mlua error in Lua's words: the innermost cause, argument errors as
/// `bad argument #N to 'f' (...)`.
pub fn lua_error_message(e: &mlua::Error) -> String {
    use mlua::Error;
    match e {
        Error::CallbackError { cause, .. } => lua_error_message(cause),
        Error::RuntimeError(msg) => msg.clone(),
        Error::BadArgument { to, pos, cause, .. } => {
            let why = match &**cause {
                Error::FromLuaConversionError { from, to, .. } => {
                    format!("{to} expected, got {from}")
                }
                other => lua_error_message(other),
            };
            format!(
                "bad argument #{pos} to '{}' ({why})",
                to.as_deref().unwrap_or("?")
            )
        }
        Error::WithContext { cause, .. } => lua_error_message(cause),
        other => other.to_string(),
    }
}

fn push_result<R: IntoLuaMulti>(lua: &Lua, t: *mut lua_State, result: mlua::Result<R>) -> c_int {
    let values = match result.and_then(|r| r.into_lua_multi(lua)) {
        Ok(v) => v,
        Err(e) => {
            let msg = e.to_string();
            let msg = msg
                .strip_prefix("runtime error: ")
                .unwrap_or(&msg)
                .to_owned();
            let msg = lua.create_string(msg).map(mlua::Value::String);
            MultiValue::from_iter([mlua::Value::Nil, msg.unwrap_or(mlua::Value::Nil)])
        }
    };
    let mut n = 0;
    // SAFETY: `t` is a suspended thread of this state; the values are moved
    // from exec_raw's stack onto it.
    let moved = unsafe {
        lua.exec_raw::<()>(values, |l| {
            n = ffi::lua_gettop(l);
            if ffi::lua_checkstack(t, n) != 0 {
                ffi::lua_xmove(l, t, n);
            } else {
                n = 0;
            }
        })
    };
    if moved.is_err() {
        return 0;
    }
    n
}
