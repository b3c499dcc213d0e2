//! The scanner of `multipart/form-data` bodies (RFC 7578 on RFC 2046
//! §5.1) for `lua/lem/http/multipart.lua`, which reads the body in pieces
//! and keeps only what this scanner could not decide about yet:
//! [`scan`] finds the next delimiter (`core.multipart_scan`), [`part_head`]
//! parses the head of a part with `httparse` (`core.part_head`).
//!
//! The Lua half prepends `"\r\n"` to the body, so that the first
//! delimiter (`--boundary` at the very start) looks like every other one
//! (`\r\n--boundary`), and whatever comes before it is the preamble.

use std::ffi::c_int;

use crate::runtime::lua::{self, ffi, lua_State};

/// Spaces and tabs allowed between a delimiter and its line end
/// (RFC 2046's transport padding); more is refused, so the bytes kept
/// after a delimiter stay few.
pub const MAX_PADDING: usize = 32;

/// Fields a part's head may have.
pub const MAX_PART_FIELDS: usize = 16;

/// What [`scan`] found in the buffered body.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The first `n` bytes are the current part's; the rest (the start of
    /// what may be a delimiter) must wait for more input.
    Data(usize),
    /// `data` bytes of the part, then a delimiter: the next part's head
    /// starts at `head`.
    Next { data: usize, head: usize },
    /// `data` bytes of the part, then the close delimiter (what follows
    /// is the epilogue, ignored).
    End { data: usize },
    /// `data` bytes of the part, then a delimiter followed by something
    /// else than `--`, padding and a line end.
    Bad { data: usize },
}

/// Look for `delim` (`"\r\n--" + boundary`) in `buf`.
pub fn scan(buf: &[u8], delim: &[u8]) -> Step {
    let Some(i) = memchr::memmem::find(buf, delim) else {
        return Step::Data(buf.len() - partial_suffix(buf, delim));
    };
    let rest = &buf[i + delim.len()..];
    match rest {
        [] | [b'-'] => return Step::Data(i),
        [b'-', b'-', ..] => return Step::End { data: i },
        [b'-', ..] => return Step::Bad { data: i },
        _ => {}
    }
    let pad = rest
        .iter()
        .take_while(|&&c| c == b' ' || c == b'\t')
        .count();
    if pad > MAX_PADDING {
        return Step::Bad { data: i };
    }
    match &rest[pad..] {
        [] | [b'\r'] => Step::Data(i),
        [b'\r', b'\n', ..] => Step::Next {
            data: i,
            head: i + delim.len() + pad + 2,
        },
        _ => Step::Bad { data: i },
    }
}

/// The length of the longest end of `buf` that begins `delim` (and is
/// shorter than it): those bytes may be the start of a delimiter.
fn partial_suffix(buf: &[u8], delim: &[u8]) -> usize {
    let most = buf.len().min(delim.len().saturating_sub(1));
    (1..=most)
        .rev()
        .find(|&k| buf.ends_with(&delim[..k]))
        .unwrap_or(0)
}

/// A part's head, parsed.
#[derive(Debug, Default)]
pub struct PartHead<'a> {
    /// Bytes of the head, its empty line included.
    pub consumed: usize,
    /// The fields, names as sent.
    pub fields: Vec<(&'a str, &'a [u8])>,
    /// `Content-Disposition`'s `name`.
    pub name: Option<Vec<u8>>,
    /// Its `filename` (or `filename*`, decoded).
    pub filename: Option<Vec<u8>>,
}

/// Why a part's head is refused.
pub const BAD_HEAD: &str = "bad part head";

/// Parse the head of a part at the start of `buf`: `Ok(None)` when its
/// empty line has not come yet, an error for a malformed one (or one with
/// more than [`MAX_PART_FIELDS`] fields, or without a `form-data` name).
pub fn part_head(buf: &[u8]) -> Result<Option<PartHead<'_>>, &'static str> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_PART_FIELDS];
    let (consumed, fields) = match httparse::parse_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete((n, f))) => (n, f),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err("too many fields in a part head"),
        Err(_) => return Err(BAD_HEAD),
    };
    let mut head = PartHead {
        consumed,
        ..PartHead::default()
    };
    for f in fields.iter() {
        head.fields.push((f.name, f.value));
        if f.name.eq_ignore_ascii_case("content-disposition") {
            let (name, filename) = disposition(f.value).ok_or(BAD_HEAD)?;
            head.name = Some(name);
            head.filename = filename;
        }
    }
    if head.name.is_none() {
        return Err("a part without a form-data name");
    }
    Ok(Some(head))
}

