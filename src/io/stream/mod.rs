//! Stream: sockets, pipes, ttys and fifos, non-blocking on the loop (Lua
//! half: `Stream` methods added in `lua/lem/io.lua`). See LEM-API.md
//! "lem.io" and "Read formats".
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

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, CStr};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tokio::time::{Instant, Sleep};

use super::fd::{fail_os, is_disconnect, set_cloexec, set_nonblocking};
use super::op::{can_suspend, cannot_suspend, setlimit, settimeout, Op, Settings};
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::parsers::Scan;
use crate::runtime::parsers::{self, Fmt, Input};
use crate::runtime::scheduler::{self, Commit, Pending, Resume, WaitHandle, Waiter};

pub(crate) static STREAM: &CStr = c"lem.Stream";

/// The descriptor: registered with the loop, or (for what epoll refuses:
/// regular files and `/dev/null` handed over as stdio) used directly, where
/// reads and writes never wait.
pub(crate) enum Io {
    Async(AsyncFd<OwnedFd>),
    Direct(OwnedFd),
    /// A TCP socket with a TLS session over it (src/io/tls_io.rs).
    Tls(Box<super::tls::stream::Tls>),
}

impl Io {
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Io> {
        set_cloexec(fd.as_raw_fd());
        set_nonblocking(fd.as_raw_fd(), true)?;
        // SAFETY: the OwnedFd owns the descriptor for the AsyncFd's life.
        match unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts()) {
            Ok(a) => Ok(Io::Async(a)),
            Err((fd, e)) if e.raw_os_error() == Some(libc::EPERM) => {
                set_nonblocking(fd.as_raw_fd(), false)?;
                Ok(Io::Direct(fd))
            }
            Err((_, e)) => Err(e),
        }
    }

    pub(crate) fn raw(&self) -> RawFd {
        match self {
            Io::Async(a) => a.as_raw_fd(),
            Io::Direct(f) => f.as_raw_fd(),
            Io::Tls(t) => t.fd.as_raw_fd(),
        }
    }

    /// The descriptor as the loop watches it (none for a direct one).
    fn watched(&self) -> Option<&AsyncFd<OwnedFd>> {
        match self {
            Io::Async(a) => Some(a),
            Io::Tls(t) => Some(&t.fd),
            Io::Direct(_) => None,
        }
    }

    /// Write `bufs` after the first `skip` bytes: what was taken, and the
    /// error that stopped it (`WouldBlock`: wait for room, then go on).
    fn write(&self, bufs: &[&[u8]], skip: usize) -> (usize, Option<io::Error>) {
        match self {
            Io::Tls(t) => t.write(bufs, skip),
            _ => writev_all(self.raw(), bufs, skip),
        }
    }

    /// Whether input waits in the transport itself, not in the socket (a
    /// TLS session's records read with the handshake's, or read along
    /// with others): it is read without waiting for readiness.
    fn holds_input(&self) -> bool {
        match self {
            Io::Tls(t) => t.holds_input(),
            _ => false,
        }
    }

    /// Read what [`holds_input`](Self::holds_input) found.
    fn read_held(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Tls(t) => t.read(buf),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Whether written bytes still wait to leave (a TLS session's records).
    fn pending(&self) -> bool {
        match self {
            Io::Tls(t) => t.pending(),
            _ => false,
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // A standard descriptor shares its open file description (and so
        // O_NONBLOCK) with the parent shell: put it back before closing.
        let fd = self.raw();
        if (0..3).contains(&fd) {
            if STDIO_NONBLOCK.fetch_and(!(1 << fd), Ordering::SeqCst) & (1 << fd) != 0 {
                let _ = set_nonblocking(fd, false);
            }
            // What `print` and `_G.io.write` left in C's buffers goes out
            // while the descriptor is still open: closing it first (the
            // Lua state's collection at exit does, before libc's exit
            // flush) lost it all on LuaJIT, whose print does not flush.
            flush_c_stdio();
        }
    }
}

/// Flush C stdio's output buffers (`print`, `_G.io.write`), so that what
/// a script wrote through them comes before what it writes next through
/// `lem.io.stdout`/`stderr`, and is not lost when the descriptor closes.
pub(crate) fn flush_c_stdio() {
    // SAFETY: fflush(NULL) flushes every output stream; no arguments.
    unsafe {
        libc::fflush(std::ptr::null_mut());
    }
}

/// What a descriptor is, for `cork` and `getpeer`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Tcp,
    Unix,
    Other,
}

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

/// A stream's part in graceful stops: never read with [`read_idle`]
/// (not in [`IDLE`]), or listed, its last read an ordinary or an idle one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idle {
    Unlisted,
    Busy,
    Waiting,
}

