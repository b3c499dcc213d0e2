//! Server: listening sockets (TCP, Unix; `'*'` is an IPv6 and an IPv4
//! socket behaving as one). Made by `src/io/tcp.rs`, `src/io/unix.rs` and
//! `io.fromfd`; see docs/io.md.
//!
//! Accepting drains the queue: each wake-up accepts until the kernel says
//! `EAGAIN`. Transient errors never end an accept loop: `ECONNABORTED` (and
//! the like) is skipped, `EMFILE`/`ENFILE`/`ENOBUFS`/`ENOMEM` back off for a
//! moment and retry. Accepted descriptors are close-on-exec.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, CStr};
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

use super::fd::{fail_os, set_cloexec, set_nonblocking};
use super::op::{check_suspendable, settimeout, Op, Settings};
use super::stream::push_stream;
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::scheduler::{self, Commit, Resume};

pub(crate) static SERVER: &CStr = c"lem.Server";

/// How a server came to be (for messages; the accept path is the same).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Family {
    Inherited,
    Tcp,
    Unix,
}

/// Back-off while the process (or system) is out of descriptors.
const BACKOFF: Duration = Duration::from_millis(50);

pub(crate) struct Inner {
    /// The listening sockets; empty once closed.
    fds: RefCell<Vec<Rc<AsyncFd<OwnedFd>>>>,
    /// The accept or autospawn under way.
    op: Op,
    timeout: Cell<Option<Duration>>,
    #[allow(dead_code)]
    family: Family,
}

/// The userdata: `lem.Server`.
pub(crate) struct Server(Rc<Inner>);

/// Push a Server over listening sockets (already bound and listening).
/// Returns 1, or 2 (`nil, err`) when the loop cannot watch them.
///
/// # Safety
/// `l` must be a thread of lem's state with two free slots.
pub(crate) unsafe fn push_server(l: *mut lua_State, fds: Vec<OwnedFd>, family: Family) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let mut watched = Vec::with_capacity(fds.len());
        for fd in fds {
            set_cloexec(fd.as_raw_fd());
            if let Err(e) = set_nonblocking(fd.as_raw_fd(), true) {
                drop(watched);
                return fail_os(l, &e);
            }
            // SAFETY: the OwnedFd owns the descriptor for the AsyncFd's life.
            match { AsyncFd::register(fd) }.map_err(|e| e.into_parts()) {
                Ok(a) => watched.push(Rc::new(a)),
                Err((_, e)) => {
                    drop(watched);
                    return fail_os(l, &e);
                }
            }
        }
        lua::new_class(l, SERVER, METHODS, Some(lua::gc::<Server>));
        ffi::lua_pop(l, 1);
        let inner = Inner {
            fds: RefCell::new(watched),
            op: Op::default(),
            timeout: Cell::new(None),
            family,
        };
        let inner = Rc::new(inner);
        OPEN.with(|open| {
            let mut open = open.borrow_mut();
            open.retain(|w| w.upgrade().is_some_and(|s| !s.fds.borrow().is_empty()));
            open.push(Rc::downgrade(&inner));
        });
        lua::push_object(l, SERVER, Server(inner));
        1
    }
}

thread_local! {
    /// The servers that were open at their making, for [`close_all`].
    static OPEN: RefCell<Vec<std::rc::Weak<Inner>>> = const { RefCell::new(Vec::new()) };
}

/// Close every listening server (a graceful stop): their `accept` or
/// `autospawn` returns `nil, 'interrupted'`. Returns how many closed.
pub(crate) fn close_all() -> usize {
    let open: Vec<Rc<Inner>> = OPEN.with(|open| {
        std::mem::take(&mut *open.borrow_mut())
            .iter()
            .filter_map(std::rc::Weak::upgrade)
            .collect()
    });
    let mut closed = 0;
    for s in open {
        if s.close() {
            closed += 1;
        }
    }
    closed
}

impl Inner {
    /// Close the sockets and interrupt the accept or autospawn under way;
    /// false if closed already.
    fn close(&self) -> bool {
        let fds = std::mem::take(&mut *self.fds.borrow_mut());
        if fds.is_empty() {
            return false;
        }
        self.op.cancel("interrupted");
        drop(fds);
        true
    }
}

/// What one `accept4(2)` gave.
enum Accepted {
    Client(OwnedFd),
    /// Nothing pending.
    Empty,
    /// A connection that died in the queue, or an interrupted call: try again.
    Skip,
    /// Out of descriptors or memory: wait a moment, then try again.
    Backoff,
    Fatal(io::Error),
}

fn accept_one(fd: RawFd) -> Accepted {
    // SAFETY: accept4 without an address; flags make the new descriptor
    // non-blocking and close-on-exec atomically.
    let r = unsafe {
        libc::accept4(
            fd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if r >= 0 {
        // SAFETY: a fresh descriptor we own.
        return Accepted::Client(unsafe { OwnedFd::from_raw_fd(r) });
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) => Accepted::Empty,
        Some(libc::EINTR)
        | Some(libc::ECONNABORTED)
        | Some(libc::EPROTO)
        | Some(libc::EPERM)
        | Some(libc::ENETDOWN)
        | Some(libc::ENOPROTOOPT)
        | Some(libc::EHOSTDOWN)
        | Some(libc::ENONET)
        | Some(libc::EHOSTUNREACH)
        | Some(libc::EOPNOTSUPP)
        | Some(libc::ENETUNREACH) => Accepted::Skip,
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM) => {
            Accepted::Backoff
        }
        _ => Accepted::Fatal(e),
    }
}

