//! `lem.websocket.core`: the byte-level half of RFC 6455 for
//! `lua/lem/websocket.lua` (the handshakes, the closing handshake, the
//! joining of fragments and the message limit are there). This file: the
//! handshake's keys, close frames' payloads, UTF-8 checks, randomness and
//! the module's registration; `frame.rs`: frames and the read format
//! `'WebSocketFrame'` (a frame is refused from its head, before any byte
//! of its payload is buffered: reserved opcodes, bad control frames,
//! 64-bit lengths with the top bit set, a frame larger than the stream's
//! limit, which the Lua half sets from `max_message`); `stream.rs`: frames
//! read from and written to a stream (`core.read`, `core.send`, which
//! takes the writers' turn only when a write waits); `deflate.rs`:
//! permessage-deflate. The accept key uses the `sha1` and `base64` crates.

use std::cell::RefCell;
use std::ffi::c_int;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::parsers;

mod deflate;
mod frame;
mod stream;

use frame::build;
pub use frame::fuzz_frame;

/// RFC 6455 1.3: appended to the client's key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key.
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Whether a Sec-WebSocket-Key is the base64 of 16 bytes (RFC 6455 4.2.1).
pub fn valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && matches!(
            base64::engine::general_purpose::STANDARD.decode(key),
            Ok(v) if v.len() == 16
        )
}

/// Check `data` as UTF-8: `Some(n)` when valid but for `n` (0-3) bytes at
/// the end that begin a character not finished yet; `None` when invalid.
pub fn utf8_tail(data: &[u8]) -> Option<usize> {
    // ASCII is whole characters: only what follows it needs decoding.
    let data = &data[ascii_prefix(data)..];
    match std::str::from_utf8(data) {
        Ok(_) => Some(0),
        Err(e) if e.error_len().is_none() => Some(data.len() - e.valid_up_to()),
        Err(_) => None,
    }
}

/// How many bytes at the start of `data` are known to be ASCII, counted
/// 32 bytes at a time (a few instructions for each; `from_utf8` takes
/// about seven for 16 bytes of ASCII).
pub fn ascii_prefix(data: &[u8]) -> usize {
    let mut n = 0;
    for c in data.chunks_exact(32) {
        if !frame::all_ascii(c) {
            break;
        }
        n += 32;
    }
    n
}

/// Whether a close code may be sent in a close frame (RFC 6455 7.4 and
/// the IANA registry: 1000-1003, 1007-1014, 3000-4999).
pub fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

thread_local! {
    /// Random bytes for mask keys and handshake keys, refilled from the
    /// kernel 1 KiB at a time (a syscall per frame cost more than the frame).
    static RANDOM: RefCell<(Vec<u8>, usize)> = const { RefCell::new((Vec::new(), 0)) };
}

/// `N` bytes from the kernel's random source.
fn random<const N: usize>() -> [u8; N] {
    RANDOM.with(|r| {
        let mut r = r.borrow_mut();
        let (buf, at) = &mut *r;
        if buf.len() < *at + N {
            buf.resize(1024, 0);
            let mut got = 0;
            while got < buf.len() {
                // SAFETY: writes at most the bytes left in `buf`.
                let n =
                    unsafe { libc::getrandom(buf[got..].as_mut_ptr().cast(), buf.len() - got, 0) };
                if n <= 0 {
                    // getrandom does not fail on Linux >= 3.17 but for
                    // EINTR: try again.
                    continue;
                }
                got += n as usize;
            }
            *at = 0;
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&buf[*at..*at + N]);
        *at += N;
        out
    })
}

/// core.accept_key(key) -> accept | nil (not the base64 of 16 bytes)
unsafe extern "C-unwind" fn l_accept_key(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let k = lua::check_bytes(l, 1);
        if !valid_key(k) {
            ffi::lua_pushnil(l);
            return 1;
        }
        lua::push_str(l, &accept_key(k));
        1
    }
}

/// core.new_key() -> a fresh Sec-WebSocket-Key
unsafe extern "C-unwind" fn l_new_key(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let k: [u8; 16] = random();
        lua::push_str(l, &base64::engine::general_purpose::STANDARD.encode(k));
        1
    }
}

/// core.frame(opcode, fin, data, masked [, rsv]) -> the frame's bytes
unsafe extern "C-unwind" fn l_frame(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let op = lua::check_integer(l, 1);
        if !(0..=15).contains(&op) {
            lua::arg_error(l, 1, c"opcode out of range");
        }
        let fin = ffi::lua_toboolean(l, 2) != 0;
        let d = lua::check_bytes(l, 3);
        let masked = ffi::lua_toboolean(l, 4) != 0;
        let rsv = lua::opt_integer(l, 5, 0);
        let f = build(op as u8, fin, rsv as u8, d, masked.then(random::<4>));
        lua::push_bytes(l, &f);
        1
    }
}

/// core.head(opcode, length [, rsv]) -> the head of an unmasked final frame with
/// a payload of `length` bytes (a server sends it and the payload in one
/// write, without copying the payload into a frame)
unsafe extern "C-unwind" fn l_head(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let op = lua::check_integer(l, 1);
        if !(0..=15).contains(&op) {
            lua::arg_error(l, 1, c"opcode out of range");
        }
        let n = lua::check_integer(l, 2);
        if n < 0 {
            lua::arg_error(l, 2, c"negative length");
        }
        let rsv = lua::opt_integer(l, 3, 0) as u8;
        let mut h = [0u8; 10];
        let len = stream::put_head(&mut h, op as u8, rsv, n as usize);
        lua::push_bytes(l, &h[..len]);
        1
    }
}

