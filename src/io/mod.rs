//! `lem.io.core`: the native half of `lem.io` (the Lua half is
//! `lua/lem/io.lua`). Objects: `Stream` (sockets, pipes, ttys, fifos:
//! non-blocking on the loop; `stream.rs`), `File` (regular files: every
//! operation on the pool; `file.rs`), `Server` (listening sockets;
//! `server.rs`), `Datagram` (UDP sockets; `udp.rs`). See
//! LEM-API.md "lem.io".
//!
//! Beyond the original, every object that suspends has
//! `obj:settimeout(seconds | nil)` (applied to each suspending call: it then
//! returns `nil, 'timeout'` and the object stays usable), and streams and
//! files have `obj:setlimit(bytes)`: the most input a delimited format
//! (`'*l'`, `'HTTPRequest'`...) buffers before `read` gives up with
//! `nil, 'line too long'` (default [`crate::runtime::parsers::DEFAULT_LIMIT`], 1 MiB;
//! `read(n)` and `read('*a')` ask for their size themselves and are not held
//! to it). A server's timeout applies to `accept`, not to `autospawn`.
//! Also new: `server:getsockname()` (`ip, port`, or the Unix path: the port
//! a `'0'` listen got) and `obj:fileno()`.

use std::cell::Cell;
use std::ffi::{c_int, CStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::scheduler::{self, Resume, Waiter};

pub mod broker;
pub(crate) mod dns;
pub mod file;
pub mod server;
pub mod stream;
pub(crate) mod tcp;
pub(crate) mod tls;
mod udp;
pub(crate) mod unix;

pub use stream::push_stream;

/// The OS's text for an error, without Rust's ` (os error N)` suffix: what
/// LEM returned as `strerror(errno)`.
pub fn os_error_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => strerror(code),
        None => {
            let s = e.to_string();
            match s.find(" (os error ") {
                Some(i) => s[..i].to_owned(),
                None => s,
            }
        }
    }
}

/// `strerror(code)`.
pub fn strerror(code: i32) -> String {
    let s = io::Error::from_raw_os_error(code).to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// `return nil, strerror` for an I/O error.
///
/// # Safety
/// `l` needs two free slots.
pub(crate) unsafe fn fail_os(l: *mut lua_State, e: &io::Error) -> c_int {
    let msg = os_error_text(e);
    lua::fail(l, &msg)
}

/// Whether an error means the peer went away (a write or read on it then
/// returns `'closed'`).
pub(crate) fn is_disconnect(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET))
}

/// Raise unless the running code is a lem coroutine that may suspend.
///
/// # Safety
/// May raise: call before creating owned values.
pub(crate) unsafe fn check_suspendable(l: *mut lua_State) {
    if !can_suspend(l) {
        cannot_suspend(l);
    }
}

/// Whether the running code may suspend.
///
/// # Safety
/// `l` must be the running thread.
pub(crate) unsafe fn can_suspend(l: *mut lua_State) -> bool {
    crate::runtime::scheduler::get().current().is_some() && lua::is_yieldable(l)
}

/// Raise `attempt to suspend outside a lem coroutine`.
///
/// # Safety
/// Raises: nothing owned may be alive in the caller's frame.
pub(crate) unsafe fn cannot_suspend(l: *mut lua_State) -> ! {
    crate::runtime::scheduler::raise_outside(l)
}

/// Read the optional timeout argument of `settimeout`: nil or a number of
/// seconds (`0` means "do not wait": the call times out at once unless it
/// can finish without waiting). A negative number or NaN is misuse.
///
/// # Safety
/// May raise.
unsafe fn check_timeout(l: *mut lua_State, arg: c_int) -> Option<Duration> {
    if lua::is_none_or_nil(l, arg) {
        return None;
    }
    let t = lua::check_number(l, arg);
    if t.is_nan() || t < 0.0 {
        lua::arg_error(l, arg, c"timeout must be a number of seconds");
    }
    Some(Duration::try_from_secs_f64(t).unwrap_or(Duration::from_secs(100 * 365 * 86400)))
}

/// One suspended operation on an object (a stream has one per direction):
/// busy from the committed suspension until its coroutine resumes.
#[derive(Default)]
pub(crate) struct Op {
    /// From the committed suspension until the coroutine resumes.
    active: Cell<bool>,
    waiter: Cell<Option<Waiter>>,
    wait: Cell<Option<scheduler::WaitHandle>>,
}

