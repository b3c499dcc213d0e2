//! The server's rules for a request head, before any handler sees it:
//! the version, the connection's fate (`Connection`), the body's framing
//! (RFC 9112 §6.3, against request smuggling), `Host` and `Expect`; and the
//! request's path (`req.path`) from its target.

/// Why a request is refused before its handler runs: the status to answer.
pub(super) const BAD_REQUEST: i64 = 400;
pub(super) const HEADERS_TOO_LARGE: i64 = 431;
const NOT_IMPLEMENTED: i64 = 501;
const EXPECTATION_FAILED: i64 = 417;
const VERSION_NOT_SUPPORTED: i64 = 505;

/// Bytes without the white space Lua's `%s` matches at both ends.
fn trim(v: &[u8]) -> &[u8] {
    let space = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = v.iter().position(|c| !space(c)).unwrap_or(v.len());
    let end = v.iter().rposition(|c| !space(c)).map_or(start, |i| i + 1);
    &v[start..end]
}

/// Whether `hay` contains `needle`, ignoring ASCII case.
fn contains_nocase(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The Content-Length field (repeats combined as `"5, 5"`): the length, or
/// `None` when a part is not a number, the parts differ, or it is too long
/// to be a length.
fn content_length(v: &[u8]) -> Option<u64> {
    let mut first: Option<&[u8]> = None;
    for part in v.split(|&c| c == b',').filter(|p| !p.is_empty()) {
        let d = trim(part);
        if d.is_empty() || !d.iter().all(u8::is_ascii_digit) || first.is_some_and(|f| f != d) {
            return None;
        }
        first = Some(d);
    }
    let d = first.filter(|d| d.len() <= 15)?;
    Some(d.iter().fold(0, |n, &c| n * 10 + (c - b'0') as u64))
}

/// How a request's body is framed.
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// What the server's rules make of a request's fields.
pub(super) struct Rules {
    pub(super) close: bool,
    pub(super) keepalive: bool,
    pub(super) framing: Framing,
    /// Send `100 Continue` before reading the body.
    pub(super) expect: bool,
    /// `Connection` has tokens besides `close` and `keep-alive` (an
    /// `Upgrade` maybe: see `h2::upgrade::wants_h2c`).
    pub(super) more_tokens: bool,
}

/// The characters a Host value may have (RFC 9112 §3.2, RFC 3986 §3.2.2:
/// `uri-host [ ":" port ]`): those of a registered name or an IP literal,
/// and none that would end an authority (space, `/`, `?`, `#`, `@`) or that
/// no host has.
const HOST_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let extra = b"-._~%!$&'()*+,;=:[]";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

/// Whether a Host value has only [`HOST_CHARS`].
fn valid_host(v: &[u8]) -> bool {
    v.iter().all(|&c| HOST_CHARS[c as usize])
}

/// Apply the server's rules to a head: the connection's fate, the body's
/// framing (RFC 9112 §6.3: Transfer-Encoding wins, but together with
/// Content-Length, or in an HTTP/1.0 request, it is refused), `Expect`;
/// `Err(status)` refuses the request.
pub(super) fn rules(version: &[u8], fields: &[httparse::Header]) -> Result<Rules, i64> {
    let http10 = match version {
        b"1.1" => false,
        b"1.0" => true,
        _ => return Err(VERSION_NOT_SUPPORTED),
    };
    // Repeated fields are one list (RFC 9110 §5.3): a close or an
    // expectation in any of them counts; the framing fields are combined.
    let (mut close, mut keepalive, mut more_tokens) = (false, false, false);
    let mut expect = false;
    let mut hosts = 0;
    let mut te: Option<Vec<u8>> = None;
    let mut cl: Option<Vec<u8>> = None;
    for f in fields {
        let name = f.name.as_bytes();
        let combine = |slot: &mut Option<Vec<u8>>| match slot {
            Some(v) => {
                v.extend_from_slice(b", ");
                v.extend_from_slice(f.value);
            }
            None => *slot = Some(f.value.to_vec()),
        };
        if name.eq_ignore_ascii_case(b"connection") {
            // Tokens other than these are looked for only when the value
            // is longer than the one found (or has neither).
            if contains_nocase(f.value, b"close") {
                close = true;
                more_tokens |= f.value.len() > b"close".len();
            } else if contains_nocase(f.value, b"keep-alive") {
                keepalive = true;
                more_tokens |= f.value.len() > b"keep-alive".len();
            } else {
                more_tokens = true;
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            combine(&mut te);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            combine(&mut cl);
        } else if name.eq_ignore_ascii_case(b"expect") {
            if !f.value.eq_ignore_ascii_case(b"100-continue") {
                return Err(EXPECTATION_FAILED);
            }
            expect = true;
        } else if name.eq_ignore_ascii_case(b"host") {
            if !valid_host(f.value) {
                return Err(BAD_REQUEST);
            }
            hosts += 1;
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host, and no
    // request more than one.
    if hosts > 1 || (!http10 && hosts != 1) {
        return Err(BAD_REQUEST);
    }
    // keep-alive only means something in HTTP/1.0; close wins.
    keepalive &= http10 && !close;
    if http10 && !keepalive {
        close = true;
    }
    let framing = match (te, cl) {
        (Some(te), cl) => {
            if cl.is_some() || http10 {
                return Err(BAD_REQUEST);
            }
            let te = trim(&te).to_ascii_lowercase();
            if te == b"chunked" {
                Framing::Chunked
            } else if te.ends_with(b"chunked") {
                return Err(NOT_IMPLEMENTED);
            } else {
                return Err(BAD_REQUEST);
            }
        }
        (None, Some(cl)) => match content_length(&cl) {
            None => return Err(BAD_REQUEST),
            Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
        },
        (None, None) => Framing::None,
    };
    let expect = expect && !http10;
    Ok(Rules {
        close,
        keepalive,
        framing,
        expect,
        more_tokens,
    })
}

/// The path and query of a target in absolute form (RFC 9112 §3.2.2,
/// `http://host/path?q`): what follows the authority (`"/"` when nothing
/// or only a query does; the query is cut by [`decode_path`]). `None` for
/// the other forms (a target that does not start with a scheme and `://`).
pub(super) fn absolute_path(uri: &[u8]) -> Option<&[u8]> {
    let colon = memchr::memchr(b':', uri)?;
    let (scheme, rest) = (&uri[..colon], &uri[colon + 1..]);
    if scheme.is_empty()
        || !scheme[0].is_ascii_alphabetic()
        || !scheme
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
    {
        return None;
    }
    let authority = rest.strip_prefix(b"//")?;
    match authority
        .iter()
        .position(|&c| matches!(c, b'/' | b'?' | b'#'))
    {
        Some(i) if authority[i] == b'/' => Some(&authority[i..]),
        _ => Some(b"/"),
    }
}

/// `server.urldecode` of the path part of `uri` (before any `?`): `+` is a
/// space, `%XX` a byte.
pub(super) fn decode_path(uri: &[u8]) -> Vec<u8> {
    let path = &uri[..memchr::memchr(b'?', uri).unwrap_or(uri.len())];
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let c = path[i];
        match c {
            b'+' => out.push(b' '),
            b'%' => match (
                path.get(i + 1).and_then(|&c| hex(c)),
                path.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(c),
            },
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(name: &'a str, value: &'a [u8]) -> httparse::Header<'a> {
        httparse::Header { name, value }
    }

    #[test]
    fn content_lengths() {
        assert_eq!(content_length(b"5"), Some(5));
        assert_eq!(content_length(b" 12 \t"), Some(12));
        assert_eq!(content_length(b"5, 5"), Some(5));
        assert_eq!(content_length(b"5,,5"), Some(5));
        assert_eq!(content_length(b"5, 6"), None);
        assert_eq!(content_length(b"05, 5"), None);
        assert_eq!(content_length(b"5, "), None);
        assert_eq!(content_length(b"-1"), None);
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"1234567890123456"), None);
    }

    #[test]
    fn framing_and_connection_rules() {
        let host = field("Host", b"x");
        let r = rules(b"1.1", &[host]).unwrap();
        assert!(!r.close && !r.keepalive && matches!(r.framing, Framing::None));
        let r = rules(b"1.0", &[field("Connection", b"Keep-Alive")]).unwrap();
        assert!(!r.close && r.keepalive);
        assert!(rules(b"1.0", &[]).unwrap().close);
        assert!(
            rules(b"1.1", &[host, field("connection", b"x, CLOSE")])
                .unwrap()
                .close
        );
        let te = field("Transfer-Encoding", b" Chunked ");
        assert!(matches!(
            rules(b"1.1", &[host, te]).unwrap().framing,
            Framing::Chunked
        ));
        let cl = field("Content-Length", b"3");
        assert_eq!(rules(b"1.1", &[host, te, cl]).err(), Some(BAD_REQUEST));
        assert_eq!(rules(b"1.0", &[te]).err(), Some(BAD_REQUEST));
        let gz = field("transfer-encoding", b"gzip");
        assert_eq!(rules(b"1.1", &[host, gz, te]).err(), Some(NOT_IMPLEMENTED));
        assert_eq!(rules(b"1.1", &[host, te, gz]).err(), Some(BAD_REQUEST));
        let cl2 = field("content-length", b"4");
        assert_eq!(rules(b"1.1", &[host, cl, cl2]).err(), Some(BAD_REQUEST));
        assert!(matches!(
            rules(b"1.1", &[host, cl, cl]).unwrap().framing,
            Framing::Length(3)
        ));
        assert_eq!(rules(b"2.0", &[]).err(), Some(VERSION_NOT_SUPPORTED));
        let ex = field("Expect", b"100-Continue");
        assert!(rules(b"1.1", &[host, ex]).unwrap().expect);
        assert!(!rules(b"1.0", &[ex]).unwrap().expect);
        let bad = field("Expect", b"fly");
        assert_eq!(rules(b"1.1", &[host, bad]).err(), Some(EXPECTATION_FAILED));
        // Exactly one Host in HTTP/1.1; none is fine in 1.0.
        assert_eq!(rules(b"1.1", &[]).err(), Some(BAD_REQUEST));
        assert_eq!(rules(b"1.1", &[host, host]).err(), Some(BAD_REQUEST));
        assert!(rules(b"1.0", &[]).is_ok());
        assert_eq!(rules(b"1.0", &[host, host]).err(), Some(BAD_REQUEST));
        for bad in [
            &b"a b"[..],
            b"a/b",
            b"u@h",
            b"h?q",
            b"h#f",
            b"h\x01",
            b"h\x7f",
            b"h\xc3\xa9",
        ] {
            assert_eq!(
                rules(b"1.1", &[field("Host", bad)]).err(),
                Some(BAD_REQUEST)
            );
        }
        for ok in [
            &b""[..],
            b"example.org:8080",
            b"[::1]:80",
            b"xn--bcher-kva.example",
        ] {
            assert!(rules(b"1.1", &[field("Host", ok)]).is_ok());
        }
        // Repeated Connection and Expect fields are one list.
        let close = field("Connection", b"close");
        let ka = field("Connection", b"keep-alive");
        assert!(rules(b"1.1", &[host, close, ka]).unwrap().close);
        assert!(rules(b"1.0", &[ka, close]).unwrap().close);
        let cont = field("Expect", b"100-continue");
        assert_eq!(
            rules(b"1.1", &[host, bad, cont]).err(),
            Some(EXPECTATION_FAILED)
        );
    }

    #[test]
    fn paths_are_decoded() {
        assert_eq!(decode_path(b"/a+b/%41%2b?x=%20"), b"/a b/A+".to_vec());
        assert_eq!(decode_path(b"/%zz%4"), b"/%zz%4".to_vec());
    }

    #[test]
    fn absolute_targets() {
        assert_eq!(absolute_path(b"http://x/a/b?q"), Some(&b"/a/b?q"[..]));
        assert_eq!(absolute_path(b"HTTPS://x:8080"), Some(&b"/"[..]));
        assert_eq!(absolute_path(b"http://x?q=/"), Some(&b"/"[..]));
        assert_eq!(absolute_path(b"http://x#f/"), Some(&b"/"[..]));
        assert_eq!(absolute_path(b"*"), None);
        assert_eq!(absolute_path(b"x:80"), None);
        assert_eq!(absolute_path(b"1http://x/"), None);
        assert_eq!(absolute_path(b"://x/"), None);
    }
}