/// core.utf8(data) -> n (bytes of an unfinished character at the end) |
/// false (invalid)
unsafe extern "C-unwind" fn l_utf8(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        match utf8_tail(lua::check_bytes(l, 1)) {
            Some(n) => ffi::lua_pushinteger(l, n as _),
            None => ffi::lua_pushboolean(l, 0),
        }
        1
    }
}

/// core.close_payload([code [, reason]]) -> bytes of a close frame's body
unsafe extern "C-unwind" fn l_close_payload(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        if lua::is_none_or_nil(l, 1) {
            lua::push_bytes(l, b"");
            return 1;
        }
        let code = lua::check_integer(l, 1);
        let reason = if lua::is_none_or_nil(l, 2) {
            &[][..]
        } else {
            lua::check_bytes(l, 2)
        };
        if !(0..=0xffff).contains(&code) || !valid_close_code(code as u16) {
            lua::arg_error(l, 1, c"invalid close code");
        }
        if reason.len() > 123 {
            lua::arg_error(l, 2, c"close reason longer than 123 bytes");
        }
        let mut v = Vec::with_capacity(2 + reason.len());
        v.extend_from_slice(&(code as u16).to_be_bytes());
        v.extend_from_slice(reason);
        lua::push_bytes(l, &v);
        1
    }
}

/// core.parse_close(payload) -> code, reason (1005 and '' when empty) |
/// nil, close code to answer with (1002 bad code or length, 1007 reason
/// not UTF-8)
unsafe extern "C-unwind" fn l_parse_close(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let p = lua::check_bytes(l, 1);
        let bad = |code| {
            ffi::lua_pushnil(l);
            ffi::lua_pushinteger(l, code);
            2
        };
        match p {
            [] => {
                ffi::lua_pushinteger(l, 1005);
                lua::push_bytes(l, b"");
                2
            }
            [_] => bad(1002),
            [a, b, reason @ ..] => {
                let code = u16::from_be_bytes([*a, *b]);
                if !valid_close_code(code) {
                    return bad(1002);
                }
                if std::str::from_utf8(reason).is_err() {
                    return bad(1007);
                }
                ffi::lua_pushinteger(l, code as _);
                lua::push_bytes(l, reason);
                2
            }
        }
    }
}

const FUNCS: &[Reg] = &[
    (c"accept_key", l_accept_key),
    (c"new_key", l_new_key),
    (c"frame", l_frame),
    (c"head", l_head),
    (c"utf8", l_utf8),
    (c"close_payload", l_close_payload),
    (c"parse_close", l_parse_close),
    (c"deflate", deflate::l_deflate),
];

/// `require 'lem.websocket.core'`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        parsers::register(l, c"WebSocketFrame", &frame::FRAME);
        deflate::register(l);
        lua::new_lib(l, FUNCS);
        stream::register(l);
        1
    }
}

#[cfg(test)]
mod tests {
    use super::frame::apply_mask;
    use super::*;

    #[test]
    fn rfc_accept_key() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZQ"));
        assert!(!valid_key(b"not base64 at all!!!!!!!"));
    }

    #[test]
    fn utf8_fragments() {
        assert_eq!(utf8_tail(b"abc"), Some(0));
        assert_eq!(utf8_tail("é".as_bytes()), Some(0));
        assert_eq!(utf8_tail(&"€".as_bytes()[..2]), Some(2));
        assert_eq!(utf8_tail(b"\xff"), None);
        assert_eq!(utf8_tail(b"\xed\xa0\x80"), None);
        assert_eq!(utf8_tail(b"\xf4\x90"), None);
        // After an ASCII run longer than the chunks it is checked in.
        let a = "a".repeat(70);
        assert_eq!(utf8_tail(format!("{a}€").as_bytes()), Some(0));
        assert_eq!(utf8_tail(&format!("{a}€").as_bytes()[..72]), Some(2));
        assert_eq!(utf8_tail(&[a.as_bytes(), b"\xff"].concat()), None);
        assert_eq!(
            utf8_tail(&[a.as_bytes(), b"\xed\xa0\x80", a.as_bytes()].concat()),
            None
        );
        assert_eq!(ascii_prefix(a.as_bytes()), 64);
        assert_eq!(ascii_prefix(&[b"\xc3\xa9", a.as_bytes()].concat()), 0);
    }

    #[test]
    fn masks_and_randomness() {
        let mut d: Vec<u8> = (0..37).collect();
        apply_mask(&mut d, [9, 8, 7, 6]);
        for (i, b) in d.iter().enumerate() {
            assert_eq!(*b, i as u8 ^ [9, 8, 7, 6][i % 4]);
        }
        let a: [u8; 16] = random();
        let b: [u8; 16] = random();
        assert_ne!(a, b);
        assert!(valid_close_code(1000) && !valid_close_code(1005) && !valid_close_code(999));
    }
}
