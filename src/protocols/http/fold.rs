//! Obsolete line folding (RFC 9112 §5.2) in a head's field section:
//! finding it, refusing it where it could hide framing, and joining the
//! folded lines for `httparse`, which refuses them.

use std::sync::LazyLock;

use memchr::memmem;

use super::head::SHORT;

/// Whether the field section has obsolete line folding.
pub(super) fn folded(fields: &[u8]) -> bool {
    if fields.len() <= SHORT {
        folded_by_lines(fields)
    } else {
        folded_by_search(fields)
    }
}

pub(super) fn folded_by_lines(fields: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', fields).any(|i| matches!(fields.get(i + 1), Some(b' ' | b'\t')))
}

/// [`folded_by_lines`] in two vector searches, not one call per line.
pub(super) fn folded_by_search(fields: &[u8]) -> bool {
    static SPACE: LazyLock<memmem::Finder> = LazyLock::new(|| memmem::Finder::new(b"\n "));
    static TAB: LazyLock<memmem::Finder> = LazyLock::new(|| memmem::Finder::new(b"\n\t"));
    SPACE.find(fields).is_some() || TAB.find(fields).is_some()
}

/// Whether a fold continues a field that frames the message or names its
/// host (`Content-Length`, `Transfer-Encoding`, `Host`): joined, such a
/// value could be read one way here and another by a front end, so the
/// head is refused instead.
///
/// So is a continuation line that reads as such a field itself (` Content-
/// Length: 3` under another field): a front end that takes a folded line
/// for a field of its own would frame the message by it.
pub(super) fn folds_framing(fields: &[u8]) -> bool {
    let names_framing = |line: &[u8]| {
        let name = &line[..memchr::memchr(b':', line).unwrap_or(line.len())];
        let name = name.trim_ascii();
        [&b"content-length"[..], b"transfer-encoding", b"host"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
    };
    let mut framing = false;
    for line in fields.split(|&c| c == b'\n') {
        match line.first() {
            Some(b' ' | b'\t') if framing || names_framing(line) => return true,
            Some(b' ' | b'\t') => {}
            _ => framing = names_framing(line),
        }
    }
    false
}

/// The field section with each fold (line end plus white space) replaced
/// by one space.
pub(super) fn unfold(fields: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.len());
    let mut i = 0;
    while i < fields.len() {
        let c = fields[i];
        let nl = if c == b'\r' && fields.get(i + 1) == Some(&b'\n') {
            2
        } else if c == b'\n' {
            1
        } else {
            0
        };
        if nl > 0 && matches!(fields.get(i + nl), Some(b' ' | b'\t')) {
            // Drop trailing white space before the fold and leading after.
            while matches!(out.last(), Some(b' ' | b'\t')) {
                out.pop();
            }
            out.push(b' ');
            i += nl;
            while matches!(fields.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::head::{with_fields, with_head, Bad, Kind};
    use super::*;

    #[test]
    fn folded_framing_fields_are_refused() {
        let ok = b"X-A: a\r\n b\r\nHost: h\r\n\r\n";
        assert!(with_fields(ok, |f| f.len()).is_ok());
        for bad in [
            &b"Content-Length:\r\n 3\r\n\r\n"[..],
            b"Transfer-Encoding: x,\r\n\tchunked\r\n\r\n",
            b"X-A: a\r\nHOST: a\r\n b\r\n\r\n",
            b"X-A: a\r\n Transfer-Encoding: chunked\r\n\r\n",
            b"X-A: a\r\n\tcontent-length : 3\r\n\r\n",
        ] {
            assert_eq!(with_fields(bad, |_| ()), Err(Bad::Parse));
        }
    }

    #[test]
    fn folded_lines_are_joined() {
        assert_eq!(
            unfold(b"A: b\r\n  c\r\nD: e\r\n\r\n"),
            b"A: b c\r\nD: e\r\n\r\n".to_vec()
        );
        let n = with_head(
            Kind::Request,
            b"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n",
            |_, f, _| {
                assert_eq!(f[0].value, b"b c");
                f.len()
            },
        );
        assert_eq!(n, Ok(1));
    }
}
