//! `lem.redis.core`: the RESP2 reply format (`stream:read('RedisReply')`)
//! and the command encoder. The Lua half is `lua/lem/redis.lua`.
//!
//! A reply is scanned whole before anything is pushed: [`scan`] walks it
//! without allocating (arrays by a count of elements still to come, not by
//! recursion), so a hostile length or depth is refused from its header.
//! Pushing then allocates no more than the buffered bytes call for.

use std::ffi::{c_int, c_void};

use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::parsers::{self, Format, Scan};

/// Largest bulk string accepted: redis's own `proto-max-bulk-len` default.
pub const MAX_BULK: usize = 512 << 20;
/// Deepest nesting of arrays accepted.
pub const MAX_DEPTH: usize = 64;
/// Largest array length accepted (each element needs 3 bytes at least, so
/// the buffer bounds what is allocated anyway; this refuses nonsense early).
pub const MAX_ARRAY: i64 = 1 << 32;
/// Longest header or simple-string line, CRLF excluded.
const MAX_LINE: usize = 64 << 10;

/// `redis.null` is lem's null (a light userdata: unique, comparable),
/// the value lem.json encodes as `null`.
fn null_ptr() -> *mut c_void {
    lua::null()
}

/// One line ending in CRLF starting at `at`: `Ok(Some(end))` with the
/// index of the `\r`, `Ok(None)` if incomplete.
fn line(input: &[u8], at: usize) -> Result<Option<usize>, &'static str> {
    let rest = &input[at..];
    match memchr::memchr(b'\r', rest) {
        Some(i) if i > MAX_LINE => Err("redis reply line too long"),
        Some(i) => match rest.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some(at + i)),
            Some(_) => Err("redis reply line without LF after CR"),
        },
        None if rest.len() > MAX_LINE => Err("redis reply line too long"),
        None => Ok(None),
    }
}

fn int(bytes: &[u8]) -> Result<i64, &'static str> {
    let (neg, digits) = match bytes {
        [b'-', d @ ..] => (true, d),
        d => (false, d),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err("redis reply with a malformed integer");
    }
    let mut n: i64 = 0;
    for &d in digits {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add((d - b'0') as i64))
            .ok_or("redis reply with a malformed integer")?;
    }
    Ok(if neg { -n } else { n })
}

/// A length header (`$n` or `*n`): -1 for null, else 0..=max.
fn length(bytes: &[u8], max: i64, what: &'static str) -> Result<i64, &'static str> {
    let n = int(bytes)?;
    if n < -1 {
        return Err("redis reply with a negative length");
    }
    if n > max {
        return Err(what);
    }
    Ok(n)
}

/// Where the complete reply starting at 0 ends, `None` if incomplete.
pub fn scan(input: &[u8]) -> Result<Option<usize>, &'static str> {
    // Elements still to come at each open array level.
    let mut stack = [0i64; MAX_DEPTH];
    let mut depth = 0usize;
    let mut at = 0usize;
    loop {
        let Some(&kind) = input.get(at) else {
            return Ok(None);
        };
        let Some(end) = line(input, at + 1)? else {
            return Ok(None);
        };
        let head = &input[at + 1..end];
        at = end + 2;
        match kind {
            b'+' | b'-' => {}
            b':' => {
                int(head)?;
            }
            b'$' => {
                let n = length(
                    head,
                    MAX_BULK as i64,
                    "redis reply with a bulk string too long",
                )?;
                if n >= 0 {
                    let n = n as usize;
                    if input.len() < at + n + 2 {
                        return Ok(None);
                    }
                    if &input[at + n..at + n + 2] != b"\r\n" {
                        return Err("redis bulk string not ended by CRLF");
                    }
                    at += n + 2;
                }
            }
            b'*' => {
                let n = length(head, MAX_ARRAY, "redis reply with an array too long")?;
                if n > 0 {
                    if depth == MAX_DEPTH {
                        return Err("redis reply nested too deep");
                    }
                    stack[depth] = n;
                    depth += 1;
                    continue;
                }
            }
            _ => return Err("redis reply of an unknown type"),
        }
        // One value done: close the arrays it completes.
        loop {
            if depth == 0 {
                return Ok(Some(at));
            }
            stack[depth - 1] -= 1;
            if stack[depth - 1] > 0 {
                break;
            }
            depth -= 1;
        }
    }
}

