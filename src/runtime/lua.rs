//! Raw Lua C API helpers shared by the native halves of lem's modules.
//!
//! The hot paths of lem (the scheduler, `lem.utils`, read formats) are plain
//! `lua_CFunction`s, like the original's C: they check arguments with the
//! auxiliary library (so misuse raises Lua's own wording, as a string) and
//! suspend the calling coroutine with
//! [`scheduler::suspend`](crate::runtime::scheduler::suspend).
//!
//! Rule for every function here that can raise (`luaL_arg*`, `luaL_check*`):
//! a Lua error is a `longjmp`, so no Rust value that owns memory may be alive
//! in the calling frame when it happens. Check arguments first, then work.
//!
//! The contract of every function in lem that takes `l: *mut lua_State`
//! (or `t`, a resumed thread): `l` is a live thread of lem's state, used
//! on the loop's thread, with room on its stack for what the function
//! pushes (Lua gives a C function LUA_MINSTACK slots); stack indices it
//! reads are its arguments, which it checks, or values it pushed. Their
//! `unsafe` blocks cite this paragraph.

use std::ffi::{c_char, c_int, c_void, CStr};

pub use mlua::ffi;
pub use mlua::ffi::lua_State;

/// A raw Lua C function, as stored in a [`Reg`] table.
pub type CFunction = unsafe extern "C-unwind" fn(*mut lua_State) -> c_int;

/// One entry of a function table: `(lua_name, function)`.
pub type Reg = (&'static CStr, CFunction);

/// The address behind lem's one null value: the light userdata that
/// stands for a null where `nil` cannot (a table value, a reply element).
/// `redis.null` and `json.null` are it, so lem.json encodes a Redis nil
/// reply as `null` without knowing lem.redis.
static NULL: u8 = 0;

/// lem's null value (see [`NULL`]), to push with `lua_pushlightuserdata`
/// or compare with `lua_touserdata`.
#[inline]
pub fn null() -> *mut c_void {
    &NULL as *const u8 as *mut c_void
}

/// Push a Rust string as a Lua string.
///
/// # Safety
/// `l` must be a valid Lua state with a free stack slot.
#[inline]
pub unsafe fn push_str(l: *mut lua_State, s: &str) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_pushlstring(l, s.as_ptr() as *const c_char, s.len());
    }
}

/// Push bytes as a Lua string.
///
/// # Safety
/// `l` must be a valid Lua state with a free stack slot.
#[inline]
pub unsafe fn push_bytes(l: *mut lua_State, s: &[u8]) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_pushlstring(l, s.as_ptr() as *const c_char, s.len());
    }
}

/// Push `t[n]` of the table at `idx`, raw, without asking its type (mlua's
/// Lua 5.1 shim asks LuaJIT for it on every `lua_rawgeti`).
///
/// # Safety
/// `idx` must be a table on `l`, with a free stack slot.
#[inline]
pub unsafe fn push_index(l: *mut lua_State, idx: c_int, n: ffi::lua_Integer) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        #[cfg(feature = "luajit")]
        ffi::lua_rawgeti_(l, idx, n as c_int);
        #[cfg(not(feature = "luajit"))]
        ffi::lua_rawgeti(l, idx, n);
    }
}

/// `return nil, msg`: LEM's failure convention in one call.
///
/// # Safety
/// `l` must be a valid Lua state with two free stack slots.
#[inline]
pub unsafe fn fail(l: *mut lua_State, msg: &str) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_pushnil(l);
        push_str(l, msg);
        2
    }
}

/// Raise `bad argument #arg to 'fn' (msg)`, worded as `luaL_argerror`
/// words it, with two differences that matter to lem, whose Lua halves
/// call native functions on the script's behalf:
///
/// - The function is named by the name it was registered under in
///   [`set_funcs`] (`tcp_listen` as `listen`), also where Lua finds no
///   name (a function called by `pcall`, or through a tail call on
///   LuaJIT) or the name of a Lua half's call (`core.tcp_listen`).
/// - The position is the script's: frames of lem's own Lua halves
///   (`@lua/lem/...`) are skipped, so no error says `lua/lem/io.lua:22:`.
///
/// # Safety
/// Raises a Lua error: see the module's rule about owned values.
pub unsafe fn arg_error(l: *mut lua_State, arg: c_int, msg: &CStr) -> ! {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { raise_arg(l, arg, msg.to_bytes()) }
}

