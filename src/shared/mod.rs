//! `lem.shared`: state every worker of one `lem -w` shares (LEM-API.md
//! "Shared state"): dictionaries ([`dict`]) and messages between workers
//! ([`bus`]).
//!
//! Both live in memfds ([`region`]) that whoever hands them out made and
//! keeps: under `lem -w` the worker supervisor, which workers ask over
//! their control socket (`crate::io::broker`), so the memory outlives
//! every worker and a restarted or reloaded one maps the same; a process
//! without `-w` makes its own ([`Memory`]).

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_int, CStr};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use crate::runtime::lua::{self, ffi, lua_State, Reg};

pub mod bus;
pub mod dict;
mod heap;
#[cfg(feature = "luajit")]
mod jit;
pub mod region;

use dict::{Dict, Error, Got, Mode, Value};

/// A dictionary made without a size.
const DEFAULT_SIZE: usize = 1 << 20;

/// The memfds made so far, by kind (`dict`, `bus`) and name: the worker
/// supervisor's, or a lone process's.
#[derive(Default)]
pub struct Memory {
    map: HashMap<(String, String), (OwnedFd, usize)>,
}

impl Memory {
    /// The memfd `kind`/`name`, made now with `size` bytes (0: the
    /// default) if it does not exist; an existing one of another size is
    /// refused.
    pub fn get(&mut self, kind: &str, name: &str, size: usize) -> Result<&OwnedFd, String> {
        let key = (kind.to_owned(), name.to_owned());
        if let Some((_, have)) = self.map.get(&key) {
            if size != 0 && size != *have {
                return Err(format!(
                    "shared {kind} '{name}' exists with size {have}, not {size}"
                ));
            }
        } else {
            let size = if size == 0 { DEFAULT_SIZE } else { size };
            let made = match kind {
                "dict" => dict::create(size),
                "bus" => bus::create(size),
                _ => return Err(format!("unknown kind of shared memory '{kind}'")),
            };
            let fd = made.map_err(|e| format!("cannot make shared {kind} '{name}': {e}"))?;
            self.map.insert(key.clone(), (fd, size));
        }
        Ok(&self.map[&key].0)
    }

    /// Answer a worker's request `shm\0kind\0name\0size`.
    pub fn request(&mut self, msg: &[u8]) -> Result<&OwnedFd, String> {
        let fields: Vec<&[u8]> = msg.split(|&b| b == 0).collect();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match fields.as_slice() {
            [b"shm", kind, name, size] => {
                let size = text(size)
                    .parse()
                    .map_err(|_| format!("malformed shared memory request: {:?}", text(size)))?;
                self.get(&text(kind), &text(name), size)
            }
            _ => Err("malformed shared memory request".into()),
        }
    }
}

/// The memfd `kind`/`name` of this process's broker, or of its own
/// [`Memory`] without one.
fn memory(kind: &str, name: &str, size: usize) -> Result<OwnedFd, String> {
    if let Some(r) = crate::io::broker::shared_memory(kind, name, size) {
        return r;
    }
    static OWN: Mutex<Option<Memory>> = Mutex::new(None);
    let mut own = OWN.lock().unwrap_or_else(|e| e.into_inner());
    let fd = own
        .get_or_insert_with(Memory::default)
        .get(kind, name, size)?;
    fd.try_clone().map_err(|e| e.to_string())
}

/// The dictionaries this process has mapped, by name.
static DICTS: Mutex<Option<HashMap<String, Arc<Dict>>>> = Mutex::new(None);

const DICT: &CStr = c"lem.shared.Dict";