/// The streams that were read with [`read_idle`], for [`close_idle`];
/// dead entries are swept when the list has doubled since the last sweep.
struct IdleList {
    streams: Vec<Weak<Inner>>,
    swept_at: usize,
}

thread_local! {
    static IDLE: RefCell<IdleList> = const {
        RefCell::new(IdleList {
            streams: Vec::new(),
            swept_at: 0,
        })
    };
}

/// Read `fmt` as [`read`] does, as the wait of a server's connection for
/// its peer's next request (an HTTP keep-alive connection between
/// requests): a graceful stop ([`close_idle`]) closes the stream if the
/// read waits with nothing received.
pub(crate) unsafe fn read_idle(l: *mut lua_State, s: &Stream, fmt: Fmt) -> c_int {
    let inner = &s.0;
    if inner.idle.get() == Idle::Unlisted {
        IDLE.with(|list| {
            let mut list = list.borrow_mut();
            if list.streams.len() >= 2 * list.swept_at.max(64) {
                list.streams.retain(|w| w.strong_count() > 0);
                list.swept_at = list.streams.len();
            }
            list.streams.push(Rc::downgrade(inner));
        });
    }
    inner.idle.set(Idle::Waiting);
    read_any(l, s, fmt)
}

/// Close every stream whose idle read ([`read_idle`]) waits with nothing
/// received yet. Returns how many closed.
pub(crate) fn close_idle() -> usize {
    let streams: Vec<Rc<Inner>> = IDLE.with(|list| {
        list.borrow()
            .streams
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    });
    let mut closed = 0;
    for inner in streams {
        let waiting = inner.idle.get() == Idle::Waiting
            && inner.reading.get().is_some()
            && inner.rd.is_active()
            && inner.input.borrow().is_empty()
            && !inner.io().is_some_and(|io| io.holds_input());
        if waiting && inner.close() {
            closed += 1;
        }
    }
    closed
}

/// A read that waits: its format and limit, and when it times out.
#[derive(Clone, Copy)]
struct Reading {
    fmt: Fmt,
    limit: usize,
    deadline: Option<Instant>,
}

/// The outcome of a read that waited: what its last look found (`None` at
/// the end of input), or why it stopped; with the read's format and limit.
struct ReadDone {
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

/// A timer that is only moved when a deadline comes earlier than the one
/// it is set for: each read of a busy stream pushes its deadline a little
/// later, and moving a tokio timer costs a trip through the timer driver.
/// One set too early fires, finds the deadline not reached and is set again.
struct ReadTimer {
    sleep: Pin<Box<Sleep>>,
    set_for: Instant,
}

impl ReadTimer {
    fn new(deadline: Instant) -> ReadTimer {
        ReadTimer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            set_for: deadline,
        }
    }

    /// Ready once `deadline` has passed.
    fn poll_until(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.set_for > deadline || (self.set_for < deadline && self.sleep.is_elapsed()) {
                self.sleep.as_mut().reset(deadline);
                self.set_for = deadline;
            }
            std::task::ready!(self.sleep.as_mut().poll(cx));
            if self.set_for >= deadline {
                return Poll::Ready(());
            }
        }
    }
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

/// Push the real metatable of Streams (made on first use), not the class
/// table `io.Stream` that `getmetatable` gives.
pub(crate) unsafe fn push_class(l: *mut lua_State) {
    lua::new_class(l, STREAM, METHODS, Some(lua::gc::<Stream>));
    ffi::lua_pop(l, 1);
    lua::push_metatable(l, STREAM);
}