/// Push the (scanned, valid) value at `*at`, advancing `*at`. Error
/// replies inside arrays are tables `{err = msg}`; `top` error replies
/// push `nil, msg, 'redis'` instead (3 values).
unsafe fn push_value(l: *mut lua_State, input: &[u8], at: &mut usize, top: bool) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let kind = input[*at];
        let end = *at + 1 + memchr::memchr(b'\r', &input[*at + 1..]).unwrap_or(0);
        let head = &input[*at + 1..end];
        *at = end + 2;
        match kind {
            b'+' => lua::push_bytes(l, head),
            b'-' if top => {
                ffi::lua_pushnil(l);
                lua::push_bytes(l, head);
                lua::push_str(l, "redis");
                return 3;
            }
            b'-' => {
                ffi::lua_createtable(l, 0, 1);
                lua::push_bytes(l, head);
                ffi::lua_setfield(l, -2, c"err".as_ptr());
            }
            b':' => ffi::lua_pushinteger(l, int(head).unwrap_or(0) as _),
            b'$' => match int(head).unwrap_or(-1) {
                n if n < 0 => ffi::lua_pushlightuserdata(l, null_ptr()),
                n => {
                    let n = n as usize;
                    lua::push_bytes(l, &input[*at..*at + n]);
                    *at += n + 2;
                }
            },
            _ => match int(head).unwrap_or(-1) {
                n if n < 0 => ffi::lua_pushlightuserdata(l, null_ptr()),
                n => {
                    ffi::luaL_checkstack(l, 4, c"redis reply".as_ptr());
                    // Bounded by the buffered bytes: scan saw every element.
                    let pre = (n as usize).min(input.len() / 3);
                    ffi::lua_createtable(l, pre as c_int, 0);
                    for i in 1..=n {
                        push_value(l, input, at, false);
                        ffi::lua_rawseti(l, -2, i as _);
                    }
                }
            },
        }
        1
    }
}

/// `read('RedisReply')`.
pub struct Reply;

impl Format for Reply {
    fn scan(&self, input: &[u8], _eof: bool) -> Scan {
        Scan::of_len(scan(input))
    }
    unsafe fn push(&self, l: *mut lua_State, input: &[u8], _mark: usize) -> c_int {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let mut at = 0;
            push_value(l, input, &mut at, true)
        }
    }
    fn limit_error(&self) -> &'static str {
        "redis reply too large"
    }
}

static REPLY: Reply = Reply;

/// Append one argument of a command at `idx` (a string or a number).
unsafe fn put_arg(l: *mut lua_State, idx: c_int, out: &mut Vec<u8>) -> bool {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let bytes = match ffi::lua_type(l, idx) {
            ffi::LUA_TSTRING | ffi::LUA_TNUMBER => lua::to_bytes(l, idx),
            _ => None,
        };
        let Some(b) = bytes else {
            return false;
        };
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(b.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
        true
    }
}

/// Encode the command made of stack values `from..=to` onto `out`.
unsafe fn put_command(
    l: *mut lua_State,
    from: c_int,
    to: c_int,
    out: &mut Vec<u8>,
) -> Result<(), c_int> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if to < from {
            return Err(0);
        }
        out.push(b'*');
        out.extend_from_slice(itoa::Buffer::new().format(to - from + 1).as_bytes());
        out.extend_from_slice(b"\r\n");
        for i in from..=to {
            // lua_tolstring turns a number into a string in place: a number
            // is copied first (a string is read where it is).
            let ok = if ffi::lua_type(l, i) == ffi::LUA_TSTRING {
                put_arg(l, i, out)
            } else {
                ffi::lua_pushvalue(l, i);
                let ok = put_arg(l, -1, out);
                ffi::lua_pop(l, 1);
                ok
            };
            if !ok {
                return Err(i);
            }
        }
        Ok(())
    }
}

/// `core.encode(cmd, ...)` → the command as RESP bytes.
unsafe extern "C-unwind" fn encode(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let top = ffi::lua_gettop(l);
        // Room for a short command at once (it grows past that).
        let mut out = Vec::with_capacity(64);
        match put_command(l, 1, top, &mut out) {
            Ok(()) => {
                lua::push_bytes(l, &out);
                1
            }
            Err(0) => lua::arg_error(l, 1, c"command expected"),
            Err(i) => lua::arg_error(l, i, c"string or number expected"),
        }
    }
}

