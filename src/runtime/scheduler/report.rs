//! Error reports: the message and traceback of an error that ended a
//! coroutine, worded as `lua.c`'s message handler words them.

use std::ffi::c_int;

use crate::runtime::lua::{self, ffi, lua_State};

/// The message of the error on top of the dead thread `t` (popped), with a
/// traceback of `t`, as `lua.c`'s message handler words it.
///
/// # Safety
/// The error value must be on top of `t`; `main` must not be running.
pub(crate) unsafe fn error_report(main: *mut lua_State, t: *mut lua_State) -> String {
    // SAFETY: the callers keep the contract in this function's `# Safety`
    // section, which is all the calls below rely on.
    unsafe {
        ffi::lua_checkstack(main, 8);
        // `__tostring` must run on a live thread: move the value to main.
        ffi::lua_xmove(t, main, 1);
        let msg = error_text(main, -1);
        ffi::lua_pop(main, 1);
        let cmsg = std::ffi::CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
        ffi::luaL_traceback(main, t, cmsg.as_ptr(), 0);
        let out = lua::to_bytes(main, -1)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        ffi::lua_pop(main, 1);
        out
    }
}

/// The text of an error value: strings and numbers as they are, values with
/// `__tostring` through it, others as `(error object is a X value)`.
///
/// # Safety
/// `idx` must be valid on `l`.
pub(crate) unsafe fn error_text(l: *mut lua_State, idx: c_int) -> String {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let idx = ffi::lua_absindex(l, idx);
        if ffi::lua_checkstack(l, 4) == 0 {
            return "(error object not printable: stack overflow)".into();
        }
        let ty = ffi::lua_type(l, idx);
        if ty == ffi::LUA_TSTRING || ty == ffi::LUA_TNUMBER {
            return lua::display(l, idx);
        }
        if ffi::luaL_getmetafield(l, idx, c"__tostring".as_ptr()) != ffi::LUA_TNIL {
            ffi::lua_pop(l, 1);
            // `__tostring` may fail: as lua.c's message handler, show its own
            // error then (and never raise here, outside any protected call).
            ffi::lua_pushcfunction(l, call_tostring);
            ffi::lua_pushvalue(l, idx);
            let status = ffi::lua_pcall(l, 1, 1, 0);
            let text = (ffi::lua_type(l, -1) == ffi::LUA_TSTRING).then(|| lua::display(l, -1));
            ffi::lua_pop(l, 1);
            if let Some(s) = text {
                return match status {
                    ffi::LUA_OK => s
                        .strip_prefix("runtime error: ")
                        .map(str::to_owned)
                        .unwrap_or(s),
                    _ => s,
                };
            }
        }
        let name = std::ffi::CStr::from_ptr(ffi::lua_typename(l, ty)).to_string_lossy();
        format!("(error object is a {name} value)")
    }
}

/// `__tostring(v)` for [`error_text`], run protected: its result if it is a
/// string, else nothing.
unsafe extern "C-unwind" fn call_tostring(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        if ffi::luaL_callmeta(l, 1, c"__tostring".as_ptr()) != 0
            && ffi::lua_type(l, -1) == ffi::LUA_TSTRING
        {
            return 1;
        }
        0
    }
}
