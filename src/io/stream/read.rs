//! Reading a Stream: `stream:read`/`readp` are served from the buffer or
//! one non-blocking `read(2)` when they can be; else the stream itself is
//! the wait the loop polls ([`Pending`]), filling the buffer through tokio's
//! readiness guard until the format is complete. A timed read reuses the
//! stream's timer ([`ReadTimer`], shared with UDP receives).

use std::cell::Cell;
use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll, Waker};

use tokio::io::unix::AsyncFdReadyGuard;
use tokio::time::Instant;

use super::{check_stream, Idle, Inner, Io, Stop, Stream};
use crate::io::fd::fail_os;
use crate::io::op::{can_suspend, cannot_suspend, deadline, timed_out};
use crate::runtime::lua::{self, ffi, lua_State};
use crate::runtime::parsers::Scan;
use crate::runtime::parsers::{self, Fmt, Input};
use crate::runtime::scheduler::{self, Commit, Pending, WaitHandle, Waiter};

/// A read that waits: its format and limit, and when it times out.
#[derive(Clone, Copy)]
pub(super) struct Reading {
    fmt: Fmt,
    limit: usize,
    deadline: Option<Instant>,
}

/// The outcome of a read that waited: what its last look found (`None` at
/// the end of input), or why it stopped; with the read's format and limit.
pub(super) struct ReadDone {
    r: Result<Option<Scan>, Stop>,
    fmt: Fmt,
    limit: usize,
}

/// A stream's read that waits: the stream itself is the wait and keeps its
/// state, so a wait allocates nothing (one per request on a keep-alive
/// connection).
impl Pending for Inner {
    fn started(&self, w: Waiter, h: WaitHandle) {
        self.rd.started(w, h);
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        match self.reading.get() {
            Some(reading) => self.poll_read(reading, cx),
            None => Poll::Ready(()),
        }
    }

    unsafe fn push(&self, t: *mut lua_State) -> c_int {
        // SAFETY: `t` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            self.rd.end();
            let done = self.read_done.take();
            let Some(ReadDone { r, fmt, limit }) =
                done.filter(|_| self.io.borrow().is_some() || self.ended.get())
            else {
                return lua::fail(t, "closed");
            };
            match r {
                Ok(scan) => {
                    let eof = self.eof.get();
                    let mut input = self.input.borrow_mut();
                    let n = match scan {
                        Some(scan) => fmt.finish(t, &mut input, scan, eof, limit, "closed"),
                        None => fmt.finish_now(t, &mut input, eof, limit, "closed"),
                    };
                    drop(input);
                    if eof {
                        // The end closes the stream (the read's values are
                        // pushed already).
                        self.end_input();
                    }
                    n
                }
                Err(Stop::Timeout) => lua::fail(t, "timeout"),
                Err(Stop::Error(e)) => fail_os(t, &e),
            }
        }
    }
}

/// `read(2)` into `buf`; a reset connection reads as the end of input.
pub(crate) fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut _, buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ECONNRESET) => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// Fill `input` from a descriptor the loop watches, through its readiness
/// guard. A read that returns less than it had room for drained the
/// socket: the readiness is cleared then, so the next read waits for the
/// kernel's next event instead of asking it first and getting `EAGAIN`
/// (tokio keeps a newer event: `clear_ready` only drops what the guard saw).
/// `WouldBlock` when there was nothing to read. `cleared` tells whether
/// the readiness is cleared now.
///
/// A TLS stream reads through its session: a short read of plaintext says
/// nothing of the socket, whose readiness is cleared only when it has
/// nothing left (`WouldBlock`).
fn fill_guarded(
    guard: &mut AsyncFdReadyGuard<'_, OwnedFd>,
    io: &Io,
    input: &mut Input,
    cleared: &Cell<bool>,
) -> io::Result<usize> {
    let mut drained = false;
    let r = guard.try_io(|a| {
        input.fill(|buf| match io {
            Io::Tls(t) => t.read(buf),
            _ => {
                let n = read_fd(a.as_raw_fd(), buf)?;
                drained = n > 0 && n < buf.len();
                Ok(n)
            }
        })
    });
    match r {
        Err(_would_block) => {
            cleared.set(true);
            Err(io::ErrorKind::WouldBlock.into())
        }
        Ok(r) => {
            if drained {
                guard.clear_ready();
            }
            cleared.set(drained);
            r
        }
    }
}

/// Fill `input` without waiting: `WouldBlock` when the loop has seen no
/// readiness since the socket was last drained (no `read(2)` is made then).
fn fill_now(io: &Io, input: &mut Input, cleared: &Cell<bool>) -> io::Result<usize> {
    match io.watched() {
        None => input.fill(|buf| read_fd(io.raw(), buf)),
        Some(_) if io.holds_input() => input.fill(|buf| io.read_held(buf)),
        Some(a) => {
            let mut cx = Context::from_waker(Waker::noop());
            match a.poll_read_ready(&mut cx) {
                Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                Poll::Ready(Err(e)) => Err(e),
                Poll::Ready(Ok(mut guard)) => fill_guarded(&mut guard, io, input, cleared),
            }
        }
    }
}

