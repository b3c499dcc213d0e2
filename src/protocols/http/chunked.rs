//! The framing of chunked bodies (RFC 9112 §7.1) as three read formats,
//! registered by `lem.http.core` and used by `http.read_chunked` (the
//! server's request bodies and the client's responses):
//!
//! * `'HTTPChunkSize'`: a chunk line, `1*HEXDIG [ chunk-ext ] CRLF`, read
//!   as the size (an integer). Anything else on the line is a parse error:
//!   a size read up to the first non-digit (`0x22` as `0`) is how a body
//!   smuggles a second request past a front end that reads it otherwise.
//! * `'HTTPChunkEnd'`: the line end after a chunk's data, `true`.
//! * `'HTTPTrailers'`: the trailer section after the last chunk, up to and
//!   with its empty line: every line a valid field (as header fields are,
//!   without folding), at most [`TRAILER_LIMIT`] bytes and [`MAX_FIELDS`]
//!   fields; `true` (the fields are not kept).
//!
//! And `core.charge()`: the bytes of a body gathered in pieces (a chunked
//! one) counted against the input budget.
//!
//! Each format fails with `nil, 'parse error'`. A lone LF ends a line as CRLF
//! does (as in heads); a CR anywhere else is an error as soon as it is
//! seen.

use std::ffi::{c_int, CStr};

use super::head::{head_end_by_lines, head_end_by_search, is_tchar, parse_fields};
use super::head::{HEAD_LIMIT, MAX_FIELDS, PARSE_ERROR, SHORT};
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::parsers::{self, Format, Scan};

/// Longest chunk line, extensions and line end included.
pub const CHUNK_LINE_LIMIT: usize = 4096;

/// Largest trailer section.
pub const TRAILER_LIMIT: usize = HEAD_LIMIT;

/// Largest chunk size accepted (2^60 - 1: no sum of sizes overflows).
const MAX_CHUNK: u64 = (1 << 60) - 1;

fn is_ows(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// The size on a chunk line (`line` without its LF, with the CR of a CRLF
/// if there was one), or `None` when the line is not
/// `1*HEXDIG *( BWS ";" BWS name [ BWS "=" BWS value ] )`.
pub fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    if digits == 0 {
        return None;
    }
    let mut size: u64 = 0;
    for &c in &line[..digits] {
        let d = (c as char).to_digit(16)? as u64;
        size = size.checked_mul(16)?.checked_add(d)?;
        if size > MAX_CHUNK {
            return None;
        }
    }
    extensions(&line[digits..]).then_some(size)
}

/// Whether `s` is a list of chunk extensions (or empty).
fn extensions(mut s: &[u8]) -> bool {
    let skip_ows = |s: &mut &[u8]| {
        while let [c, rest @ ..] = *s {
            if !is_ows(*c) {
                break;
            }
            *s = rest;
        }
    };
    let token = |s: &mut &[u8]| {
        let n = s.iter().take_while(|&&c| is_tchar(c)).count();
        *s = &s[n..];
        n > 0
    };
    loop {
        if s.is_empty() {
            return true;
        }
        skip_ows(&mut s);
        match s {
            [b';', rest @ ..] => s = rest,
            _ => return false,
        }
        skip_ows(&mut s);
        if !token(&mut s) {
            return false;
        }
        let mut after = s;
        skip_ows(&mut after);
        if let [b'=', rest @ ..] = after {
            s = rest;
            skip_ows(&mut s);
            if s.first() == Some(&b'"') {
                match quoted_string(s) {
                    Some(n) => s = &s[n..],
                    None => return false,
                }
            } else if !token(&mut s) {
                return false;
            }
        }
    }
}

/// The length of the quoted string `s` starts with, quotes included.
fn quoted_string(s: &[u8]) -> Option<usize> {
    let text = |c: u8| c == b'\t' || c == b' ' || (0x21..=0x7e).contains(&c) || c >= 0x80;
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                if !s.get(i + 1).is_some_and(|&c| text(c)) {
                    return None;
                }
                i += 2;
            }
            c if text(c) => i += 1,
            _ => return None,
        }
    }
    None
}

/// Whether `input` holds a CR that is not the first half of a CRLF (one
/// at the very end may still be).
pub fn bare_cr(input: &[u8]) -> bool {
    memchr::memchr_iter(b'\r', input).any(|i| matches!(input.get(i + 1), Some(&c) if c != b'\n'))
}

