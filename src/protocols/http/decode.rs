//! Content codings for `lua/lem/http/client.lua`: a `Decoder`
//! (`core.decoder(name)`) turns a `gzip`, `deflate` or `br` body back into
//! its bytes as pieces of it arrive. The client pushes the body's bytes in
//! and pulls decoded pieces of a bounded size out, so a small body that
//! inflates to gigabytes (a "zip bomb") never sits in memory at once: the
//! caller sees it piece by piece and may stop.
//!
//! gzip is flate2's `MultiGzDecoder` (headers, trailers and their checks,
//! several members) over an input that says `WouldBlock` when it needs
//! more; `deflate` is flate2's `Decompress`, zlib-wrapped as RFC 9110 says
//! or raw, as some servers send it (told apart by the first two bytes);
//! `br` is brotli-decompressor's stream API with the standard window (at
//! most 16 MiB of state, whatever the stream claims).

use std::cell::RefCell;
use std::ffi::c_int;
use std::io::{self, BufRead, Read};

use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
use flate2::{Decompress, FlushDecompress, Status};

use crate::runtime::lua::{self, ffi, lua_State, Reg};

const DECODER: &std::ffi::CStr = c"lem.http.Decoder";

/// The default and largest piece `pull` returns.
const PIECE: usize = 64 << 10;

/// The bytes pushed and not yet decoded.
#[derive(Default)]
struct Input {
    buf: Vec<u8>,
    pos: usize,
    /// No more will be pushed.
    eof: bool,
}

impl Input {
    fn push(&mut self, data: &[u8]) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    fn rest(&self) -> &[u8] {
        &self.buf[self.pos..]
    }
}

impl Read for Input {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.fill_buf()?.len().min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Empty only at the end; `WouldBlock` while more may come, which flate2's
/// gzip reader takes as "try again later", keeping its state.
impl BufRead for Input {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.buf.len() && !self.eof {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }
}

type Brotli = BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>;

enum Coding {
    Gzip(Box<flate2::bufread::MultiGzDecoder<Input>>),
    /// `deflate` before its first two bytes have come.
    Deflate(Input),
    /// `deflate` once known: zlib-wrapped or raw.
    Inflate(Box<Decompress>, Input),
    Brotli(Box<Brotli>, Input),
    /// The stream ended (`Ok`) or was found corrupt.
    Done(Result<(), &'static str>),
}

/// What [`Decoder::pull`] gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Pull {
    Data(Vec<u8>),
    /// Nothing more until more input is pushed.
    NeedInput,
    /// The coded stream ended.
    End,
    Corrupt(&'static str),
}

/// One body's decoding state.
pub struct Decoder(RefCell<Coding>);

impl Decoder {
    /// A decoder for the coding `name` (`gzip`, `x-gzip`, `deflate`,
    /// `br`), or None.
    pub fn new(name: &[u8]) -> Option<Decoder> {
        let c = match name.to_ascii_lowercase().as_slice() {
            b"gzip" | b"x-gzip" => Coding::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(
                Input::default(),
            ))),
            b"deflate" => Coding::Deflate(Input::default()),
            b"br" => Coding::Brotli(
                Box::new(Brotli::new_strict(
                    StandardAlloc::default(),
                    StandardAlloc::default(),
                    StandardAlloc::default(),
                )),
                Input::default(),
            ),
            _ => return None,
        };
        Some(Decoder(RefCell::new(c)))
    }

    fn input(c: &mut Coding) -> Option<&mut Input> {
        match c {
            Coding::Gzip(d) => Some(d.get_mut()),
            Coding::Deflate(i) | Coding::Inflate(_, i) | Coding::Brotli(_, i) => Some(i),
            Coding::Done(_) => None,
        }
    }

    /// More of the coded body.
    pub fn push(&self, data: &[u8]) {
        if let Some(i) = Self::input(&mut self.0.borrow_mut()) {
            i.push(data);
        }
    }

    /// The coded body is complete.
    pub fn finish(&self) {
        if let Some(i) = Self::input(&mut self.0.borrow_mut()) {
            i.eof = true;
        }
    }

