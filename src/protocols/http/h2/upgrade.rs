//! `Upgrade: h2c` (RFC 7540 §3.2; RFC 9113 deprecates it, but clients
//! such as `curl --http2` still use it for `http://`): an HTTP/1.1 request
//! without a body that asks for HTTP/2 gets `101 Switching Protocols`, and
//! the connection goes on as HTTP/2 with that request as stream 1.
//!
//! The `h2` crate has no way in for an upgrade (hyperium/h2#220): its
//! server starts from the client's connection preface and knows only the
//! streams the client opened with HEADERS. So the connection is given to
//! it through [`Upgraded`], which reads the client's preface and first
//! SETTINGS frame (RFC 9113 §3.4: the client sends both after the 101) and
//! rewrites them as if the client had sent them and then the request:
//!
//! - the SETTINGS frame's payload gets the `HTTP2-Settings` ones in front
//!   (RFC 7540 §3.2.1: they apply first; the client's own, later, win),
//!   so the client gets the one acknowledgement it waits for;
//! - then a HEADERS frame (and CONTINUATIONs) on stream 1 with
//!   END_STREAM: the request, HPACK-coded as literals that are never
//!   indexed, so the decoder's table stays as the client's encoder has it
//!   and the client's own header blocks decode as they were coded.
//!
//! From there `h2` serves stream 1 as any other (half-closed remote: the
//! request has no body), its response goes on stream 1, and the client's
//! own streams begin at 3. Only requests without a body are upgraded; one
//! with a body is served over HTTP/1.1, as the RFC allows.

use std::ffi::c_int;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::super::head::with_fields;
use super::{drive, Conn, Limits, Shared, CONN};
use crate::io::stream::{Detached, Stream, STREAM};
use crate::runtime::lifecycle;
use crate::runtime::lua::{self, ffi, lua_State};

/// The answer that switches the connection over.
const SWITCHING: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

/// The client's connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types and flags (RFC 9113 §6).
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// The largest frame the server takes before its SETTINGS say otherwise
/// (`h2`'s default, SETTINGS_MAX_FRAME_SIZE's initial value).
const MAX_FRAME: usize = 16384;

/// At most this many settings in `HTTP2-Settings` (there are seven kinds).
const MAX_SETTINGS: usize = 32;

/// The fields of an HTTP/1.1 request that HTTP/2 has no place for (RFC
/// 9113 §8.2.2), or that become pseudo-header fields (`host`).
const HOP_BY_HOP: [&[u8]; 8] = [
    b"connection",
    b"upgrade",
    b"http2-settings",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"host",
    b"te",
];

/// The comma-separated tokens of a field's value.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&c| c == b',').map(|t| t.trim_ascii())
}

/// Whether any of the fields named `name` has the token `token`.
fn has_token(fields: &[httparse::Header], name: &str, token: &[u8]) -> bool {
    fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case(name))
        .any(|f| tokens(f.value).any(|t| t.eq_ignore_ascii_case(token)))
}

/// Whether an HTTP/1.1 request's fields ask to switch to HTTP/2 in
/// cleartext: `Upgrade: h2c` with `Connection: Upgrade, HTTP2-Settings`
/// (RFC 7540 §3.2). The server's rules call this only for a head whose
/// `Connection` has tokens besides `close` and `keep-alive`.
pub(in crate::protocols::http) fn wants_h2c(fields: &[httparse::Header]) -> bool {
    has_token(fields, "upgrade", b"h2c")
        && has_token(fields, "connection", b"upgrade")
        && has_token(fields, "connection", b"http2-settings")
}

