//! permessage-deflate (RFC 7692) for `lua/lem/websocket.lua`: the
//! `Deflate` state of one WebSocket (`core.deflate`), which compresses the
//! messages it sends and decompresses those it receives, within the
//! message limit.

use std::cell::RefCell;
use std::ffi::c_int;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::runtime::lua::{self, ffi, lua_State, Reg};

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
pub(super) unsafe extern "C-unwind" fn l_deflate(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let reset_out = ffi::lua_toboolean(l, 1) != 0;
        let reset_in = ffi::lua_toboolean(l, 2) != 0;
        lua::push_object(l, DEFLATE, Deflate::new(reset_out, reset_in));
        1
    }
}

/// d:compress(data) -> bytes
unsafe extern "C-unwind" fn deflate_compress(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d: &Deflate = lua::check_object(l, 1, DEFLATE);
        let data = lua::check_bytes(l, 2);
        let out = d.deflate(data);
        lua::push_bytes(l, &out);
        1
    }
}

/// d:decompress(data, fin, max) -> bytes | nil, 'too large' | nil, 'corrupt'
unsafe extern "C-unwind" fn deflate_decompress(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d: &Deflate = lua::check_object(l, 1, DEFLATE);
        let data = lua::check_bytes(l, 2);
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
}

const DEFLATE_METHODS: &[Reg] = &[
    (c"compress", deflate_compress),
    (c"decompress", deflate_decompress),
];

/// Make the class of Deflate states (before any `core.deflate`).
pub(super) unsafe fn register(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::new_class(l, DEFLATE, DEFLATE_METHODS, Some(lua::gc::<Deflate>));
        ffi::lua_pop(l, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
