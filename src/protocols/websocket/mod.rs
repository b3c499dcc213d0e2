//! `lem.websocket.core`: the byte-level half of RFC 6455 for
//! `lua/lem/websocket.lua` (the handshakes, the closing handshake, the
//! joining of fragments and the message limit are there).
//!
//! Frames are read with the read format `'WebSocketFrame'` on the lem
//! Stream, like the HTTP heads: [`scan_frame`] looks at the head only and
//! refuses, from the head and before any byte of the payload is buffered,
//! reserved opcodes, bad control frames, 64-bit lengths with the top bit
//! set, and a frame larger than the stream's limit (the Lua half sets it
//! from `max_message`). The payload is unmasked as it is pushed. The
//! accept key uses the `sha1` and `base64` crates.

use std::cell::RefCell;
use std::ffi::c_int;

use base64::Engine as _;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use sha1::{Digest, Sha1};

use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::parsers::{self, Format, Scan};

/// RFC 6455 1.3: appended to the client's key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The read error for a frame past the limit (the Lua half closes 1009).
pub const TOO_LARGE: &str = "websocket frame too large";

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

/// XOR `data` in place with the mask key, the key's byte `i % 4` for
/// byte `i`.
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let k = u32::from_ne_bytes(key);
    let k64 = (k as u64) | ((k as u64) << 32);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ k64;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// A frame head: what the bytes before the payload say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub fin: bool,
    /// RSV1-3 as bits 2..0 (RSV1 is 4).
    pub rsv: u8,
    pub opcode: u8,
    /// The mask key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Bytes of the head (2 to 14).
    pub len: usize,
    /// Bytes of the payload.
    pub payload: u64,
}

/// Parse the head at the start of `input`: `Ok(None)` when incomplete;
/// refused (with the read error) for what no frame may be, whatever the
/// role: a reserved opcode, a fragmented or long control frame, a 64-bit
/// length with its top bit set, a frame past `limit` bytes in all.
pub fn scan_head(input: &[u8], limit: usize) -> Result<Option<Head>, &'static str> {
    let [b0, b1, ..] = *input else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    match opcode {
        0..=2 | 8..=10 => {}
        _ => return Err("websocket frame with a reserved opcode"),
    }
    if opcode >= 8 {
        if !fin {
            return Err("websocket control frame fragmented");
        }
        if len7 > 125 {
            return Err("websocket control frame longer than 125 bytes");
        }
    }
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let len = 2 + ext + if masked { 4 } else { 0 };
    if input.len() < len {
        return Ok(None);
    }
    let payload = match ext {
        2 => u16::from_be_bytes([input[2], input[3]]) as u64,
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&input[2..10]);
            let n = u64::from_be_bytes(b);
            if n >> 63 != 0 {
                return Err("websocket frame length with the top bit set");
            }
            n
        }
        _ => len7 as u64,
    };
    if payload.saturating_add(len as u64) > limit as u64 {
        return Err(TOO_LARGE);
    }
    let mask = masked.then(|| {
        let m = &input[2 + ext..len];
        [m[0], m[1], m[2], m[3]]
    });
    Ok(Some(Head {
        fin,
        rsv: (b0 >> 4) & 7,
        opcode,
        mask,
        len,
        payload,
    }))
}

/// Where the frame at the start of `input` ends, `Ok(None)` if incomplete.
pub fn scan_frame(input: &[u8], limit: usize) -> Result<Option<(Head, usize)>, &'static str> {
    Ok(match scan_head(input, limit)? {
        Some(h) if (input.len() - h.len) as u64 >= h.payload => {
            let end = h.len + h.payload as usize;
            Some((h, end))
        }
        _ => None,
    })
}

