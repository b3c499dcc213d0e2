//! Finding and checking HTTP heads, for the read formats (`format.rs`),
//! the server's own format (`server.rs`) and the chunked trailers
//! (`chunked.rs`): where a head ends, its start line, and its field
//! section through `httparse` (with folded lines joined, `fold.rs`).

use std::sync::LazyLock;

use memchr::memmem;

use super::fold::{folded, folds_framing, unfold};

/// Largest head accepted (start line and fields): past it `read` returns
/// `nil, 'out of buffer space'` (the server answers 431).
pub const HEAD_LIMIT: usize = 32 << 10;

/// Most header fields in one head (more: `'out of buffer space'` too).
pub(super) const MAX_FIELDS: usize = 100;

/// Longest field name (names are lower-cased in a stack buffer).
pub(super) const MAX_NAME: usize = 256;

pub(super) const PARSE_ERROR: &str = "parse error";
pub(super) const NO_SPACE: &str = "out of buffer space";

/// Which start line a head has.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Request,
    Response,
}

/// Up to this many bytes, a head is searched line by line: setting up the
/// vector searches for its few lines costs more than they save.
pub(super) const SHORT: usize = 256;

/// Where the head starts (after empty lines a client may send between
/// requests, RFC 9112 §2.2) and ends (after its empty line), if complete.
pub(super) fn find_head(input: &[u8]) -> (usize, Option<usize>) {
    let mut start = 0;
    while start < input.len() && (input[start] == b'\r' || input[start] == b'\n') {
        start += 1;
    }
    let body = &input[start..];
    let end = if body.len() <= SHORT {
        head_end_by_lines(body)
    } else {
        head_end_by_search(body)
    };
    (start, end.map(|end| start + end))
}

/// The end of the empty line that ends `body`'s head: each line end looked
/// at once; the first that starts an empty line (LF or CRLF) ends it.
pub(super) fn head_end_by_lines(body: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', body).find_map(|i| match body.get(i + 1) {
        Some(b'\n') => Some(i + 2),
        Some(b'\r') if body.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

/// [`head_end_by_lines`] in two vector searches, not one call per line:
/// the first "\n\r\n" (CRLF endings), unless a "\n\n" (bare LF endings)
/// comes before it.
pub(super) fn head_end_by_search(body: &[u8]) -> Option<usize> {
    static CRLF: LazyLock<memmem::Finder> = LazyLock::new(|| memmem::Finder::new(b"\n\r\n"));
    static LF: LazyLock<memmem::Finder> = LazyLock::new(|| memmem::Finder::new(b"\n\n"));
    let crlf = CRLF.find(body).map(|i| i + 3);
    let before = crlf.map_or(body.len(), |end| end - 1);
    match LF.find(&body[..before]) {
        Some(i) => Some(i + 2),
        None => crlf,
    }
}

/// The start line's parts: request `(method, uri, version)` or response
/// `(version, status, text)`; versions without `HTTP/`.
pub(super) struct Start<'a> {
    pub(super) a: &'a [u8],
    pub(super) b: &'a [u8],
    pub(super) c: &'a [u8],
}

pub(super) fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// [`is_tchar`] for every byte, looked up: a response's field names are
/// checked on every response.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-'
            )
            || matches!(b, b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        c += 1;
    }
    t
};

/// Whether `s` is a token (RFC 9110 §5.6.2): what a field name must be.
pub(super) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| TCHAR[c as usize])
}

/// `HTTP/d.d` -> `d.d`.
fn version(v: &[u8]) -> Option<&[u8]> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(&v[5..])
        }
        _ => None,
    }
}

fn start_line(kind: Kind, line: &[u8]) -> Option<Start<'_>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // The method or version before the first space, the version after the
    // last one are a few bytes: a loop finds them sooner than a vector
    // search is set up. (A request line with more spaces has one in its
    // target, which is refused either way.)
    let sp1 = line.iter().position(|&c| c == b' ')?;
    let (first, rest) = (&line[..sp1], &line[sp1 + 1..]);
    match kind {
        Kind::Request => {
            let sp2 = rest.iter().rposition(|&c| c == b' ')?;
            let (uri, ver) = (&rest[..sp2], &rest[sp2 + 1..]);
            if first.is_empty() || !first.iter().all(|&c| is_tchar(c)) {
                return None;
            }
            if uri.is_empty() || !uri.iter().all(|&c| c > b' ' && c != 0x7f) {
                return None;
            }
            Some(Start {
                a: first,
                b: uri,
                c: version(ver)?,
            })
        }
        Kind::Response => {
            let ver = version(first)?;
            let (code, text) = match rest.iter().position(|&c| c == b' ') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &b""[..]),
            };
            if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
                return None;
            }
            if text.iter().any(|&c| c < b' ' && c != b'\t') {
                return None;
            }
            Some(Start {
                a: ver,
                b: code,
                c: text,
            })
        }
    }
}