/// [`arg_error`] with a message that is a C string (one Lua made, such as
/// `lua_pushfstring`'s).
///
/// # Safety
/// `msg` must be a valid C string; raises.
pub unsafe fn arg_error_ptr(l: *mut lua_State, arg: c_int, msg: *const c_char) -> ! {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { raise_arg(l, arg, CStr::from_ptr(msg).to_bytes()) }
}

unsafe fn raise_arg(l: *mut lua_State, arg: c_int, msg: &[u8]) -> ! {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        // Build the whole message, push it, and drop every Rust value before
        // raising.
        {
            let mut arg = arg;
            let mut ar: ffi::lua_Debug = std::mem::zeroed();
            let mut name: Vec<u8> = b"?".to_vec();
            let mut method = false;
            if ffi::lua_getstack(l, 0, &mut ar) != 0 {
                ffi::lua_getinfo(l, c"nf".as_ptr(), &mut ar);
                method = !ar.namewhat.is_null() && CStr::from_ptr(ar.namewhat) == c"method";
                // The registered name first: a Lua half calls
                // `core.tcp_listen` for the script's `io.tcp.listen`.
                if let Some(n) = ffi::lua_tocfunction(l, -1).and_then(registered_name) {
                    name = n.to_bytes().to_vec();
                } else if !ar.name.is_null() {
                    name = CStr::from_ptr(ar.name).to_bytes().to_vec();
                }
                ffi::lua_pop(l, 1);
            }
            let mut text = script_where(l).into_bytes();
            if method {
                arg -= 1;
            }
            if method && arg == 0 {
                text.extend_from_slice(b"calling '");
                text.extend_from_slice(&name);
                text.extend_from_slice(b"' on bad self (");
            } else {
                text.extend_from_slice(format!("bad argument #{arg} to '").as_bytes());
                text.extend_from_slice(&name);
                text.extend_from_slice(b"' (");
            }
            text.extend_from_slice(msg);
            text.push(b')');
            push_bytes(l, &text);
        }
        ffi::lua_error(l)
    }
}

/// `file:line: ` of the first frame above the running C function that is
/// not in lem's own Lua halves; empty when that frame is a C function (a
/// script's `pcall`) or there is none, as Lua words it.
unsafe fn script_where(l: *mut lua_State) -> String {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let mut level = 1;
        loop {
            let mut ar: ffi::lua_Debug = std::mem::zeroed();
            if ffi::lua_getstack(l, level, &mut ar) == 0 {
                return String::new();
            }
            ffi::lua_getinfo(l, c"Sl".as_ptr(), &mut ar);
            let source = if ar.source.is_null() {
                &b""[..]
            } else {
                CStr::from_ptr(ar.source).to_bytes()
            };
            if source.starts_with(b"@lua/lem/") {
                level += 1;
                continue;
            }
            if ar.currentline <= 0 {
                return String::new();
            }
            let short = CStr::from_ptr(ar.short_src.as_ptr()).to_string_lossy();
            return format!("{short}:{}: ", ar.currentline);
        }
    }
}

thread_local! {
    /// The Lua names of the functions [`set_funcs`] registered, by address.
    static NAMES: std::cell::RefCell<std::collections::HashMap<usize, &'static CStr>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The name `f` was registered under, if it was.
fn registered_name(f: CFunction) -> Option<&'static CStr> {
    NAMES.with(|n| n.borrow().get(&(f as usize)).copied())
}