/// Which part of a chunked body a format reads.
pub struct Chunked(Part);

#[derive(Clone, Copy)]
enum Part {
    Size,
    End,
    Trailers,
}

pub static CHUNK_SIZE: Chunked = Chunked(Part::Size);
pub static CHUNK_END: Chunked = Chunked(Part::End);
pub static TRAILERS: Chunked = Chunked(Part::Trailers);

/// Where a part ends in `input` (`Ok(None)`: not yet), or why it never
/// will; `mark` of a chunk line is where its LF is.
fn scan_part(part: Part, input: &[u8]) -> Result<Option<(usize, usize)>, ()> {
    match part {
        Part::Size => match memchr::memchr(b'\n', &input[..input.len().min(CHUNK_LINE_LIMIT)]) {
            Some(lf) => match chunk_size(&input[..lf]) {
                Some(_) => Ok(Some((lf + 1, lf))),
                None => Err(()),
            },
            None if input.len() >= CHUNK_LINE_LIMIT || bare_cr(input) => Err(()),
            None => Ok(None),
        },
        Part::End => match input {
            [b'\n', ..] => Ok(Some((1, 0))),
            [b'\r', b'\n', ..] => Ok(Some((2, 0))),
            [] | [b'\r'] => Ok(None),
            _ => Err(()),
        },
        Part::Trailers => {
            let end = match input {
                [b'\n', ..] => Some(1),
                [b'\r', b'\n', ..] => Some(2),
                [] | [b'\r'] => None,
                _ if input.len() <= SHORT => head_end_by_lines(input),
                _ => head_end_by_search(input),
            };
            match end {
                Some(end) if end <= TRAILER_LIMIT => {
                    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
                    match parse_fields(&input[..end], &mut fields) {
                        Ok(_) => Ok(Some((end, 0))),
                        Err(_) => Err(()),
                    }
                }
                None if input.len() <= TRAILER_LIMIT && !bare_cr(input) => Ok(None),
                _ => Err(()),
            }
        }
    }
}

impl Format for Chunked {
    fn scan(&self, input: &[u8], _eof: bool) -> Scan {
        match scan_part(self.0, input) {
            Ok(Some((consume, mark))) => Scan::Ready { consume, mark },
            Ok(None) => Scan::Need,
            Err(()) => Scan::Invalid(PARSE_ERROR),
        }
    }

    unsafe fn push(&self, l: *mut lua_State, input: &[u8], mark: usize) -> c_int {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            match self.0 {
                Part::Size => match chunk_size(&input[..mark]) {
                    Some(size) => ffi::lua_pushinteger(l, size as _),
                    // scan checked the line.
                    None => return lua::fail(l, PARSE_ERROR),
                },
                Part::End | Part::Trailers => ffi::lua_pushboolean(l, 1),
            }
            1
        }
    }

    fn limit_error(&self) -> &'static str {
        PARSE_ERROR
    }
}

static CHARGE: &CStr = c"lem.http.Charge";

/// core.charge() -> charge: bytes of a body gathered in pieces, counted
/// against the input budget (`parsers::budget::Charge`) until released
/// or collected. `charge:add(n) -> true | false` (false: the budget is
/// spent and this body holds its share), `charge:release()`.
pub(super) unsafe extern "C-unwind" fn charge(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::new_class(
            l,
            CHARGE,
            CHARGE_METHODS,
            Some(lua::gc::<parsers::budget::Charge>),
        );
        ffi::lua_pop(l, 1);
        lua::push_object(l, CHARGE, parsers::budget::Charge::default());
        1
    }
}

unsafe extern "C-unwind" fn charge_add(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let c: &parsers::budget::Charge = lua::check_object(l, 1, CHARGE);
        let n = lua::check_integer(l, 2);
        ffi::lua_pushboolean(l, c.add(n.max(0) as usize) as c_int);
        1
    }
}

unsafe extern "C-unwind" fn charge_release(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let c: &parsers::budget::Charge = lua::check_object(l, 1, CHARGE);
        c.release();
        0
    }
}