thread_local! {
    /// Where a string value comes out (taken while pushing, so an error
    /// raised by the push leaves nothing borrowed).
    static OUT: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// shared.dict(name [, size]) -> Dict
unsafe extern "C-unwind" fn dict_open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let name = lua::check_bytes(l, 1);
        if name.is_empty() || name.len() > 255 || name.contains(&0) {
            lua::arg_error(l, 1, c"name must be 1 to 255 bytes without NUL");
        }
        let size = match ffi::lua_type(l, 2) {
            ffi::LUA_TNONE | ffi::LUA_TNIL => 0,
            ffi::LUA_TNUMBER => {
                let n = lua::check_number(l, 2);
                if n.is_finite() && n >= 0.0 {
                    n as usize
                } else {
                    usize::MAX
                }
            }
            ffi::LUA_TSTRING => std::str::from_utf8(lua::check_bytes(l, 2))
                .ok()
                .and_then(crate::runtime::parse_size)
                .unwrap_or(usize::MAX),
            _ => lua::type_error(l, 2, "number or string"),
        };
        if size != 0 && !(dict::MIN_SIZE..=dict::MAX_SIZE).contains(&size) {
            lua::arg_error(l, 2, c"size must be from 8k to 4g");
        }
        let size = size.next_multiple_of(4096);
        let name_bytes = name;
        let name = String::from_utf8_lossy(name).into_owned();
        let got = {
            let mut dicts = DICTS.lock().unwrap_or_else(|e| e.into_inner());
            let dicts = dicts.get_or_insert_with(HashMap::new);
            match dicts.get(&name) {
                Some(d) if size != 0 && d.capacity() != size => Err(format!(
                    "shared dict '{name}' exists with size {}, not {size}",
                    d.capacity()
                )),
                Some(d) => Ok(d.clone()),
                None => memory("dict", &name, size).and_then(|fd| {
                    let d = Arc::new(Dict::open(&fd, &name).map_err(|e| e.to_string())?);
                    dicts.insert(name.clone(), d.clone());
                    Ok(d)
                }),
            }
        };
        drop(name);
        match got {
            Ok(d) => {
                // The dictionary lives in DICTS for the process's life.
                let d = Arc::as_ptr(&d);
                push_dict(l, name_bytes, d);
                1
            }
            Err(e) => {
                lua::push_str(l, &e);
                drop(e);
                ffi::lua_error(l)
            }
        }
    }
}

/// Registry key of this state's dictionary objects: name -> object, and
/// object -> its dictionary (a light userdata).
static OBJECTS: u8 = 0;

/// Registry key of the LuaJIT half's function that puts its ffi methods
/// into a new object (absent without `ffi`).
#[cfg(feature = "luajit")]
static WRAP: u8 = 0;

/// Push this state's table of dictionary objects.
unsafe fn push_objects(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_pushlightuserdata(l, &OBJECTS as *const u8 as *mut _);
        ffi::lua_rawget(l, ffi::LUA_REGISTRYINDEX);
    }
}

/// Push the object of dictionary `d`, named `name`: this state's one,
/// made at the first `shared.dict(name)`. It is a table whose fields are
/// its methods, so `d:get(k)` finds `get` at once (on a userdata it went
/// through the metatable's `__index`, a tenth of a call's instructions).
/// Each method is a closure over the object's address and the dictionary
/// ([`Me`]), which [`check_dict`] compares `self` with; on LuaJIT the
/// hot ones are then the Lua half's ffi calls (`lua/lem/shared/ffi.lua`),
/// which keep the C closures for what their checks do not pass.
unsafe fn push_dict(l: *mut lua_State, name: &[u8], d: *const Dict) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::luaL_checkstack(l, 8, std::ptr::null());
        push_objects(l);
        lua::push_bytes(l, name);
        if ffi::lua_rawget(l, -2) == ffi::LUA_TTABLE {
            ffi::lua_remove(l, -2);
            return;
        }
        ffi::lua_pop(l, 1);
        ffi::lua_createtable(l, 0, DICT_METHODS.len() as c_int);
        // The methods' upvalue: [the object's address, the dictionary].
        let me = ffi::lua_newuserdata(l, std::mem::size_of::<Me>()) as *mut Me;
        me.write(Me {
            obj: ffi::lua_topointer(l, -2),
            dict: d,
        });
        for (name, f) in DICT_METHODS {
            ffi::lua_pushvalue(l, -1);
            ffi::lua_pushcclosure(l, *f, 1);
            ffi::lua_setfield(l, -3, name.as_ptr());
        }
        ffi::lua_pop(l, 1);
        let d = d as *mut std::ffi::c_void;
        // Its name in errors and `tostring`; `getmetatable` gives the
        // object (whose fields are the class), and `setmetatable` refuses.
        ffi::lua_createtable(l, 0, 2);
        lua::push_str(l, &DICT.to_string_lossy());
        ffi::lua_setfield(l, -2, c"__name".as_ptr());
        ffi::lua_pushvalue(l, -2);
        ffi::lua_setfield(l, -2, c"__metatable".as_ptr());
        ffi::lua_setmetatable(l, -2);
        #[cfg(feature = "luajit")]
        {
            ffi::lua_pushlightuserdata(l, &WRAP as *const u8 as *mut _);
            ffi::lua_rawget(l, ffi::LUA_REGISTRYINDEX);
            if ffi::lua_type(l, -1) == ffi::LUA_TFUNCTION {
                ffi::lua_pushvalue(l, -2);
                ffi::lua_pushlightuserdata(l, d);
                ffi::lua_call(l, 2, 0);
            } else {
                ffi::lua_pop(l, 1);
            }
        }
        lua::push_bytes(l, name);
        ffi::lua_pushvalue(l, -2);
        ffi::lua_rawset(l, -4);
        ffi::lua_pushvalue(l, -1);
        ffi::lua_pushlightuserdata(l, d);
        ffi::lua_rawset(l, -4);
        ffi::lua_remove(l, -2);
    }
}