/// stream:read([fmt, ...]) -> data | nil, err
pub(super) unsafe extern "C-unwind" fn stream_read(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_stream(l);
        let fmt = parsers::check_format(l, 2);
        read(l, s, fmt)
    }
}

/// stream:readp(parser, ...) -> data | nil, err: `read` with a
/// `parsers.lookup` value (for `parsers.newreader`).
pub(super) unsafe extern "C-unwind" fn stream_readp(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_stream(l);
        lua::check_any(l, 2);
        let fmt = parsers::check_format(l, 2);
        read(l, s, fmt)
    }
}

/// Read `fmt` from `s`: at once when the buffer or the kernel has it, else
/// suspend until it is complete (`'busy'` to another reader meanwhile).
pub(crate) unsafe fn read(l: *mut lua_State, s: &Stream, fmt: Fmt) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let inner = &s.0;
        if inner.idle.get() == Idle::Waiting && !inner.rd.is_active() {
            inner.idle.set(Idle::Busy);
        }
        read_any(l, s, fmt)
    }
}

/// [`read`] and [`read_idle`].
pub(super) unsafe fn read_any(l: *mut lua_State, s: &Stream, fmt: Fmt) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let inner = &s.0;
        if inner.rd.is_active() {
            return lua::fail(l, "busy");
        }
        let limit = inner.limit.get();
        let Some(io) = inner.io() else {
            if inner.ended.get() && !inner.input.borrow().is_empty() {
                // What came before the end is still read.
                let mut input = inner.input.borrow_mut();
                let r = lua::push_protected(l, &mut |l| {
                    fmt.finish_now(l, &mut input, true, limit, "closed")
                });
                drop(input);
                return match r {
                    Some(n) => n,
                    None => ffi::lua_error(l),
                };
            }
            return lua::fail(l, "closed");
        };
        // Serve what is possible now: buffered input, then what the kernel has.
        loop {
            let mut input = inner.input.borrow_mut();
            let eof = inner.eof.get();
            if let Some(scan) = fmt.look(&input, eof, limit) {
                // A push refused under a memory cap raises once the input
                // is given back: raised in the middle, it left the input
                // borrowed and the stream's next read panicked.
                let r = lua::push_protected(l, &mut |l| {
                    fmt.finish(l, &mut input, scan, eof, limit, "closed")
                });
                let Some(n) = r else {
                    drop((input, io));
                    ffi::lua_error(l)
                };
                if eof {
                    drop((input, io));
                    inner.end_input();
                }
                return n;
            }
            // After a drain, wait at once: the wait's first look at the
            // readiness finds any event that came since. (A read that cannot
            // suspend still asks now.)
            if inner.drained.get() && can_suspend(l) {
                break;
            }
            match fill_now(&io, &mut input, &inner.drained) {
                Ok(0) => inner.eof.set(true),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    drop(input);
                    drop(io);
                    return fail_os(l, &e);
                }
            }
        }
        if !can_suspend(l) {
            drop(io);
            cannot_suspend(l);
        }
        drop(io);
        inner.reading.set(Some(Reading {
            fmt,
            limit,
            deadline: deadline(inner.timeout.get()),
        }));
        scheduler::get().prepare(Commit::Wait(inner.clone()));
        crate::runtime::scheduler::suspend(l)
    }
}

impl Inner {
    /// Poll the read that waits: fill the input as the descriptor becomes
    /// readable until the format can finish, the input ends, it fails or
    /// times out. The outcome waits in `read_done`.
    fn poll_read(&self, reading: Reading, cx: &mut Context<'_>) -> Poll<()> {
        let Reading {
            fmt,
            limit,
            deadline,
        } = reading;
        let io = self.io.borrow();
        // What the last look found (`None` at the end of input: look again
        // then, with `eof` set).
        let r = match io.as_deref().map(|io| (io, io.watched())) {
            // Direct descriptors never make a read wait.
            Some((_, None)) => Ok(None),
            Some((io, Some(a))) => loop {
                let filled = if io.holds_input() {
                    // Decrypted already: the socket may have nothing more.
                    self.input.borrow_mut().fill(|buf| io.read_held(buf))
                } else {
                    // The reader's own waker slot: no waiter list to join
                    // and leave, as `readable()` has (one reader at a time).
                    let mut guard = match a.poll_read_ready(cx) {
                        Poll::Ready(Ok(guard)) => guard,
                        Poll::Ready(Err(e)) => break Err(Stop::Error(e)),
                        Poll::Pending if timed_out(&self.read_timer, deadline, cx) => {
                            break Err(Stop::Timeout)
                        }
                        Poll::Pending => return Poll::Pending,
                    };
                    fill_guarded(&mut guard, io, &mut self.input.borrow_mut(), &self.drained)
                };
                match filled {
                    Ok(0) => {
                        self.eof.set(true);
                        break Ok(None);
                    }
                    Ok(_) => {
                        if let Some(scan) = fmt.look(&self.input.borrow(), false, limit) {
                            break Ok(Some(scan));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => break Err(Stop::Error(e)),
                }
            },
            // Closed (which ends the wait before it is polled again).
            None => return Poll::Ready(()),
        };
        drop(io);
        self.reading.set(None);
        self.read_done.set(Some(ReadDone { r, fmt, limit }));
        Poll::Ready(())
    }
}