/// Why a complete head cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Bad {
    Parse,
    TooBig,
}

/// Fields most heads fit in.
const FEW_FIELDS: usize = 24;

/// Parse the fields of `fields` (which ends with the empty line) into
/// `out`; returns how many there are.
pub(super) fn parse_fields<'b>(
    fields: &'b [u8],
    out: &mut [httparse::Header<'b>],
) -> Result<usize, Bad> {
    match httparse::parse_headers(fields, out) {
        Ok(httparse::Status::Complete((_, h))) => {
            if h.iter().any(|f| f.name.len() > MAX_NAME) {
                return Err(Bad::TooBig);
            }
            Ok(h.len())
        }
        Ok(httparse::Status::Partial) => Err(Bad::Parse),
        Err(httparse::Error::TooManyHeaders) => Err(Bad::TooBig),
        Err(_) => Err(Bad::Parse),
    }
}

/// Check (and with `visit`, walk) one complete head `head`: `visit` gets
/// the start line, the fields and the raw field section they came from.
pub(super) fn with_head<R>(
    kind: Kind,
    head: &[u8],
    visit: impl FnOnce(&Start, &[httparse::Header], &[u8]) -> R,
) -> Result<R, Bad> {
    let nl = memchr::memchr(b'\n', head).ok_or(Bad::Parse)?;
    let start = start_line(kind, &head[..nl]).ok_or(Bad::Parse)?;
    let section = &head[nl + 1..];
    with_fields(section, |fields| visit(&start, fields, section))
}

/// Check (and with `visit`, walk) the field section `fields` of a head
/// (what follows the start line, up to and with the empty line).
pub(super) fn with_fields<R>(
    fields: &[u8],
    visit: impl FnOnce(&[httparse::Header]) -> R,
) -> Result<R, Bad> {
    // Slots for most heads first (the array is filled anew for each
    // parse); for all the fields allowed only when there are more.
    let mut few = [httparse::EMPTY_HEADER; FEW_FIELDS];
    let err = match parse_fields(fields, &mut few) {
        Ok(n) => return Ok(visit(&few[..n])),
        Err(e) => e,
    };
    let err = match err {
        Bad::TooBig => {
            let mut buf = [httparse::EMPTY_HEADER; MAX_FIELDS];
            match parse_fields(fields, &mut buf) {
                Ok(n) => return Ok(visit(&buf[..n])),
                Err(e) => e,
            }
        }
        e => e,
    };
    // httparse refuses a folded line (it starts with white space, not a
    // name), so a section is looked at for folds only when it fails.
    if !folded(fields) || folds_framing(fields) {
        return Err(err);
    }
    let unfolded = unfold(fields);
    let mut buf = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let n = parse_fields(&unfolded, &mut buf)?;
    Ok(visit(&buf[..n]))
}

/// Whether repeated fields of this (lower-case) name are combined rather
/// than replaced: the framing fields the server checks for smuggling.
pub(super) fn combined(name: &[u8]) -> bool {
    name == b"content-length" || name == b"transfer-encoding"
}

#[cfg(test)]
mod tests {
    use super::super::fold::{folded_by_lines, folded_by_search};
    use super::*;