/// What a dictionary object's methods keep (their upvalue, a userdata):
/// the object's address (`lua_topointer`: the object is kept for the
/// state's life in OBJECTS, so no other value has it) and its dictionary.
struct Me {
    obj: *const std::ffi::c_void,
    dict: *const Dict,
}

/// Argument 1, a dictionary: the one of the method's object (see
/// [`push_dict`]: comparing addresses is two C API calls, where
/// `lua_rawequal` and another `lua_touserdata` were a fourteenth of a
/// `set`), or another's (`d.get(other, k)`).
unsafe fn check_dict<'a>(l: *mut lua_State) -> &'a Dict {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs); the
    // upvalue is the `Me` of `push_dict`, and its dictionary, like what
    // OBJECTS maps an object to, is one of DICTS, which are never dropped.
    unsafe {
        let me = &*(ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)) as *const Me);
        if ffi::lua_topointer(l, 1) == me.obj {
            return &*me.dict;
        }
        if ffi::lua_type(l, 1) == ffi::LUA_TTABLE {
            push_objects(l);
            ffi::lua_pushvalue(l, 1);
            ffi::lua_rawget(l, -2);
            let p = ffi::lua_touserdata(l, -1) as *const Dict;
            ffi::lua_pop(l, 2);
            if !p.is_null() {
                return &*p;
            }
        }
        lua::type_error(l, 1, &DICT.to_string_lossy())
    }
}

/// Argument 2, a key.
unsafe fn check_key<'a>(l: *mut lua_State) -> &'a [u8] {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let k = lua::check_bytes(l, 2);
        if k.is_empty() {
            lua::arg_error(l, 2, c"key must not be empty");
        }
        if k.len() > dict::MAX_KEY {
            lua::arg_error(l, 2, c"key longer than 65535 bytes");
        }
        k
    }
}

/// A number's value: integers stay integers (on LuaJIT, a whole number
/// that a double holds exactly is one: [`from_f64`]).
unsafe fn number(l: *mut lua_State, idx: c_int) -> Value<'static> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        #[cfg(not(feature = "luajit"))]
        if ffi::lua_isinteger(l, idx) != 0 {
            return Value::Int(ffi::lua_tointeger(l, idx));
        }
        let n = ffi::lua_tonumber(l, idx);
        #[cfg(feature = "luajit")]
        return from_f64(n);
        #[cfg(not(feature = "luajit"))]
        Value::Num(n)
    }
}

/// A LuaJIT number's value: a whole number that a double holds exactly is
/// an integer.
#[cfg(feature = "luajit")]
fn from_f64(n: f64) -> Value<'static> {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        Value::Int(n as i64)
    } else {
        Value::Num(n)
    }
}

/// Seconds to live (checked: 0 or more) in ms; 0: for ever.
fn ttl_ms(t: f64) -> u64 {
    if t == 0.0 {
        0
    } else {
        ((t * 1000.0).ceil() as u64).max(1)
    }
}

/// Argument `idx`, a number (or a string that converts, as
/// [`lua::check_number`] takes), as [`number`] gives it.
unsafe fn check_num(l: *mut lua_State, idx: c_int) -> Value<'static> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TNUMBER {
            lua::check_number(l, idx);
        }
        number(l, idx)
    }
}

