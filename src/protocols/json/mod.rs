//! `lem.json`: JSON text to Lua values and back, all in Rust (no Lua half).
//! The manual's page is docs/json.md.
//!
//! - `decode.rs` reads a text in one pass, not recursively, pushing each
//!   value onto the Lua stack as soon as it is read (no tree in between).
//! - `encode.rs` walks Lua values with raw access and writes the text into
//!   a buffer, pushed as one string at the end.
//! - `tree.rs` is the same decoder building a Rust tree, for the unit tests
//!   and the fuzz target.
//!
//! Nulls: `json.null` is lem's null ([`lua::null`]), the light userdata
//! `redis.null` also is, so a Redis nil reply encodes as `null` without
//! lem.json knowing lem.redis. SQL NULLs are `nil` in lem.postgres and
//! lem.sqlite3 rows, whose length is their `n`: an array with an `n`
//! encodes its holes as `null`.
//!
//! Markers: `json.array(t)` and `json.object(t)` give `t` one of two
//! metatables (this module's upvalues 1 and 2); a decoded empty array gets
//! the array one, so `[]` comes back as `[]`.
//!
//! Buffers: what the encoder writes, the decoder's stack of open arrays and
//! objects and its unescaped strings live in a [`Scratch`] userdata, kept
//! between calls in each function's upvalue 3 (taken out while in use, so
//! a call made from a finalizer meanwhile gets its own). Owned by Lua, it is
//! freed by its `__gc` even when a memory error unwinds a call, and what it
//! allocates is bounded by the input.

mod decode;
mod encode;
pub(crate) mod tree;

use std::ffi::{c_int, c_void, CStr};

use crate::runtime::lua::{self, ffi, lua_State, Reg};

pub use tree::fuzz_decode;

/// Buffers reused from call to call (see the module doc).
#[derive(Default)]
struct Scratch {
    out: Vec<u8>,
    frames: Vec<Option<usize>>,
    seen: Vec<*const c_void>,
    keys: Vec<(usize, usize, i64)>,
    arena: Vec<u8>,
}

const SCRATCH: &CStr = c"lem.json.scratch";

/// Buffers larger than this are given back to the allocator after a call.
const KEEP: usize = 4 << 20;

const ARRAY_MT: c_int = ffi::lua_upvalueindex(1);
const OBJECT_MT: c_int = ffi::lua_upvalueindex(2);
const CACHE: c_int = ffi::lua_upvalueindex(3);

/// Push the cached Scratch (taking it from the cache) or a new one.
unsafe fn take_scratch<'a>(l: *mut lua_State) -> &'a mut Scratch {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs); the
    // functions that call this have the three upvalues `open` gave them.
    unsafe {
        ffi::lua_pushvalue(l, CACHE);
        if ffi::lua_type(l, -1) == ffi::LUA_TUSERDATA {
            ffi::lua_pushnil(l);
            ffi::lua_replace(l, CACHE);
        } else {
            ffi::lua_pop(l, 1);
            lua::push_object(l, SCRATCH, Scratch::default());
        }
        // A Scratch userdata (made above or cached by give_back), anchored
        // on the stack, reachable from nowhere else while the call runs.
        &mut *(ffi::lua_touserdata(l, -1) as *mut Scratch)
    }
}

/// Put the Scratch at `idx` back into the cache, its buffers trimmed.
unsafe fn give_back(l: *mut lua_State, idx: c_int, s: &mut Scratch) {
    // SAFETY: as take_scratch.
    unsafe {
        if s.out.capacity() > KEEP {
            s.out = Vec::new();
        }
        if s.arena.capacity() > KEEP {
            s.arena = Vec::new();
        }
        if s.frames.capacity() > KEEP / 8 {
            s.frames = Vec::new();
        }
        ffi::lua_pushvalue(l, idx);
        ffi::lua_replace(l, CACHE);
    }
}

/// Raise `bad argument #arg (unknown option 'k')` for the key at -2.
unsafe fn unknown_option(l: *mut lua_State, arg: c_int) -> ! {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        {
            let k = lua::display(l, -2);
            lua::push_str(l, &format!("unknown option '{k}'"));
        }
        lua::arg_error_ptr(l, arg, ffi::lua_tostring(l, -1))
    }
}

/// Spaces for `indent = n`.
const SPACES: &[u8; 32] = b"                                ";

