//! Building response heads: [`build_head`] for the server's hot path
//! (`server.rs`) and `core.head` for the Lua half's other responses, and
//! `res:add` (`core.add`).

use std::ffi::c_int;

use super::date::{with_date, with_date_server};
use super::head::is_token;
use crate::runtime::lua::{self, ffi, lua_State};

/// res:add(fmt, ...): append `string.format(fmt, ...)` to the response's
/// body (its array part). A lone format with no `%` in it is the text
/// itself, so it is appended without a call to `string.format` (upvalue 1).
pub(super) unsafe extern "C-unwind" fn add(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
        let n = ffi::lua_gettop(l);
        let verbatim = n == 2
            && ffi::lua_type(l, 2) == ffi::LUA_TSTRING
            && lua::to_bytes(l, 2).is_some_and(|s| !s.contains(&b'%'));
        if !verbatim {
            ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
            ffi::lua_insert(l, 2);
            ffi::lua_call(l, n - 1, 1);
        }
        let len = ffi::lua_rawlen(l, 1);
        ffi::lua_rawseti(l, 1, len as ffi::lua_Integer + 1);
        0
    }
}

/// What a response head says about the body's length.
#[derive(Clone, Copy)]
pub(super) enum Length {
    None,
    Bytes(i64),
    Chunked,
}

/// core.head(status, text, headers, length, close, keepalive, server)
/// -> head | nil: the response head `lua/lem/http/server.lua` builds
/// (same fields, same order), or nil when a header name is not a string
/// or a value neither string nor number (the Lua half then builds it, with
/// `tostring` and its metamethods), or any argument is unusual (a status
/// that is not an integer...). `length` is nil, a byte count or
/// `'chunked'`.
pub(super) unsafe extern "C-unwind" fn head(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        ffi::luaL_checktype(l, 3, ffi::LUA_TTABLE);
        let status = integer(l, 1).filter(|&n| valid_status(n));
        let plain_args = status.is_some()
            && ffi::lua_type(l, 2) == ffi::LUA_TSTRING
            && ffi::lua_type(l, 7) == ffi::LUA_TSTRING;
        let length = match ffi::lua_type(l, 4) {
            ffi::LUA_TNONE | ffi::LUA_TNIL => Some(Length::None),
            ffi::LUA_TSTRING => Some(Length::Chunked),
            ffi::LUA_TNUMBER => integer(l, 4).map(Length::Bytes),
            _ => None,
        };
        let (true, Some(status), Some(length)) = (plain_args, status, length) else {
            ffi::lua_pushnil(l);
            return 1;
        };
        let mut out = Vec::with_capacity(256);
        let built = build_head(
            l,
            &mut out,
            ResponseHead {
                status,
                text: lua::to_bytes(l, 2).unwrap_or_default(),
                headers: 3,
                length,
                close: ffi::lua_toboolean(l, 5) != 0,
                keepalive: ffi::lua_toboolean(l, 6) != 0,
                server: lua::to_bytes(l, 7).unwrap_or_default(),
            },
        );
        if built {
            lua::push_bytes(l, &out);
        } else {
            ffi::lua_pushnil(l);
        }
        1
    }
}

/// What a response head is made of.
pub(super) struct ResponseHead<'a> {
    pub(super) status: i64,
    /// The reason phrase.
    pub(super) text: &'a [u8],
    /// Stack index of the headers table.
    pub(super) headers: c_int,
    pub(super) length: Length,
    /// Say `Connection: close` (unless the headers have a Connection).
    pub(super) close: bool,
    /// Say `Connection: keep-alive` (HTTP/1.0 clients that asked).
    pub(super) keepalive: bool,
    /// The `Server` value (unless the headers have one).
    pub(super) server: &'a [u8],
}