/// Argument `idx`, a value: nil is `None`.
unsafe fn check_value<'a>(l: *mut lua_State, idx: c_int, lists: bool) -> Option<Value<'a>> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match ffi::lua_type(l, idx) {
            ffi::LUA_TNIL | ffi::LUA_TNONE if !lists => None,
            ffi::LUA_TSTRING => Some(Value::Str(lua::check_bytes(l, idx))),
            ffi::LUA_TNUMBER => Some(number(l, idx)),
            ffi::LUA_TBOOLEAN if !lists => Some(Value::Bool(ffi::lua_toboolean(l, idx) != 0)),
            _ if lists => lua::type_error(l, idx, "string or number"),
            _ => lua::type_error(l, idx, "string, number, boolean or nil"),
        }
    }
}

/// Argument `idx`, seconds to live (nil or 0: for ever), in ms.
unsafe fn check_ttl(l: *mut lua_State, idx: c_int) -> u64 {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let t = lua::opt_number(l, idx, 0.0);
        if t.is_nan() || t < 0.0 {
            lua::arg_error(l, idx, c"ttl must be a number of seconds, 0 or more");
        }
        ttl_ms(t)
    }
}

unsafe fn push_int(l: *mut lua_State, i: i64) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        #[cfg(feature = "luajit")]
        ffi::lua_pushnumber(l, i as f64);
        #[cfg(not(feature = "luajit"))]
        ffi::lua_pushinteger(l, i);
    }
}

/// Push a value that came out; a string from [`OUT`].
unsafe fn push_got(l: *mut lua_State, g: Got, out: Vec<u8>) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match g {
            Got::Str => {
                lua::push_bytes(l, &out);
                OUT.set(out);
            }
            Got::Int(i) => push_int(l, i),
            Got::Num(n) => ffi::lua_pushnumber(l, n),
            Got::Bool(b) => ffi::lua_pushboolean(l, b as c_int),
            Got::List => ffi::lua_pushnil(l),
        }
    }
}

unsafe fn push_value(l: *mut lua_State, v: Value) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match v {
            Value::Str(s) => lua::push_bytes(l, s),
            Value::Int(i) => push_int(l, i),
            Value::Num(n) => ffi::lua_pushnumber(l, n),
            Value::Bool(b) => ffi::lua_pushboolean(l, b as c_int),
        }
    }
}

unsafe fn fail(l: *mut lua_State, e: Error) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { lua::fail(l, e.text()) }
}

/// d:get(key) -> value [, flags] | nil
unsafe extern "C-unwind" fn dict_get(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { get(l, false) }
}

/// d:get_stale(key) -> value, flags | nil, stale | nil
unsafe extern "C-unwind" fn dict_get_stale(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { get(l, true) }
}

unsafe fn get(l: *mut lua_State, stale: bool) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let d = check_dict(l);
        let key = check_key(l);
        let mut out = OUT.take();
        let Some((g, flags, expired)) = d.get(key, stale, &mut out) else {
            OUT.set(out);
            ffi::lua_pushnil(l);
            return 1;
        };
        if g == Got::List {
            OUT.set(out);
            return lua::fail(l, "value is a list");
        }
        push_got(l, g, out);
        if stale {
            if flags != 0 {
                ffi::lua_pushinteger(l, flags as _);
            } else {
                ffi::lua_pushnil(l);
            }
            ffi::lua_pushboolean(l, expired as c_int);
            return 3;
        }
        if flags != 0 {
            ffi::lua_pushinteger(l, flags as _);
            return 2;
        }
        1
    }
}

unsafe fn set(l: *mut lua_State, mode: Mode) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let d = check_dict(l);
        let key = check_key(l);
        let value = check_value(l, 3, false);
        if value.is_none() && mode != Mode::Set {
            lua::type_error(l, 3, "string, number or boolean");
        }
        // d:set(key, value), the common call, has no more to check.
        let (ttl, flags) = if ffi::lua_gettop(l) <= 3 {
            (0, 0)
        } else {
            (check_ttl(l, 4), lua::opt_integer(l, 5, 0))
        };
        if !(0..=u32::MAX as i64).contains(&flags) {
            lua::arg_error(l, 5, c"flags must be from 0 to 2^32-1");
        }
        match d.set(mode, key, value, ttl, flags as u32) {
            Ok(forcible) => {
                ffi::lua_pushboolean(l, 1);
                if forcible {
                    lua::push_str(l, "forcible");
                    return 2;
                }
                1
            }
            Err(e) => fail(l, e),
        }
    }
}

/// d:set(key, value [, ttl [, flags]]) -> true [, 'forcible'] | nil, err
unsafe extern "C-unwind" fn dict_set(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { set(l, Mode::Set) }
}