/// Push a Stream on an already prepared descriptor.
pub(crate) unsafe fn push_io(l: *mut lua_State, io: Io, kind: Kind) {
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

fn socket_kind(fd: RawFd) -> Kind {
    let mut domain: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into an int; fails harmlessly on non-sockets.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            &mut domain as *mut c_int as *mut _,
            &mut len,
        )
    };
    match (r, domain) {
        (0, libc::AF_INET) | (0, libc::AF_INET6) => Kind::Tcp,
        (0, libc::AF_UNIX) => Kind::Unix,
        _ => Kind::Other,
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
    lua::check_object(l, 1, STREAM)
}

/// stream:read([fmt, ...]) -> data | nil, err
unsafe extern "C-unwind" fn stream_read(l: *mut lua_State) -> c_int {
    let s = check_stream(l);
    let fmt = parsers::check_format(l, 2);
    read(l, s, fmt)
}

/// stream:readp(parser, ...) -> data | nil, err: `read` with a
/// `parsers.lookup` value (for `parsers.newreader`).
unsafe extern "C-unwind" fn stream_readp(l: *mut lua_State) -> c_int {
    let s = check_stream(l);
    lua::check_any(l, 2);
    let fmt = parsers::check_format(l, 2);
    read(l, s, fmt)
}

/// Read `fmt` from `s`: at once when the buffer or the kernel has it, else
/// suspend until it is complete (`'busy'` to another reader meanwhile).
pub(crate) unsafe fn read(l: *mut lua_State, s: &Stream, fmt: Fmt) -> c_int {
    let inner = &s.0;
    if inner.idle.get() == Idle::Waiting && !inner.rd.is_active() {
        inner.idle.set(Idle::Busy);
    }
    read_any(l, s, fmt)
}

