//! The HTTP parsers' fuzz entry points (see `src/fuzz.rs`): request and
//! response heads through both of their formats and the server's rules,
//! chunked bodies through the three chunked formats, multipart bodies, and
//! the client's content decoders.

use super::chunked::{self, CHUNK_END, CHUNK_SIZE, TRAILERS};
use super::format::{Head, REQUEST, RESPONSE};
use super::head::{with_fields, with_head, Kind};
use super::server;
use crate::runtime::parsers::fuzz::{scan_prefixes, scan_prefixes_refused};
use crate::runtime::parsers::{Format, Scan};

/// The formats of this module, by number (wrapping).
pub fn format(n: u8) -> &'static dyn Format {
    match n % 6 {
        0 => &REQUEST,
        1 => &RESPONSE,
        2 => server::server_head(),
        3 => &CHUNK_SIZE,
        4 => &CHUNK_END,
        _ => &TRAILERS,
    }
}

/// Whether `f` is the server's own request format.
pub fn is_server_head(f: &dyn Format) -> bool {
    std::ptr::addr_eq(f, server::server_head())
}

/// Whether `f` is the server's format and refuses the complete `head`
/// it found (which `push` answers with a status).
pub fn refuses(f: &dyn Format, head: &[u8]) -> bool {
    is_server_head(f) && !server::check_request(head)
}

/// A head through `format`'s scan, every prefix agreeing; when it is
/// complete, its field section parses again as it did the first time
/// (`req.headers` is built from it later and counts on that).
fn head(kind: Kind, format: &Head, data: &[u8]) -> Option<(usize, usize)> {
    scan_prefixes(format, data);
    let Scan::Ready { consume, mark } = format.scan(data, false) else {
        return None;
    };
    let fields = with_head(kind, &data[mark..consume], |_, fields, section| {
        (fields.len(), section.to_vec())
    });
    let (n, section) = fields.expect("scan found a head that does not parse");
    assert_eq!(
        with_fields(&section, |f| f.len()),
        Ok(n),
        "the section parses again"
    );
    Some((consume, mark))
}

/// `data` as a request head: the `'HTTPRequest'` format, and the server's
/// own (which finds the same end, and applies its rules to the head).
pub fn request_head(data: &[u8]) {
    let parsed = head(Kind::Request, &REQUEST, data);
    let head = server::server_head();
    let whole = head.scan(data, false);
    let refused = matches!(whole, Scan::Ready { consume, mark } if !server::check_request(&data[mark..consume]));
    scan_prefixes_refused(head, data, refused);
    if let Scan::Ready { consume, mark } = whole {
        let r = server::check_request(&data[mark..consume]);
        assert_eq!(r, parsed.is_some(), "the two formats disagree");
        if let Some((c, m)) = parsed {
            assert_eq!((c, m), (consume, mark));
        }
    }
}

/// `data` as a response head (the client's `'HTTPResponse'`).
pub fn response_head(data: &[u8]) {
    head(Kind::Response, &RESPONSE, data);
}

/// `data` as a chunked body and what follows it, read as
/// `http.read_chunked` reads it; a body that decodes is encoded again
/// (one chunk, no extensions) and decodes to the same bytes.
pub fn chunked_body(data: &[u8]) {
    for f in [&CHUNK_SIZE, &CHUNK_END, &TRAILERS] {
        scan_prefixes(f, data);
    }
    if let Some((body, _)) = decode(data) {
        let mut again = Vec::new();
        if !body.is_empty() {
            again.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            again.extend_from_slice(&body);
            again.extend_from_slice(b"\r\n");
        }
        again.extend_from_slice(b"0\r\n\r\n");
        let (same, used) = decode(&again).expect("a body encoded again decodes");
        assert_eq!((same, used), (body, again.len()));
    }
}

/// Decode a chunked body at the start of `data`: the body and the bytes
/// it took, or `None` (bad framing, or it does not end in `data`).
fn decode(data: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut at = 0;
    let mut body = Vec::new();
    let ready = |f: &chunked::Chunked, at: usize| match f.scan(&data[at..], true) {
        Scan::Ready { consume, mark } => Some((consume, mark)),
        _ => None,
    };
    loop {
        let (consume, mark) = ready(&CHUNK_SIZE, at)?;
        let size = chunked::chunk_size(&data[at..at + mark]).expect("scan checked the line");
        at += consume;
        if size == 0 {
            break;
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= data.len() - at)?;
        body.extend_from_slice(&data[at..at + size]);
        at += size;
        at += ready(&CHUNK_END, at)?.0;
    }
    at += ready(&TRAILERS, at)?.0;
    Some((body, at))
}