    /// At most `max` (> 0) decoded bytes.
    pub fn pull(&self, max: usize) -> Pull {
        let mut c = self.0.borrow_mut();
        if let Coding::Deflate(i) = &mut *c {
            let rest = i.rest();
            if rest.len() < 2 && !i.eof {
                return Pull::NeedInput;
            }
            // A zlib header: method 8, a window of at most 32 KiB, and the
            // two bytes a multiple of 31 (RFC 1950 2.2).
            let zlib = rest.len() >= 2
                && rest[0] & 0x0f == 8
                && rest[0] >> 4 <= 7
                && (u16::from(rest[0]) << 8 | u16::from(rest[1])) % 31 == 0;
            let i = std::mem::take(i);
            *c = Coding::Inflate(Box::new(Decompress::new(zlib)), i);
        }
        let mut out = vec![0u8; max];
        // A stream found corrupt after some of it was decoded in the same
        // call gives those bytes first, then the error (`after`), so what
        // comes out does not depend on how the input arrived.
        let (r, after) = match &mut *c {
            Coding::Gzip(d) => (
                match d.read(&mut out) {
                    Ok(0) => Pull::End,
                    Ok(n) => {
                        out.truncate(n);
                        Pull::Data(out)
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Pull::NeedInput,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        Pull::Corrupt("truncated gzip data")
                    }
                    Err(_) => Pull::Corrupt("corrupt gzip data"),
                },
                None,
            ),
            Coding::Inflate(d, i) => inflate(d, i, out),
            Coding::Brotli(s, i) => unbrotli(s, i, out),
            Coding::Deflate(_) => (Pull::NeedInput, None),
            Coding::Done(Ok(())) => (Pull::End, None),
            Coding::Done(Err(e)) => (Pull::Corrupt(e), None),
        };
        match r {
            Pull::End => *c = Coding::Done(Ok(())),
            Pull::Corrupt(e) => *c = Coding::Done(Err(e)),
            _ => {
                if let Some(e) = after {
                    *c = Coding::Done(Err(e));
                }
            }
        }
        r
    }
}

/// The next piece of a deflate stream, and the error to give after it.
fn inflate(d: &mut Decompress, i: &mut Input, mut out: Vec<u8>) -> (Pull, Option<&'static str>) {
    let (bi, bo) = (d.total_in(), d.total_out());
    let st = d.decompress(i.rest(), &mut out, FlushDecompress::None);
    i.consume((d.total_in() - bi) as usize);
    let n = (d.total_out() - bo) as usize;
    out.truncate(n);
    match st {
        Err(_) if n > 0 => (Pull::Data(out), Some("corrupt deflate data")),
        Err(_) => (Pull::Corrupt("corrupt deflate data"), None),
        Ok(_) if n > 0 => (Pull::Data(out), None),
        Ok(Status::StreamEnd) => (Pull::End, None),
        Ok(_) if i.eof => (Pull::Corrupt("truncated deflate data"), None),
        Ok(_) => (Pull::NeedInput, None),
    }
}

/// The next piece of a brotli stream, and the error to give after it.
fn unbrotli(s: &mut Brotli, i: &mut Input, mut out: Vec<u8>) -> (Pull, Option<&'static str>) {
    let (mut avail_in, mut in_off) = (i.buf.len() - i.pos, i.pos);
    let (mut avail_out, mut out_off, mut total) = (out.len(), 0, 0);
    let r = BrotliDecompressStream(
        &mut avail_in,
        &mut in_off,
        &i.buf,
        &mut avail_out,
        &mut out_off,
        &mut out,
        &mut total,
        s,
    );
    i.pos = in_off;
    out.truncate(out_off);
    match r {
        BrotliResult::ResultFailure if out_off > 0 => {
            (Pull::Data(out), Some("corrupt brotli data"))
        }
        BrotliResult::ResultFailure => (Pull::Corrupt("corrupt brotli data"), None),
        _ if out_off > 0 => (Pull::Data(out), None),
        BrotliResult::ResultSuccess => (Pull::End, None),
        BrotliResult::NeedsMoreInput if i.eof => (Pull::Corrupt("truncated brotli data"), None),
        _ => (Pull::NeedInput, None),
    }
}

/// core.decoder(coding) -> Decoder | nil (a coding it does not know)
pub(super) unsafe extern "C-unwind" fn decoder(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        match Decoder::new(lua::check_bytes(l, 1)) {
            Some(d) => {
                lua::push_object(l, DECODER, d);
                1
            }
            None => 0,
        }
    }
}

/// d:push(data): more of the coded body.
unsafe extern "C-unwind" fn decoder_push(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d: &Decoder = lua::check_object(l, 1, DECODER);
        d.push(lua::check_bytes(l, 2));
        0
    }
}

/// d:finish(): the coded body is complete.
unsafe extern "C-unwind" fn decoder_finish(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d: &Decoder = lua::check_object(l, 1, DECODER);
        d.finish();
        0
    }
}

/// d:pull([max]) -> bytes | true (push more) | false (the end) | nil, err
unsafe extern "C-unwind" fn decoder_pull(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d: &Decoder = lua::check_object(l, 1, DECODER);
        let max = lua::opt_integer(l, 2, PIECE as i64).clamp(1, PIECE as i64) as usize;
        match d.pull(max) {
            Pull::Data(v) => lua::push_bytes(l, &v),
            Pull::NeedInput => ffi::lua_pushboolean(l, 1),
            Pull::End => ffi::lua_pushboolean(l, 0),
            Pull::Corrupt(e) => return lua::fail(l, e),
        }
        1
    }
}

const METHODS: &[Reg] = &[
    (c"push", decoder_push),
    (c"finish", decoder_finish),
    (c"pull", decoder_pull),
];