    #[test]
    fn tokens() {
        for c in 0..=255u8 {
            assert_eq!(is_token(&[c]), is_tchar(c), "{c}");
        }
        assert!(is_token(b"X-Forwarded-For"));
        for bad in [&b""[..], b"X A", b"X-A:", b"X\r\nA", b"\xc3\xa9"] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn finds_the_end_of_a_head() {
        assert_eq!(find_head(b"GET / HTTP/1.1\r\n\r\nx"), (0, Some(18)));
        assert_eq!(find_head(b"\r\nGET / HTTP/1.1\n\nx"), (2, Some(18)));
        assert_eq!(find_head(b"GET / HTTP/1.1\r\nA: b\r\n"), (0, None));
        // Mixed line ends: the first empty line counts, whichever kind.
        assert_eq!(find_head(b"GET / HTTP/1.1\nA: b\r\n\r\n"), (0, Some(23)));
        assert_eq!(find_head(b"GET / HTTP/1.1\r\nA: b\n\r\nx"), (0, Some(23)));
        assert_eq!(
            find_head(b"GET / HTTP/1.1\nA: b\n\nB: c\r\n\r\n"),
            (0, Some(21))
        );
        assert_eq!(
            find_head(b"GET / HTTP/1.1\r\nA: b\r\n\r\n\nx"),
            (0, Some(24))
        );
        assert_eq!(find_head(b"GET / HTTP/1.1\r\nA: b\r\n\n"), (0, Some(23)));
        assert_eq!(find_head(b"\r\n\r\n"), (4, None));
    }

    #[test]
    fn many_fields() {
        let section = |n: usize| {
            let mut s: Vec<u8> = (0..n)
                .flat_map(|i| format!("X-{i}: v\r\n").into_bytes())
                .collect();
            s.extend_from_slice(b"\r\n");
            s
        };
        for n in [0, FEW_FIELDS, FEW_FIELDS + 1, MAX_FIELDS] {
            let got = with_fields(&section(n), |f| {
                (f.len(), f.last().map(|h| h.name.to_string()))
            });
            assert_eq!(
                got,
                Ok((n, n.checked_sub(1).map(|i| format!("X-{i}")))),
                "{n} fields"
            );
        }
        assert_eq!(
            with_fields(&section(MAX_FIELDS + 1), |_| ()),
            Err(Bad::TooBig)
        );
        // Folded, past the first slots.
        let mut s = section(FEW_FIELDS + 2);
        s.splice(0..0, b"A: b\r\n c\r\n".iter().copied());
        let got = with_fields(&s, |f| (f.len(), f[0].value.to_vec()));
        assert_eq!(got, Ok((FEW_FIELDS + 3, b"b c".to_vec())));
    }

    #[test]
    fn start_lines() {
        let r = start_line(Kind::Request, b"GET /a?b HTTP/1.1\r").unwrap();
        assert_eq!((r.a, r.b, r.c), (&b"GET"[..], &b"/a?b"[..], &b"1.1"[..]));
        // A space too many, wherever it is, is refused.
        for bad in [
            &b"GET /a b HTTP/1.1"[..],
            b"GET  /a HTTP/1.1",
            b"GET /a  HTTP/1.1",
            b"GET /a HTTP/1.1 ",
            b" GET /a HTTP/1.1",
            b"GET /a",
            b"GET",
            b"G(T /a HTTP/1.1",
        ] {
            assert!(start_line(Kind::Request, bad).is_none(), "{bad:?}");
        }
        let r = start_line(Kind::Response, b"HTTP/1.0 404 Not Found\r").unwrap();
        assert_eq!(
            (r.a, r.b, r.c),
            (&b"1.0"[..], &b"404"[..], &b"Not Found"[..])
        );
        let r = start_line(Kind::Response, b"HTTP/1.1 204").unwrap();
        assert_eq!((r.b, r.c), (&b"204"[..], &b""[..]));
        assert!(start_line(Kind::Response, b"HTTP/1.1 20 OK").is_none());
        assert!(start_line(Kind::Response, b"HTTP/1.1  200 OK").is_none());
    }

    #[test]
    fn line_by_line_and_vector_searches_agree() {
        // Every string of up to 7 bytes over the bytes that matter, and
        // longer ones made from them.
        let alphabet = [b'a', b'\r', b'\n', b' ', b'\t'];
        let mut cases: Vec<Vec<u8>> = vec![Vec::new()];
        for len in 1..=7u32 {
            for mut k in 0..5usize.pow(len) {
                let mut v = Vec::new();
                for _ in 0..len {
                    v.push(alphabet[k % 5]);
                    k /= 5;
                }
                cases.push(v);
            }
        }
        let longer: Vec<Vec<u8>> = (0..cases.len())
            .step_by(97)
            .map(|i| [&b"x"[..], &cases[cases.len() - 1 - i], &cases[i], &cases[i]].concat())
            .collect();
        cases.extend(longer);
        for c in &cases {
            assert_eq!(head_end_by_lines(c), head_end_by_search(c), "{c:?}");
            assert_eq!(folded_by_lines(c), folded_by_search(c), "{c:?}");
        }
    }
}