/// d:add(key, value [, ttl [, flags]]) -> true [, 'forcible'] | nil, err
unsafe extern "C-unwind" fn dict_add(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { set(l, Mode::Add) }
}

/// d:replace(key, value [, ttl [, flags]]) -> true [, 'forcible'] | nil, err
unsafe extern "C-unwind" fn dict_replace(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { set(l, Mode::Replace) }
}

/// d:incr(key, n [, init [, ttl]]) -> number | nil, err
unsafe extern "C-unwind" fn dict_incr(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d = check_dict(l);
        let key = check_key(l);
        let by = check_num(l, 3);
        let top = ffi::lua_gettop(l);
        let init = if top < 4 || ffi::lua_type(l, 4) == ffi::LUA_TNIL {
            None
        } else {
            Some(check_num(l, 4))
        };
        let ttl = if top < 5 { 0 } else { check_ttl(l, 5) };
        match d.incr(key, by, init, ttl) {
            Ok((v, _)) => {
                push_value(l, v);
                1
            }
            Err(e) => fail(l, e),
        }
    }
}

/// d:delete(key) -> true
unsafe extern "C-unwind" fn dict_delete(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d = check_dict(l);
        let key = check_key(l);
        let _ = d.set(Mode::Set, key, None, 0, 0);
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// d:ttl(key) -> seconds (0: for ever) | nil, 'not found'
unsafe extern "C-unwind" fn dict_ttl(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d = check_dict(l);
        let key = check_key(l);
        match d.ttl(key) {
            Ok(ms) => {
                ffi::lua_pushnumber(l, ms as f64 / 1000.0);
                1
            }
            Err(e) => fail(l, e),
        }
    }
}

/// d:expire(key, ttl) -> true | nil, 'not found'
unsafe extern "C-unwind" fn dict_expire(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d = check_dict(l);
        let key = check_key(l);
        lua::check_number(l, 3);
        let ttl = check_ttl(l, 3);
        match d.expire(key, ttl) {
            Ok(()) => {
                ffi::lua_pushboolean(l, 1);
                1
            }
            Err(e) => fail(l, e),
        }
    }
}

unsafe fn push(l: *mut lua_State, left: bool) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let d = check_dict(l);
        let key = check_key(l);
        let Some(v) = check_value(l, 3, true) else {
            unreachable!("check_value with lists raises on nil")
        };
        match d.push(key, v, left) {
            Ok(n) => {
                ffi::lua_pushinteger(l, n as _);
                1
            }
            Err(e) => fail(l, e),
        }
    }
}

/// d:lpush(key, value) -> length | nil, err
unsafe extern "C-unwind" fn dict_lpush(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { push(l, true) }
}

/// d:rpush(key, value) -> length | nil, err
unsafe extern "C-unwind" fn dict_rpush(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { push(l, false) }
}

unsafe fn pop(l: *mut lua_State, left: bool) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let d = check_dict(l);
        let key = check_key(l);
        let mut out = OUT.take();
        match d.pop(key, left, &mut out) {
            Ok(Some(g)) => {
                push_got(l, g, out);
                1
            }
            Ok(None) => {
                OUT.set(out);
                ffi::lua_pushnil(l);
                1
            }
            Err(e) => {
                OUT.set(out);
                fail(l, e)
            }
        }
    }
}

/// d:lpop(key) -> value | nil [, err]
unsafe extern "C-unwind" fn dict_lpop(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { pop(l, true) }
}

/// d:rpop(key) -> value | nil [, err]
unsafe extern "C-unwind" fn dict_rpop(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { pop(l, false) }
}

/// d:llen(key) -> length | nil, err
unsafe extern "C-unwind" fn dict_llen(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d = check_dict(l);
        let key = check_key(l);
        match d.llen(key) {
            Ok(n) => {
                ffi::lua_pushinteger(l, n as _);
                1
            }
            Err(e) => fail(l, e),
        }
    }
}

/// Argument 2, a count (nil: `default`; 0: all).
unsafe fn check_max(l: *mut lua_State, default: i64) -> usize {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let n = lua::opt_integer(l, 2, default);
        if n < 0 {
            lua::arg_error(l, 2, c"count must not be negative");
        }
        n as usize
    }
}