/// Append a response head to `out`: the status line, the handler's
/// headers, then Content-Length / Transfer-Encoding, Date, Server and
/// Connection where the handler did not set them; a value that is a list
/// (a table without a metatable) gives one field per element, none when
/// empty (`Set-Cookie`). Returns false (with `out` holding a part of the
/// head, to be dropped) when a header name is not a string or a value
/// neither a string, a number nor a list of them. Raises only when out of
/// memory.
pub(super) unsafe fn build_head(l: *mut lua_State, out: &mut Vec<u8>, h: ResponseHead) -> bool {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_int(out, h.status);
        out.push(b' ');
        out.extend_from_slice(h.text);
        out.extend_from_slice(b"\r\n");
        let (mut haslength, mut hasdate, mut hasserver, mut hasconn) = (false, false, false, false);
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, h.headers) != 0 {
            // Only strings and numbers, or a plain list of them (one field
            // each): converting them cannot raise (and to_bytes leaves a
            // string key as it is, as lua_next needs).
            let list = match ffi::lua_type(l, -1) {
                ffi::LUA_TSTRING | ffi::LUA_TNUMBER => false,
                ffi::LUA_TTABLE if ffi::lua_getmetatable(l, -1) == 0 => true,
                ffi::LUA_TTABLE => {
                    ffi::lua_pop(l, 3);
                    return false;
                }
                _ => {
                    ffi::lua_pop(l, 2);
                    return false;
                }
            };
            if ffi::lua_type(l, -2) != ffi::LUA_TSTRING {
                ffi::lua_pop(l, 2);
                return false;
            }
            let k = lua::to_bytes(l, -2).unwrap_or_default();
            // A name that is not a token would let a value that came from
            // the request forge fields: the Lua half refuses such a head.
            if !is_token(k) {
                ffi::lua_pop(l, 2);
                return false;
            }
            if k.eq_ignore_ascii_case(b"content-length") {
                // The handler's own length: only as the body's own (the Lua
                // half refuses any other, or says why a HEAD's may differ).
                let v = match list {
                    false => lua::to_bytes(l, -1).unwrap_or_default(),
                    true => &b""[..],
                };
                if !matches!(h.length, Length::Bytes(n) if decimal(v) == Some(n)) {
                    ffi::lua_pop(l, 2);
                    return false;
                }
                haslength = true;
            } else if k.eq_ignore_ascii_case(b"date") {
                hasdate = true;
            } else if k.eq_ignore_ascii_case(b"server") {
                hasserver = true;
            } else if k.eq_ignore_ascii_case(b"connection") {
                hasconn = true;
            }
            if !list {
                if !push_field(l, out, k) {
                    ffi::lua_pop(l, 2);
                    return false;
                }
                ffi::lua_pop(l, 1);
                continue;
            }
            let n = ffi::lua_rawlen(l, -1);
            for i in 1..=n {
                ffi::lua_rawgeti(l, -1, i as _);
                let plain = matches!(ffi::lua_type(l, -1), ffi::LUA_TSTRING | ffi::LUA_TNUMBER);
                if !plain || !push_field(l, out, k) {
                    ffi::lua_pop(l, 3);
                    return false;
                }
                ffi::lua_pop(l, 1);
            }
            ffi::lua_pop(l, 1);
        }
        match h.length {
            Length::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            Length::Bytes(n) if !haslength => {
                out.extend_from_slice(b"Content-Length: ");
                push_int(out, n);
                out.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
        match (hasdate, hasserver) {
            (false, false) => with_date_server(h.server, |lines| out.extend_from_slice(lines)),
            (false, true) => {
                out.extend_from_slice(b"Date: ");
                with_date(|d| out.extend_from_slice(d));
                out.extend_from_slice(b"\r\n");
            }
            (true, false) => {
                out.extend_from_slice(b"Server: ");
                out.extend_from_slice(h.server);
                out.extend_from_slice(b"\r\n");
            }
            (true, true) => {}
        }
        if !hasconn {
            if h.close {
                out.extend_from_slice(b"Connection: close\r\n");
            } else if h.keepalive {
                out.extend_from_slice(b"Connection: keep-alive\r\n");
            }
        }
        out.extend_from_slice(b"\r\n");
        true
    }
}

/// Append the field `k` with the string or number on top of the stack
/// as its value; false when the value holds a line end (or NUL): a value
/// that came from the request could forge fields or a response with it.
unsafe fn push_field(l: *mut lua_State, out: &mut Vec<u8>, k: &[u8]) -> bool {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        // A number value is converted in place (allowed for values).
        let v = lua::to_bytes(l, -1).unwrap_or_default();
        if breaks_line(v) {
            return false;
        }
        out.extend_from_slice(k);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
        true
    }
}

/// Whether a response field's name or value holds a CR, LF or NUL. A
/// plain loop: fields are short, and a vector search costs more to set up
/// than it saves on them.
fn breaks_line(s: &[u8]) -> bool {
    s.iter()
        .any(|&c| c <= b'\r' && matches!(c, b'\r' | b'\n' | 0))
}

/// The value of a string of decimal digits (at most 15 of them).
fn decimal(v: &[u8]) -> Option<i64> {
    if v.is_empty() || v.len() > 15 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0, |n, &d| n * 10 + (d - b'0') as i64))
}

/// Whether `n` can be a response's status: 100 to 999 (RFC 9110 §15:
/// three digits).
pub(super) fn valid_status(n: i64) -> bool {
    (100..=999).contains(&n)
}

/// The number at `idx` if it is an integer (LuaJIT's `lua_tointeger`
/// truncates, so compare).
pub(super) unsafe fn integer(l: *mut lua_State, idx: c_int) -> Option<i64> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TNUMBER {
            return None;
        }
        let f = ffi::lua_tonumber(l, idx) as f64;
        let n = ffi::lua_tointeger(l, idx) as i64;
        (n as f64 == f).then_some(n)
    }
}

/// Append `n` in decimal.
fn push_int(out: &mut Vec<u8>, n: i64) {
    // A status code, or a small body's length: no loop, no copy call.
    if (100..1000).contains(&n) {
        let n = n as u16;
        let digits = [
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ];
        out.extend_from_slice(&digits);
        return;
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_statuses() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"0012"), Some(12));
        for bad in [
            &b""[..],
            b"-1",
            b"1.5",
            b" 1",
            b"1e3",
            b"0x10",
            b"1234567890123456",
        ] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
        assert!(valid_status(100) && valid_status(999));
        assert!(!valid_status(99) && !valid_status(1000) && !valid_status(-1));
    }

    #[test]
    fn formats_integers() {
        for n in [
            0i64,
            7,
            14,
            99,
            100,
            200,
            999,
            1000,
            1234567890,
            -5,
            -100,
            i64::MIN,
        ] {
            let mut v = Vec::new();
            push_int(&mut v, n);
            assert_eq!(v, n.to_string().into_bytes());
        }
    }
}