/// `bad argument #arg to 'fn' (T expected, got U)`, as `luaL_typeerror`.
///
/// # Safety
/// Raises.
pub unsafe fn type_error(l: *mut lua_State, arg: c_int, expected: &str) -> ! {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        {
            let got = if ffi::luaL_getmetafield(l, arg, c"__name".as_ptr()) != ffi::LUA_TNIL {
                let s = to_bytes(l, -1).map(|b| String::from_utf8_lossy(b).into_owned());
                ffi::lua_pop(l, 1);
                s.unwrap_or_else(|| "userdata".to_owned())
            } else if ffi::lua_type(l, arg) == ffi::LUA_TLIGHTUSERDATA {
                "light userdata".to_owned()
            } else if ffi::lua_type(l, arg) == ffi::LUA_TNONE {
                "no value".to_owned()
            } else {
                CStr::from_ptr(ffi::lua_typename(l, ffi::lua_type(l, arg)))
                    .to_string_lossy()
                    .into_owned()
            };
            push_str(l, &format!("{expected} expected, got {got}"));
        }
        // The message stays on the stack (a Lua string) while raising.
        let p = ffi::lua_tostring(l, -1);
        arg_error_ptr(l, arg, p)
    }
}

/// `luaL_checknumber`, with [`arg_error`]'s naming.
///
/// # Safety
/// May raise; see the module's rule.
#[inline]
pub unsafe fn check_number(l: *mut lua_State, arg: c_int) -> f64 {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if ffi::lua_isnumber(l, arg) == 0 {
            type_error(l, arg, "number");
        }
        ffi::lua_tonumber(l, arg) as f64
    }
}

/// `luaL_optnumber`.
///
/// # Safety
/// May raise; see the module's rule.
#[inline]
pub unsafe fn opt_number(l: *mut lua_State, arg: c_int, default: f64) -> f64 {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if is_none_or_nil(l, arg) {
            default
        } else {
            check_number(l, arg)
        }
    }
}

/// `luaL_checkinteger` as Lua 5.4 has it, on both builds: a number with an
/// exact integer value (LuaJIT's own would truncate `1.5` and wrap `2^63`).
///
/// # Safety
/// May raise; see the module's rule.
#[inline]
pub unsafe fn check_integer(l: *mut lua_State, arg: c_int) -> i64 {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if ffi::lua_isnumber(l, arg) == 0 {
            type_error(l, arg, "number");
        }
        #[cfg(not(feature = "luajit"))]
        {
            let mut isnum = 0;
            let n = ffi::lua_tointegerx(l, arg, &mut isnum);
            if isnum == 0 {
                arg_error(l, arg, c"number has no integer representation");
            }
            n as i64
        }
        #[cfg(feature = "luajit")]
        {
            let n = ffi::lua_tonumber(l, arg) as f64;
            // -2^63 <= n < 2^63, and whole.
            if !((i64::MIN as f64)..-(i64::MIN as f64)).contains(&n) || n.fract() != 0.0 {
                arg_error(l, arg, c"number has no integer representation");
            }
            n as i64
        }
    }
}

/// `luaL_optinteger`: argument `arg` as an integer, `default` when absent
/// or nil.
///
/// # Safety
/// May raise; see the module's rule.
#[inline]
pub unsafe fn opt_integer(l: *mut lua_State, arg: c_int, default: i64) -> i64 {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if is_none_or_nil(l, arg) {
            default
        } else {
            check_integer(l, arg)
        }
    }
}

/// `luaL_checklstring`: the string (or number, converted) at `arg`.
///
/// # Safety
/// May raise; see the module's rule.
#[inline]
pub unsafe fn check_lstring(l: *mut lua_State, arg: c_int, len: *mut usize) -> *const c_char {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let p = ffi::lua_tolstring(l, arg, len);
        if p.is_null() {
            type_error(l, arg, "string");
        }
        p
    }
}

/// `luaL_checklstring` as bytes: the string (or number, converted in its
/// slot) at `arg`.
///
/// # Safety
/// May raise; see the module's rule. The slice lives as long as the value
/// stays on the stack.
#[inline]
pub unsafe fn check_bytes<'a>(l: *mut lua_State, arg: c_int) -> &'a [u8] {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let mut len = 0usize;
        let p = check_lstring(l, arg, &mut len);
        std::slice::from_raw_parts(p as *const u8, len)
    }
}

/// `luaL_checktype`.
///
/// # Safety
/// May raise; see the module's rule.
#[inline]
pub unsafe fn check_type(l: *mut lua_State, arg: c_int, t: c_int) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if ffi::lua_type(l, arg) != t {
            let name = CStr::from_ptr(ffi::lua_typename(l, t));
            type_error(l, arg, &name.to_string_lossy());
        }
    }
}