/// d:keys([max]) -> {key...} (max: 1024 by default, 0 for all)
unsafe extern "C-unwind" fn dict_keys(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d = check_dict(l);
        let max = check_max(l, 1024);
        let keys = d.keys(max);
        ffi::lua_createtable(l, keys.len().min(1 << 20) as c_int, 0);
        for (i, k) in keys.iter().enumerate() {
            lua::push_bytes(l, k);
            ffi::lua_rawseti(l, -2, (i + 1) as _);
        }
        1
    }
}

/// d:flush_all()
unsafe extern "C-unwind" fn dict_flush_all(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        check_dict(l).flush_all();
        0
    }
}

/// d:flush_expired([max]) -> count
unsafe extern "C-unwind" fn dict_flush_expired(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d = check_dict(l);
        let max = check_max(l, 0);
        ffi::lua_pushinteger(l, d.flush_expired(max) as _);
        1
    }
}

/// d:capacity() -> bytes
unsafe extern "C-unwind" fn dict_capacity(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        ffi::lua_pushinteger(l, check_dict(l).capacity() as _);
        1
    }
}

/// d:free_space() -> bytes
unsafe extern "C-unwind" fn dict_free_space(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        ffi::lua_pushinteger(l, check_dict(l).free_space() as _);
        1
    }
}

const DICT_METHODS: &[Reg] = &[
    (c"get", dict_get),
    (c"get_stale", dict_get_stale),
    (c"set", dict_set),
    (c"add", dict_add),
    (c"replace", dict_replace),
    (c"incr", dict_incr),
    (c"delete", dict_delete),
    (c"ttl", dict_ttl),
    (c"expire", dict_expire),
    (c"lpush", dict_lpush),
    (c"rpush", dict_rpush),
    (c"lpop", dict_lpop),
    (c"rpop", dict_rpop),
    (c"llen", dict_llen),
    (c"keys", dict_keys),
    (c"flush_all", dict_flush_all),
    (c"flush_expired", dict_flush_expired),
    (c"capacity", dict_capacity),
    (c"free_space", dict_free_space),
];

const FUNCS: &[Reg] = &[
    (c"dict", dict_open),
    (c"publish", bus::publish),
    (c"subscribe", bus::subscribe),
];

/// Load the LuaJIT half (`lua/lem/shared/ffi.lua`), handing it the
/// functions of [`jit`] and the errors' texts, and keep the function it
/// gives (nil without `ffi`) for [`push_dict`].
#[cfg(feature = "luajit")]
unsafe fn open_ffi(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        const SRC: &str = include_str!("../../lua/lem/shared/ffi.lua");
        ffi::luaL_checkstack(l, 6, std::ptr::null());
        ffi::lua_pushlightuserdata(l, &WRAP as *const u8 as *mut _);
        if ffi::luaL_loadbufferx(
            l,
            SRC.as_ptr() as *const _,
            SRC.len(),
            c"@lua/lem/shared/ffi.lua".as_ptr(),
            c"t".as_ptr(),
        ) != ffi::LUA_OK
        {
            ffi::lua_error(l);
        }
        ffi::lua_createtable(l, 0, 4);
        for (name, f) in jit::functions() {
            ffi::lua_pushlightuserdata(l, f);
            ffi::lua_setfield(l, -2, name.as_ptr());
        }
        ffi::lua_createtable(l, Error::ALL.len() as c_int, 0);
        for (i, e) in Error::ALL.iter().enumerate() {
            lua::push_str(l, e.text());
            ffi::lua_rawseti(l, -2, (i + 1) as _);
        }
        ffi::lua_setfield(l, -2, c"errors".as_ptr());
        ffi::lua_call(l, 1, 1);
        ffi::lua_rawset(l, ffi::LUA_REGISTRYINDEX);
    }
}

/// Open `lem.shared`.
///
/// # Safety
/// Called by `require` on lem's state.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        // The class only names the methods in their errors: objects are
        // tables of their own closures (`push_dict`).
        lua::new_class(l, DICT, DICT_METHODS, None);
        ffi::lua_pop(l, 1);
        push_objects(l);
        if ffi::lua_type(l, -1) != ffi::LUA_TTABLE {
            ffi::lua_pushlightuserdata(l, &OBJECTS as *const u8 as *mut _);
            ffi::lua_createtable(l, 0, 0);
            ffi::lua_rawset(l, ffi::LUA_REGISTRYINDEX);
        }
        ffi::lua_pop(l, 1);
        #[cfg(feature = "luajit")]
        open_ffi(l);
        bus::register(l);
        lua::new_lib(l, FUNCS);
        1
    }
}