/// `core.encodeall({ {cmd, ...}, ... })` → all the commands as one string.
unsafe extern "C-unwind" fn encodeall(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_type(l, 1, ffi::LUA_TTABLE);
        let n = ffi::lua_rawlen(l, 1) as ffi::lua_Integer;
        let mut out = Vec::new();
        let mut bad = None;
        for i in 1..=n {
            lua::push_index(l, 1, i);
            if ffi::lua_type(l, -1) != ffi::LUA_TTABLE {
                bad = Some(i);
                ffi::lua_pop(l, 1);
                break;
            }
            let base = ffi::lua_gettop(l);
            let m = ffi::lua_rawlen(l, base) as ffi::lua_Integer;
            ffi::luaL_checkstack(l, m as c_int + 2, c"redis pipeline".as_ptr());
            for j in 1..=m {
                lua::push_index(l, base, j);
            }
            let r = put_command(l, base + 1, base + m as c_int, &mut out);
            ffi::lua_settop(l, base - 1);
            if r.is_err() {
                bad = Some(i);
                break;
            }
        }
        if let Some(i) = bad {
            drop(out);
            let msg = format!("command {i} is not an array of strings or numbers\0");
            lua::push_str(l, &msg[..msg.len() - 1]);
            ffi::lua_error(l);
        }
        lua::push_bytes(l, &out);
        1
    }
}

const FUNCS: &[Reg] = &[(c"encode", encode), (c"encodeall", encodeall)];

/// `require 'lem.redis.core'`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        parsers::register(l, c"RedisReply", &REPLY);
        ffi::lua_createtable(l, 0, FUNCS.len() as c_int + 4);
        lua::set_funcs(l, FUNCS);
        ffi::lua_pushlightuserdata(l, null_ptr());
        ffi::lua_setfield(l, -2, c"null".as_ptr());
        ffi::lua_pushinteger(l, MAX_BULK as _);
        ffi::lua_setfield(l, -2, c"max_bulk".as_ptr());
        1
    }
}

/// The fuzz entry point: scan must never panic, and a reply it accepts
/// must be accepted whole from any prefix on (Need, then Ready at the same
/// end).
pub fn fuzz_reply(data: &[u8]) {
    let full = scan(data);
    if let Ok(Some(end)) = full {
        assert!(end <= data.len());
        for cut in [0, end / 2, end.saturating_sub(1)] {
            if cut < end {
                assert_eq!(scan(&data[..cut]), Ok(None), "prefix of {cut}");
            }
        }
        assert_eq!(scan(&data[..end]), Ok(Some(end)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert_eq!(scan(b"+OK\r\n"), Ok(Some(5)));
        assert_eq!(scan(b"-ERR x\r\n"), Ok(Some(8)));
        assert_eq!(scan(b":-12\r\n"), Ok(Some(6)));
        assert_eq!(scan(b"$3\r\na\r\n\r\n"), Ok(Some(9)));
        assert_eq!(scan(b"$-1\r\n"), Ok(Some(5)));
        assert_eq!(scan(b"*-1\r\n"), Ok(Some(5)));
        assert_eq!(scan(b"*0\r\n"), Ok(Some(4)));
        assert_eq!(scan(b"*2\r\n*1\r\n:1\r\n$-1\r\n+x"), Ok(Some(17)));
        assert_eq!(scan(b"*2\r\n:1\r\n"), Ok(None));
        assert_eq!(scan(b"$5\r\nab"), Ok(None));
    }

    #[test]
    fn hostile() {
        assert!(scan(b"$99999999999\r\n").is_err());
        assert!(scan(b"*99999999999\r\n").is_err());
        assert!(scan(b"$-2\r\n").is_err());
        assert!(scan(b":12a\r\n").is_err());
        assert!(scan(b"?\r\n").is_err());
        assert!(scan(b"$1\r\nabc\r\n").is_err());
        assert!(scan(b"+a\rb").is_err());
        assert!(scan("*1\r\n".repeat(65).as_bytes()).is_err());
        assert_eq!(scan("*1\r\n".repeat(64).as_bytes()), Ok(None));
        fuzz_reply(b"*2\r\n$1\r\na\r\n:3\r\n");
    }
}