/// `luaL_checkany`.
///
/// # Safety
/// May raise; see the module's rule.
#[inline]
pub unsafe fn check_any(l: *mut lua_State, arg: c_int) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if ffi::lua_type(l, arg) == ffi::LUA_TNONE {
            arg_error(l, arg, c"value expected");
        }
    }
}

/// `luaL_checkoption`: the index of the string at `arg` (or `def` when
/// absent) in the null-terminated list `lst`; `invalid option 'x'`
/// otherwise.
///
/// # Safety
/// `lst` must be a null-terminated array of C strings; may raise.
pub unsafe fn check_option(
    l: *mut lua_State,
    arg: c_int,
    def: *const c_char,
    lst: *const *const c_char,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let name = if !def.is_null() && is_none_or_nil(l, arg) {
            def
        } else {
            check_lstring(l, arg, std::ptr::null_mut())
        };
        let mut i = 0;
        while !(*lst.add(i)).is_null() {
            if CStr::from_ptr(*lst.add(i)) == CStr::from_ptr(name) {
                return i as c_int;
            }
            i += 1;
        }
        let msg = ffi::lua_pushfstring(l, c"invalid option '%s'".as_ptr(), name);
        arg_error_ptr(l, arg, msg)
    }
}

/// Whether argument `arg` is absent or nil.
///
/// # Safety
/// `l` must be a valid Lua state.
#[inline]
pub unsafe fn is_none_or_nil(l: *mut lua_State, arg: c_int) -> bool {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { ffi::lua_type(l, arg) <= ffi::LUA_TNIL }
}

/// Borrow the string at `idx` (which must be a string) as bytes.
///
/// # Safety
/// The slice lives as long as the value stays on the stack.
pub unsafe fn to_bytes<'a>(l: *mut lua_State, idx: c_int) -> Option<&'a [u8]> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let mut len = 0usize;
        let p = ffi::lua_tolstring(l, idx, &mut len);
        if p.is_null() {
            None
        } else {
            Some(std::slice::from_raw_parts(p as *const u8, len))
        }
    }
}

/// The text of any value, as `tostring` would give it (uses `__tostring`).
///
/// # Safety
/// May raise (a `__tostring` that errors); pushes nothing.
pub unsafe fn display(l: *mut lua_State, idx: c_int) -> String {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let idx = ffi::lua_absindex(l, idx);
        let mut len = 0usize;
        let p = ffi::luaL_tolstring(l, idx, &mut len);
        let s =
            String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, len)).into_owned();
        ffi::lua_pop(l, 1);
        s
    }
}

/// Create (once) the metatable `tname` of a class and leave on the stack
/// its class table: the table of `methods`, whose `__index` is itself, as
/// LEM's were. `getmetatable(obj)` gives the class table (it is the real
/// metatable's `__metatable`), so `getmetatable(f) == io.File` holds and
/// a script may add methods to it; the real metatable, which holds `gc` as
/// `__gc`, stays out of Lua's reach (`obj:__gc()` would free the object
/// twice).
///
/// # Safety
/// `l` must be a valid Lua state.
pub unsafe fn new_class(l: *mut lua_State, tname: &CStr, methods: &[Reg], gc: Option<CFunction>) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        // Callers such as a woken task's push closure count on one slot.
        ffi::luaL_checkstack(l, 4, std::ptr::null());
        if ffi::luaL_newmetatable(l, tname.as_ptr()) == 0 {
            ffi::lua_getfield(l, -1, c"__index".as_ptr());
            ffi::lua_remove(l, -2);
            return;
        }
        // Also under the name's address, for check_object's fast path.
        ffi::lua_pushlightuserdata(l, tname.as_ptr() as *mut c_void);
        ffi::lua_pushvalue(l, -2);
        ffi::lua_rawset(l, ffi::LUA_REGISTRYINDEX);
        if let Some(gc) = gc {
            ffi::lua_pushcfunction(l, gc);
            ffi::lua_setfield(l, -2, c"__gc".as_ptr());
        }
        ffi::lua_createtable(l, 0, methods.len() as c_int + 1);
        set_named(l, methods, false);
        ffi::lua_pushvalue(l, -1);
        ffi::lua_setfield(l, -2, c"__index".as_ptr());
        ffi::lua_pushvalue(l, -1);
        ffi::lua_setfield(l, -3, c"__index".as_ptr());
        ffi::lua_pushvalue(l, -1);
        ffi::lua_setfield(l, -3, c"__metatable".as_ptr());
        ffi::lua_remove(l, -2);
    }
}