/// `form-data; name="x"; filename="y"` -> the name and the file name
/// (`filename*=UTF-8''...`, RFC 8187, wins over `filename`); `None` for
/// another disposition or no name.
fn disposition(v: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let mut p = Params { s: v, i: 0 };
    let kind = p.token();
    if !kind.eq_ignore_ascii_case(b"form-data") {
        return None;
    }
    let (mut name, mut filename, mut extended) = (None, None, None);
    while let Some((k, value)) = p.param()? {
        if k.eq_ignore_ascii_case(b"name") {
            name = Some(value);
        } else if k.eq_ignore_ascii_case(b"filename") {
            filename = Some(value);
        } else if k.eq_ignore_ascii_case(b"filename*") {
            extended = ext_value(&value);
        }
    }
    Some((name?, extended.or(filename)))
}

/// RFC 8187's `charset'lang'pct-encoded` for UTF-8 (and ASCII).
fn ext_value(v: &[u8]) -> Option<Vec<u8>> {
    let mut it = v.splitn(3, |&c| c == b'\'');
    let charset = it.next()?;
    let _lang = it.next()?;
    let text = it.next()?;
    if !charset.eq_ignore_ascii_case(b"utf-8") && !charset.eq_ignore_ascii_case(b"us-ascii") {
        return None;
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' && i + 2 < text.len() {
            let hex = std::str::from_utf8(&text[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    Some(out)
}

/// A reader of `; key=value` parameters (RFC 9110 §5.6.6), values tokens
/// or quoted strings.
struct Params<'a> {
    s: &'a [u8],
    i: usize,
}

impl Params<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t') {
            self.i += 1;
        }
    }

    /// Bytes up to whitespace, `;`, `=` or the end.
    fn token(&mut self) -> &[u8] {
        self.skip_ws();
        let start = self.i;
        while self.i < self.s.len() && !matches!(self.s[self.i], b' ' | b'\t' | b';' | b'=') {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    /// The next parameter; `Some(None)` at the end, `None` when malformed.
    fn param(&mut self) -> Option<Option<(Vec<u8>, Vec<u8>)>> {
        self.skip_ws();
        if self.i == self.s.len() {
            return Some(None);
        }
        if self.s[self.i] != b';' {
            return None;
        }
        self.i += 1;
        self.skip_ws();
        if self.i == self.s.len() {
            // A trailing ';'.
            return Some(None);
        }
        let key = self.token().to_vec();
        self.skip_ws();
        if key.is_empty() || self.s.get(self.i) != Some(&b'=') {
            return None;
        }
        self.i += 1;
        self.skip_ws();
        let value = if self.s.get(self.i) == Some(&b'"') {
            self.i += 1;
            let mut v = Vec::new();
            loop {
                match *self.s.get(self.i)? {
                    b'"' => break,
                    b'\\' => {
                        v.push(*self.s.get(self.i + 1)?);
                        self.i += 2;
                    }
                    c => {
                        v.push(c);
                        self.i += 1;
                    }
                }
            }
            self.i += 1;
            v
        } else {
            self.token().to_vec()
        };
        Some(Some((key, value)))
    }
}

/// core.multipart_scan(buf, delim) -> n [, 'next', head | 'end' | 'bad']
/// (n: the bytes of the part before the delimiter, or all that are sure
/// to be the part's):
/// [`scan`] for the Lua half (`head` is 1-based, as `string.sub` counts).
pub(super) unsafe extern "C-unwind" fn multipart_scan(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let buf = lua::check_bytes(l, 1);
        let delim = lua::check_bytes(l, 2);
        if delim.is_empty() {
            lua::arg_error(l, 2, c"empty delimiter");
        }
        match scan(buf, delim) {
            Step::Data(n) => {
                ffi::lua_pushinteger(l, n as _);
                1
            }
            Step::Next { data, head } => {
                ffi::lua_pushinteger(l, data as _);
                lua::push_str(l, "next");
                ffi::lua_pushinteger(l, head as ffi::lua_Integer + 1);
                3
            }
            Step::End { data } => {
                ffi::lua_pushinteger(l, data as _);
                lua::push_str(l, "end");
                2
            }
            Step::Bad { data } => {
                ffi::lua_pushinteger(l, data as _);
                lua::push_str(l, "bad");
                2
            }
        }
    }
}