/// A `multipart/form-data` body driven as `lua/lem/http/multipart.lua`
/// drives it: the first byte sets the boundary's length and the size of
/// the pieces the body arrives in, the boundary follows, then the body.
/// The parts (heads and bodies) and the error must be the same whatever
/// the piece size, the bytes kept between pieces stay fewer than a
/// delimiter and its padding, and nothing panics.
pub fn multipart(data: &[u8]) {
    let [first, rest @ ..] = data else {
        return;
    };
    let blen = (*first as usize % 8) + 1;
    if rest.len() < blen {
        return;
    }
    let (boundary, body) = rest.split_at(blen);
    let mut delim = b"\r\n--".to_vec();
    delim.extend_from_slice(boundary);
    let whole = multipart_parts(&delim, body, body.len().max(1));
    let piece = (*first as usize >> 3) % 7 + 1;
    assert_eq!(
        multipart_parts(&delim, body, piece),
        whole,
        "pieces of {piece}"
    );
}

/// The parts of `body` fed `piece` bytes at a time: (head, body) pairs
/// and the error, if any.
fn multipart_parts(
    delim: &[u8],
    body: &[u8],
    piece: usize,
) -> (Vec<(usize, Vec<u8>)>, Option<&'static str>) {
    use super::multipart::{part_head, scan, Step, MAX_PADDING};
    let mut buf = b"\r\n".to_vec();
    let mut input = body.chunks(piece);
    let mut parts: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut in_body = false;
    let mut in_head = false;
    loop {
        if in_head {
            match part_head(&buf) {
                Ok(Some(h)) if h.consumed > 4096 => return (parts, Some("part head too large")),
                Ok(Some(h)) => {
                    let n = h.consumed;
                    parts.push((h.fields.len(), Vec::new()));
                    buf.drain(..n);
                    in_head = false;
                    in_body = true;
                    continue;
                }
                Ok(None) if buf.len() > 4096 => return (parts, Some("part head too large")),
                Ok(None) => {}
                Err(e) => return (parts, Some(e)),
            }
        } else {
            let step = scan(&buf, delim);
            let (n, next) = match step {
                Step::Bad { data } => {
                    if in_body {
                        parts
                            .last_mut()
                            .expect("a part")
                            .1
                            .extend_from_slice(&buf[..data]);
                    }
                    return (parts, Some("bad delimiter"));
                }
                Step::Data(n) => (n, None),
                Step::Next { data, head } => (data, Some(head)),
                Step::End { data } => (data, Some(usize::MAX)),
            };
            assert!(n <= buf.len());
            if in_body {
                parts
                    .last_mut()
                    .expect("a part")
                    .1
                    .extend_from_slice(&buf[..n]);
            }
            match next {
                Some(usize::MAX) => return (parts, None),
                Some(head) => {
                    assert!(head <= buf.len() && head >= n + delim.len() + 2);
                    buf.drain(..head);
                    in_head = true;
                    in_body = false;
                    continue;
                }
                None => {
                    buf.drain(..n);
                    assert!(
                        buf.len() < delim.len() + MAX_PADDING + 2,
                        "kept {}",
                        buf.len()
                    );
                }
            }
        }
        match input.next() {
            Some(p) => buf.extend_from_slice(p),
            None => return (parts, Some("truncated")),
        }
    }
}

/// The most decoded bytes one input is run for: a small body may inflate
/// to gigabytes, which says nothing more about the decoder (and pulled a
/// byte at a time, 64 KiB is already 65,536 pulls).
const DECODED_CAP: usize = 64 << 10;