/// Build a frame: head, mask key if any, (masked) payload.
pub fn build(opcode: u8, fin: bool, rsv: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push((fin as u8) << 7 | (rsv & 7) << 4 | (opcode & 0x0f));
    let m = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 {
        out.push(m | n as u8);
    } else if n <= 0xffff {
        out.push(m | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = mask {
        apply_mask(&mut out[start..], k);
    }
    out
}

/// Check `data` as UTF-8: `Some(n)` when valid but for `n` (0-3) bytes at
/// the end that begin a character not finished yet; `None` when invalid.
pub fn utf8_tail(data: &[u8]) -> Option<usize> {
    match std::str::from_utf8(data) {
        Ok(_) => Some(0),
        Err(e) if e.error_len().is_none() => Some(data.len() - e.valid_up_to()),
        Err(_) => None,
    }
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

/// `read('WebSocketFrame')` -> fin, rsv, opcode, masked, payload, utf8
/// where utf8 (text and continuation frames only, else nil) is the number
/// of bytes of an unfinished character at the payload's end, or false if
/// the payload is not UTF-8.
pub struct Frame;

impl Format for Frame {
    fn scan(&self, input: &[u8], eof: bool) -> Scan {
        self.scan_within(input, eof, usize::MAX)
    }
    fn scan_within(&self, input: &[u8], _eof: bool, limit: usize) -> Scan {
        match scan_frame(input, limit) {
            Ok(Some((h, end))) => Scan::Ready {
                consume: end,
                mark: h.len,
            },
            Ok(None) => Scan::Need,
            Err(e) => Scan::Invalid(e),
        }
    }
    unsafe fn push(&self, l: *mut lua_State, input: &[u8], _mark: usize) -> c_int {
        // Scanned whole just before: the head is there and complete.
        let Ok(Some(h)) = scan_head(input, usize::MAX) else {
            return lua::fail(l, "websocket frame lost");
        };
        ffi::lua_pushboolean(l, h.fin as c_int);
        ffi::lua_pushinteger(l, h.rsv as _);
        ffi::lua_pushinteger(l, h.opcode as _);
        ffi::lua_pushboolean(l, h.mask.is_some() as c_int);
        let body = &input[h.len..];
        let tail = match h.mask {
            // Small payloads are unmasked on the stack: no allocation
            // besides the Lua string.
            Some(k) if body.len() <= SMALL => {
                let mut buf = [0u8; SMALL];
                let v = &mut buf[..body.len()];
                v.copy_from_slice(body);
                apply_mask(v, k);
                lua::push_bytes(l, v);
                (h.opcode <= 1).then(|| utf8_tail(v))
            }
            Some(k) => {
                let mut v = body.to_vec();
                apply_mask(&mut v, k);
                lua::push_bytes(l, &v);
                (h.opcode <= 1).then(|| utf8_tail(&v))
            }
            None => {
                lua::push_bytes(l, body);
                (h.opcode <= 1).then(|| utf8_tail(body))
            }
        };
        match tail {
            None => ffi::lua_pushnil(l),
            Some(None) => ffi::lua_pushboolean(l, 0),
            Some(Some(n)) => ffi::lua_pushinteger(l, n as _),
        }
        6
    }
    fn limit_error(&self) -> &'static str {
        TOO_LARGE
    }
}

static FRAME: Frame = Frame;

/// Payloads up to this size are unmasked in a stack buffer.
const SMALL: usize = 4096;

unsafe fn bytes_arg<'a>(l: *mut lua_State, arg: c_int) -> &'a [u8] {
    let mut len = 0usize;
    let p = lua::check_lstring(l, arg, &mut len);
    std::slice::from_raw_parts(p as *const u8, len)
}

/// core.accept_key(key) -> accept | nil (not the base64 of 16 bytes)
unsafe extern "C-unwind" fn l_accept_key(l: *mut lua_State) -> c_int {
    let k = bytes_arg(l, 1);
    if !valid_key(k) {
        ffi::lua_pushnil(l);
        return 1;
    }
    lua::push_str(l, &accept_key(k));
    1
}

/// core.new_key() -> a fresh Sec-WebSocket-Key
unsafe extern "C-unwind" fn l_new_key(l: *mut lua_State) -> c_int {
    let k: [u8; 16] = random();
    lua::push_str(l, &base64::engine::general_purpose::STANDARD.encode(k));
    1
}

/// core.frame(opcode, fin, data, masked [, rsv]) -> the frame's bytes
unsafe extern "C-unwind" fn l_frame(l: *mut lua_State) -> c_int {
    let op = lua::check_integer(l, 1);
    if !(0..=15).contains(&op) {
        lua::arg_error(l, 1, c"opcode out of range");
    }
    let fin = ffi::lua_toboolean(l, 2) != 0;
    let d = bytes_arg(l, 3);
    let masked = ffi::lua_toboolean(l, 4) != 0;
    let rsv = lua::opt_integer(l, 5, 0);
    let f = build(op as u8, fin, rsv as u8, d, masked.then(random::<4>));
    lua::push_bytes(l, &f);
    1
}

/// core.head(opcode, length [, rsv]) -> the head of an unmasked final frame with
/// a payload of `length` bytes (a server sends it and the payload in one
/// write, without copying the payload into a frame)
unsafe extern "C-unwind" fn l_head(l: *mut lua_State) -> c_int {
    let op = lua::check_integer(l, 1);
    if !(0..=15).contains(&op) {
        lua::arg_error(l, 1, c"opcode out of range");
    }
    let n = lua::check_integer(l, 2);
    if n < 0 {
        lua::arg_error(l, 2, c"negative length");
    }
    let rsv = lua::opt_integer(l, 3, 0) as u8 & 7;
    let mut h = [0u8; 10];
    h[0] = 0x80 | rsv << 4 | op as u8;
    let len = if n < 126 {
        h[1] = n as u8;
        2
    } else if n <= 0xffff {
        h[1] = 126;
        h[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(n as u64).to_be_bytes());
        10
    };
    lua::push_bytes(l, &h[..len]);
    1
}

/// core.utf8(data) -> n (bytes of an unfinished character at the end) |
/// false (invalid)
unsafe extern "C-unwind" fn l_utf8(l: *mut lua_State) -> c_int {
    match utf8_tail(bytes_arg(l, 1)) {
        Some(n) => ffi::lua_pushinteger(l, n as _),
        None => ffi::lua_pushboolean(l, 0),
    }
    1
}

/// core.close_payload([code [, reason]]) -> bytes of a close frame's body
unsafe extern "C-unwind" fn l_close_payload(l: *mut lua_State) -> c_int {
    if lua::is_none_or_nil(l, 1) {
        lua::push_bytes(l, b"");
        return 1;
    }
    let code = lua::check_integer(l, 1);
    let reason = if lua::is_none_or_nil(l, 2) {
        &[][..]
    } else {
        bytes_arg(l, 2)
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

/// core.parse_close(payload) -> code, reason (1005 and '' when empty) |
/// nil, close code to answer with (1002 bad code or length, 1007 reason
/// not UTF-8)
unsafe extern "C-unwind" fn l_parse_close(l: *mut lua_State) -> c_int {
    let p = bytes_arg(l, 1);
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

/// The state of permessage-deflate (RFC 7692) on one WebSocket: a raw
/// deflate stream each way, window 15. Memory per connection is the two
/// streams' (about 300 KiB while they live; a WebSocket without the
/// extension has none).
pub struct Deflate {
    comp: RefCell<Compress>,
    decomp: RefCell<Decompress>,
    /// No context takeover for what we send: a fresh compressor per message.
    reset_out: bool,
    /// The same for what the peer sends.
    reset_in: bool,
}

const DEFLATE: &std::ffi::CStr = c"lem.websocket.Deflate";

/// Why [`Deflate::inflate`] failed.
#[derive(Debug, PartialEq, Eq)]
pub enum InflateError {
    /// Past the message limit: nothing more was decompressed.
    TooLarge,
    /// Not a deflate stream.
    Corrupt,
}

/// The tail RFC 7692 7.2.1 strips from every compressed message.
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

impl Deflate {
    pub fn new(reset_out: bool, reset_in: bool) -> Deflate {
        Deflate {
            comp: RefCell::new(Compress::new(Compression::fast(), false)),
            decomp: RefCell::new(Decompress::new(false)),
            reset_out,
            reset_in,
        }
    }

    /// One message compressed (sync flush, the empty block's tail cut).
    pub fn deflate(&self, data: &[u8]) -> Vec<u8> {
        let mut c = self.comp.borrow_mut();
        // Room for the worst case (stored blocks) from the start: with
        // little room left, the compressor may stop a flush short of its
        // end with some of the buffer free (seen with stored blocks), and
        // nothing would tell the loop below that more is to come.
        let room = |n: usize| n + n / 8 + 1024;
        let mut out = Vec::with_capacity(room(data.len()));
        let mut input = data;
        loop {
            if out.capacity() - out.len() < room(input.len()) {
                out.reserve(room(input.len()));
            }
            let before = c.total_in();
            // Errors are impossible on a compressor fed plain bytes.
            let _ = c.compress_vec(input, &mut out, FlushCompress::Sync);
            input = &input[(c.total_in() - before) as usize..];
            if input.is_empty() && out.capacity() - out.len() >= 1024 {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - 4);
        }
        if self.reset_out {
            c.reset();
        }
        out
    }

    /// Decompress `data`, the next piece of a message (`fin`: its last),
    /// into at most `max` bytes.
    pub fn inflate(&self, data: &[u8], fin: bool, max: usize) -> Result<Vec<u8>, InflateError> {
        let mut d = self.decomp.borrow_mut();
        let mut out = Vec::new();
        let r = inflate_into(&mut d, data, &mut out, max).and_then(|()| {
            if fin {
                inflate_into(&mut d, &TAIL, &mut out, max)
            } else {
                Ok(())
            }
        });
        if r.is_err() || (fin && self.reset_in) {
            d.reset(false);
        }
        r.map(|()| out)
    }
}

fn inflate_into(
    d: &mut Decompress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), InflateError> {
    loop {
        if out.len() == out.capacity() {
            if out.len() >= max.saturating_add(1) {
                return Err(InflateError::TooLarge);
            }
            let room = out.len().max(16 << 10).min(max + 1 - out.len());
            out.reserve_exact(room);
        }
        let (bi, bo) = (d.total_in(), d.total_out());
        let st = d
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|_| InflateError::Corrupt)?;
        input = &input[(d.total_in() - bi) as usize..];
        if out.len() > max {
            return Err(InflateError::TooLarge);
        }
        let progress = d.total_in() != bi || d.total_out() != bo;
        if st == Status::StreamEnd {
            // A final block: the peer's compressor ended its stream, which
            // no later message could continue.
            return if input.is_empty() {
                Ok(())
            } else {
                Err(InflateError::Corrupt)
            };
        }
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(());
        }
        if !progress && out.len() < out.capacity() {
            return Err(InflateError::Corrupt);
        }
    }
}

/// core.deflate(reset_out, reset_in) -> a Deflate state
unsafe extern "C-unwind" fn l_deflate(l: *mut lua_State) -> c_int {
    let reset_out = ffi::lua_toboolean(l, 1) != 0;
    let reset_in = ffi::lua_toboolean(l, 2) != 0;
    lua::push_object(l, DEFLATE, Deflate::new(reset_out, reset_in));
    1
}

/// d:compress(data) -> bytes
unsafe extern "C-unwind" fn deflate_compress(l: *mut lua_State) -> c_int {
    let d: &Deflate = lua::check_object(l, 1, DEFLATE);
    let data = bytes_arg(l, 2);
    let out = d.deflate(data);
    lua::push_bytes(l, &out);
    1
}

/// d:decompress(data, fin, max) -> bytes | nil, 'too large' | nil, 'corrupt'
unsafe extern "C-unwind" fn deflate_decompress(l: *mut lua_State) -> c_int {
    let d: &Deflate = lua::check_object(l, 1, DEFLATE);
    let data = bytes_arg(l, 2);
    let fin = ffi::lua_toboolean(l, 3) != 0;
    let max = lua::check_integer(l, 4).max(0) as usize;
    match d.inflate(data, fin, max) {
        Ok(v) => {
            lua::push_bytes(l, &v);
            1
        }
        Err(InflateError::TooLarge) => lua::fail(l, "too large"),
        Err(InflateError::Corrupt) => lua::fail(l, "corrupt"),
    }
}

const DEFLATE_METHODS: &[Reg] = &[
    (c"compress", deflate_compress),
    (c"decompress", deflate_decompress),
];

const FUNCS: &[Reg] = &[
    (c"accept_key", l_accept_key),
    (c"new_key", l_new_key),
    (c"frame", l_frame),
    (c"head", l_head),
    (c"utf8", l_utf8),
    (c"close_payload", l_close_payload),
    (c"parse_close", l_parse_close),
    (c"deflate", l_deflate),
];

/// `require 'lem.websocket.core'`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    parsers::register(l, c"WebSocketFrame", &FRAME);
    lua::new_class(l, DEFLATE, DEFLATE_METHODS, Some(lua::gc::<Deflate>));
    ffi::lua_pop(l, 1);
    lua::new_lib(l, FUNCS);
    1
}

/// The fuzz entry point: scanning never panics, a frame it accepts is
/// accepted from its own bytes and refused as incomplete from any
/// shorter prefix, and a limit below its size refuses it from the head.
pub fn fuzz_frame(data: &[u8]) {
    let mut at = 0;
    while let Ok(Some((h, end))) = scan_frame(&data[at..], usize::MAX) {
        let frame = &data[at..at + end];
        assert!(end >= h.len && end <= data.len() - at);
        for cut in [0, h.len.saturating_sub(1), end / 2, end.saturating_sub(1)] {
            if cut < end {
                assert!(matches!(scan_frame(&frame[..cut], usize::MAX), Ok(None)));
            }
        }
        if end > 0 {
            assert_eq!(scan_head(frame, end - 1), Err(TOO_LARGE));
        }
        let mut body = frame[h.len..].to_vec();
        if let Some(k) = h.mask {
            apply_mask(&mut body, k);
        }
        let again = build(h.opcode, h.fin, h.rsv, &body, h.mask);
        let (h2, end2) = scan_frame(&again, usize::MAX).unwrap().unwrap();
        assert_eq!(
            (h2.fin, h2.rsv, h2.opcode, h2.mask, h2.payload),
            (h.fin, h.rsv, h.opcode, h.mask, h.payload)
        );
        assert_eq!(end2, again.len());
        let _ = utf8_tail(&body);
        at += end;
        if end == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
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
    fn frames_round_trip() {
        for n in [0usize, 5, 125, 126, 65535, 65536] {
            let p: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let f = build(2, true, 0, &p, Some([1, 2, 3, 4]));
            let (h, end) = scan_frame(&f, usize::MAX).unwrap().unwrap();
            assert!(h.fin && h.mask == Some([1, 2, 3, 4]));
            assert_eq!(
                (h.rsv, h.opcode, h.payload as usize, end),
                (0, 2, n, f.len())
            );
            let mut body = f[h.len..].to_vec();
            apply_mask(&mut body, [1, 2, 3, 4]);
            assert_eq!(body, p);
            assert_eq!(scan_frame(&f[..f.len() - 1], usize::MAX), Ok(None));
            fuzz_frame(&f);
        }
        let f = build(1, false, 0, b"hi", None);
        assert_eq!(
            build(2, true, 0, &[0; 70000], None)[..10],
            [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
        assert_eq!(f, b"\x01\x02hi");
    }

    #[test]
    fn hostile_heads() {
        // 2^63 and more: refused from the head.
        let mut f = vec![0x82, 0x7f];
        f.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert!(scan_head(&f, usize::MAX).is_err());
        let mut f = vec![0x82, 0x7f];
        f.extend_from_slice(&((1u64 << 63) - 1).to_be_bytes());
        assert_eq!(scan_head(&f, 1 << 24), Err(TOO_LARGE));
        assert_eq!(
            scan_head(b"\x83\x00", 100),
            Err("websocket frame with a reserved opcode")
        );
        assert_eq!(
            scan_head(b"\x8b\x00", 100),
            Err("websocket frame with a reserved opcode")
        );
        assert_eq!(
            scan_head(b"\x09\x00", 100),
            Err("websocket control frame fragmented")
        );
        assert!(scan_head(b"\x89\x7e\x00\x80", 1000).is_err());
        assert_eq!(scan_head(b"\x81", 100), Ok(None));
        assert_eq!(scan_head(b"\x81\xfe\x01", 100), Ok(None));
    }

    #[test]
    fn utf8_fragments() {
        assert_eq!(utf8_tail(b"abc"), Some(0));
        assert_eq!(utf8_tail("é".as_bytes()), Some(0));
        assert_eq!(utf8_tail(&"€".as_bytes()[..2]), Some(2));
        assert_eq!(utf8_tail(b"\xff"), None);
        assert_eq!(utf8_tail(b"\xed\xa0\x80"), None);
        assert_eq!(utf8_tail(b"\xf4\x90"), None);
    }

    #[test]
    fn deflate_round_trip_and_limits() {
        let msg = b"Hello, hello, hello, hello! ".repeat(100);
        // One sender, one receiver, context kept across messages; a
        // message may arrive in pieces cut anywhere.
        let (tx, rx) = (Deflate::new(false, false), Deflate::new(false, false));
        for round in 0..3 {
            let z = tx.deflate(&msg);
            assert!(z.len() < msg.len() / 10);
            if round == 1 {
                let (a, b) = z.split_at(z.len() / 3);
                let mut out = rx.inflate(a, false, 1 << 20).unwrap();
                out.extend(rx.inflate(b, true, 1 << 20).unwrap());
                assert_eq!(out, msg);
            } else {
                assert_eq!(rx.inflate(&z, true, 1 << 20).unwrap(), msg);
            }
        }
        // A bomb: 16 MiB of zeros refused at a 1 MiB limit.
        let bomb = Deflate::new(false, false).deflate(&vec![0u8; 16 << 20]);
        assert_eq!(
            Deflate::new(false, false).inflate(&bomb, true, 1 << 20),
            Err(InflateError::TooLarge)
        );
        assert_eq!(
            Deflate::new(false, false).inflate(b"\xff\xff\xff\xff", true, 100),
            Err(InflateError::Corrupt)
        );
        // No context takeover: each message inflates alone.
        let r = Deflate::new(true, true);
        let z1 = r.deflate(&msg);
        let z2 = r.deflate(&msg);
        assert_eq!(z1, z2);
        assert_eq!(
            Deflate::new(false, true)
                .inflate(&z2, true, 1 << 20)
                .unwrap(),
            msg
        );
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