impl Op {
    /// Start waiting: called from the commit.
    pub(crate) fn begin(&self, w: Waiter, fut: scheduler::WaitFuture) {
        self.started(w, scheduler::get().spawn_wait(w, fut));
    }

    /// The wait `h` of `w` began (a [`scheduler::Pending`] was told).
    pub(crate) fn started(&self, w: Waiter, h: scheduler::WaitHandle) {
        self.active.set(true);
        self.waiter.set(Some(w));
        self.wait.set(Some(h));
    }

    /// The coroutine resumed: no longer busy.
    pub(crate) fn end(&self) {
        self.active.set(false);
        self.waiter.set(None);
        self.wait.set(None);
    }

    /// Whether an operation is under way (`'busy'` for a second one). One
    /// whose coroutine was cancelled meanwhile is over: its wait was dropped
    /// and the object is free again.
    pub(crate) fn is_active(&self) -> bool {
        if !self.active.get() {
            return false;
        }
        match self.waiter.get() {
            Some(w) if !scheduler::get().is_live(w) => {
                self.end();
                false
            }
            _ => true,
        }
    }

    /// Abort the wait and wake its coroutine with `nil, msg`; `false` when
    /// nothing was waiting.
    pub(crate) fn cancel(&self, msg: &'static str) -> bool {
        if !self.is_active() {
            return false;
        }
        if let Some(h) = self.wait.take() {
            scheduler::get().abort_wait(h);
        }
        self.active.set(false);
        if let Some(w) = self.waiter.take() {
            scheduler::get().wake(
                w,
                Resume::Push(Box::new(move |t| unsafe { lua::fail(t, msg) })),
            );
        }
        true
    }
}

/// An object with the settings `settimeout` and `setlimit` change: the
/// classes hand out their cells, and one pair of methods serves them all.
pub(crate) trait Settings {
    /// The metatable name of the class.
    const CLASS: &'static CStr;
    /// The timeout applied to each suspending call.
    fn timeout(&self) -> &Cell<Option<Duration>>;
    /// The bound on buffered input (objects that read only).
    fn limit(&self) -> &Cell<usize> {
        unreachable!("setlimit is not a method of this class")
    }
}

/// obj:settimeout(seconds | nil) -> true
pub(crate) unsafe extern "C-unwind" fn settimeout<T: Settings>(l: *mut lua_State) -> c_int {
    let o: &T = lua::check_object(l, 1, T::CLASS);
    o.timeout().set(check_timeout(l, 2));
    ffi::lua_pushboolean(l, 1);
    1
}

/// obj:setlimit(bytes) -> true: the most input a delimited format may
/// buffer before `read` returns `nil, 'line too long'`.
pub(crate) unsafe extern "C-unwind" fn setlimit<T: Settings>(l: *mut lua_State) -> c_int {
    let o: &T = lua::check_object(l, 1, T::CLASS);
    let n = lua::check_integer(l, 2);
    if n < 1 {
        lua::arg_error(l, 2, c"limit must be positive");
    }
    o.limit().set(n as usize);
    ffi::lua_pushboolean(l, 1);
    1
}

/// Set or clear `O_NONBLOCK`.
pub(crate) fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: plain fcntl on a descriptor we hold.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let new = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if new != flags && libc::fcntl(fd, libc::F_SETFL, new) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Set `FD_CLOEXEC`.
pub(crate) fn set_cloexec(fd: RawFd) {
    // SAFETY: plain fcntl on a descriptor we hold.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// What a descriptor is, for `io.fromfd` and `io.open`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FdKind {
    /// Regular file or block device: a File.
    File,
    /// A listening socket: a Server.
    Listening,
    /// Anything else: a Stream.
    Stream,
}

pub(crate) fn fd_kind(fd: RawFd) -> io::Result<FdKind> {
    // SAFETY: fstat into a zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let fmt = st.st_mode & libc::S_IFMT;
    if fmt == libc::S_IFREG || fmt == libc::S_IFBLK || fmt == libc::S_IFDIR {
        return Ok(FdKind::File);
    }
    if fmt == libc::S_IFSOCK {
        let mut v: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into an int.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ACCEPTCONN,
                &mut v as *mut c_int as *mut _,
                &mut len,
            )
        };
        if r == 0 && v != 0 {
            return Ok(FdKind::Listening);
        }
    }
    Ok(FdKind::Stream)
}