/// core.part_head(buf) -> nil | consumed, headers, name [, filename] |
/// false, err: [`part_head`] for the Lua half; `headers` has lower-case
/// names, a repeated field's values joined with `", "`.
pub(super) unsafe extern "C-unwind" fn part_head_lua(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let buf = lua::check_bytes(l, 1);
        let head = match part_head(buf) {
            Ok(Some(h)) => h,
            Ok(None) => {
                ffi::lua_pushnil(l);
                return 1;
            }
            Err(e) => {
                ffi::lua_pushboolean(l, 0);
                lua::push_str(l, e);
                return 2;
            }
        };
        ffi::lua_pushinteger(l, head.consumed as _);
        ffi::lua_createtable(l, 0, head.fields.len() as c_int);
        for (name, value) in &head.fields {
            lua::push_bytes(l, name.to_ascii_lowercase().as_bytes());
            ffi::lua_pushvalue(l, -1);
            if ffi::lua_rawget(l, -3) != ffi::LUA_TNIL {
                lua::push_str(l, ", ");
                lua::push_bytes(l, value);
                ffi::lua_concat(l, 3);
            } else {
                ffi::lua_pop(l, 1);
                lua::push_bytes(l, value);
            }
            ffi::lua_rawset(l, -3);
        }
        lua::push_bytes(l, head.name.as_deref().unwrap_or_default());
        match &head.filename {
            Some(f) => lua::push_bytes(l, f),
            None => ffi::lua_pushnil(l),
        }
        4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &[u8] = b"\r\n--XyZ";

    #[test]
    fn finds_delimiters() {
        assert_eq!(scan(b"abc", D), Step::Data(3));
        assert_eq!(scan(b"abc\r\n--X", D), Step::Data(3));
        assert_eq!(scan(b"abc\r", D), Step::Data(3));
        assert_eq!(scan(b"abc\r\n--XyZ", D), Step::Data(3));
        assert_eq!(scan(b"abc\r\n--XyZ-", D), Step::Data(3));
        assert_eq!(scan(b"abc\r\n--XyZ--", D), Step::End { data: 3 });
        assert_eq!(
            scan(b"abc\r\n--XyZ\r\nhead", D),
            Step::Next { data: 3, head: 12 }
        );
        assert_eq!(
            scan(b"abc\r\n--XyZ \t\r\n", D),
            Step::Next { data: 3, head: 14 }
        );
        assert_eq!(scan(b"abc\r\n--XyZ  ", D), Step::Data(3));
        assert_eq!(scan(b"abc\r\n--XyZ\r", D), Step::Data(3));
        assert_eq!(scan(b"abc\r\n--XyZa", D), Step::Bad { data: 3 });
        assert_eq!(scan(b"abc\r\n--XyZ-a", D), Step::Bad { data: 3 });
        assert_eq!(scan(b"abc\r\n--XyZ\ra", D), Step::Bad { data: 3 });
        let pad = [b' '; MAX_PADDING + 1];
        assert_eq!(scan(&[D, &pad[..]].concat(), D), Step::Bad { data: 0 });
        // A CR LF that is not a delimiter is data.
        assert_eq!(scan(b"a\r\nb\r\n--Xq", D), Step::Data(10));
    }

    #[test]
    fn parses_part_heads() {
        let h = part_head(b"Content-Disposition: form-data; name=\"f\"; filename=\"a \\\"b\\\".txt\"\r\nContent-Type: text/plain\r\n\r\ndata")
            .unwrap()
            .unwrap();
        assert_eq!(h.name.as_deref(), Some(&b"f"[..]));
        assert_eq!(h.filename.as_deref(), Some(&b"a \"b\".txt"[..]));
        assert_eq!(h.fields.len(), 2);
        assert_eq!(&b"Content-Disposition: form-data; name=\"f\"; filename=\"a \\\"b\\\".txt\"\r\nContent-Type: text/plain\r\n\r\n"[..].len(), &h.consumed);
        let h = part_head(b"content-disposition: FORM-DATA;name=x;filename*=UTF-8''%C3%A9t%C3%A9.txt; filename=\"ete.txt\"\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.name.as_deref(), Some(&b"x"[..]));
        assert_eq!(h.filename.as_deref(), Some("été.txt".as_bytes()));
        assert!(part_head(b"Content-Disposition: form-data; name=\"x\"\r\n")
            .unwrap()
            .is_none());
        assert!(part_head(b"Content-Type: text/plain\r\n\r\n").is_err());
        assert!(part_head(b"Content-Disposition: attachment; name=x\r\n\r\n").is_err());
        assert!(part_head(b"Content-Disposition: form-data; name=\"x\r\n\r\n").is_err());
        assert!(part_head(b"Content-Disposition: form-data; name\r\n\r\n").is_err());
        assert!(part_head(b"Bad Field: x\r\n\r\n").is_err());
        let many = "X: 1\r\n".repeat(MAX_PART_FIELDS + 1) + "\r\n";
        assert_eq!(
            part_head(many.as_bytes()).err(),
            Some("too many fields in a part head")
        );
    }
}
