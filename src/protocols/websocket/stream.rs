//! A WebSocket's frames on its stream, for `lua/lem/websocket.lua`:
//! `core.read(stream)` reads one frame (`stream:read('WebSocketFrame')`
//! without looking the format up by name), and `core.send` writes one
//! final frame while the WebSocket's writers' turn (`utils.newturn()`) says
//! nobody else is writing.
//!
//! The turn is there so that two coroutines sending on one WebSocket never
//! interleave their frames: a write that has to wait for the kernel holds
//! it until the whole frame is written. A write that the kernel takes
//! whole at once cannot be interleaved with anything (no other coroutine
//! runs during it), so `core.send` writes only when nobody holds the turn
//! or waits for it, and takes the turn only when the write has to wait (in
//! the same call: nothing ran in between); the Lua half gives it back
//! after the wait, as after `turn:take()`.

use std::ffi::c_int;

use super::frame::{build, FRAME};
use super::random;
use crate::io::stream::{self, Failure, Stream, Write, STREAM};
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::parsers::Fmt;
use crate::runtime::turn::{self, TurnObject, TURN};

/// The upvalues of both functions: the real metatables of Streams and of
/// turns, to check their arguments with one comparison each.
const STREAM_MT: c_int = ffi::lua_upvalueindex(1);
const TURN_MT: c_int = ffi::lua_upvalueindex(2);

/// core.read(stream) -> fin, rsv, opcode, masked, payload, utf8 | nil, err:
/// `stream:read('WebSocketFrame')`.
unsafe extern "C-unwind" fn l_read(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s: &Stream = lua::check_object_with(l, 1, STREAM_MT, STREAM);
        stream::read(l, s, Fmt::Custom(&FRAME))
    }
}

/// core.send(stream, turn | nil, opcode, data, masked [, rsv]): write one
/// final frame (masked with a fresh key if `masked`; unmasked, its head
/// and `data` go in one write without copying `data`).
/// - `true, nil, true` | `nil, err, true`: done without waiting; the turn
///   untouched.
/// - nothing: someone holds the turn or waits for it; nothing written.
///   The caller waits with `turn:take()` and calls again with no turn.
/// - `true` | `nil, err`: the write waited, with the turn taken (unless
///   none was given): the caller gives it back with `turn:give()`.
///
/// A failure at once (`'closed'`) is `nil, err, true`: nothing to give.
unsafe extern "C-unwind" fn l_send(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s: &Stream = lua::check_object_with(l, 1, STREAM_MT, STREAM);
        let t: Option<&TurnObject> = if lua::is_none_or_nil(l, 2) {
            None
        } else {
            Some(lua::check_object_with(l, 2, TURN_MT, TURN))
        };
        let op = lua::check_integer(l, 3);
        if !(0..=15).contains(&op) {
            lua::arg_error(l, 3, c"opcode out of range");
        }
        let data = lua::check_bytes(l, 4);
        let masked = ffi::lua_toboolean(l, 5) != 0;
        let rsv = lua::opt_integer(l, 6, 0) as u8 & 7;
        if t.is_some_and(|t| !t.is_free()) {
            return 0;
        }
        // Built before the write, and alive until it returns (what the
        // kernel does not take is copied).
        let mut head = [0u8; 10];
        let whole;
        let bufs: [&[u8]; 2] = if masked {
            whole = build(op as u8, true, rsv, data, Some(random::<4>()));
            [&whole, &[]]
        } else {
            let n = put_head(&mut head, op as u8, rsv, data.len());
            [&head[..n], data]
        };
        let w = stream::write(l, s, &bufs, Failure::Nil);
        match w {
            Write::Sent | Write::Failed(_) => {
                let n = if let Write::Failed(n) = w { n } else { 1 };
                if n == 1 {
                    ffi::lua_pushnil(l);
                }
                ffi::lua_pushboolean(l, 1);
                3
            }
            Write::Suspend => {
                // Free a moment ago, and nothing ran since: taken now, for
                // the whole wait.
                if let Some(t) = t {
                    let taken = t.take_now();
                    debug_assert!(taken, "the turn was free");
                }
                w.finish(l)
            }
            Write::Outside => w.finish(l),
        }
    }
}

/// Write the head of an unmasked final frame with a payload of `len`
/// bytes into `h`; its length.
pub(super) fn put_head(h: &mut [u8; 10], op: u8, rsv: u8, len: usize) -> usize {
    h[0] = 0x80 | (rsv & 7) << 4 | op;
    if len < 126 {
        h[1] = len as u8;
        2
    } else if len <= 0xffff {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// Add `read` and `send` to the module table on top of `l`.
///
/// # Safety
/// `l` must be a valid Lua state with the module's table on top.
pub(super) unsafe fn register(l: *mut lua_State) {
    const FUNCS: &[Reg] = &[(c"read", l_read), (c"send", l_send)];
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::luaL_checkstack(l, 4, std::ptr::null());
        turn::register(l);
        for (name, f) in FUNCS {
            stream::push_class(l);
            lua::push_metatable(l, TURN);
            ffi::lua_pushcclosure(l, *f, 2);
            ffi::lua_setfield(l, -2, name.as_ptr());
        }
    }
}