/// The `HTTP2-Settings` value decoded and checked (RFC 7540 §3.2.1, RFC
/// 9113 §6.5.2): a SETTINGS frame's payload, or what is wrong with it.
fn settings(value: &[u8]) -> Result<Vec<u8>, String> {
    const BASE64URL: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let payload = BASE64URL
        .decode(value.trim_ascii())
        .map_err(|e| format!("HTTP2-Settings is not base64url ({e})"))?;
    if payload.len() % 6 != 0 {
        return Err(format!(
            "HTTP2-Settings is {} bytes, not a list of settings (6 bytes each)",
            payload.len()
        ));
    }
    if payload.len() > MAX_SETTINGS * 6 {
        return Err(format!(
            "HTTP2-Settings has {} settings (at most {MAX_SETTINGS})",
            payload.len() / 6
        ));
    }
    for s in payload.chunks_exact(6) {
        let id = u16::from_be_bytes([s[0], s[1]]);
        let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
        let ok = match id {
            // ENABLE_PUSH, ENABLE_CONNECT_PROTOCOL (RFC 8441)
            0x2 | 0x8 => v <= 1,
            // INITIAL_WINDOW_SIZE
            0x4 => v < 1 << 31,
            // MAX_FRAME_SIZE
            0x5 => (1 << 14..1 << 24).contains(&v),
            _ => true,
        };
        if !ok {
            return Err(format!("HTTP2-Settings sets {id:#x} to {v}"));
        }
    }
    Ok(payload)
}

/// Append `n` as an HPACK integer with a `bits`-bit prefix after the bits
/// of `first` (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, bits: u32, mut n: usize) {
    let max = (1usize << bits) - 1;
    if n < max {
        out.push(first | n as u8);
        return;
    }
    out.push(first | max as u8);
    n -= max;
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Append a field as a literal never indexed, with a literal name (RFC
/// 7541 §6.2.3): it leaves the decoder's dynamic table as it is.
fn hpack_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x10);
    hpack_int(out, 0, 7, name.len());
    out.extend(name.iter().map(u8::to_ascii_lowercase));
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

/// Append a frame header (RFC 9113 §4.1).
fn frame_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// The request as HTTP/2 frames on stream 1: HEADERS with END_STREAM, and
/// CONTINUATIONs when the block is larger than a frame. `None` when it
/// has no HTTP/2 form here (a target that is not a path: the request is
/// served over HTTP/1.1).
fn request_frames(method: &[u8], target: &[u8], fields: &[httparse::Header]) -> Option<Vec<u8>> {
    if target.first() != Some(&b'/') || method == b"CONNECT" {
        return None;
    }
    let mut block = Vec::with_capacity(256);
    hpack_literal(&mut block, b":method", method);
    hpack_literal(&mut block, b":scheme", b"http");
    hpack_literal(&mut block, b":path", target);
    if let Some(host) = fields.iter().find(|f| f.name.eq_ignore_ascii_case("host")) {
        hpack_literal(&mut block, b":authority", host.value);
    }
    // What Connection names is hop-by-hop too (RFC 9110 §7.6.1).
    let named = |name: &str| {
        fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case("connection"))
            .any(|f| tokens(f.value).any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
    };
    for f in fields {
        let name = f.name.as_bytes();
        let te_trailers = name.eq_ignore_ascii_case(b"te")
            && f.value.trim_ascii().eq_ignore_ascii_case(b"trailers");
        if (HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name)) && !te_trailers)
            || named(f.name)
        {
            continue;
        }
        hpack_literal(&mut block, name, f.value);
    }
    let mut out = Vec::with_capacity(block.len() + 9 * (1 + block.len() / MAX_FRAME));
    let mut parts = block.chunks(MAX_FRAME).peekable();
    let mut kind = HEADERS;
    while let Some(part) = parts.next() {
        let mut flags = if kind == HEADERS { END_STREAM } else { 0 };
        if parts.peek().is_none() {
            flags |= END_HEADERS;
        }
        frame_head(&mut out, part.len(), kind, flags, 1);
        out.extend_from_slice(part);
        kind = CONTINUATION;
    }
    Some(out)
}

/// What the client sent after the 101, rewritten (see the module doc):
/// `input` holds the preface and its first frame whole, then maybe more.
/// Anything else (not the preface, a first frame that is not SETTINGS,
/// or too long for one) goes to `h2` as it came, which refuses it.
fn rewrite(input: &[u8], settings: &[u8], request: &[u8]) -> Vec<u8> {
    let (preface, rest) = input.split_at(PREFACE.len());
    let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
    let (kind, flags, stream) = (rest[3], rest[4], &rest[5..9]);
    if preface != PREFACE
        || kind != SETTINGS
        || flags & ACK != 0
        || stream != [0; 4]
        || len + settings.len() > MAX_FRAME
    {
        return input.to_vec();
    }
    let (payload, after) = rest[9..].split_at(len);
    let mut out = Vec::with_capacity(input.len() + settings.len() + request.len());
    out.extend_from_slice(preface);
    frame_head(&mut out, len + settings.len(), SETTINGS, flags, 0);
    out.extend_from_slice(settings);
    out.extend_from_slice(payload);
    out.extend_from_slice(request);
    out.extend_from_slice(after);
    out
}