/// The body a client gets with `Content-Encoding`, through its
/// [`Decoder`](super::decode::Decoder): the first byte picks the coding
/// (gzip, deflate or br) and the size asked of each pull, the second how
/// many of the following bytes are cut points, and the rest is the coded
/// body. Decoded pushed whole and pushed in the pieces the cut points
/// make, it must give the same bytes and the same end (or the same error,
/// the bytes before it one the start of the other's); every
/// piece pulled is non-empty and no bigger than asked; a decoder told the
/// body is complete never asks for more; and a body it decodes to the end
/// is what flate2's or brotli's own readers make of it.
pub fn decoder(data: &[u8]) {
    let [which, n_cuts, rest @ ..] = data else {
        return;
    };
    let coding: &[u8] = match which % 3 {
        0 => b"gzip",
        1 => b"deflate",
        _ => b"br",
    };
    let max = match which / 3 {
        n @ 0..=63 => n as usize + 1,
        n => (n as usize - 63) * 4096,
    };
    let n_cuts = (*n_cuts as usize % 8).min(rest.len());
    let (cuts, body) = rest.split_at(n_cuts);
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| c as usize * body.len() / 256)
        .collect();
    points.sort_unstable();
    points.push(body.len());
    let whole = decode_body(coding, body, &[body.len()], max);
    let pieces = decode_body(coding, body, &points, max);
    match (&whole, &pieces) {
        // How far a corrupt stream decodes before the error is found
        // depends on the input at hand (flate2's gzip reader drops what it
        // inflated in the call that found the error; miniz_oxide's fast
        // loop stops short of where the byte-by-byte one gets): the error
        // is the same and one's bytes are the start of the other's.
        ((a, Err(e)), (b, Err(f))) => {
            assert_eq!(e, f, "{coding:?} pushed whole and cut at {points:?}");
            let n = a.len().min(b.len());
            assert_eq!(
                a[..n],
                b[..n],
                "{coding:?} pushed whole and cut at {points:?}"
            );
        }
        _ => assert_eq!(
            whole, pieces,
            "{coding:?} pushed whole and cut at {points:?}"
        ),
    }
    if let (bytes, Ok(())) = &whole {
        let reference = reference_decode(coding, body);
        assert_eq!(
            Ok(&bytes[..]),
            reference.as_deref(),
            "{coding:?}: what flate2 or brotli make of it"
        );
    }
}

/// What a Decoder makes of `body` pushed up to each of `points`: the
/// decoded bytes (cut at [`DECODED_CAP`]) and how it ended (`Ok` at the
/// cap too).
fn decode_body(
    coding: &[u8],
    body: &[u8],
    points: &[usize],
    max: usize,
) -> (Vec<u8>, Result<(), &'static str>) {
    use super::decode::{Decoder, Pull};
    let d = Decoder::new(coding).expect("a known coding");
    let mut out = Vec::new();
    let (mut pushed, mut next, mut finished) = (0, 0, false);
    loop {
        match d.pull(max) {
            Pull::Data(v) => {
                assert!(
                    !v.is_empty() && v.len() <= max,
                    "a piece of {} for {max}",
                    v.len()
                );
                out.extend_from_slice(&v);
                if out.len() >= DECODED_CAP {
                    out.truncate(DECODED_CAP);
                    return (out, Ok(()));
                }
            }
            Pull::NeedInput => {
                assert!(!finished, "asks for more after the end of the body");
                if next < points.len() {
                    d.push(&body[pushed..points[next]]);
                    pushed = points[next];
                    next += 1;
                } else {
                    d.finish();
                    finished = true;
                }
            }
            Pull::End => return (out, Ok(())),
            Pull::Corrupt(e) => return (out, Err(e)),
        }
    }
}

/// `body` decoded by flate2's and brotli-decompressor's readers (deflate
/// told zlib from raw as the Decoder does), up to [`DECODED_CAP`].
fn reference_decode(coding: &[u8], body: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let reader: Box<dyn Read + '_> = match coding {
        b"gzip" => Box::new(flate2::bufread::MultiGzDecoder::new(body)),
        b"deflate" => {
            let zlib = body.len() >= 2
                && body[0] & 0x0f == 8
                && body[0] >> 4 <= 7
                && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0;
            if zlib {
                Box::new(flate2::bufread::ZlibDecoder::new(body))
            } else {
                Box::new(flate2::bufread::DeflateDecoder::new(body))
            }
        }
        _ => Box::new(brotli_decompressor::Decompressor::new(body, 4096)),
    };
    let mut out = Vec::new();
    reader
        .take(DECODED_CAP as u64)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}
