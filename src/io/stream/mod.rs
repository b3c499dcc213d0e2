//! Stream: sockets, pipes, ttys and fifos, non-blocking on the loop (Lua
//! half: `Stream` methods added in `lua/lem/io.lua`). See docs/io.md
//! and docs/parsers.md.
//!
//! A read first works synchronously: if the buffer (or one non-blocking
//! `read(2)`) satisfies the format, the value is returned without
//! suspending. Otherwise the coroutine suspends on a loop future that waits
//! for readiness, fills the buffer and rescans until the format is complete;
//! the value is pushed when the coroutine resumes. A write tries one
//! vectored `writev(2)` of all its arguments; only what the kernel did not
//! take is copied and written from a future.
//!
//! One reader and one writer at a time: `rd`/`wr` are busy from the moment a
//! suspension is committed until the coroutine resumes. `close()` aborts
//! their futures and wakes them with `nil, 'closed'`.
//!
//! Here: the object and its state, its small methods, and how a Stream is
//! made. `transport.rs` is the descriptor under it (watched by the loop,
//! direct, or TLS); `read.rs` reads and their waits; `write.rs` writes and
//! sendfile; `idle.rs` the reads a graceful stop may cut; `stdio.rs` the
//! standard streams.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, CStr};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use super::fd::{fail_os, set_cloexec, set_nonblocking};
use super::op::{setlimit, settimeout, Op, Settings};
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::parsers::{self, Input};

mod detach;
mod idle;
mod read;
mod stdio;
mod transport;
mod write;

use crate::io::op::ReadTimer;
pub(crate) use detach::Detached;
use idle::Idle;
pub(crate) use idle::{drain_idle, read_idle};
pub(crate) use read::{read, read_fd};
use read::{stream_read, stream_readp, ReadDone, Reading};
use stdio::flush_c_stdio;
pub(crate) use stdio::{restore_stdio, stdio};
use transport::socket_kind;
pub(crate) use transport::{Io, Kind};
use write::{stream_sendfile, stream_write};
pub(crate) use write::{write, Failure, Write};

pub(crate) static STREAM: &CStr = c"lem.Stream";

/// The state of a stream, shared with the waits on it (it is the wait of
/// its reads itself).
pub(crate) struct Inner {
    /// `None` once closed. Write futures hold their own `Rc`, so the
    /// descriptor is closed when the last of them is dropped: at once, since
    /// `close` aborts the waits, which drops their futures.
    io: RefCell<Option<Rc<Io>>>,
    kind: Kind,
    input: RefCell<Input>,
    /// The peer closed (or reset) its side: no more input will come.
    eof: Cell<bool>,
    /// Closed because its input ended (LEM: a read that hits the end
    /// closes the stream): `io` is gone, but reads still get what was
    /// buffered before the end, then `'closed'`.
    ended: Cell<bool>,
    /// `io.stdin/stdout/stderr`: the standard descriptor it stands for,
    /// and whether it reads and writes through a descriptor of its own on
    /// the same pipe or terminal (see [`stdio`]).
    std: Cell<Option<(RawFd, bool)>>,
    rd: Op,
    wr: Op,
    timeout: Cell<Option<Duration>>,
    limit: Cell<usize>,
    /// The timer of timed reads, kept between them (a keep-alive
    /// connection waits with a timeout for every request).
    read_timer: Cell<Option<ReadTimer>>,
    /// The last read through the loop's readiness drained the socket and
    /// cleared the readiness: a read that finds nothing buffered then
    /// waits at once (its wait sees any event that came since), instead of
    /// first asking tokio whether one did.
    drained: Cell<bool>,
    /// The read that waits: what the loop polls for ([`Pending::poll`]).
    reading: Cell<Option<Reading>>,
    /// How the read that waited ended, for [`Pending::push`] when its
    /// coroutine resumes.
    read_done: Cell<Option<ReadDone>>,
    /// Whether the read is one a graceful stop may cut ([`read_idle`]).
    idle: Cell<Idle>,
}

/// The userdata: `lem.Stream`.
pub(crate) struct Stream(pub(crate) Rc<Inner>);

impl Inner {
    fn io(&self) -> Option<Rc<Io>> {
        self.io.borrow().clone()
    }

