//! The read formats `'HTTPRequest'` and `'HTTPResponse'`: a head checked
//! whole by [`Format::scan`] (so that a bad head is left unread) and parsed
//! again by [`Format::push`], which builds its table.

use std::ffi::c_int;

use super::head::{combined, find_head, with_head, Bad, Kind, Start};
use super::head::{HEAD_LIMIT, MAX_NAME, NO_SPACE, PARSE_ERROR};
use crate::runtime::lua::{self, ffi, lua_State};
use crate::runtime::parsers::{Format, Scan};

/// A head read format: which start line it reads.
pub(super) struct Head(pub(super) Kind);

pub(super) static REQUEST: Head = Head(Kind::Request);
pub(super) static RESPONSE: Head = Head(Kind::Response);

impl Format for Head {
    fn scan(&self, input: &[u8], _eof: bool) -> Scan {
        let (start, end) = find_head(input);
        let Some(end) = end else {
            // Empty lines before the head count too: they are buffered.
            if input.len() > HEAD_LIMIT {
                return Scan::Invalid(NO_SPACE);
            }
            return Scan::Need;
        };
        if end > HEAD_LIMIT {
            return Scan::Invalid(NO_SPACE);
        }
        match with_head(self.0, &input[start..end], |_, _, _| ()) {
            Ok(()) => Scan::Ready {
                consume: end,
                mark: start,
            },
            Err(Bad::Parse) => Scan::Invalid(PARSE_ERROR),
            Err(Bad::TooBig) => Scan::Invalid(NO_SPACE),
        }
    }

    unsafe fn push(&self, l: *mut lua_State, input: &[u8], mark: usize) -> c_int {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            // `input` ends where scan found the head's end.
            let kind = self.0;
            let r = with_head(kind, &input[mark..], |start, fields, _| {
                push_head(l, kind, start, fields);
            });
            match r {
                Ok(()) => 1,
                Err(_) => lua::fail(l, PARSE_ERROR),
            }
        }
    }

    fn limit_error(&self) -> &'static str {
        NO_SPACE
    }
}

/// Push the head's table. Nothing here raises but out of memory.
unsafe fn push_head(l: *mut lua_State, kind: Kind, start: &Start, fields: &[httparse::Header]) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_createtable(l, 0, 5);
        match kind {
            Kind::Request => push_request_line(l, start),
            Kind::Response => {
                lua::push_bytes(l, start.a);
                ffi::lua_setfield(l, -2, c"version".as_ptr());
                let code = start.b.iter().fold(0, |n, &d| n * 10 + (d - b'0') as i64);
                ffi::lua_pushinteger(l, code as _);
                ffi::lua_setfield(l, -2, c"status".as_ptr());
                lua::push_bytes(l, start.c);
                ffi::lua_setfield(l, -2, c"text".as_ptr());
            }
        }
        push_fields(l, fields, false);
        ffi::lua_setfield(l, -2, c"headers".as_ptr());
        if kind == Kind::Response {
            // Every field in order, repeated ones too: {{name, value}, ...}.
            let mut name = [0u8; MAX_NAME];
            ffi::lua_createtable(l, fields.len() as c_int, 0);
            for (i, f) in fields.iter().enumerate() {
                ffi::lua_createtable(l, 2, 0);
                lua::push_bytes(l, lower(&mut name, f.name));
                ffi::lua_rawseti(l, -2, 1);
                lua::push_bytes(l, f.value);
                ffi::lua_rawseti(l, -2, 2);
                ffi::lua_rawseti(l, -2, (i + 1) as _);
            }
            ffi::lua_setfield(l, -2, c"fields".as_ptr());
        }
    }
}

/// `name` lower-cased into `buf` (names are at most [`MAX_NAME`] bytes).
fn lower<'b>(buf: &'b mut [u8; MAX_NAME], name: &str) -> &'b [u8] {
    for (d, s) in buf.iter_mut().zip(name.bytes()) {
        *d = s.to_ascii_lowercase();
    }
    &buf[..name.len()]
}

/// Set a request's `method`, `uri` and `version` in the table on top.
unsafe fn push_request_line(l: *mut lua_State, start: &Start) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::push_bytes(l, start.a);
        ffi::lua_setfield(l, -2, c"method".as_ptr());
        lua::push_bytes(l, start.b);
        ffi::lua_setfield(l, -2, c"uri".as_ptr());
        lua::push_bytes(l, start.c);
        ffi::lua_setfield(l, -2, c"version".as_ptr());
    }
}

/// Push the `headers` table: lower-cased names, the last value of a
/// repeated field (the framing fields combined, see the module's notes).
/// With `join` (the server's `req.headers`), every repeated field keeps
/// all its values: joined with `", "` as RFC 9110 §5.3 combines them, a
/// `Cookie` with `"; "` (RFC 9113 §8.2.3), and only `Set-Cookie`, whose
/// values cannot be combined, keeps its last.
pub(super) unsafe fn push_fields(l: *mut lua_State, fields: &[httparse::Header], join: bool) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_createtable(l, 0, fields.len() as c_int);
        let mut name = [0u8; MAX_NAME];
        for f in fields {
            let key = lower(&mut name, f.name);
            lua::push_bytes(l, key);
            let sep = match key {
                b"set-cookie" => None,
                b"cookie" if join => Some("; "),
                _ if join || combined(key) => Some(", "),
                _ => None,
            };
            if let Some(sep) = sep {
                ffi::lua_pushvalue(l, -1);
                if ffi::lua_rawget(l, -3) != ffi::LUA_TNIL {
                    lua::push_str(l, sep);
                    lua::push_bytes(l, f.value);
                    ffi::lua_concat(l, 3);
                } else {
                    ffi::lua_pop(l, 1);
                    lua::push_bytes(l, f.value);
                }
            } else {
                lua::push_bytes(l, f.value);
            }
            ffi::lua_rawset(l, -3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(kind: Kind, s: &[u8]) -> Scan {
        Head(kind).scan(s, false)
    }

    #[test]
    fn scans_requests_and_responses() {
        assert!(matches!(
            scan(Kind::Request, b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n"),
            Scan::Ready { consume: 30, .. }
        ));
        assert_eq!(scan(Kind::Request, b"GET /a HTTP/1.1\r\nHost"), Scan::Need);
        assert_eq!(
            scan(Kind::Request, b"GET /a HTTX/1.1\r\n\r\n"),
            Scan::Invalid(PARSE_ERROR)
        );
        assert_eq!(
            scan(Kind::Request, b"GET  / HTTP/1.1\r\n\r\n"),
            Scan::Invalid(PARSE_ERROR)
        );
        assert_eq!(
            scan(Kind::Request, b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
            Scan::Invalid(PARSE_ERROR)
        );
        assert!(matches!(
            scan(Kind::Request, b"GET / HTTP/2.0\r\n\r\n"),
            Scan::Ready { .. }
        ));
        assert!(matches!(
            scan(Kind::Response, b"HTTP/1.0 404 Not Found\r\n\r\n"),
            Scan::Ready { .. }
        ));
        assert!(matches!(
            scan(Kind::Response, b"HTTP/1.1 204\r\n\r\n"),
            Scan::Ready { .. }
        ));
        let big = [b'a'; HEAD_LIMIT + 10];
        assert_eq!(scan(Kind::Request, &big), Scan::Invalid(NO_SPACE));
    }
}
