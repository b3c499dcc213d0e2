//! WebSocket frames (RFC 6455 5.2): a frame's head read and checked from
//! its first bytes, frames built, payloads (un)masked, and the read format
//! `'WebSocketFrame'` that `lua/lem/websocket.lua` reads them with.

use std::ffi::c_int;

use super::utf8_tail;
use crate::runtime::lua::{self, ffi, lua_State};
use crate::runtime::parsers::{Format, Scan};

/// The read error for a frame past the limit (the Lua half closes 1009).
pub const TOO_LARGE: &str = "websocket frame too large";

/// XOR `data` in place with the mask key, the key's byte `i % 4` for
/// byte `i`.
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let k = key128(key);
    let mut chunks = data.chunks_exact_mut(16);
    for c in &mut chunks {
        let v = u128::from_ne_bytes((&*c).try_into().unwrap_or_default()) ^ k;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// The mask key repeated over 16 bytes (a payload's 16-byte chunks start
/// at multiples of 4, where the key starts again).
fn key128(key: [u8; 4]) -> u128 {
    let k = u32::from_ne_bytes(key) as u128;
    k | k << 32 | k << 64 | k << 96
}

/// Every byte of a u128 with only its top bit set.
const HIGH: u128 = u128::from_ne_bytes([0x80; 16]);

/// Whether every byte of `c` is ASCII.
pub fn all_ascii(c: &[u8]) -> bool {
    let mut acc = 0u128;
    let mut chunks = c.chunks_exact(16);
    for w in &mut chunks {
        acc |= u128::from_ne_bytes(w.try_into().unwrap_or_default());
    }
    acc & HIGH == 0 && chunks.remainder().iter().all(|b| b.is_ascii())
}

/// Copy `src` into the start of `dst` unmasked with `key` (as
/// [`apply_mask`]) in one pass, 16 bytes at a time; the bytes written, and
/// whether they are all ASCII (found in the same pass). `dst` needs no
/// zeroing first.
pub fn unmask_into<'a>(
    src: &[u8],
    dst: &'a mut [std::mem::MaybeUninit<u8>],
    key: [u8; 4],
) -> (&'a mut [u8], bool) {
    let n = src.len();
    let dst = &mut dst[..n];
    let out = dst.as_mut_ptr() as *mut u8;
    // Byte arrays of 16, which the compiler turns into SSE registers (a
    // u128 is two 64-bit halves to it).
    let k = key128(key).to_ne_bytes();
    let mut acc = [0u8; 16];
    let mut inp = src.chunks_exact(16);
    for (at, w) in (&mut inp).enumerate() {
        let mut v = [0u8; 16];
        for j in 0..16 {
            v[j] = w[j] ^ k[j];
            acc[j] |= v[j];
        }
        // SAFETY: chunk `at` of `src` is bytes 16 * at .. 16 * at + 16,
        // within the `n` bytes of `dst`; an unaligned write needs no
        // alignment.
        unsafe { out.add(16 * at).cast::<[u8; 16]>().write_unaligned(v) };
    }
    let done = n - inp.remainder().len();
    let mut tail = 0u8;
    for (i, b) in inp.remainder().iter().enumerate() {
        // The remainder starts at a multiple of 16: the key starts again.
        let b = b ^ key[i % 4];
        tail |= b;
        // SAFETY: `done + i` is below `n`, the length of `dst`.
        unsafe { out.add(done + i).write(b) };
    }
    // SAFETY: every byte of `dst` (`n` bytes) was written just above.
    let out = unsafe { std::slice::from_raw_parts_mut(out, n) };
    (out, acc.iter().fold(tail, |a, b| a | b) < 0x80)
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
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            // Scanned whole just before: the head is there and complete.
            let Ok(Some(h)) = scan_head(input, usize::MAX) else {
                return lua::fail(l, "websocket frame lost");
            };
            ffi::lua_pushboolean(l, h.fin as c_int);
            ffi::lua_pushinteger(l, h.rsv as _);
            ffi::lua_pushinteger(l, h.opcode as _);
            ffi::lua_pushboolean(l, h.mask.is_some() as c_int);
            let body = &input[h.len..];
            let text = h.opcode <= 1;
            // A text payload found all ASCII while unmasking needs no
            // decoding.
            let check =
                |v: &[u8], ascii: bool| text.then(|| if ascii { Some(0) } else { utf8_tail(v) });
            let tail = match h.mask {
                // Small payloads are unmasked on the stack (not zeroed
                // first: that was a fifth of an echo's work): no allocation
                // besides the Lua string.
                Some(k) if body.len() <= SMALL => {
                    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); SMALL];
                    let (v, ascii) = unmask_into(body, &mut buf, k);
                    lua::push_bytes(l, v);
                    check(v, ascii)
                }
                Some(k) => {
                    let mut buf = Vec::with_capacity(body.len());
                    let (v, ascii) = unmask_into(body, buf.spare_capacity_mut(), k);
                    lua::push_bytes(l, v);
                    check(v, ascii)
                }
                None => {
                    lua::push_bytes(l, body);
                    check(body, false)
                }
            };
            match tail {
                None => ffi::lua_pushnil(l),
                Some(None) => ffi::lua_pushboolean(l, 0),
                Some(Some(n)) => ffi::lua_pushinteger(l, n as _),
            }
            6
        }
    }
    fn limit_error(&self) -> &'static str {
        TOO_LARGE
    }
}

pub(super) static FRAME: Frame = Frame;

/// Payloads up to this size are unmasked in a stack buffer.
const SMALL: usize = 4096;

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
            // Unmasked in one pass as the read format does: the same bytes,
            // and ASCII exactly when they are.
            let mut buf = Vec::with_capacity(body.len());
            let (v, ascii) = unmask_into(&frame[h.len..], buf.spare_capacity_mut(), k);
            assert_eq!(v, &body[..]);
            assert_eq!(ascii, body.is_ascii());
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
    fn unmasked_in_one_pass() {
        let key = [0x81, 0x02, 0xf3, 0x44];
        for n in 0..300usize {
            for high in [None, Some(0), Some(n / 2), Some(n.saturating_sub(1))] {
                let mut p: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
                if let Some(at) = high.filter(|&at| at < n) {
                    p[at] = 0xc3;
                }
                let mut masked = p.clone();
                apply_mask(&mut masked, key);
                let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 300];
                let (v, ascii) = unmask_into(&masked, &mut buf, key);
                assert_eq!(v, &p[..], "length {n}");
                assert_eq!(ascii, p.is_ascii(), "length {n}, high byte at {high:?}");
                assert_eq!(all_ascii(&p), p.is_ascii());
            }
        }
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
}
