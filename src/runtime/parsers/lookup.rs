//! `parsers.lookup`: the names `read` knows (the built-in formats and the
//! ones native modules [`register`]), how a `read(fmt, ...)` call's
//! arguments become a [`Fmt`] ([`check_format`]), and the opener of
//! `lem.parsers.core`.

use std::ffi::{c_int, c_void, CStr};

use super::{Fmt, Format};
use crate::runtime::lua::{self, ffi, lua_State, Reg};

/// Registry key of the `parsers.lookup` table.
const LOOKUP: &CStr = c"lem.parsers.lookup";

/// Its registry key for [`push_lookup`]: this static's address, one for the
/// whole program (a `const`'s may differ between uses).
static LOOKUP_KEY: u8 = 0;

/// What a `parsers.lookup` value points at (a light userdata).
enum Entry {
    Available,
    Count,
    Line,
    All,
    Custom(&'static dyn Format),
}

static AVAILABLE: Entry = Entry::Available;
static COUNT: Entry = Entry::Count;
static LINE: Entry = Entry::Line;
static ALL: Entry = Entry::All;

/// Push `parsers.lookup`, creating it with the built-in formats first.
///
/// Every `read` with a format name looks here: the table is found in the
/// registry by [`LOOKUP_KEY`]'s address, a light userdata (one raw hash look-up),
/// rather than by its name (the name's string made or found, then
/// compared, on every read); the name keeps it too.
///
/// # Safety
/// `l` must be a valid Lua state.
pub unsafe fn push_lookup(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_pushlightuserdata(l, &LOOKUP_KEY as *const u8 as *mut c_void);
        ffi::lua_rawget(l, ffi::LUA_REGISTRYINDEX);
        if ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
            return;
        }
        ffi::lua_pop(l, 1);
        ffi::lua_createtable(l, 0, 8);
        for (name, e) in [
            (c"*l", &LINE),
            (c"l", &LINE),
            (c"*a", &ALL),
            (c"a", &ALL),
            (c"available", &AVAILABLE),
            (c"count", &COUNT),
        ] {
            ffi::lua_pushlightuserdata(l, e as *const Entry as *mut c_void);
            ffi::lua_setfield(l, -2, name.as_ptr());
        }
        ffi::lua_pushvalue(l, -1);
        ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, LOOKUP.as_ptr());
        ffi::lua_pushlightuserdata(l, &LOOKUP_KEY as *const u8 as *mut c_void);
        ffi::lua_pushvalue(l, -2);
        ffi::lua_rawset(l, ffi::LUA_REGISTRYINDEX);
    }
}

/// Make `read(name)` use `format`, on every stream and file of this state.
///
/// # Safety
/// `l` must be a valid Lua state.
pub unsafe fn register(l: *mut lua_State, name: &CStr, format: &'static dyn Format) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        // A light userdata is a thin pointer: box the fat one, once per
        // registration (formats are registered once, at module load).
        let entry: &'static Entry = Box::leak(Box::new(Entry::Custom(format)));
        push_lookup(l);
        ffi::lua_pushlightuserdata(l, entry as *const Entry as *mut c_void);
        ffi::lua_setfield(l, -2, name.as_ptr());
        ffi::lua_pop(l, 1);
    }
}

/// [`register`] for code holding an [`mlua::Lua`].
pub fn register_mlua(lua: &mlua::Lua, name: &str, format: &'static dyn Format) -> mlua::Result<()> {
    let name = std::ffi::CString::new(name).map_err(mlua::Error::external)?;
    // SAFETY: exec_raw gives a valid stack; register keeps it balanced.
    unsafe { lua.exec_raw::<()>((), |l| register(l, &name, format)) }
}