/// How many bytes [`rewrite`] needs: the preface and the first frame's
/// header, then the frame; `None` once `input` has them all (or the frame
/// is one not to wait for: too long to be the SETTINGS to rewrite).
fn needed(input: &[u8]) -> Option<usize> {
    let head = PREFACE.len() + 9;
    if input.len() < head {
        return Some(head);
    }
    let rest = &input[PREFACE.len()..];
    let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
    (len <= MAX_FRAME && input.len() < head + len).then_some(head + len)
}

/// The upgraded connection's transport: [`Detached`], whose first bytes
/// read are rewritten (see the module doc).
pub(super) struct Upgraded {
    io: Detached,
    state: State,
}

enum State {
    /// Reading the preface and the first frame; then the settings and
    /// the request to put in.
    Reading {
        input: Vec<u8>,
        settings: Vec<u8>,
        request: Vec<u8>,
    },
    /// Handing the rewritten bytes out.
    Giving { out: Vec<u8>, at: usize },
    /// The rest is the connection's, as it comes.
    Passing,
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Passing => return Pin::new(&mut this.io).poll_read(cx, buf),
                State::Giving { out, at } => {
                    let n = buf.remaining().min(out.len() - *at);
                    buf.put_slice(&out[*at..*at + n]);
                    *at += n;
                    if *at == out.len() {
                        this.state = State::Passing;
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Reading {
                    input,
                    settings,
                    request,
                } => {
                    let out = match needed(input) {
                        Some(n) => {
                            let had = input.len();
                            input.resize(n, 0);
                            let mut rb = ReadBuf::new(&mut input[had..]);
                            let r = Pin::new(&mut this.io).poll_read(cx, &mut rb);
                            let got = rb.filled().len();
                            input.truncate(had + got);
                            ready!(r)?;
                            if got > 0 {
                                continue;
                            }
                            // The end before the frame: what came, as it
                            // came (h2 sees the end too).
                            std::mem::take(input)
                        }
                        None => rewrite(input, settings, request),
                    };
                    this.state = match out.is_empty() {
                        true => State::Passing,
                        false => State::Giving { out, at: 0 },
                    };
                }
            }
        }
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// What an upgrade puts in front of the client's frames.
pub(in crate::protocols::http) struct Switch {
    /// The `HTTP2-Settings` payload.
    pub(in crate::protocols::http) settings: Vec<u8>,
    /// The request as frames on stream 1.
    pub(in crate::protocols::http) request: Vec<u8>,
}

/// The [`Switch`] for a request that asks for `Upgrade: h2c`; `Ok(None)`: no upgrade (serve the request over HTTP/1.1); `Err`: a bad
/// `HTTP2-Settings` (missing, repeated or malformed).
pub(in crate::protocols::http) fn prepare(
    method: &[u8],
    target: &[u8],
    fields: &[httparse::Header],
) -> Result<Option<Switch>, String> {
    if !wants_h2c(fields) {
        return Ok(None);
    }
    let mut values = fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("http2-settings"));
    let settings = match (values.next(), values.next()) {
        (Some(v), None) => settings(v.value)?,
        (None, _) => return Err("no HTTP2-Settings field".to_string()),
        (Some(_), Some(_)) => return Err("more than one HTTP2-Settings field".into()),
    };
    Ok(request_frames(method, target, fields).map(|request| Switch { settings, request }))
}

/// Send the 101, then serve the connection over HTTP/2.
async fn switch(mut io: Detached, up: State, shared: Rc<Shared>, limits: Limits) {
    if let Err(e) = io.write_all(SWITCHING).await {
        return shared.end(e.to_string());
    }
    drive(Upgraded { io, state: up }, shared, limits).await;
}