/// Push the real metatable of class `tname` (made by [`new_class`]).
///
/// # Safety
/// `l` must be a valid Lua state.
pub unsafe fn push_metatable(l: *mut lua_State, tname: &CStr) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::luaL_checkstack(l, 2, std::ptr::null());
        ffi::lua_pushlightuserdata(l, tname.as_ptr() as *mut c_void);
        ffi::lua_rawget(l, ffi::LUA_REGISTRYINDEX);
    }
}

/// Push a new table holding `funcs`: a native module's exports.
///
/// # Safety
/// `l` must be a valid Lua state.
pub unsafe fn new_lib(l: *mut lua_State, funcs: &[Reg]) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_createtable(l, 0, funcs.len() as c_int);
        set_funcs(l, funcs);
    }
}

/// Run `push`, which pushes values (returning how many) and may raise a
/// memory error, so that such an error cannot pass over the caller's
/// frame, where a `RefCell` borrow or an owned value would never be given
/// back. lem's allocator refuses only under a memory cap (`utils.memlimit`,
/// `--max-memory`) and only while a coroutine runs: then `push` runs in a
/// protected call, and an error comes back as `None` with the error value
/// on the stack top, for the caller to raise (`lua_error`) once it holds
/// nothing; its values stay on the stack as `push` left them. Otherwise
/// (and on a thread that is not running, such as a woken task being handed
/// its values) it is called directly: Lua raises then only when the
/// process itself is out of memory.
///
/// # Safety
/// `l` is a thread of lem's state with two free stack slots; `push` must
/// not yield.
pub unsafe fn push_protected(
    l: *mut lua_State,
    push: &mut dyn FnMut(*mut lua_State) -> c_int,
) -> Option<c_int> {
    unsafe extern "C-unwind" fn call(l: *mut lua_State) -> c_int {
        // SAFETY: called only by push_protected below, with the address of
        // its `push` as the one argument, alive for the call.
        unsafe {
            let f = ffi::lua_touserdata(l, 1) as *mut &mut dyn FnMut(*mut lua_State) -> c_int;
            ffi::lua_settop(l, 0);
            (*f)(l)
        }
    }
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        // Not refused (no cap, or the loop pushing a woken task's values),
        // or not a running thread (a protected call needs one): directly.
        if !crate::runtime::alloc::may_refuse(l) || ffi::lua_status(l) != ffi::LUA_OK {
            return Some(push(l));
        }
        let top = ffi::lua_gettop(l);
        let mut f = push;
        ffi::lua_pushcfunction(l, call);
        ffi::lua_pushlightuserdata(
            l,
            &mut f as *mut &mut dyn FnMut(*mut lua_State) -> c_int as *mut c_void,
        );
        if ffi::lua_pcall(l, 1, ffi::LUA_MULTRET, 0) != ffi::LUA_OK {
            return None;
        }
        Some(ffi::lua_gettop(l) - top)
    }
}

/// Set each function of `funcs` into the table on top of the stack.
///
/// # Safety
/// The value on top of the stack must be a table.
pub unsafe fn set_funcs(l: *mut lua_State, funcs: &[Reg]) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { set_named(l, funcs, true) }
}

/// [`set_funcs`]; `shorten`: the functions of a Lua half's `core` table,
/// named in errors by their last part (`tcp_listen` is `io.tcp.listen` to
/// a script). A class's methods keep their whole names (`get_stale`).
///
/// # Safety
/// The value on top of the stack must be a table.
unsafe fn set_named(l: *mut lua_State, funcs: &[Reg], shorten: bool) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        NAMES.with(|n| {
            let mut n = n.borrow_mut();
            for (name, f) in funcs {
                let bytes = name.to_bytes_with_nul();
                let short = match bytes.iter().rposition(|&b| b == b'_') {
                    Some(i) if shorten => {
                        CStr::from_bytes_with_nul(&bytes[i + 1..]).unwrap_or(name)
                    }
                    _ => name,
                };
                n.entry(*f as usize).or_insert(short);
            }
        });
        for (name, f) in funcs {
            ffi::lua_pushcfunction(l, *f);
            ffi::lua_setfield(l, -2, name.as_ptr());
        }
    }
}