/// Wait until one of `fds` is readable (clearing readiness it reports).
/// Returns the index of a ready socket.
async fn any_readable(fds: &[Rc<AsyncFd<OwnedFd>>]) -> io::Result<usize> {
    poll_fn(|cx| {
        for (i, a) in fds.iter().enumerate() {
            match a.poll_read_ready(cx) {
                Poll::Ready(Ok(mut g)) => {
                    g.clear_ready();
                    return Poll::Ready(Ok(i));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

/// Accept one client, waiting as needed.
async fn accept_wait(fds: Vec<Rc<AsyncFd<OwnedFd>>>) -> io::Result<OwnedFd> {
    loop {
        for a in &fds {
            loop {
                match accept_one(a.as_raw_fd()) {
                    Accepted::Client(c) => return Ok(c),
                    Accepted::Empty => break,
                    Accepted::Skip => continue,
                    Accepted::Backoff => tokio::time::sleep(BACKOFF).await,
                    Accepted::Fatal(e) => return Err(e),
                }
            }
        }
        any_readable(&fds).await?;
    }
}

/// `server:settimeout(seconds | nil)` applies to `accept`.
impl Settings for Server {
    const CLASS: &'static CStr = SERVER;
    fn timeout(&self) -> &Cell<Option<Duration>> {
        &self.0.timeout
    }
}

#[inline]
unsafe fn check_server<'a>(l: *mut lua_State) -> &'a Server {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { lua::check_object(l, 1, SERVER) }
}

/// server:accept() -> Stream | nil, err
unsafe extern "C-unwind" fn server_accept(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_server(l);
        let inner = &s.0;
        if inner.op.is_active() {
            return lua::fail(l, "busy");
        }
        if inner.fds.borrow().is_empty() {
            return lua::fail(l, "closed");
        }
        if crate::runtime::lifecycle::draining() {
            return lua::fail(l, "interrupted");
        }
        crate::io::broker::serving();
        // A client already waiting is served without suspending.
        let mut found = None;
        for a in inner.fds.borrow().iter() {
            loop {
                match accept_one(a.as_raw_fd()) {
                    Accepted::Client(c) => {
                        found = Some(c);
                        break;
                    }
                    Accepted::Skip => continue,
                    _ => break,
                }
            }
            if found.is_some() {
                break;
            }
        }
        if let Some(c) = found {
            return push_stream(l, c);
        }
        check_suspendable(l);
        let inner = inner.clone();
        scheduler::get().prepare(Commit::Custom(Box::new(move |w| {
            let fds = inner.fds.borrow().clone();
            let timeout = inner.timeout.get();
            let me = inner.clone();
            let fut = Box::pin(async move {
                let r = match timeout {
                    None => accept_wait(fds).await.map_err(Some),
                    Some(d) => match tokio::time::timeout(d, accept_wait(fds)).await {
                        Ok(r) => r.map_err(Some),
                        Err(_) => Err(None),
                    },
                };
                Resume::Push(Box::new(move |t| {
                    me.op.end();
                    if me.fds.borrow().is_empty() {
                        return lua::fail(t, "closed");
                    }
                    match r {
                        Ok(c) => push_stream(t, c),
                        Err(None) => lua::fail(t, "timeout"),
                        Err(Some(e)) => fail_os(t, &e),
                    }
                }))
            });
            inner.op.begin(w, fut);
        })));
        crate::runtime::scheduler::suspend(l)
    }
}

/// The handler of an autospawn, anchored in the registry: a thread whose
/// stack holds the handler at index 1, used to start each connection's
/// coroutine from the loop. Unanchored when the accept loop ends.
struct Spawner {
    thread: *mut lua_State,
    reference: c_int,
}

impl Drop for Spawner {
    fn drop(&mut self) {
        // SAFETY: the Lua state outlives the loop's futures (the runtime
        // drops the loop first); luaL_unref does not allocate.
        unsafe { ffi::luaL_unref(self.thread, ffi::LUA_REGISTRYINDEX, self.reference) };
    }
}

/// Start `handler(stream)` for a client, in protected mode so that a memory
/// error cannot unwind into the loop. Arguments: handler, fd.
unsafe extern "C-unwind" fn spawn_client(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let fd = ffi::lua_tointeger(l, 2) as RawFd;
        ffi::lua_settop(l, 1);
        // SAFETY: the accepted descriptor is handed over to the stream.
        if push_stream(l, OwnedFd::from_raw_fd(fd)) != 1 {
            return 0;
        }
        scheduler::get().spawn(l, 1);
        0
    }
}

impl Spawner {
    fn spawn(&self, client: OwnedFd) {
        let t = self.thread;
        // SAFETY: the spawner's thread never runs Lua code of its own; its
        // stack holds only the handler, and nothing else uses it.
        unsafe {
            if ffi::lua_checkstack(t, 4) == 0 {
                return;
            }
            ffi::lua_pushcfunction(t, spawn_client);
            ffi::lua_pushvalue(t, 1);
            ffi::lua_pushinteger(t, std::os::fd::IntoRawFd::into_raw_fd(client) as _);
            if ffi::lua_pcall(t, 2, 0, 0) != ffi::LUA_OK {
                ffi::lua_settop(t, 1);
            }
        }
    }
}

/// Accept and spawn until closed, interrupted or a lasting error.
async fn autospawn_loop(fds: Vec<Rc<AsyncFd<OwnedFd>>>, spawner: Spawner) -> io::Error {
    loop {
        for a in &fds {
            loop {
                match accept_one(a.as_raw_fd()) {
                    Accepted::Client(c) => spawner.spawn(c),
                    Accepted::Empty => break,
                    Accepted::Skip => continue,
                    Accepted::Backoff => tokio::time::sleep(BACKOFF).await,
                    Accepted::Fatal(e) => return e,
                }
            }
        }
        if let Err(e) = any_readable(&fds).await {
            return e;
        }
    }
}

/// server:autospawn(handler) -> nil, 'interrupted' | nil, err
unsafe extern "C-unwind" fn server_autospawn(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_server(l);
        lua::check_type(l, 2, ffi::LUA_TFUNCTION);
        let inner = &s.0;
        if inner.op.is_active() {
            return lua::fail(l, "busy");
        }
        if inner.fds.borrow().is_empty() {
            return lua::fail(l, "closed");
        }
        check_suspendable(l);
        if crate::runtime::lifecycle::draining() {
            return lua::fail(l, "interrupted");
        }
        crate::io::broker::serving();
        let t = ffi::lua_newthread(l);
        ffi::lua_pushvalue(l, 2);
        ffi::lua_xmove(l, t, 1);
        let reference = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
        let spawner = Spawner {
            thread: t,
            reference,
        };
        let inner = inner.clone();
        scheduler::get().prepare(Commit::Custom(Box::new(move |w| {
            let fds = inner.fds.borrow().clone();
            let me = inner.clone();
            let fut = Box::pin(async move {
                let e = autospawn_loop(fds, spawner).await;
                Resume::Push(Box::new(move |t| {
                    me.op.end();
                    fail_os(t, &e)
                }))
            });
            inner.op.begin(w, fut);
        })));
        crate::runtime::scheduler::suspend(l)
    }
}

/// server:interrupt() -> true | nil, 'not busy'
unsafe extern "C-unwind" fn server_interrupt(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_server(l);
        if s.0.op.cancel("interrupted") {
            ffi::lua_pushboolean(l, 1);
            1
        } else {
            lua::fail(l, "not busy")
        }
    }
}

/// server:close() -> true | nil, 'closed'
unsafe extern "C-unwind" fn server_close(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_server(l);
        if !s.0.close() {
            return lua::fail(l, "closed");
        }
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// server:closed() -> boolean
unsafe extern "C-unwind" fn server_closed(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_server(l);
        ffi::lua_pushboolean(l, s.0.fds.borrow().is_empty() as c_int);
        1
    }
}

/// server:busy() -> boolean
unsafe extern "C-unwind" fn server_busy(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_server(l);
        ffi::lua_pushboolean(l, s.0.op.is_active() as c_int);
        1
    }
}

/// server:getsockname() -> ip, port (TCP; the first socket's) | path (Unix)
/// | nil, err. Beyond the original: tells the port a `'0'` listen got.
unsafe extern "C-unwind" fn server_getsockname(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_server(l);
        let fd = match s.0.fds.borrow().first() {
            Some(a) => a.as_raw_fd(),
            None => return lua::fail(l, "closed"),
        };
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, &mut ss as *mut _ as *mut libc::sockaddr, &mut len) < 0 {
            return fail_os(l, &io::Error::last_os_error());
        }
        if ss.ss_family as c_int == libc::AF_UNIX {
            let un = &*(&ss as *const _ as *const libc::sockaddr_un);
            let path: Vec<u8> = un
                .sun_path
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            lua::push_bytes(l, &path);
            drop(path);
            return 1;
        }
        match super::tcp::sockaddr_to_std(&ss) {
            Some(a) => {
                let ip = a.ip().to_string();
                lua::push_str(l, &ip);
                drop(ip);
                ffi::lua_pushinteger(l, a.port() as _);
                2
            }
            None => lua::fail(l, "Address family not supported by protocol"),
        }
    }
}

pub(crate) const METHODS: &[Reg] = &[
    (c"accept", server_accept),
    (c"autospawn", server_autospawn),
    (c"interrupt", server_interrupt),
    (c"close", server_close),
    (c"closed", server_closed),
    (c"busy", server_busy),
    (c"settimeout", settimeout::<Server>),
    (c"getsockname", server_getsockname),
];