/// The format a `read(fmt, ...)` call asks for, from arguments `arg` and
/// `arg + 1`: nil/none, a count, a name in `parsers.lookup` (with a stop
/// byte for lines), or a lookup value itself (`readp`). Raises
/// `invalid format` otherwise.
///
/// # Safety
/// May raise: call before creating owned values.
pub unsafe fn check_format(l: *mut lua_State, arg: c_int) -> Fmt {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let entry: *const Entry = match ffi::lua_type(l, arg) {
            ffi::LUA_TNONE | ffi::LUA_TNIL => return Fmt::Available,
            ffi::LUA_TNUMBER => {
                let n = lua::check_integer(l, arg);
                if n < 0 {
                    lua::arg_error(l, arg, c"invalid format");
                }
                return Fmt::Count(n as usize);
            }
            ffi::LUA_TSTRING => {
                push_lookup(l);
                ffi::lua_pushvalue(l, arg);
                ffi::lua_rawget(l, -2);
                let p = ffi::lua_touserdata(l, -1) as *const Entry;
                ffi::lua_pop(l, 2);
                p
            }
            ffi::LUA_TLIGHTUSERDATA => ffi::lua_touserdata(l, arg) as *const Entry,
            _ => std::ptr::null(),
        };
        // Only pointers that came out of `parsers.lookup` are Entries; a stray
        // light userdata from elsewhere must not be trusted.
        if entry.is_null()
            || (ffi::lua_type(l, arg) == ffi::LUA_TLIGHTUSERDATA && !in_lookup(l, entry))
        {
            lua::arg_error(l, arg, c"invalid format");
        }
        match &*entry {
            Entry::Available => Fmt::Available,
            Entry::Count => {
                let n = lua::check_integer(l, arg + 1);
                if n < 0 {
                    lua::arg_error(l, arg + 1, c"invalid count");
                }
                Fmt::Count(n as usize)
            }
            Entry::Line => {
                if lua::is_none_or_nil(l, arg + 1) {
                    Fmt::Line(b'\n')
                } else {
                    let mut len = 0;
                    let p = lua::check_lstring(l, arg + 1, &mut len);
                    // LEM: a longer string stops at its first byte.
                    if len == 0 {
                        lua::arg_error(l, arg + 1, c"stop byte expected, got an empty string");
                    }
                    Fmt::Line(*p as u8)
                }
            }
            Entry::All => Fmt::All,
            Entry::Custom(f) => Fmt::Custom(*f),
        }
    }
}

/// Whether `p` is a value of `parsers.lookup`.
unsafe fn in_lookup(l: *mut lua_State, p: *const Entry) -> bool {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        push_lookup(l);
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            let found = ffi::lua_touserdata(l, -1) as *const Entry == p;
            ffi::lua_pop(l, 1);
            if found {
                ffi::lua_pop(l, 2);
                return true;
            }
        }
        ffi::lua_pop(l, 1);
        false
    }
}

const FUNCS: &[Reg] = &[];

/// luaopen for `lem.parsers.core`: `{ lookup = parsers.lookup }`.
///
/// # Safety
/// Called by `require`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        ffi::lua_createtable(l, 0, 1);
        lua::set_funcs(l, FUNCS);
        push_lookup(l);
        ffi::lua_setfield(l, -2, c"lookup".as_ptr());
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::parsers::Scan;

    /// `read('word')`: up to a space; tests [`register`].
    struct Word;
    impl Format for Word {
        fn scan(&self, input: &[u8], _eof: bool) -> Scan {
            match input.iter().position(|&b| b == b' ') {
                Some(i) => Scan::Ready {
                    consume: i + 1,
                    mark: i,
                },
                None if input.len() > 8 => Scan::Invalid("word too long"),
                None => Scan::Need,
            }
        }
        unsafe fn push(&self, l: *mut lua_State, input: &[u8], mark: usize) -> c_int {
            // SAFETY: `l` is a live thread of lem's state, the contract of every
            // function that takes one (see the module doc of runtime/lua.rs).
            unsafe {
                // Only the bytes the read consumes: the word and its space.
                assert_eq!(input.len(), mark + 1);
                lua::push_bytes(l, &input[..mark]);
                1
            }
        }
        fn limit_error(&self) -> &'static str {
            "out of buffer space"
        }
    }
    static WORD: Word = Word;

    #[test]
    fn registered_formats_read_from_files_and_streams() {
        let dir = std::env::temp_dir().join(format!("lem-parsers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("words");
        std::fs::write(&path, "alpha beta gammadeltaepsilon").unwrap();
        let mut rt = crate::Runtime::new(crate::Options::default()).unwrap();
        register_mlua(rt.lua(), "word", &WORD).unwrap();
        let main = rt
            .lua()
            .load(
                r#"
                local io = require 'lem.io'
                local f = assert(io.open(...))
                local a = f:read('word')
                local b = f:read('word')
                local c, err = f:read('word')
                assert(require('lem.parsers').lookup.word)
                result = table.concat({ a, b, tostring(c), err }, ',')
                "#,
            )
            .into_function()
            .unwrap();
        rt.spawn(main, path.to_str().unwrap()).unwrap();
        assert_eq!(rt.run(), crate::Outcome::Idle);
        let r: String = rt.lua().globals().get("result").unwrap();
        assert_eq!(r, "alpha,beta,nil,word too long");
        drop(rt);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