    /// Close: wake the waiters with `'closed'`, drop the buffer and our
    /// handle on the descriptor. Returns false if already closed (also
    /// when its input ended; what was left buffered is dropped then).
    pub(crate) fn close(&self) -> bool {
        let io = self.io.borrow_mut().take();
        if io.is_none() {
            if self.ended.replace(false) {
                self.input.borrow_mut().clear();
            }
            return false;
        }
        self.rd.cancel("closed");
        self.wr.cancel("closed");
        self.input.borrow_mut().clear();
        drop(io);
        if let Some((fd, true)) = self.std.get() {
            // The standard descriptor itself goes too, as LEM closed it
            // (the reader of stdout sees the end), but onto /dev/null
            // rather than free: the next open() must not become fd 1 and
            // receive C stdio's output.
            flush_c_stdio();
            // SAFETY: plain system calls on descriptors lem owns.
            unsafe {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
                if null >= 0 {
                    libc::dup2(null, fd);
                    libc::close(null);
                }
            }
        }
        true
    }

    /// The input ended: close the stream as LEM did (`closed()` is true, a
    /// writer waiting gets `'closed'`, the descriptor is released), but
    /// keep the buffered input for the reads to come.
    fn end_input(&self) {
        let io = self.io.borrow_mut().take();
        if io.is_none() {
            return;
        }
        self.ended.set(true);
        self.wr.cancel("closed");
        drop(io);
    }
}

/// Wrap a descriptor (a socket, pipe, tty, fifo...) in a new Stream and
/// push it; returns 1, or pushes `nil, err` and returns 2 when the loop
/// cannot watch it. The descriptor is made non-blocking and close-on-exec;
/// TCP sockets get TCP_NODELAY. For `io.popen`/`io.spawn` and other native
/// modules.
///
/// # Safety
/// `l` must be a thread of lem's Lua state, on the loop's thread, with two
/// free stack slots.
pub unsafe fn push_stream(l: *mut lua_State, fd: OwnedFd) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let kind = socket_kind(fd.as_raw_fd());
        if kind == Kind::Tcp {
            let on: c_int = 1;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                &on as *const c_int as *const _,
                std::mem::size_of::<c_int>() as _,
            );
        }
        match Io::new(fd) {
            Ok(io) => {
                push_io(l, io, kind);
                1
            }
            Err(e) => fail_os(l, &e),
        }
    }
}

/// Push the real metatable of Streams (made on first use), not the class
/// table `io.Stream` that `getmetatable` gives.
pub(crate) unsafe fn push_class(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::new_class(l, STREAM, METHODS, Some(lua::gc::<Stream>));
        ffi::lua_pop(l, 1);
        lua::push_metatable(l, STREAM);
    }
}

/// Push a Stream on an already prepared descriptor.
pub(crate) unsafe fn push_io(l: *mut lua_State, io: Io, kind: Kind) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::new_class(l, STREAM, METHODS, Some(lua::gc::<Stream>));
        ffi::lua_pop(l, 1);
        let inner = Inner {
            io: RefCell::new(Some(Rc::new(io))),
            kind,
            input: RefCell::new(Input::default()),
            eof: Cell::new(false),
            ended: Cell::new(false),
            std: Cell::new(None),
            rd: Op::default(),
            wr: Op::default(),
            timeout: Cell::new(None),
            limit: Cell::new(parsers::DEFAULT_LIMIT),
            read_timer: Cell::new(None),
            drained: Cell::new(false),
            reading: Cell::new(None),
            read_done: Cell::new(None),
            idle: Cell::new(Idle::Unlisted),
        };
        lua::push_object(l, STREAM, Stream(Rc::new(inner)));
    }
}

impl Settings for Stream {
    const CLASS: &'static CStr = STREAM;
    fn timeout(&self) -> &Cell<Option<Duration>> {
        &self.0.timeout
    }
    fn limit(&self) -> &Cell<usize> {
        &self.0.limit
    }
}

#[inline]
unsafe fn check_stream<'a>(l: *mut lua_State) -> &'a Stream {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { lua::check_object(l, 1, STREAM) }
}

/// Why a wait ended without its value.
enum Stop {
    Timeout,
    Error(io::Error),
}

/// stream:close() -> true | nil, 'closed'
unsafe extern "C-unwind" fn stream_close(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_stream(l);
        if s.0.close() {
            ffi::lua_pushboolean(l, 1);
            1
        } else {
            lua::fail(l, "closed")
        }
    }
}