const CHARGE_METHODS: &[Reg] = &[(c"add", charge_add), (c"release", charge_release)];

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(f: &Chunked, s: &[u8]) -> Scan {
        f.scan(s, false)
    }

    #[test]
    fn chunk_lines() {
        assert_eq!(chunk_size(b"0"), Some(0));
        assert_eq!(chunk_size(b"0\r"), Some(0));
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"FF;name"), Some(255));
        assert_eq!(chunk_size(b"5 ; a=b ;c = \"d \\\" e\"\r"), Some(5));
        assert_eq!(chunk_size(b"0000000000000000005"), Some(5));
        for bad in [
            &b""[..],
            b"\r",
            b"0x22",
            b"0zz",
            b"0x0",
            b"5 ",
            b"5;",
            b"5;=x",
            b"5;a=",
            b"5;a=\"open",
            b"5;a=\"ctl\x01\"",
            b"5\r\r",
            b"-5",
            b"+5",
            b" 5",
            b"5\x00",
            b"5;a b",
            b"1000000000000000",
            b"ffffffffffffffffff",
        ] {
            assert_eq!(chunk_size(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(chunk_size(b"fffffffffffffff"), Some(MAX_CHUNK));
    }

    #[test]
    fn chunk_size_format() {
        assert_eq!(
            scan(&CHUNK_SIZE, b"1a\r\nxx"),
            Scan::Ready {
                consume: 4,
                mark: 3
            }
        );
        assert_eq!(
            scan(&CHUNK_SIZE, b"1a\nxx"),
            Scan::Ready {
                consume: 3,
                mark: 2
            }
        );
        assert_eq!(scan(&CHUNK_SIZE, b"1a"), Scan::Need);
        assert_eq!(scan(&CHUNK_SIZE, b"1a\r"), Scan::Need);
        assert_eq!(scan(&CHUNK_SIZE, b"0x22\r\n"), Scan::Invalid(PARSE_ERROR));
        // A bare CR is refused before the line ends.
        assert_eq!(scan(&CHUNK_SIZE, b"1a\rx"), Scan::Invalid(PARSE_ERROR));
        let long = [b'0'; CHUNK_LINE_LIMIT];
        assert_eq!(scan(&CHUNK_SIZE, &long), Scan::Invalid(PARSE_ERROR));
    }

    #[test]
    fn chunk_ends() {
        assert_eq!(
            scan(&CHUNK_END, b"\r\n5"),
            Scan::Ready {
                consume: 2,
                mark: 0
            }
        );
        assert_eq!(
            scan(&CHUNK_END, b"\n"),
            Scan::Ready {
                consume: 1,
                mark: 0
            }
        );
        assert_eq!(scan(&CHUNK_END, b"\r"), Scan::Need);
        assert_eq!(scan(&CHUNK_END, b""), Scan::Need);
        assert_eq!(scan(&CHUNK_END, b"x\r\n"), Scan::Invalid(PARSE_ERROR));
        assert_eq!(scan(&CHUNK_END, b"\rx"), Scan::Invalid(PARSE_ERROR));
    }

    #[test]
    fn trailer_sections() {
        assert_eq!(
            scan(&TRAILERS, b"\r\nGET"),
            Scan::Ready {
                consume: 2,
                mark: 0
            }
        );
        assert_eq!(
            scan(&TRAILERS, b"\n"),
            Scan::Ready {
                consume: 1,
                mark: 0
            }
        );
        let ok = b"Expires: never\r\nX-Sum: 1\r\n\r\nnext";
        assert_eq!(
            scan(&TRAILERS, ok),
            Scan::Ready {
                consume: ok.len() - 4,
                mark: 0
            }
        );
        assert_eq!(scan(&TRAILERS, b"X-Sum: 1\r\n"), Scan::Need);
        for bad in [
            &b"GARBAGE LINE\r\n\r\n"[..],
            b"X-A: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"X-A: a\r\n folded\r\n\r\n",
            b": no name\r\n\r\n",
            b"X-A: a\rb: c\r\n",
        ] {
            assert_eq!(
                scan(&TRAILERS, bad),
                Scan::Invalid(PARSE_ERROR),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let many: Vec<u8> = (0..=MAX_FIELDS)
            .flat_map(|i| format!("X-{i}: v\r\n").into_bytes())
            .chain(*b"\r\n")
            .collect();
        assert_eq!(scan(&TRAILERS, &many), Scan::Invalid(PARSE_ERROR));
        let big = [b'a'; TRAILER_LIMIT + 1];
        assert_eq!(scan(&TRAILERS, &big), Scan::Invalid(PARSE_ERROR));
    }
}
