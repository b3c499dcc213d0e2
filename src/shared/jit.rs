//! The hot dictionary operations as plain C functions, which the LuaJIT
//! build's Lua half (`lua/lem/shared/ffi.lua`) calls through `ffi`: a
//! call of a Lua C function ends a LuaJIT trace and pays for the C API
//! on both sides, where an ffi call is compiled into the trace.
//!
//! Lua checks every argument before it calls (a call that would not pass
//! goes to the C function of `mod.rs` instead, for its error), so these
//! only convert: the dictionary is the pointer the object's closures
//! keep (an upvalue, never a field a script can change), the key and a
//! string value are a Lua string's bytes and length, and a string that
//! comes out is copied into the caller's buffer of `cap` bytes. They
//! never touch the Lua state and never unwind.

use std::ffi::{c_int, c_void};

use super::dict::{Dict, Error, Got, Mode, Value};

/// What `get` gives besides its code: a number's value, the flags, a
/// string's length (in `buf` only when at most `cap`).
#[repr(C)]
pub struct Out {
    num: f64,
    flags: u32,
    len: u32,
}

/// `get`'s codes.
const GOT_NIL: c_int = 0;
const GOT_STR: c_int = 1;
const GOT_NUM: c_int = 2;
const GOT_TRUE: c_int = 3;
const GOT_FALSE: c_int = 4;
const GOT_LIST: c_int = 5;

/// `set`'s kinds of value.
const VAL_NIL: c_int = 0;
const VAL_STR: c_int = 1;
const VAL_NUM: c_int = 2;
const VAL_TRUE: c_int = 3;

/// An error's code: minus its place (from 1) in [`Error::ALL`], the
/// order of the texts handed to Lua.
fn code(e: Error) -> c_int {
    -(Error::ALL.iter().position(|&x| x == e).unwrap_or(0) as c_int + 1)
}

fn value_out(v: Value) -> f64 {
    match v {
        Value::Int(i) => i as f64,
        Value::Num(n) => n,
        // `incr` makes numbers only.
        Value::Str(_) | Value::Bool(_) => f64::NAN,
    }
}

/// d:get(key): a `GOT_` code.
///
/// # Safety
/// `d` is a dictionary of `super::DICTS` (kept for the process's life);
/// `key` has `klen` bytes; `out` is valid for writes; `buf` has `cap`
/// writable bytes.
pub unsafe extern "C" fn get(
    d: *const Dict,
    key: *const u8,
    klen: usize,
    out: *mut Out,
    buf: *mut u8,
    cap: u32,
) -> c_int {
    // SAFETY: the callers keep the contract in this function's `# Safety`
    // section, which is all the accesses below rely on.
    let (d, key, out, buf) = unsafe {
        (
            &*d,
            std::slice::from_raw_parts(key, klen),
            &mut *out,
            std::slice::from_raw_parts_mut(buf, cap as usize),
        )
    };
    let Some((got, len, flags)) = d.get_into(key, buf) else {
        return GOT_NIL;
    };
    out.flags = flags;
    match got {
        Got::Str => {
            out.len = len as u32;
            GOT_STR
        }
        Got::Int(i) => {
            out.num = i as f64;
            GOT_NUM
        }
        Got::Num(n) => {
            out.num = n;
            GOT_NUM
        }
        Got::Bool(true) => GOT_TRUE,
        Got::Bool(false) => GOT_FALSE,
        Got::List => GOT_LIST,
    }
}

/// d:set / d:add / d:replace (`mode` 0, 1, 2) / d:delete (kind
/// `VAL_NIL`): 0, 1 for `'forcible'`, or an error's [`code`].
///
/// # Safety
/// As [`get`]'s; `s` has `slen` bytes when `kind` is `VAL_STR`.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn set(
    d: *const Dict,
    mode: c_int,
    key: *const u8,
    klen: usize,
    kind: c_int,
    s: *const u8,
    slen: usize,
    n: f64,
    ttl: f64,
    flags: u32,
) -> c_int {
    // SAFETY: the callers keep the contract in this function's `# Safety`
    // section, which is all the accesses below rely on.
    let (d, key) = unsafe { (&*d, std::slice::from_raw_parts(key, klen)) };
    let value = match kind {
        VAL_NIL => None,
        // SAFETY: as above.
        VAL_STR => Some(Value::Str(unsafe { std::slice::from_raw_parts(s, slen) })),
        VAL_NUM => Some(super::from_f64(n)),
        k => Some(Value::Bool(k == VAL_TRUE)),
    };
    let mode = match mode {
        1 => Mode::Add,
        2 => Mode::Replace,
        _ => Mode::Set,
    };
    match d.set(mode, key, value, super::ttl_ms(ttl), flags) {
        Ok(forcible) => forcible as c_int,
        Err(e) => code(e),
    }
}

/// d:incr(key, by [, init [, ttl]]): 0 with the new value in `*out`, or
/// an error's [`code`].
///
/// # Safety
/// As [`get`]'s.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn incr(
    d: *const Dict,
    key: *const u8,
    klen: usize,
    by: f64,
    has_init: c_int,
    init: f64,
    ttl: f64,
    out: *mut f64,
) -> c_int {
    // SAFETY: the callers keep the contract in this function's `# Safety`
    // section, which is all the accesses below rely on.
    let (d, key, out) = unsafe { (&*d, std::slice::from_raw_parts(key, klen), &mut *out) };
    let init = (has_init != 0).then(|| super::from_f64(init));
    match d.incr(key, super::from_f64(by), init, super::ttl_ms(ttl)) {
        Ok((v, _)) => {
            *out = value_out(v);
            0
        }
        Err(e) => code(e),
    }
}

/// The functions, by name, and the errors' texts in the order of their
/// codes: what `lua/lem/shared/ffi.lua` is given.
pub fn functions() -> [(&'static std::ffi::CStr, *mut c_void); 3] {
    [
        (c"get", get as *mut c_void),
        (c"set", set as *mut c_void),
        (c"incr", incr as *mut c_void),
    ]
}