/// Make the class of Decoders (before any `core.decoder`).
pub(super) unsafe fn register(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::new_class(l, DECODER, METHODS, Some(lua::gc::<Decoder>));
        ffi::lua_pop(l, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Everything `d` decodes from `data` pushed in pieces of `step`.
    fn decode(name: &[u8], data: &[u8], step: usize) -> Result<Vec<u8>, &'static str> {
        let d = Decoder::new(name).unwrap();
        let mut out = Vec::new();
        let mut pieces = data.chunks(step.max(1));
        loop {
            match d.pull(1000) {
                Pull::Data(v) => {
                    assert!(v.len() <= 1000);
                    out.extend(v)
                }
                Pull::NeedInput => match pieces.next() {
                    Some(p) => d.push(p),
                    None => d.finish(),
                },
                Pull::End => return Ok(out),
                Pull::Corrupt(e) => return Err(e),
            }
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn codings_round_trip_in_any_pieces() {
        let text = b"Hello, hello, hello! 0123456789 ".repeat(500);
        let z = gzip(&text);
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zl.write_all(&text).unwrap();
        let zl = zl.finish().unwrap();
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(&text).unwrap();
        let raw = raw.finish().unwrap();
        for step in [1, 2, 7, 100, 1 << 20] {
            assert_eq!(decode(b"gzip", &z, step).unwrap(), text);
            assert_eq!(decode(b"deflate", &zl, step).unwrap(), text);
            assert_eq!(decode(b"deflate", &raw, step).unwrap(), text);
        }
        // Two gzip members are one body.
        let mut two = gzip(b"one,");
        two.extend(gzip(b"two"));
        assert_eq!(decode(b"GZIP", &two, 3).unwrap(), b"one,two");
        assert!(Decoder::new(b"compress").is_none());
    }

    #[test]
    fn brotli() {
        // "hello\n" as Debian's `brotli` 1.0.9 writes it.
        let br = [0x8f, 0x02, 0x80, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x0a, 0x03];
        for step in [1, 3, 100] {
            assert_eq!(decode(b"br", &br, step).unwrap(), b"hello\n");
        }
        assert_eq!(decode(b"br", &br[..5], 2), Err("truncated brotli data"));
        assert_eq!(
            decode(b"br", b"\xff\xff\xff\xff", 2),
            Err("corrupt brotli data")
        );
    }

    #[test]
    fn corrupt_truncated_and_bombs() {
        let z = gzip(&vec![0u8; 8 << 20]);
        assert!(z.len() < 64 << 10);
        // A bomb comes out in bounded pieces.
        let d = Decoder::new(b"gzip").unwrap();
        d.push(&z);
        d.finish();
        let mut total = 0;
        loop {
            match d.pull(PIECE) {
                Pull::Data(v) => total += v.len(),
                r => {
                    assert_eq!(r, Pull::End);
                    break;
                }
            }
        }
        assert_eq!(total, 8 << 20);
        assert_eq!(
            decode(b"gzip", &z[..z.len() - 3], 50),
            Err("truncated gzip data")
        );
        let mut bad = gzip(b"some text here");
        let n = bad.len();
        bad[n - 6] ^= 1; // the CRC
        assert_eq!(decode(b"gzip", &bad, 4), Err("corrupt gzip data"));
        assert_eq!(
            decode(b"gzip", b"not gzip at all", 4),
            Err("corrupt gzip data")
        );
        assert_eq!(
            decode(b"deflate", b"\xff\xff\xff", 1),
            Err("corrupt deflate data")
        );
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zl.write_all(b"abcdefabcdefabcdef").unwrap();
        let zl = zl.finish().unwrap();
        assert_eq!(
            decode(b"deflate", &zl[..zl.len() - 5], 1),
            Err("truncated deflate data")
        );
        assert_eq!(decode(b"deflate", b"", 1), Err("truncated deflate data"));
    }

    /// Everything `d` decodes from `data` pushed at once: the bytes and
    /// how it ended.
    fn decode_whole(name: &[u8], data: &[u8]) -> (Vec<u8>, Pull) {
        let d = Decoder::new(name).unwrap();
        d.push(data);
        d.finish();
        let mut out = Vec::new();
        loop {
            match d.pull(PIECE) {
                Pull::Data(v) => out.extend(v),
                end => return (out, end),
            }
        }
    }

    #[test]
    fn data_before_corruption_comes_first() {
        // Raw deflate that turns corrupt after 33 bytes: pushed whole, the
        // call that found the error had inflated them (and once dropped
        // them); pushed byte by byte they came out before it. Found by the
        // fuzz target http_decode.
        let raw = b"\xf3\x48\xcd\xc9\xc9\xd7\x51\xc8\x40\xa2\x14\x15\x0c\x0c\x8d\x8c\x4d\x4c\xcd\xce\x2d\x2c\x15\x3c\x46\xe5\x47\xe5\x47\xe5\x47\xe5\x87\xa9\x3c\x00";
        let (bytes, end) = decode_whole(b"deflate", raw);
        assert_eq!(end, Pull::Corrupt("corrupt deflate data"));
        assert!(
            bytes.starts_with(b"Hello, hello, hello! 0123456"),
            "{bytes:?}"
        );
        assert_eq!(bytes.len(), 33);
        assert_eq!(decode(b"deflate", raw, 1), Err("corrupt deflate data"));
    }
}