/// stream:closed() -> boolean
unsafe extern "C-unwind" fn stream_closed(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_stream(l);
        ffi::lua_pushboolean(l, s.0.io.borrow().is_none() as c_int);
        1
    }
}

unsafe fn cork(l: *mut lua_State, on: c_int) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let s = check_stream(l);
        let Some(io) = s.0.io() else {
            return lua::fail(l, "closed");
        };
        if s.0.kind != Kind::Tcp {
            return lua::fail(l, "Operation not supported");
        }
        let r = libc::setsockopt(
            io.raw(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            &on as *const c_int as *const _,
            std::mem::size_of::<c_int>() as _,
        );
        drop(io);
        if r < 0 {
            return fail_os(l, &io::Error::last_os_error());
        }
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// stream:cork() -> true | nil, err
unsafe extern "C-unwind" fn stream_cork(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { cork(l, 1) }
}

/// stream:uncork() -> true | nil, err
unsafe extern "C-unwind" fn stream_uncork(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { cork(l, 0) }
}

/// stream:getpeer() -> ip, port | '*unix', uid, gid | nil, err
unsafe extern "C-unwind" fn stream_getpeer(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_stream(l);
        let Some(io) = s.0.io() else {
            return lua::fail(l, "closed");
        };
        let fd = io.raw();
        drop(io);
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getpeername(fd, &mut ss as *mut _ as *mut libc::sockaddr, &mut len) < 0 {
            return fail_os(l, &io::Error::last_os_error());
        }
        match ss.ss_family as c_int {
            libc::AF_UNIX => {
                let mut cred: libc::ucred = std::mem::zeroed();
                let mut clen = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
                if libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_PEERCRED,
                    &mut cred as *mut _ as *mut _,
                    &mut clen,
                ) < 0
                {
                    return fail_os(l, &io::Error::last_os_error());
                }
                lua::push_str(l, "*unix");
                ffi::lua_pushinteger(l, cred.uid as _);
                ffi::lua_pushinteger(l, cred.gid as _);
                3
            }
            libc::AF_INET | libc::AF_INET6 => match super::tcp::sockaddr_to_std(&ss) {
                Some(addr) => {
                    let ip = addr.ip().to_string();
                    lua::push_str(l, &ip);
                    drop(ip);
                    ffi::lua_pushinteger(l, addr.port() as _);
                    2
                }
                None => lua::fail(l, "Address family not supported by protocol"),
            },
            _ => lua::fail(l, "Address family not supported by protocol"),
        }
    }
}

/// Push a Stream on a TCP socket whose TLS handshake is done (src/tls.rs);
/// returns 1, or pushes `nil, err` and returns 2.
///
/// # Safety
/// As for [`push_stream`].
pub(crate) unsafe fn push_tls_stream(
    l: *mut lua_State,
    fd: OwnedFd,
    conn: tokio_rustls::rustls::Connection,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        set_cloexec(fd.as_raw_fd());
        if let Err(e) = set_nonblocking(fd.as_raw_fd(), true) {
            return fail_os(l, &e);
        }
        match super::tls::stream::Tls::new(fd, conn) {
            Ok(t) => {
                push_io(l, Io::Tls(Box::new(t)), Kind::Tcp);
                1
            }
            Err(e) => fail_os(l, &e),
        }
    }
}

/// stream:fileno() -> fd | nil, 'closed' (for tests and fd passing)
unsafe extern "C-unwind" fn stream_fileno(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_stream(l);
        match s.0.io() {
            Some(io) => {
                let fd = s.0.std.get().map_or(io.raw(), |(fd, _)| fd);
                ffi::lua_pushinteger(l, fd as _);
                1
            }
            None => lua::fail(l, "closed"),
        }
    }
}

pub(crate) const METHODS: &[Reg] = &[
    (c"read", stream_read),
    (c"readp", stream_readp),
    (c"write", stream_write),
    (c"close", stream_close),
    (c"closed", stream_closed),
    (c"cork", stream_cork),
    (c"uncork", stream_uncork),
    (c"getpeer", stream_getpeer),
    (c"sendfile", stream_sendfile),
    (c"settimeout", settimeout::<Stream>),
    (c"setlimit", setlimit::<Stream>),
    (c"fileno", stream_fileno),
];