/// json.encode(value [, {indent =, sort_keys =}]) -> string | nil, err
unsafe extern "C-unwind" fn encode(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_any(l, 1);
        ffi::lua_settop(l, 2);
        // Slot 3: the indentation string (anchored there), or nil.
        ffi::lua_pushnil(l);
        let mut sort_keys = false;
        if !lua::is_none_or_nil(l, 2) {
            lua::check_type(l, 2, ffi::LUA_TTABLE);
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, 2) != 0 {
                match lua::to_bytes(l, -2).filter(|_| ffi::lua_type(l, -2) == ffi::LUA_TSTRING) {
                    Some(b"indent") => match ffi::lua_type(l, -1) {
                        ffi::LUA_TNIL => {}
                        ffi::LUA_TBOOLEAN if ffi::lua_toboolean(l, -1) == 0 => {}
                        ffi::LUA_TSTRING => {
                            ffi::lua_pushvalue(l, -1);
                            ffi::lua_replace(l, 3);
                        }
                        ffi::LUA_TNUMBER => {
                            let n = ffi::lua_tonumber(l, -1) as f64;
                            if !(0.0..=SPACES.len() as f64).contains(&n) || n.fract() != 0.0 {
                                lua::arg_error(l, 2, c"indent must be a string or 0 to 32");
                            }
                            lua::push_bytes(l, &SPACES[..n as usize]);
                            ffi::lua_replace(l, 3);
                        }
                        _ => lua::arg_error(l, 2, c"indent must be a string or 0 to 32"),
                    },
                    Some(b"sort_keys") => sort_keys = ffi::lua_toboolean(l, -1) != 0,
                    _ => unknown_option(l, 2),
                }
                ffi::lua_pop(l, 1);
            }
        }
        let indent = if ffi::lua_type(l, 3) == ffi::LUA_TSTRING {
            lua::to_bytes(l, 3)
        } else {
            None
        };
        let s = take_scratch(l);
        s.out.clear();
        s.seen.clear();
        s.keys.clear();
        s.arena.clear();
        let r = {
            let mut enc = encode::Encoder {
                l,
                out: &mut s.out,
                indent,
                sort_keys,
                array_mt: ARRAY_MT,
                object_mt: OBJECT_MT,
                seen: &mut s.seen,
                keys: &mut s.keys,
                arena: &mut s.arena,
            };
            enc.value(1)
        };
        match r {
            Ok(()) => {
                lua::push_bytes(l, &s.out);
                give_back(l, 4, s);
                1
            }
            Err(e) => {
                // Drop what the walk left (the stack may be full).
                ffi::lua_settop(l, 4);
                give_back(l, 4, s);
                let msg = encode::message(&e);
                drop(e);
                lua::push_str(l, &msg);
                drop(msg);
                ffi::lua_pushnil(l);
                ffi::lua_insert(l, -2);
                2
            }
        }
    }
}

/// Pushes what the decoder reads onto the Lua stack.
struct LuaSink {
    l: *mut lua_State,
}

impl decode::Sink for LuaSink {
    #[inline]
    fn null(&mut self) {
        // SAFETY: the decoder pushes at most one value per slot `begin`
        // made room for (LUA_MINSTACK at the start); `l` is live.
        unsafe { ffi::lua_pushlightuserdata(self.l, lua::null()) }
    }
    #[inline]
    fn boolean(&mut self, b: bool) {
        // SAFETY: as `null`.
        unsafe { ffi::lua_pushboolean(self.l, b as c_int) }
    }
    #[inline]
    fn integer(&mut self, n: i64) {
        // SAFETY: as `null`. LuaJIT's integers are floats: exact up to 2^53.
        unsafe {
            #[cfg(not(feature = "luajit"))]
            ffi::lua_pushinteger(self.l, n as ffi::lua_Integer);
            #[cfg(feature = "luajit")]
            ffi::lua_pushnumber(self.l, n as ffi::lua_Number);
        }
    }
    #[inline]
    fn float(&mut self, f: f64) {
        // SAFETY: as `null`.
        unsafe { ffi::lua_pushnumber(self.l, f as ffi::lua_Number) }
    }
    #[inline]
    fn string(&mut self, s: &[u8]) {
        // SAFETY: as `null`.
        unsafe { lua::push_bytes(self.l, s) }
    }
    #[inline]
    fn begin(&mut self, _array: bool) -> bool {
        // SAFETY: as `null`; the table, a key and a value need three slots.
        unsafe {
            if ffi::lua_checkstack(self.l, 3) == 0 {
                return false;
            }
            ffi::lua_createtable(self.l, 0, 0);
            true
        }
    }
    #[inline]
    fn element(&mut self, index: usize) {
        // SAFETY: the array is below the value just pushed.
        unsafe {
            #[cfg(feature = "luajit")]
            ffi::lua_rawseti_(self.l, -2, index as c_int);
            #[cfg(not(feature = "luajit"))]
            ffi::lua_rawseti(self.l, -2, index as ffi::lua_Integer);
        }
    }
    #[inline]
    fn member(&mut self) {
        // SAFETY: the object is below the key and the value just pushed.
        unsafe { ffi::lua_rawset(self.l, -3) }
    }
    #[inline]
    fn end(&mut self, array: bool, empty: bool) {
        if array && empty {
            // SAFETY: the empty table is on top; upvalue 1 is the marker.
            unsafe {
                ffi::lua_pushvalue(self.l, ARRAY_MT);
                ffi::lua_setmetatable(self.l, -2);
            }
        }
    }
}