/// core.upgrade(stream, method, target, section, max_streams,
/// header_list, timeout) -> conn | false | nil, err: switch a cleartext
/// HTTP/1.1 connection whose request (`method`, `target` and its field
/// section, `req._head`) asked for `Upgrade: h2c` over to HTTP/2, that
/// request becoming stream 1: `101 Switching Protocols` goes out, and the
/// connection is then as `core.serve`'s (the Stream is closed). `false`:
/// the request is to be served over HTTP/1.1 (a TLS connection, where
/// h2c has no meaning; a target that is not a path; no longer asking),
/// with the Stream untouched. `nil, err`: its `HTTP2-Settings` is missing,
/// repeated or malformed (answer 400). The last three arguments as
/// `core.serve`'s.
pub(super) unsafe extern "C-unwind" fn upgrade(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s: &Stream = lua::check_object(l, 1, STREAM);
        let method = lua::check_bytes(l, 2);
        let target = lua::check_bytes(l, 3);
        let section = lua::check_bytes(l, 4);
        let max_streams = lua::opt_integer(l, 5, 128).clamp(1, u32::MAX as i64) as u32;
        let header_list = lua::opt_integer(l, 6, 64 << 10).clamp(1, u32::MAX as i64) as u32;
        let idle = match ffi::lua_isnoneornil(l, 7) != 0 {
            true => None,
            false => Some(ffi::luaL_checknumber(l, 7)),
        };
        if s.0.is_tls() {
            ffi::lua_pushboolean(l, 0);
            return 1;
        }
        let parsed = with_fields(section, |fields| prepare(method, target, fields));
        let Switch { settings, request } = match parsed {
            Ok(Ok(Some(up))) => up,
            Ok(Err(e)) => return lua::fail(l, &e),
            Ok(Ok(None)) | Err(_) => {
                ffi::lua_pushboolean(l, 0);
                return 1;
            }
        };
        let Some(io) = s.0.detach(&[]) else {
            return lua::fail(l, "closed");
        };
        lifecycle::on_drain(super::drain);
        let shared = Rc::new(Shared::default());
        let limits = Limits {
            max_streams,
            header_list,
            idle: idle
                .filter(|t| t.is_finite() && *t > 0.0)
                .map(Duration::from_secs_f64),
        };
        let state = State::Reading {
            input: Vec::new(),
            settings,
            request,
        };
        tokio::task::spawn_local(switch(io, state, shared.clone(), limits));
        lua::push_object(l, CONN, Conn(shared));
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(name: &'a str, value: &'a [u8]) -> httparse::Header<'a> {
        httparse::Header { name, value }
    }

    #[test]
    fn integers_as_rfc_7541_c1_codes_them() {
        let mut out = Vec::new();
        hpack_int(&mut out, 0, 5, 10);
        assert_eq!(out, [10]);
        out.clear();
        hpack_int(&mut out, 0, 5, 1337);
        assert_eq!(out, [31, 154, 10]);
        out.clear();
        hpack_int(&mut out, 0, 8, 42);
        assert_eq!(out, [42]);
        out.clear();
        hpack_int(&mut out, 0, 7, 127);
        assert_eq!(out, [127, 0]);
    }

    #[test]
    fn a_literal_never_indexed() {
        let mut out = Vec::new();
        hpack_literal(&mut out, b"Password", b"secret");
        // RFC 7541 C.2.3, but with a lower-cased name.
        assert_eq!(out, b"\x10\x08password\x06secret");
    }

    #[test]
    fn the_upgrade_is_asked_with_all_three_fields() {
        let up = [
            field("Connection", b"Upgrade, HTTP2-Settings"),
            field("Upgrade", b"h2c"),
        ];
        assert!(wants_h2c(&up));
        assert!(!wants_h2c(&up[..1]));
        let ws = [
            field("Connection", b"Upgrade"),
            field("Upgrade", b"websocket"),
        ];
        assert!(!wants_h2c(&ws));
        let split = [
            field("connection", b"upgrade"),
            field("connection", b"http2-settings"),
            field("upgrade", b"foo, H2C"),
        ];
        assert!(wants_h2c(&split));
    }

    #[test]
    fn settings_are_checked() {
        // curl's: MAX_CONCURRENT_STREAMS 100, INITIAL_WINDOW_SIZE 32 MiB,
        // ENABLE_PUSH 0.
        let s = settings(b"AAMAAABkAAQCAAAAAAIAAAAA").unwrap();
        assert_eq!(s.len(), 18);
        assert_eq!(settings(b"").unwrap(), b"");
        // Padding is let through (whole settings never need it).
        assert!(settings(b"AAMAAA==").unwrap_err().contains("4 bytes"));
        assert!(settings(b"AAMAAABk!").unwrap_err().contains("base64url"));
        assert!(settings(b"AAMAAA").unwrap_err().contains("4 bytes"));
        // ENABLE_PUSH 2
        assert!(settings(b"AAIAAAAC").unwrap_err().contains("0x2"));
        // MAX_FRAME_SIZE 100
        assert!(settings(b"AAUAAABk").unwrap_err().contains("0x5"));
        // An unknown one is let through.
        assert!(settings(b"AP8AAABk").is_ok());
    }

    #[test]
    fn the_request_goes_on_stream_1_without_hop_by_hop_fields() {
        let fields = [
            field("Host", b"example.com"),
            field("Connection", b"Upgrade, HTTP2-Settings, X-Hop"),
            field("Upgrade", b"h2c"),
            field("HTTP2-Settings", b""),
            field("X-Hop", b"1"),
            field("TE", b"trailers"),
            field("Accept", b"*/*"),
        ];
        let f = request_frames(b"GET", b"/a?b", &fields).unwrap();
        assert_eq!(
            &f[..9],
            [
                0,
                0,
                (f.len() - 9) as u8,
                HEADERS,
                END_STREAM | END_HEADERS,
                0,
                0,
                0,
                1
            ]
        );
        let block = &f[9..];
        let mut want = Vec::new();
        hpack_literal(&mut want, b":method", b"GET");
        hpack_literal(&mut want, b":scheme", b"http");
        hpack_literal(&mut want, b":path", b"/a?b");
        hpack_literal(&mut want, b":authority", b"example.com");
        hpack_literal(&mut want, b"te", b"trailers");
        hpack_literal(&mut want, b"accept", b"*/*");
        assert_eq!(block, want);
        assert!(request_frames(b"GET", b"http://x/", &fields).is_none());
        assert!(request_frames(b"OPTIONS", b"*", &fields).is_none());
    }

    #[test]
    fn a_large_block_takes_continuations() {
        let big = vec![b'a'; 20000];
        let fields = [field("Host", b"h"), field("X-Big", &big)];
        let f = request_frames(b"GET", b"/", &fields).unwrap();
        assert_eq!(&f[3..5], [HEADERS, END_STREAM]);
        let next = 9 + MAX_FRAME;
        assert_eq!(
            &f[next + 3..next + 9],
            [CONTINUATION, END_HEADERS, 0, 0, 0, 1]
        );
    }

    #[test]
    fn the_first_settings_get_the_upgrade_ones_in_front() {
        let mut input = PREFACE.to_vec();
        frame_head(&mut input, 6, SETTINGS, 0, 0);
        input.extend_from_slice(&[0, 4, 0, 0, 0, 9]);
        assert_eq!(needed(&input[..30]), Some(33));
        assert_eq!(needed(&input[..35]), Some(39));
        assert_eq!(needed(&input), None);
        input.extend_from_slice(b"more");
        let out = rewrite(&input, &[0, 3, 0, 0, 0, 7], b"REQ");
        let mut want = PREFACE.to_vec();
        frame_head(&mut want, 12, SETTINGS, 0, 0);
        want.extend_from_slice(&[0, 3, 0, 0, 0, 7, 0, 4, 0, 0, 0, 9]);
        want.extend_from_slice(b"REQmore");
        assert_eq!(out, want);
        // Not SETTINGS first: as it came.
        let mut ping = PREFACE.to_vec();
        frame_head(&mut ping, 8, 0x6, 0, 0);
        ping.extend_from_slice(&[0; 8]);
        assert_eq!(rewrite(&ping, &[0, 3, 0, 0, 0, 7], b"REQ"), ping);
        // A frame too long to wait for.
        let mut long = PREFACE.to_vec();
        frame_head(&mut long, 1 << 20, SETTINGS, 0, 0);
        assert_eq!(needed(&long), None);
    }
}