/// [`read`] and [`read_idle`].
unsafe fn read_any(l: *mut lua_State, s: &Stream, fmt: Fmt) -> c_int {
    let inner = &s.0;
    if inner.rd.is_active() {
        return lua::fail(l, "busy");
    }
    let limit = inner.limit.get();
    let Some(io) = inner.io() else {
        if inner.ended.get() && !inner.input.borrow().is_empty() {
            // What came before the end is still read.
            let mut input = inner.input.borrow_mut();
            return fmt.finish_now(l, &mut input, true, limit, "closed");
        }
        return lua::fail(l, "closed");
    };
    // Serve what is possible now: buffered input, then what the kernel has.
    loop {
        let mut input = inner.input.borrow_mut();
        let eof = inner.eof.get();
        if let Some(scan) = fmt.look(&input, eof, limit) {
            let n = fmt.finish(l, &mut input, scan, eof, limit, "closed");
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
    // From the loop time, as the original's libev timers.
    let deadline = inner
        .timeout
        .get()
        .map(|d| Instant::from_std(scheduler::get().now_instant()) + d);
    inner.reading.set(Some(Reading {
        fmt,
        limit,
        deadline,
    }));
    scheduler::get().prepare(Commit::Wait(inner.clone()));
    crate::runtime::scheduler::suspend(l)
}

/// Why a wait ended without its value.
enum Stop {
    Timeout,
    Error(io::Error),
}

/// Run `work`, bounded by the object's timeout.
async fn bounded<T>(
    timeout: Option<Duration>,
    work: impl std::future::Future<Output = Result<T, Stop>>,
) -> Result<T, Stop> {
    match timeout {
        None => work.await,
        Some(d) => tokio::time::timeout(d, work)
            .await
            .unwrap_or(Err(Stop::Timeout)),
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
                        Poll::Pending if self.timed_out(deadline, cx) => break Err(Stop::Timeout),
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

    /// Whether the read's deadline, if it has one, has passed; if not, the
    /// stream's timer will wake the waiting read when it does.
    fn timed_out(&self, deadline: Option<Instant>, cx: &mut Context<'_>) -> bool {
        let Some(d) = deadline else {
            return false;
        };
        let mut timer = self.read_timer.take().unwrap_or_else(|| ReadTimer::new(d));
        let done = timer.poll_until(d, cx).is_ready();
        self.read_timer.set(Some(timer));
        done
    }
}

/// Most buffers handed to one `writev(2)`.
const MAX_IOV: usize = 64;

/// Write `bufs` (skipping the first `skip` bytes overall) with as few
/// `writev(2)` calls as the kernel allows. Returns the bytes written and
/// the error that stopped it, if any (`WouldBlock` when the socket is full).
fn writev_all(fd: RawFd, bufs: &[&[u8]], mut skip: usize) -> (usize, Option<io::Error>) {
    let mut done = 0;
    let mut i = 0;
    loop {
        while i < bufs.len() && skip >= bufs[i].len() {
            skip -= bufs[i].len();
            i += 1;
        }
        if i == bufs.len() {
            return (done, None);
        }
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOV];
        let mut n = 0;
        for (k, b) in bufs[i..].iter().enumerate() {
            if n == MAX_IOV {
                break;
            }
            let b = if k == 0 { &b[skip..] } else { b };
            if b.is_empty() {
                continue;
            }
            iov[n] = libc::iovec {
                iov_base: b.as_ptr() as *mut _,
                iov_len: b.len(),
            };
            n += 1;
        }
        // SAFETY: iov[..n] points into live slices.
        let r = unsafe { libc::writev(fd, iov.as_ptr(), n as c_int) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return (done, Some(e));
        }
        done += r as usize;
        skip += r as usize;
    }
}

/// stream:write(s1, s2, ...) -> true | nil, err
unsafe extern "C-unwind" fn stream_write(l: *mut lua_State) -> c_int {
    let s = check_stream(l);
    let n = ffi::lua_gettop(l);
    for i in 2..=n {
        lua::check_lstring(l, i, std::ptr::null_mut());
    }
    // The strings stay on the stack (so alive) for this whole call.
    let mut parts: [&[u8]; 16] = [&[]; 16];
    let mut more: Vec<&[u8]> = Vec::new();
    let count = (n - 1).max(0) as usize;
    for i in 0..count {
        let b = lua::to_bytes(l, i as c_int + 2).unwrap_or_default();
        if count <= parts.len() {
            parts[i] = b;
        } else {
            more.push(b);
        }
    }
    let bufs: &[&[u8]] = if count <= parts.len() {
        &parts[..count]
    } else {
        &more
    };
    let r = write(l, s, bufs, Failure::Nil);
    drop(more);
    r.finish(l)
}

/// How [`write`] reports a failure: `nil, err`, as stream methods do, or
/// `false, err` (for a caller whose `nil, err` means something else).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Nil,
    False,
}

impl Failure {
    /// Apply to the `n` values just pushed (a failure is two).
    unsafe fn apply(self, l: *mut lua_State, n: c_int) -> c_int {
        if self == Failure::False && n == 2 && ffi::lua_type(l, -2) == ffi::LUA_TNIL {
            ffi::lua_pushboolean(l, 0);
            ffi::lua_replace(l, -3);
        }
        n
    }
}

/// What [`write`] did: all written at once (`true` pushed), failed (the
/// failure's values pushed), or the coroutine must suspend until the rest
/// is written.
#[must_use]
pub(crate) enum Write {
    Sent,
    Failed(c_int),
    Suspend,
    /// It must wait but cannot: not in a lem coroutine.
    Outside,
}

impl Write {
    /// Return from the Lua function: the pushed results, or suspend (or
    /// raise). Call with nothing left on the Rust stack that needs
    /// dropping.
    pub(crate) unsafe fn finish(self, l: *mut lua_State) -> c_int {
        match self {
            Write::Sent => 1,
            Write::Failed(n) => n,
            Write::Suspend => crate::runtime::scheduler::suspend(l),
            Write::Outside => cannot_suspend(l),
        }
    }
}

/// Write `bufs` to `s` as one `writev(2)` where the kernel takes it all;
/// what it does not take is copied and written from the loop while the
/// coroutine waits (`'busy'` to another writer meanwhile). Raises when the
/// coroutine cannot suspend.
pub(crate) unsafe fn write(
    l: *mut lua_State,
    s: &Stream,
    bufs: &[&[u8]],
    failure: Failure,
) -> Write {
    let inner = &s.0;
    if inner.wr.is_active() {
        return Write::Failed(failure.apply(l, lua::fail(l, "busy")));
    }
    let Some(io) = inner.io() else {
        return Write::Failed(failure.apply(l, lua::fail(l, "closed")));
    };
    if inner.std.get().is_some() {
        // What `print` buffered comes first.
        flush_c_stdio();
    }
    let (done, err) = io.write(bufs, 0);
    match err {
        None => {
            ffi::lua_pushboolean(l, 1);
            return Write::Sent;
        }
        Some(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Some(e) => {
            drop(io);
            let n = if is_disconnect(&e) {
                lua::fail(l, "closed")
            } else {
                fail_os(l, &e)
            };
            return Write::Failed(failure.apply(l, n));
        }
    }
    // The kernel is full: keep the rest and write it from the loop.
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let mut rest = Vec::with_capacity(total - done);
    let mut skip = done;
    for b in bufs {
        if skip >= b.len() {
            skip -= b.len();
        } else {
            rest.extend_from_slice(&b[skip..]);
            skip = 0;
        }
    }
    if !can_suspend(l) {
        return Write::Outside;
    }
    let inner = inner.clone();
    scheduler::get().prepare(Commit::Custom(Box::new(move |w| {
        let fut = Box::pin(write_wait(inner.clone(), io, rest, failure));
        inner.wr.begin(w, fut);
    })));
    Write::Suspend
}

/// Wait until the socket takes all of `data`; resume with `true`.
async fn write_wait(inner: Rc<Inner>, io: Rc<Io>, data: Vec<u8>, failure: Failure) -> Resume {
    let work = async {
        let Some(a) = io.watched() else {
            return Ok(());
        };
        let mut off = 0;
        while off < data.len() || io.pending() {
            let mut guard = a.writable().await.map_err(Stop::Error)?;
            let r = guard.try_io(|_| {
                let (n, e) = io.write(&[&data], off);
                off += n;
                match e {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            });
            match r {
                Err(_would_block) => continue,
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Stop::Error(e)),
            }
        }
        Ok(())
    };
    let r = bounded(inner.timeout.get(), work).await;
    drop(io);
    Resume::Push(Box::new(move |t| unsafe {
        failure.apply(t, write_result(t, &inner, r))
    }))
}

unsafe fn write_result<T>(t: *mut lua_State, inner: &Inner, r: Result<T, Stop>) -> c_int
where
    T: PushValue,
{
    inner.wr.end();
    if inner.io.borrow().is_none() {
        return lua::fail(t, "closed");
    }
    match r {
        Ok(v) => v.push(t),
        Err(Stop::Timeout) => lua::fail(t, "timeout"),
        Err(Stop::Error(e)) if is_disconnect(&e) => lua::fail(t, "closed"),
        Err(Stop::Error(e)) => fail_os(t, &e),
    }
}

/// A result a write-side wait hands back.
trait PushValue {
    unsafe fn push(self, l: *mut lua_State) -> c_int;
}

impl PushValue for () {
    unsafe fn push(self, l: *mut lua_State) -> c_int {
        ffi::lua_pushboolean(l, 1);
        1
    }
}

impl PushValue for u64 {
    unsafe fn push(self, l: *mut lua_State) -> c_int {
        ffi::lua_pushinteger(l, self as _);
        1
    }
}

/// stream:close() -> true | nil, 'closed'
unsafe extern "C-unwind" fn stream_close(l: *mut lua_State) -> c_int {
    let s = check_stream(l);
    if s.0.close() {
        ffi::lua_pushboolean(l, 1);
        1
    } else {
        lua::fail(l, "closed")
    }
}

/// stream:closed() -> boolean
unsafe extern "C-unwind" fn stream_closed(l: *mut lua_State) -> c_int {
    let s = check_stream(l);
    ffi::lua_pushboolean(l, s.0.io.borrow().is_none() as c_int);
    1
}

unsafe fn cork(l: *mut lua_State, on: c_int) -> c_int {
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

/// stream:cork() -> true | nil, err
unsafe extern "C-unwind" fn stream_cork(l: *mut lua_State) -> c_int {
    cork(l, 1)
}

/// stream:uncork() -> true | nil, err
unsafe extern "C-unwind" fn stream_uncork(l: *mut lua_State) -> c_int {
    cork(l, 0)
}

/// stream:getpeer() -> ip, port | '*unix', uid, gid | nil, err
unsafe extern "C-unwind" fn stream_getpeer(l: *mut lua_State) -> c_int {
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

/// stream:sendfile(file, size [, offset]) -> bytes | nil, err
unsafe extern "C-unwind" fn stream_sendfile(l: *mut lua_State) -> c_int {
    let s = check_stream(l);
    let f: &super::file::File = lua::check_object(l, 2, super::file::FILE);
    let size = lua::check_integer(l, 3);
    if size < 0 {
        lua::arg_error(l, 3, c"size must not be negative");
    }
    let offset = lua::opt_integer(l, 4, 0);
    if offset < 0 {
        lua::arg_error(l, 4, c"offset must not be negative");
    }
    let inner = &s.0;
    if inner.wr.is_active() {
        return lua::fail(l, "busy");
    }
    let Some(io) = inner.io() else {
        return lua::fail(l, "closed");
    };
    let Some(src) = f.fd() else {
        drop(io);
        return lua::fail(l, "closed");
    };
    if !can_suspend(l) {
        drop((io, src));
        cannot_suspend(l);
    }
    if inner.std.get().is_some() {
        flush_c_stdio();
    }
    let inner = inner.clone();
    scheduler::get().prepare(Commit::Custom(Box::new(move |w| {
        let fut = Box::pin(sendfile_wait(inner.clone(), io, src, size as u64, offset));
        inner.wr.begin(w, fut);
    })));
    crate::runtime::scheduler::suspend(l)
}

/// Copy `size` bytes of `src` from `offset` with the kernel's sendfile,
/// waiting for room in the socket between batches.
async fn sendfile_wait(
    inner: Rc<Inner>,
    io: Rc<Io>,
    src: std::sync::Arc<OwnedFd>,
    size: u64,
    offset: i64,
) -> Resume {
    if let Io::Tls(t) = &*io {
        let r = bounded(inner.timeout.get(), copy_to_tls(t, &src, size, offset)).await;
        drop(io);
        return Resume::Push(Box::new(move |t| unsafe { write_result(t, &inner, r) }));
    }
    let work = async {
        let mut off = offset as libc::off_t;
        let mut sent: u64 = 0;
        while sent < size {
            let chunk = (size - sent).min(1 << 30) as usize;
            // SAFETY: both descriptors are alive (held by io and src).
            let r = unsafe { libc::sendfile(io.raw(), src.as_raw_fd(), &mut off, chunk) };
            if r > 0 {
                sent += r as u64;
                continue;
            }
            if r == 0 {
                break; // end of file
            }
            let e = io::Error::last_os_error();
            match (e.raw_os_error(), &*io) {
                (Some(libc::EINTR), _) => {}
                (Some(libc::EAGAIN), Io::Async(a)) => {
                    let mut g = a.writable().await.map_err(Stop::Error)?;
                    g.clear_ready();
                }
                _ => return Err(Stop::Error(e)),
            }
        }
        Ok(sent)
    };
    let r = bounded(inner.timeout.get(), work).await;
    drop(io);
    Resume::Push(Box::new(move |t| unsafe { write_result(t, &inner, r) }))
}

/// `sendfile` on a TLS stream: the file's bytes must be encrypted, so they
/// are read (64 KiB at a time, as the kernel's sendfile would from the page
/// cache) and written through the session, waiting for room between.
async fn copy_to_tls(
    t: &super::tls::stream::Tls,
    src: &OwnedFd,
    size: u64,
    offset: i64,
) -> Result<u64, Stop> {
    let mut buf = vec![0u8; 64 << 10];
    let mut off = offset as libc::off_t;
    let mut sent: u64 = 0;
    while sent < size {
        let want = (size - sent).min(buf.len() as u64) as usize;
        // SAFETY: buf is writable for want bytes; src is alive.
        let n = unsafe { libc::pread(src.as_raw_fd(), buf.as_mut_ptr() as *mut _, want, off) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Stop::Error(e));
        }
        if n == 0 {
            break; // end of file
        }
        let n = n as usize;
        off += n as libc::off_t;
        let mut done = 0;
        loop {
            let (d, e) = t.write(&[&buf[..n]], done);
            done += d;
            match e {
                None => break,
                Some(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut g = t.fd.writable().await.map_err(Stop::Error)?;
                    g.clear_ready();
                }
                Some(e) => return Err(Stop::Error(e)),
            }
        }
        sent += n as u64;
    }
    Ok(sent)
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

/// stream:fileno() -> fd | nil, 'closed' (for tests and fd passing)
unsafe extern "C-unwind" fn stream_fileno(l: *mut lua_State) -> c_int {
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

/// Which of fds 0–2 lem made non-blocking (bit n for fd n).
static STDIO_NONBLOCK: AtomicU8 = AtomicU8::new(0);

/// core.stdio(fd) -> Stream: fd 0, 1 or 2 as a non-blocking Stream.
///
/// A pipe, fifo or terminal is opened again (`/proc/self/fd/N`): the Stream
/// gets an open file description of its own, non-blocking, while fd N's
/// stays blocking for C stdio. Making fd N itself non-blocking (as LEM did)
/// made a `print` into a full pipe fail with `EAGAIN` and lose its output.
/// Anything else (a socket, which cannot be opened again) is fd N itself,
/// made non-blocking and restored at exit; a regular file never waits.
pub(crate) unsafe extern "C-unwind" fn stdio(l: *mut lua_State) -> c_int {
    let fd = lua::check_integer(l, 1);
    if !(0..=2).contains(&fd) {
        lua::arg_error(l, 1, c"not a standard descriptor");
    }
    let fd = fd as RawFd;
    if let Some(own) = reopen_std(fd) {
        let n = push_stream(l, own);
        if n == 1 {
            let s = &*(ffi::lua_touserdata(l, -1) as *const Stream);
            s.0.std.set(Some((fd, true)));
        }
        return n;
    }
    let flags = libc::fcntl(fd, libc::F_GETFL);
    if flags < 0 {
        return fail_os(l, &io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        STDIO_NONBLOCK.fetch_or(1 << fd, Ordering::SeqCst);
    }
    // SAFETY: the standard descriptor is handed to the stream, as LEM did.
    let n = push_stream(l, OwnedFd::from_raw_fd(fd));
    if n == 1 {
        let s = &*(ffi::lua_touserdata(l, -1) as *const Stream);
        s.0.std.set(Some((fd, false)));
    }
    n
}

/// A descriptor of its own on what standard descriptor `fd` is, if that is
/// a pipe, fifo or terminal (never a regular file: that would open it again
/// at offset 0).
fn reopen_std(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: fstat into a zeroed struct; open of a path we made.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return None;
        }
        let t = st.st_mode & libc::S_IFMT;
        if t != libc::S_IFIFO && t != libc::S_IFCHR {
            return None;
        }
        let acc = libc::fcntl(fd, libc::F_GETFL);
        if acc < 0 {
            return None;
        }
        let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).ok()?;
        let own = libc::open(
            path.as_ptr(),
            // O_NONBLOCK: opening a fifo must not wait for its other end.
            (acc & libc::O_ACCMODE) | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK,
        );
        (own >= 0).then(|| OwnedFd::from_raw_fd(own))
    }
}

/// Put back in blocking mode the standard descriptors `stdio` changed.
pub(crate) fn restore_stdio() {
    let bits = STDIO_NONBLOCK.swap(0, Ordering::SeqCst);
    for fd in 0..3 {
        if bits & (1 << fd) != 0 {
            let _ = set_nonblocking(fd, false);
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