/// json.decode(text [, {max_depth =}]) -> value | nil, err
unsafe extern "C-unwind" fn decode(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_bytes(l, 1);
        let mut max_depth = encode::MAX_DEPTH;
        if !lua::is_none_or_nil(l, 2) {
            lua::check_type(l, 2, ffi::LUA_TTABLE);
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, 2) != 0 {
                match lua::to_bytes(l, -2).filter(|_| ffi::lua_type(l, -2) == ffi::LUA_TSTRING) {
                    Some(b"max_depth") => {
                        let n = if ffi::lua_type(l, -1) == ffi::LUA_TNUMBER {
                            ffi::lua_tonumber(l, -1) as f64
                        } else {
                            0.0
                        };
                        if !(1.0..=1e9).contains(&n) || n.fract() != 0.0 {
                            lua::arg_error(l, 2, c"max_depth must be a whole number from 1");
                        }
                        max_depth = n as usize;
                    }
                    _ => unknown_option(l, 2),
                }
                ffi::lua_pop(l, 1);
            }
        }
        ffi::lua_settop(l, 2);
        // The text stays at slot 1 (a string: check_bytes converted a number
        // in place), so the slice lives as long as the call.
        let text = lua::to_bytes(l, 1).unwrap_or_default();
        let s = take_scratch(l);
        let r = decode::decode(
            text,
            &mut LuaSink { l },
            max_depth,
            &mut s.frames,
            &mut s.arena,
        );
        match r {
            Ok(()) => {
                // The value is on top, above the Scratch at slot 3.
                give_back(l, 3, s);
                1
            }
            Err(e) => {
                // Drop the open arrays and objects (the stack may be full).
                ffi::lua_settop(l, 3);
                give_back(l, 3, s);
                let msg = decode::message(&e, text);
                lua::push_str(l, &msg);
                drop(msg);
                ffi::lua_pushnil(l);
                ffi::lua_insert(l, -2);
                2
            }
        }
    }
}

/// Set the marker at `mt` on the table at 1 (a new one when absent).
unsafe fn mark(l: *mut lua_State, mt: c_int) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if lua::is_none_or_nil(l, 1) {
            ffi::lua_settop(l, 0);
            ffi::lua_createtable(l, 0, 0);
        }
        lua::check_type(l, 1, ffi::LUA_TTABLE);
        ffi::lua_settop(l, 1);
        if ffi::lua_getmetatable(l, 1) != 0 {
            let ours =
                ffi::lua_rawequal(l, -1, ARRAY_MT) != 0 || ffi::lua_rawequal(l, -1, OBJECT_MT) != 0;
            if !ours {
                lua::arg_error(l, 1, c"table has a metatable");
            }
            ffi::lua_pop(l, 1);
        }
        ffi::lua_pushvalue(l, mt);
        ffi::lua_setmetatable(l, 1);
        1
    }
}

/// json.array([t]) -> t
unsafe extern "C-unwind" fn array(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { mark(l, ARRAY_MT) }
}

/// json.object([t]) -> t
unsafe extern "C-unwind" fn object(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { mark(l, OBJECT_MT) }
}

/// The exports, in LEM-API.md's order.
const FUNCS: &[Reg] = &[
    (c"encode", encode),
    (c"decode", decode),
    (c"array", array),
    (c"object", object),
];

/// `require 'lem.json'`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        ffi::luaL_checkstack(l, 8, std::ptr::null());
        lua::new_class(l, SCRATCH, &[], Some(lua::gc::<Scratch>));
        ffi::lua_pop(l, 1);
        // Registers the names for argument errors; replaced by closures.
        lua::new_lib(l, FUNCS);
        let module = ffi::lua_gettop(l);
        ffi::lua_createtable(l, 0, 0);
        ffi::lua_createtable(l, 0, 0);
        for (name, f) in FUNCS {
            ffi::lua_pushvalue(l, module + 1);
            ffi::lua_pushvalue(l, module + 2);
            ffi::lua_pushnil(l);
            ffi::lua_pushcclosure(l, *f, 3);
            ffi::lua_setfield(l, module, name.as_ptr());
        }
        ffi::lua_pop(l, 2);
        ffi::lua_pushlightuserdata(l, lua::null());
        ffi::lua_setfield(l, module, c"null".as_ptr());
        1
    }
}