/// io.fromfd(fd) -> File | Stream | Server | nil, err
unsafe extern "C-unwind" fn fromfd(l: *mut lua_State) -> c_int {
    let fd = lua::check_integer(l, 1);
    if fd < 0 || fd > i32::MAX as i64 {
        lua::arg_error(l, 1, c"invalid file descriptor");
    }
    let fd = fd as RawFd;
    let kind = match fd_kind(fd) {
        Ok(k) => k,
        Err(e) => return fail_os(l, &e),
    };
    // SAFETY: the script hands the descriptor over to the new object.
    let owned = OwnedFd::from_raw_fd(fd);
    set_cloexec(owned.as_raw_fd());
    match kind {
        FdKind::File => file::push_file(l, owned),
        FdKind::Listening => server::push_server(l, vec![owned], server::Family::Inherited),
        FdKind::Stream => push_stream(l, owned),
    }
}

/// io.setbudget(bytes | nil) -> true: the most input all streams and files
/// buffer together (nil: the default, a quarter of RAM up to 256 MiB);
/// see [`crate::runtime::parsers::budget`].
unsafe extern "C-unwind" fn setbudget(l: *mut lua_State) -> c_int {
    let bytes = if lua::is_none_or_nil(l, 1) {
        None
    } else {
        let n = lua::check_integer(l, 1);
        if n <= 0 {
            lua::arg_error(l, 1, c"budget must be a positive number of bytes");
        }
        Some(usize::try_from(n).unwrap_or(usize::MAX))
    };
    crate::runtime::parsers::budget::set(bytes);
    ffi::lua_pushboolean(l, 1);
    1
}

/// io.budget() -> budget, buffered: the budget and the bytes buffered now.
unsafe extern "C-unwind" fn budget(l: *mut lua_State) -> c_int {
    let (budget, buffered) = crate::runtime::parsers::budget::get();
    ffi::lua_pushinteger(l, budget as _);
    ffi::lua_pushinteger(l, buffered as _);
    2
}

const FUNCS: &[Reg] = &[
    (c"setbudget", setbudget),
    (c"budget", budget),
    (c"open", file::open),
    (c"fromfd", fromfd),
    (c"streamfile", file::streamfile),
    (c"stdio", stream::stdio),
    (c"tcp_connect", tcp::connect),
    (c"tcp_listen", tcp::listen),
    (c"unix_connect", unix::connect),
    (c"unix_listen", unix::listen),
    (c"udp_bind", udp::bind),
    (c"udp_connect", udp::connect),
    (c"resolve", dns::resolve),
    (c"resolver", dns::new_resolver),
];

/// luaopen for `lem.io.core`: the functions above plus the method tables
/// `Stream`, `File`, `Server` (the Lua half adds `lines` and friends).
///
/// # Safety
/// Called by `require`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    ffi::lua_createtable(l, 0, FUNCS.len() as c_int + 4);
    lua::set_funcs(l, FUNCS);
    for (name, tname, methods, gc) in [
        (
            c"Stream",
            stream::STREAM,
            stream::METHODS,
            lua::gc::<stream::Stream> as lua::CFunction,
        ),
        (
            c"File",
            file::FILE,
            file::METHODS,
            lua::gc::<file::File> as lua::CFunction,
        ),
        (
            c"Server",
            server::SERVER,
            server::METHODS,
            lua::gc::<server::Server> as lua::CFunction,
        ),
        (
            c"Datagram",
            udp::DATAGRAM,
            udp::METHODS,
            lua::gc::<udp::Datagram> as lua::CFunction,
        ),
        (
            c"Resolver",
            dns::RESOLVER,
            dns::METHODS,
            lua::gc::<dns::Resolver> as lua::CFunction,
        ),
    ] {
        lua::new_class(l, tname, methods, Some(gc));
        ffi::lua_setfield(l, -2, name.as_ptr());
    }
    1
}

/// Put fds 0–2 back in blocking mode if lem made them non-blocking, so the
/// terminal or the parent's pipes are not left broken. Called by `main` just
/// before the process exits.
pub fn restore_stdio() {
    stream::restore_stdio();
}