/// Push a new full userdata holding `value`, with the metatable `tname`
/// (created before with [`new_class`]).
///
/// # Safety
/// `T` must not need dropping unless the class has a `__gc` of
/// [`gc::<T>`](gc).
pub unsafe fn push_object<T>(l: *mut lua_State, tname: &CStr, value: T) -> *mut T {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let p = ffi::lua_newuserdata(l, std::mem::size_of::<T>()) as *mut T;
        debug_assert_eq!(p as usize % std::mem::align_of::<T>(), 0);
        p.write(value);
        ffi::luaL_setmetatable(l, tname.as_ptr());
        p
    }
}

/// The object at `arg` when its metatable is the value at index `mt`
/// (a metatable a hot function keeps as an upvalue, so the check is one
/// comparison and no registry lookup); anything else takes
/// [`check_object`]'s way, and its error.
///
/// # Safety
/// The value at `mt` must be the metatable [`push_object::<T>`](push_object)
/// gives `tname` objects.
#[inline]
pub unsafe fn check_object_with<'a, T>(
    l: *mut lua_State,
    arg: c_int,
    mt: c_int,
    tname: &CStr,
) -> &'a T {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs). A
    // userdata with the class's real metatable holds a `T` (new_class).
    unsafe {
        let p = ffi::lua_touserdata(l, arg);
        if !p.is_null() && ffi::lua_getmetatable(l, arg) != 0 {
            let same = ffi::lua_rawequal(l, -1, mt) != 0;
            ffi::lua_pop(l, 1);
            if same {
                return &*(p as *const T);
            }
        }
        check_object(l, arg, tname)
    }
}

/// `luaL_checkudata` typed as `T`. The metatable is first looked up by the
/// address of `tname` (where [`new_class`] also put it), which spares the
/// registry lookup by name (hashing and comparing the string) on every
/// method call; any miss looks it up by name, and raises [`type_error`] when it is not
/// there either.
///
/// # Safety
/// `tname` objects must have been made by [`push_object::<T>`](push_object).
#[inline]
pub unsafe fn check_object<'a, T>(l: *mut lua_State, arg: c_int, tname: &CStr) -> &'a T {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let p = ffi::lua_touserdata(l, arg);
        if !p.is_null() && ffi::lua_getmetatable(l, arg) != 0 {
            ffi::lua_pushlightuserdata(l, tname.as_ptr() as *mut c_void);
            ffi::lua_rawget(l, ffi::LUA_REGISTRYINDEX);
            let same = ffi::lua_rawequal(l, -1, -2) != 0;
            ffi::lua_pop(l, 2);
            if same {
                return &*(p as *const T);
            }
        }
        if !p.is_null() && ffi::lua_getmetatable(l, arg) != 0 {
            ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, tname.as_ptr());
            let same = ffi::lua_rawequal(l, -1, -2) != 0;
            ffi::lua_pop(l, 2);
            if same {
                return &*(p as *const T);
            }
        }
        type_error(l, arg, &tname.to_string_lossy())
    }
}

/// A `__gc` metamethod that drops the `T` inside the userdata.
///
/// # Safety
/// Installed only on classes whose objects hold a `T`.
pub unsafe extern "C-unwind" fn gc<T>(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let p = ffi::lua_touserdata(l, 1) as *mut T;
        if !p.is_null() {
            std::ptr::drop_in_place(p);
        }
        0
    }
}

#[cfg(feature = "luajit")]
extern "C-unwind" {
    fn lua_isyieldable(l: *mut lua_State) -> c_int;
}

/// Whether the running function may yield (`coroutine.isyieldable`).
///
/// # Safety
/// `l` must be a valid Lua state.
pub unsafe fn is_yieldable(l: *mut lua_State) -> bool {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        #[cfg(feature = "luajit")]
        {
            lua_isyieldable(l) != 0
        }
        #[cfg(not(feature = "luajit"))]
        {
            ffi::lua_isyieldable(l) != 0
        }
    }
}
