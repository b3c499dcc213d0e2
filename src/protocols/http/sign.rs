//! Signatures for `lua/lem/http/cookie.lua` (signed cookies): HMAC-SHA256
//! with `ring`, written in base64url without padding, and checked in
//! constant time (`ring::hmac::verify`).

use std::ffi::c_int;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;

use crate::runtime::lua::{self, ffi, lua_State};

/// The signature of `data` under `key`, in base64url (43 characters).
pub(super) fn sign(key: &[u8], data: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    URL_SAFE_NO_PAD.encode(hmac::sign(&key, data).as_ref())
}

/// Whether `mac` (base64url) is the signature of `data` under `key`. The
/// comparison takes the same time wherever the first difference is.
pub(super) fn verify(key: &[u8], data: &[u8], mac: &[u8]) -> bool {
    let Ok(tag) = URL_SAFE_NO_PAD.decode(mac) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&key, data, &tag).is_ok()
}

/// core.hmac_sha256(key, data) -> signature (base64url).
pub(super) unsafe extern "C-unwind" fn hmac_sha256(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let key = lua::check_bytes(l, 1);
        let data = lua::check_bytes(l, 2);
        lua::push_str(l, &sign(key, data));
        1
    }
}

/// core.hmac_verify(key, data, signature) -> boolean.
pub(super) unsafe extern "C-unwind" fn hmac_verify(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let key = lua::check_bytes(l, 1);
        let data = lua::check_bytes(l, 2);
        let mac = lua::check_bytes(l, 3);
        ffi::lua_pushboolean(l, verify(key, data, mac) as c_int);
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        // RFC 4231, test case 2.
        let mac = sign(b"Jefe", b"what do ya want for nothing?");
        let hex: String = URL_SAFE_NO_PAD
            .decode(&mac)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(
            b"Jefe",
            b"what do ya want for nothing?",
            mac.as_bytes()
        ));
        assert!(!verify(
            b"Jeff",
            b"what do ya want for nothing?",
            mac.as_bytes()
        ));
        assert!(!verify(
            b"Jefe",
            b"what do ya want for nothing!",
            mac.as_bytes()
        ));
        assert!(!verify(b"Jefe", b"x", b"not base64!"));
        assert!(!verify(b"Jefe", b"x", b""));
    }
}
