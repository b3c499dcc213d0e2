//! Datagram: UDP sockets (`io.udp.bind`, `io.udp.connect`; the Lua half
//! names them in `lua/lem/io.lua`). See docs/io.md,
//! "Datagrams".
//!
//! One receiver and one sender at a time (`'busy'` for a second). A call
//! that can finish at once does so without suspending; otherwise it waits
//! on the loop's readiness: a receive through the socket itself
//! ([`Pending`]), a send through a future. A connected socket's receiver
//! waits for readable *or* error: an ICMP error (port unreachable) raises
//! only `EPOLLERR`, and the next `recv` returns it (`'Connection
//! refused'`).
//! Host strings that are IP literals are used as they are; names are
//! looked up on the loop, as `io.tcp.connect` does (`dns.rs`).

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, CStr};
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{Domain, SockAddr, SockRef, Socket, Type};
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tokio::io::Interest;

use super::fd::{fail_os, os_error_text};
use super::op::{
    can_suspend, cannot_suspend, check_suspendable, deadline, settimeout, timed_out, Op, ReadTimer,
    Settings,
};
use super::tcp::{check_port, sockaddr_to_std};
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::scheduler::{self, Commit, Pending, Resume, WaitHandle, Waiter};
use tokio::time::Instant;

pub(crate) static DATAGRAM: &CStr = c"lem.Datagram";

/// The largest datagram `recv` takes (and the default `maxsize`).
const MAX_DATAGRAM: usize = 65535;

/// The largest buffer a socket keeps for the datagrams its waits receive.
const KEPT_BUFFER: usize = 2048;

/// How many datagrams one receive takes from the kernel at most (one
/// `recvmmsg(2)`): its own, and the rest kept for the receives after it.
const BATCH: usize = 8;

thread_local! {
    /// Where the datagrams after a receive's own land first (`BATCH - 1`
    /// slots of the largest size; only the pages written are ever touched):
    /// the loop is one thread, and they are copied out before anything else
    /// runs.
    static REST: RefCell<Box<[MaybeUninit<u8>]>> =
        RefCell::new(Box::new_uninit_slice((BATCH - 1) * MAX_DATAGRAM));
    /// The last address `sendto` was given, parsed: a server mostly
    /// answers the peer it just heard from, and parsing its text again was
    /// a few percent of an echo's work.
    static LAST_HOST: RefCell<(Vec<u8>, Option<IpAddr>)> = const { RefCell::new((Vec::new(), None)) };
}

pub(crate) struct Inner {
    /// `None` once closed. A waiting future holds its own `Rc`; `close`
    /// aborts the waits, so the descriptor goes at once.
    fd: RefCell<Option<Rc<AsyncFd<OwnedFd>>>>,
    /// An IPv6 socket (which reaches IPv4 peers as v4-mapped addresses).
    v6: bool,
    /// Made by `io.udp.connect`: ICMP errors reach it (see [`Failure`]).
    connected: bool,
    rd: Op,
    wr: Op,
    timeout: Cell<Option<Duration>>,
    /// The receive that waits, if any: the socket itself is the wait the
    /// loop polls ([`Pending`]), so a receive that waits allocates nothing.
    receiving: Cell<Option<Receiving>>,
    /// How the receive that waited ended: the sender (the datagram is in
    /// `got`), or why it stopped; and whether it gives the sender.
    received: Cell<Option<(Received, bool)>>,
    /// The datagram a wait received, until its coroutine resumes.
    got: RefCell<Vec<u8>>,
    /// What the last `recvmmsg(2)` took beyond the datagram it was for.
    kept: RefCell<Kept>,
    /// A connected socket's wait for an error, kept from one receive to
    /// the next (it ends only when an error comes).
    failure: RefCell<Option<Failure>>,
    /// The timer of a receive with a timeout, reused.
    timer: Cell<Option<ReadTimer>>,
}

/// The datagrams one `recvmmsg(2)` took beyond the receive's own, in
/// order, for the receives after it. A socket holds at most `BATCH - 1`, and
/// no large buffer once they are taken.
#[derive(Default)]
struct Kept {
    bytes: Vec<u8>,
    /// Each datagram's length and sender; the next one is `items[next]`,
    /// its bytes at `bytes[at..]`.
    items: Vec<(usize, Option<SocketAddr>)>,
    next: usize,
    at: usize,
    /// The last `recvmmsg(2)` found more than one datagram.
    wide: bool,
}

impl Kept {
    fn keep(&mut self, data: &[u8], from: Option<SocketAddr>) {
        self.bytes.extend_from_slice(data);
        self.items.push((data.len(), from));
    }

    /// The next kept datagram, copied into `buf` and cut to its length (as
    /// `recvfrom(2)` into `buf` would cut it).
    fn take(&mut self, buf: &mut [MaybeUninit<u8>]) -> Option<Got> {
        let &(len, from) = self.items.get(self.next)?;
        let n = len.min(buf.len());
        for (d, &b) in buf.iter_mut().zip(&self.bytes[self.at..self.at + n]) {
            d.write(b);
        }
        self.at += len;
        self.next += 1;
        if self.next == self.items.len() {
            self.items.clear();
            self.bytes.clear();
            self.next = 0;
            self.at = 0;
            if self.bytes.capacity() > KEPT_BUFFER * BATCH {
                self.bytes = Vec::new();
            }
        }
        Some(Got {
            len: n,
            from,
            drained: false,
        })
    }
}

/// How a receive that waited ended: the sender, or why it stopped.
type Received = Result<Option<SocketAddr>, Stop>;

/// A receive that waits: its size bound and deadline, and whether it gives
/// the sender.
#[derive(Clone, Copy)]
struct Receiving {
    max: usize,
    with_addr: bool,
    deadline: Option<Instant>,
}

/// Ready when the socket has an error waiting (its readiness cleared, so
/// that the receive it wakes returns the error and the next one waits).
///
/// tokio wakes the reader's own slot (`poll_read_ready`) for readable data
/// only; an ICMP error (port unreachable) on a connected socket raises
/// `EPOLLERR` alone, which only a waiter with `Interest::ERROR` sees. A
/// bound socket gets no ICMP errors (Linux passes them to unconnected
/// sockets only under `IP_RECVERR`), so only connected ones keep this.
type Failure = Pin<Box<dyn Future<Output = io::Result<()>>>>;

fn failure(a: Rc<AsyncFd<OwnedFd>>) -> Failure {
    Box::pin(async move {
        let mut guard = a.ready(Interest::ERROR).await?;
        guard.clear_ready();
        Ok(())
    })
}

/// The userdata: `lem.Datagram`.
pub(crate) struct Datagram(Rc<Inner>);

impl Settings for Datagram {
    const CLASS: &'static CStr = DATAGRAM;
    fn timeout(&self) -> &Cell<Option<Duration>> {
        &self.0.timeout
    }
}

impl Inner {
    fn fd(&self) -> Option<Rc<AsyncFd<OwnedFd>>> {
        self.fd.borrow().clone()
    }

    /// The address to send to from this socket: IPv4 peers of an IPv6
    /// socket as v4-mapped.
    fn target(&self, a: SocketAddr) -> SocketAddr {
        match a {
            SocketAddr::V4(v4) if self.v6 => {
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
            }
            a => a,
        }
    }
}

/// The text of an IP address, on the stack (the longest IPv6 text is 45
/// bytes): pushed to Lua from there, as nothing that owns memory may be
/// alive when a push raises.
struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    /// `ip` as `recvfrom` gives it: IPv4 dotted by hand (std's formatter
    /// was a tenth of an echo's work), IPv6 as std writes it.
    fn new(ip: IpAddr) -> IpText {
        let mut t = IpText {
            buf: [0; 48],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, o) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    if o >= 100 {
                        t.push(b'0' + o / 100);
                    }
                    if o >= 10 {
                        t.push(b'0' + o / 10 % 10);
                    }
                    t.push(b'0' + o % 10);
                }
            }
            IpAddr::V6(_) => {
                use std::io::Write;
                let mut w = io::Cursor::new(&mut t.buf[..]);
                // 48 bytes hold any IPv6 address's text.
                let _ = write!(w, "{ip}");
                t.len = w.position() as usize;
            }
        }
        t
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// [`literal`] of `host`, from the cache when it is the last one parsed.
fn literal_cached(host: &[u8]) -> Option<IpAddr> {
    LAST_HOST.with(|c| {
        let mut c = c.borrow_mut();
        if c.1.is_some() && c.0 == host {
            return c.1;
        }
        let ip = std::str::from_utf8(host).ok().and_then(literal)?;
        c.0.clear();
        c.0.extend_from_slice(host);
        c.1 = Some(ip);
        Some(ip)
    })
}

/// Push a Datagram over a bound or connected UDP socket; 1, or 2 (`nil,
/// err`) when the loop cannot watch it.
///
/// # Safety
/// `l` must be a thread of lem's state with two free slots.
unsafe fn push_datagram(l: *mut lua_State, s: Socket, v6: bool, how: Make) -> c_int {
    unsafe {
        // SAFETY: into_raw_fd hands us sole ownership.
        let fd = OwnedFd::from_raw_fd(s.into_raw_fd());
        // SAFETY: the OwnedFd owns the descriptor for the AsyncFd's life.
        let a = match { AsyncFd::register(fd) }.map_err(|e| e.into_parts()) {
            Ok(a) => a,
            Err((_, e)) => return fail_os(l, &e),
        };
        lua::new_class(l, DATAGRAM, METHODS, Some(lua::gc::<Datagram>));
        ffi::lua_pop(l, 1);
        let inner = Inner {
            fd: RefCell::new(Some(Rc::new(a))),
            v6,
            connected: matches!(how, Make::Connect),
            rd: Op::default(),
            wr: Op::default(),
            timeout: Cell::new(None),
            receiving: Cell::new(None),
            received: Cell::new(None),
            got: RefCell::new(Vec::new()),
            kept: RefCell::new(Kept::default()),
            failure: RefCell::new(None),
            timer: Cell::new(None),
        };
        lua::push_object(l, DATAGRAM, Datagram(Rc::new(inner)));
        1
    }
}

/// An IP literal (`'::1'`, `'[::1]'`, `'127.0.0.1'`), or `None` for a name.
fn literal(host: &str) -> Option<IpAddr> {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    h.parse().ok()
}

/// A non-blocking UDP socket for addresses like `a` (close-on-exec, as
/// socket2 makes them).
fn udp_socket(v6: bool) -> io::Result<Socket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM, None)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// A socket bound to `a`; `dual`: an IPv6 wildcard that takes IPv4 too.
fn bind_on(a: SocketAddr, dual: bool, reuseport: bool) -> io::Result<Socket> {
    let s = udp_socket(a.is_ipv6())?;
    if a.is_ipv6() {
        s.set_only_v6(!dual)?;
    }
    if reuseport {
        s.set_reuse_port(true)?;
    }
    s.bind(&SockAddr::from(a))?;
    Ok(s)
}

/// A socket connected to `a`.
fn connect_to(a: SocketAddr) -> io::Result<Socket> {
    let s = udp_socket(a.is_ipv6())?;
    s.connect(&SockAddr::from(a))?;
    Ok(s)
}

unsafe fn check_str(l: *mut lua_State, arg: c_int) -> String {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let mut len = 0;
        let p = lua::check_lstring(l, arg, &mut len);
        String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, len)).into_owned()
    }
}

/// What bind or connect does with the addresses of its host.
#[derive(Clone, Copy)]
enum Make {
    Bind { reuseport: bool },
    Connect,
}

impl Make {
    fn verb(self) -> &'static str {
        match self {
            Make::Bind { .. } => "binding to",
            Make::Connect => "connecting to",
        }
    }

    /// The first of `addrs` that works, as `(socket, is_ipv6)`.
    fn make(
        self,
        addrs: &[SocketAddr],
        wildcard: bool,
        what: &str,
    ) -> Result<(Socket, bool), String> {
        let mut err = format!("error {} '{what}'", self.verb());
        for &a in addrs {
            let r = match self {
                Make::Bind { reuseport } => bind_on(a, wildcard, reuseport),
                Make::Connect => connect_to(a),
            };
            match r {
                Ok(s) => return Ok((s, a.is_ipv6())),
                Err(e) => err = format!("error {} '{what}': {}", self.verb(), os_error_text(&e)),
            }
        }
        Err(err)
    }
}

/// core.udp_bind(host, port [, reuseport]) and core.udp_connect(host,
/// port): at once for an IP literal (or `'*'`), else after a lookup on the
/// pool.
unsafe fn make(l: *mut lua_State, how: Make) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let port = check_port(l, 2);
        let host = check_str(l, 1);
        let what = format!("{host}:{port}");
        let wildcard = matches!(how, Make::Bind { .. }) && host == "*";
        let addrs = if wildcard {
            // IPv6 taking IPv4 too; IPv4 alone where there is no IPv6.
            Some(vec![
                SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
                SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
            ])
        } else {
            literal(&host).map(|ip| vec![SocketAddr::new(ip, port)])
        };
        if let Some(addrs) = addrs {
            return match how.make(&addrs, wildcard, &what) {
                Ok((s, v6)) => push_datagram(l, s, v6, how),
                Err(msg) => lua::fail(l, &msg),
            };
        }
        // `check_suspendable` may raise: nothing owned may be alive.
        drop((host, what));
        check_suspendable(l);
        let host = check_str(l, 1);
        let fut = Box::pin(async move {
            let found = super::dns::lookup(None, &host, libc::AF_UNSPEC)
                .await
                .map(|ips| {
                    ips.into_iter()
                        .map(|ip| SocketAddr::new(ip, port))
                        .collect::<Vec<_>>()
                });
            let what = format!("{host}:{port}");
            let r = match found {
                Err(msg) => Err(format!("error looking up '{what}': {msg}")),
                Ok(addrs) => how.make(&addrs, false, &what),
            };
            Resume::Push(Box::new(move |t| match r {
                Ok((s, v6)) => push_datagram(t, s, v6, how),
                Err(msg) => lua::fail(t, &msg),
            }))
        });
        scheduler::get().prepare(Commit::Future(fut));
        crate::runtime::scheduler::suspend(l)
    }
}

/// io.udp.bind(host, port [, reuseport]) -> Datagram | nil, err
pub(crate) unsafe extern "C-unwind" fn bind(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let reuseport = ffi::lua_toboolean(l, 3) != 0;
        make(l, Make::Bind { reuseport })
    }
}

/// io.udp.connect(host, port) -> Datagram | nil, err
pub(crate) unsafe extern "C-unwind" fn connect(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { make(l, Make::Connect) }
}

#[inline]
unsafe fn check_datagram<'a>(l: *mut lua_State) -> &'a Datagram {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { lua::check_object(l, 1, DATAGRAM) }
}

/// What one receive got: its datagram's length (cut to the buffer; so many
/// bytes of it are written) and sender, and whether the socket had no more
/// (so the loop's readiness may be cleared: the next datagram raises it
/// again).
struct Got {
    len: usize,
    from: Option<SocketAddr>,
    drained: bool,
}

/// One `recvmmsg(2)`: the first datagram into `buf`, up to `BATCH - 1`
/// more into `kept` (empty when this is called).
///
/// One call where a `recvfrom(2)` per datagram and one more to learn that
/// there are no more would take several: a server hearing many peers
/// takes what is queued at once, and a socket that waits for one answer
/// learns in the same call that it must wait next time.
fn recv_batch(fd: RawFd, buf: &mut [MaybeUninit<u8>], kept: &RefCell<Kept>) -> io::Result<Got> {
    // As many as the last call found, doubled: a socket that hears one
    // answer at a time asks for two (the second says whether to wait), a
    // busy one for the whole batch.
    let vlen = if kept.borrow().wide { BATCH } else { 2 };
    REST.with(|rest| {
        let mut rest = rest.borrow_mut();
        // Zeroed only for the messages asked for.
        let mut names = [const { MaybeUninit::<libc::sockaddr_storage>::uninit() }; BATCH];
        // SAFETY: all-zero is a valid value of these C structs (null
        // pointers, zero lengths), filled in below before use.
        let (mut iov, mut msgs): ([libc::iovec; BATCH], [libc::mmsghdr; BATCH]) =
            unsafe { std::mem::zeroed() };
        iov[0] = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut _,
            iov_len: buf.len(),
        };
        for (v, slot) in iov[1..vlen]
            .iter_mut()
            .zip(rest.chunks_exact_mut(MAX_DATAGRAM))
        {
            *v = libc::iovec {
                iov_base: slot.as_mut_ptr() as *mut _,
                iov_len: MAX_DATAGRAM,
            };
        }
        for ((m, name), v) in msgs[..vlen].iter_mut().zip(&mut names).zip(&mut iov) {
            *name = MaybeUninit::zeroed();
            m.msg_hdr.msg_name = name.as_mut_ptr() as *mut _;
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: each of the first `vlen` messages points at its own
        // address storage and one buffer of the length given (written,
        // never read, by the kernel), all alive across the call.
        let n =
            unsafe { libc::recvmmsg(fd, msgs.as_mut_ptr(), vlen as _, 0, std::ptr::null_mut()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        // SAFETY: the first `vlen` addresses were zeroed (and the kernel
        // wrote the first `n` of them).
        let sender = |i: usize| sockaddr_to_std(unsafe { names[i].assume_init_ref() });
        let mut kept = kept.borrow_mut();
        for (i, slot) in (1..n).zip(rest.chunks_exact(MAX_DATAGRAM)) {
            // SAFETY: the kernel wrote `msg_len` bytes of this slot.
            let data = unsafe { written(slot, msgs[i].msg_len as usize) };
            kept.keep(data, sender(i));
        }
        kept.wide = n > 1;
        Ok(Got {
            len: msgs[0].msg_len as usize,
            from: sender(0),
            drained: n < vlen,
        })
    })
}

/// `got` as the loop's readiness should know it: cleared when the receive
/// found the socket drained (the next datagram raises it again).
fn settle(mut guard: AsyncFdReadyGuard<'_, OwnedFd>, got: io::Result<Got>) -> io::Result<Got> {
    match &got {
        Ok(g) if !g.drained => {}
        Ok(_) => guard.clear_ready(),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
        Err(_) => {}
    }
    got
}

/// A receive that may suspend: a datagram that the socket kept, or
/// [`recv_batch`] if the loop's readiness says one may be there (as
/// tokio's own sockets do: no `recvmmsg(2)` that is sure to say `EAGAIN`
/// on a socket known to be drained).
fn recv_ready(
    a: &AsyncFd<OwnedFd>,
    buf: &mut [MaybeUninit<u8>],
    kept: &RefCell<Kept>,
) -> io::Result<Got> {
    if let Some(got) = kept.borrow_mut().take(buf) {
        return Ok(got);
    }
    // Asked here only, never waited on: the wait that follows a
    // `WouldBlock` polls with its own waker.
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match a.poll_read_ready(&mut cx) {
        Poll::Ready(Ok(guard)) => settle(guard, recv_batch(a.as_raw_fd(), buf, kept)),
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

impl Inner {
    /// [`recv_batch`] of at most `max` bytes into `got`.
    fn recv_got(&self, fd: RawFd, max: usize) -> io::Result<Got> {
        let mut buf = [MaybeUninit::<u8>::uninit(); MAX_DATAGRAM];
        let got = recv_batch(fd, &mut buf[..max], &self.kept)?;
        let mut out = self.got.borrow_mut();
        out.clear();
        // SAFETY: recv_batch wrote `len` bytes.
        out.extend_from_slice(unsafe { written(&buf, got.len) });
        Ok(got)
    }
}

/// The first `n` bytes of `buf`, which a `recv_from` into it wrote.
///
/// # Safety
/// `n` must be what that `recv_from` returned.
unsafe fn written(buf: &[MaybeUninit<u8>], n: usize) -> &[u8] {
    // SAFETY: the caller's promise: those bytes are initialised.
    unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, n) }
}

/// Push what a receive got: `data` (and `host, port` for `recvfrom`).
unsafe fn push_received(
    l: *mut lua_State,
    data: &[u8],
    from: Option<SocketAddr>,
    with_addr: bool,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::push_bytes(l, data);
        if !with_addr {
            return 1;
        }
        match from {
            Some(a) => {
                lua::push_bytes(l, IpText::new(a.ip().to_canonical()).as_bytes());
                ffi::lua_pushinteger(l, a.port() as _);
            }
            None => {
                ffi::lua_pushnil(l);
                ffi::lua_pushnil(l);
            }
        }
        3
    }
}

/// The optional `maxsize` argument: 1 to 65535.
unsafe fn check_maxsize(l: *mut lua_State, arg: c_int) -> usize {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let n = lua::opt_integer(l, arg, MAX_DATAGRAM as i64);
        if !(1..=MAX_DATAGRAM as i64).contains(&n) {
            lua::arg_error(l, arg, c"maxsize must be between 1 and 65535");
        }
        n as usize
    }
}

/// Why a wait ended without its value.
enum Stop {
    Timeout,
    Error(io::Error),
}

/// Run `work`, bounded by `timeout`.
async fn bounded<T>(
    timeout: Option<Duration>,
    work: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, Stop> {
    match timeout {
        None => work.await.map_err(Stop::Error),
        Some(d) => match tokio::time::timeout(d, work).await {
            Ok(r) => r.map_err(Stop::Error),
            Err(_) => Err(Stop::Timeout),
        },
    }
}

/// A receive that waits: the socket itself is the wait.
impl Pending for Inner {
    fn started(&self, w: Waiter, h: WaitHandle) {
        self.rd.started(w, h);
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        let (Some(r), Some(a)) = (self.receiving.get(), self.fd()) else {
            // Closed (which ends the wait before it is polled again).
            return Poll::Ready(());
        };
        let done = loop {
            if self.connected {
                let mut failure = self.failure.borrow_mut();
                let f = failure.get_or_insert_with(|| self::failure(a.clone()));
                if let Poll::Ready(e) = f.as_mut().poll(cx) {
                    *failure = None;
                    if let Err(e) = e {
                        break Err(Stop::Error(e));
                    }
                    // The error is what the next receive returns.
                    match self.recv_got(a.as_raw_fd(), r.max) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => break Err(Stop::Error(e)),
                        Ok(got) => break Ok(got.from),
                    }
                    continue;
                }
            }
            let guard = match a.poll_read_ready(cx) {
                Poll::Ready(Ok(guard)) => guard,
                Poll::Ready(Err(e)) => break Err(Stop::Error(e)),
                Poll::Pending if timed_out(&self.timer, r.deadline, cx) => {
                    break Err(Stop::Timeout)
                }
                Poll::Pending => return Poll::Pending,
            };
            // A WouldBlock clears the readiness, and the loop waits again.
            match settle(guard, self.recv_got(a.as_raw_fd(), r.max)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                got => break got.map(|g| g.from).map_err(Stop::Error),
            }
        };
        drop(a);
        self.receiving.set(None);
        self.received.set(Some((done, r.with_addr)));
        Poll::Ready(())
    }

    unsafe fn push(&self, t: *mut lua_State) -> c_int {
        // SAFETY: `t` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            self.rd.end();
            let done = self.received.take();
            if self.fd.borrow().is_none() {
                return lua::fail(t, "closed");
            }
            match done {
                Some((Ok(from), with_addr)) => {
                    // SAFETY: `got` is written only by `poll`, which runs on
                    // the loop and not while a Lua call (this push, or a
                    // finalizer it runs) is under way; a reference could not
                    // be held over a push that may raise.
                    let data = &*self.got.as_ptr();
                    let n = push_received(t, data, from, with_addr);
                    // An idle socket keeps no large buffer.
                    let mut got = self.got.borrow_mut();
                    if got.capacity() > KEPT_BUFFER {
                        *got = Vec::new();
                    }
                    n
                }
                Some((Err(Stop::Timeout), _)) => lua::fail(t, "timeout"),
                Some((Err(Stop::Error(e)), _)) => fail_os(t, &e),
                None => lua::fail(t, "closed"),
            }
        }
    }
}

/// sock:recvfrom([maxsize]) -> data, host, port | nil, err, and
/// sock:recv([maxsize]) -> data | nil, err.
unsafe fn receive(l: *mut lua_State, with_addr: bool) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let s = check_datagram(l);
        let max = check_maxsize(l, 2);
        let inner = &s.0;
        if inner.rd.is_active() {
            return lua::fail(l, "busy");
        }
        let Some(a) = inner.fd() else {
            return lua::fail(l, "closed");
        };
        // A datagram already there is taken without suspending; the wait
        // then looks again. Received on the stack, as nothing that owns
        // memory may be alive when the push raises.
        let mut buf = [MaybeUninit::<u8>::uninit(); MAX_DATAGRAM];
        let buf = &mut buf[..max];
        let got = if !can_suspend(l) {
            let kept = inner.kept.borrow_mut().take(buf);
            kept.map_or_else(|| recv_batch(a.as_raw_fd(), buf, &inner.kept), Ok)
        } else {
            recv_ready(&a, buf, &inner.kept)
        };
        drop(a);
        match got {
            Ok(got) => {
                // SAFETY: the receive wrote `len` bytes.
                return push_received(l, written(buf, got.len), got.from, with_addr);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return fail_os(l, &e),
        }
        check_suspendable(l);
        inner.receiving.set(Some(Receiving {
            max,
            with_addr,
            deadline: deadline(inner.timeout.get()),
        }));
        scheduler::get().prepare(Commit::Wait(inner.clone()));
        crate::runtime::scheduler::suspend(l)
    }
}

/// sock:recvfrom([maxsize]) -> data, host, port | nil, err
unsafe extern "C-unwind" fn datagram_recvfrom(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { receive(l, true) }
}

/// sock:recv([maxsize]) -> data | nil, err
unsafe extern "C-unwind" fn datagram_recv(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { receive(l, false) }
}

/// One `sendto(2)` (`send(2)` without an address).
fn send_one(a: &AsyncFd<OwnedFd>, data: &[u8], to: Option<&SockAddr>) -> io::Result<usize> {
    let s = SockRef::from(a.get_ref());
    match to {
        Some(to) => s.send_to(data, to),
        None => s.send(data),
    }
}

/// Wait until the socket takes the datagram.
async fn send_wait(a: &AsyncFd<OwnedFd>, data: &[u8], to: Option<&SockAddr>) -> io::Result<()> {
    loop {
        let mut guard = a.writable().await?;
        match guard.try_io(|a| send_one(a, data, to)) {
            Ok(r) => return r.map(drop),
            Err(_would_block) => continue,
        }
    }
}

/// Send `data` to `to` (`None`: the connected peer); `host` is a name to
/// look up first. `true` at once when the kernel takes it, else suspend.
unsafe fn send(
    l: *mut lua_State,
    inner: &Rc<Inner>,
    data: &[u8],
    to: Option<SocketAddr>,
    lookup: Option<(String, u16)>,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if inner.wr.is_active() {
            return lua::fail(l, "busy");
        }
        let Some(a) = inner.fd() else {
            return lua::fail(l, "closed");
        };
        let to = to.map(|t| SockAddr::from(inner.target(t)));
        if lookup.is_none() {
            match send_one(&a, data, to.as_ref()) {
                Ok(_) => {
                    ffi::lua_pushboolean(l, 1);
                    return 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    drop((a, to));
                    return fail_os(l, &e);
                }
            }
        }
        if !can_suspend(l) {
            drop((a, to, lookup));
            cannot_suspend(l);
        }
        let data = data.to_vec();
        let inner = inner.clone();
        scheduler::get().prepare(Commit::Custom(Box::new(move |w| {
            let timeout = inner.timeout.get();
            let me = inner.clone();
            let fut = Box::pin(async move {
                let work = async {
                    let to = match lookup {
                        None => to,
                        Some((host, port)) => {
                            let found =
                                super::dns::lookup(None, &host, libc::AF_UNSPEC)
                                    .await
                                    .map(|ips| {
                                        ips.into_iter()
                                            .map(|ip| SocketAddr::new(ip, port))
                                            .collect::<Vec<_>>()
                                    });
                            let addr = found
                                .ok()
                                .and_then(|v| {
                                    // One the socket can reach: its own family,
                                    // or IPv4 from IPv6.
                                    v.iter()
                                        .find(|x| x.is_ipv6() == me.v6)
                                        .or_else(|| v.iter().find(|x| me.v6 && x.is_ipv4()))
                                        .copied()
                                })
                                .map(|x| SockAddr::from(me.target(x)));
                            match addr {
                                Some(x) => Some(x),
                                None => {
                                    return Err(io::Error::other(format!(
                                        "error looking up '{host}:{port}'"
                                    )))
                                }
                            }
                        }
                    };
                    send_wait(&a, &data, to.as_ref()).await
                };
                let r = bounded(timeout, work).await;
                Resume::Push(Box::new(move |t| {
                    me.wr.end();
                    if me.fd.borrow().is_none() {
                        return lua::fail(t, "closed");
                    }
                    match r {
                        Ok(()) => {
                            ffi::lua_pushboolean(t, 1);
                            1
                        }
                        Err(Stop::Timeout) => lua::fail(t, "timeout"),
                        Err(Stop::Error(e)) => fail_os(t, &e),
                    }
                }))
            });
            inner.wr.begin(w, fut);
        })));
        crate::runtime::scheduler::suspend(l)
    }
}

/// sock:sendto(data, host, port) -> true | nil, err
unsafe extern "C-unwind" fn datagram_sendto(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_datagram(l);
        let data = lua::check_bytes(l, 2);
        let mut len = 0;
        let host = lua::check_lstring(l, 3, &mut len);
        let port = check_port(l, 4);
        let host = std::slice::from_raw_parts(host as *const u8, len);
        match literal_cached(host) {
            Some(ip) => send(l, &s.0, data, Some(SocketAddr::new(ip, port)), None),
            None => {
                let host = String::from_utf8_lossy(host).into_owned();
                send(l, &s.0, data, None, Some((host, port)))
            }
        }
    }
}

/// sock:send(data) -> true | nil, err (to the connected peer)
unsafe extern "C-unwind" fn datagram_send(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_datagram(l);
        let data = lua::check_bytes(l, 2);
        send(l, &s.0, data, None, None)
    }
}

/// `true`, or `nil, err` for a failed socket option.
unsafe fn option_result(l: *mut lua_State, r: io::Result<()>) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match r {
            Ok(()) => {
                ffi::lua_pushboolean(l, 1);
                1
            }
            Err(e) => fail_os(l, &e),
        }
    }
}

/// sock:setoption('broadcast' | 'reuseport', bool) -> true | nil, err
unsafe extern "C-unwind" fn datagram_setoption(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_datagram(l);
        const NAMES: [*const std::ffi::c_char; 3] = [
            c"broadcast".as_ptr(),
            c"reuseport".as_ptr(),
            std::ptr::null(),
        ];
        let which = lua::check_option(l, 2, std::ptr::null(), NAMES.as_ptr());
        lua::check_type(l, 3, ffi::LUA_TBOOLEAN);
        let on = ffi::lua_toboolean(l, 3) != 0;
        let Some(a) = s.0.fd() else {
            return lua::fail(l, "closed");
        };
        let sock = SockRef::from(a.get_ref());
        let r = if which == 0 {
            sock.set_broadcast(on)
        } else {
            sock.set_reuse_port(on)
        };
        drop(a);
        option_result(l, r)
    }
}

/// The group of `join`/`leave` and the interface: for IPv4 the address
/// of one (`'0.0.0.0'` or absent: the system's choice), for IPv6 its
/// index or name (absent: the system's choice).
enum Membership {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, u32),
}

unsafe fn check_membership(l: *mut lua_State) -> Membership {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let mut len = 0;
        let g = lua::check_lstring(l, 2, &mut len);
        let g = std::slice::from_raw_parts(g as *const u8, len);
        let group = std::str::from_utf8(g).ok().and_then(literal);
        match group {
            Some(IpAddr::V4(g)) => {
                let iface = if lua::is_none_or_nil(l, 3) {
                    Some(Ipv4Addr::UNSPECIFIED)
                } else {
                    let mut len = 0;
                    let p = lua::check_lstring(l, 3, &mut len);
                    let b = std::slice::from_raw_parts(p as *const u8, len);
                    std::str::from_utf8(b).ok().and_then(|s| s.parse().ok())
                };
                match iface {
                    Some(i) => Membership::V4(g, i),
                    None => lua::arg_error(l, 3, c"invalid interface address"),
                }
            }
            Some(IpAddr::V6(g)) => {
                let index = if lua::is_none_or_nil(l, 3) {
                    0
                } else if ffi::lua_type(l, 3) == ffi::LUA_TNUMBER {
                    let n = lua::check_integer(l, 3);
                    if !(0..=u32::MAX as i64).contains(&n) {
                        lua::arg_error(l, 3, c"invalid interface");
                    }
                    n as u32
                } else {
                    let p = lua::check_lstring(l, 3, std::ptr::null_mut());
                    let i = libc::if_nametoindex(p);
                    if i == 0 {
                        lua::arg_error(l, 3, c"invalid interface");
                    }
                    i
                };
                Membership::V6(g, index)
            }
            None => lua::arg_error(l, 2, c"invalid group address"),
        }
    }
}

unsafe fn membership(l: *mut lua_State, join: bool) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let s = check_datagram(l);
        let m = check_membership(l);
        let Some(a) = s.0.fd() else {
            return lua::fail(l, "closed");
        };
        let sock = SockRef::from(a.get_ref());
        let r = match (m, join) {
            (Membership::V4(g, i), true) => sock.join_multicast_v4(&g, &i),
            (Membership::V4(g, i), false) => sock.leave_multicast_v4(&g, &i),
            (Membership::V6(g, i), true) => sock.join_multicast_v6(&g, i),
            (Membership::V6(g, i), false) => sock.leave_multicast_v6(&g, i),
        };
        drop(a);
        option_result(l, r)
    }
}

/// sock:join(group [, iface]) -> true | nil, err
unsafe extern "C-unwind" fn datagram_join(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { membership(l, true) }
}

/// sock:leave(group [, iface]) -> true | nil, err
unsafe extern "C-unwind" fn datagram_leave(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { membership(l, false) }
}

/// sock:getsockname() -> ip, port | nil, err
unsafe extern "C-unwind" fn datagram_getsockname(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_datagram(l);
        let Some(a) = s.0.fd() else {
            return lua::fail(l, "closed");
        };
        let r = SockRef::from(a.get_ref()).local_addr();
        drop(a);
        match r.map(|x| x.as_socket()) {
            Ok(Some(x)) => {
                let ip = x.ip().to_string();
                lua::push_str(l, &ip);
                drop(ip);
                ffi::lua_pushinteger(l, x.port() as _);
                2
            }
            Ok(None) => lua::fail(l, "Address family not supported by protocol"),
            Err(e) => fail_os(l, &e),
        }
    }
}

/// sock:close() -> true | nil, 'closed': waiters get `nil, 'closed'`.
unsafe extern "C-unwind" fn datagram_close(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_datagram(l);
        let fd = s.0.fd.borrow_mut().take();
        if fd.is_none() {
            return lua::fail(l, "closed");
        }
        s.0.rd.cancel("closed");
        s.0.wr.cancel("closed");
        // The wait for an error holds the descriptor too.
        let failure = s.0.failure.borrow_mut().take();
        drop((fd, failure));
        // Datagrams taken from the kernel go with the socket.
        *s.0.kept.borrow_mut() = Kept::default();
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// sock:closed() -> boolean
unsafe extern "C-unwind" fn datagram_closed(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_datagram(l);
        ffi::lua_pushboolean(l, s.0.fd.borrow().is_none() as c_int);
        1
    }
}

/// sock:fileno() -> fd | nil, 'closed'
unsafe extern "C-unwind" fn datagram_fileno(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_datagram(l);
        let fd = s.0.fd.borrow().as_ref().map(|a| a.as_raw_fd());
        match fd {
            Some(fd) => {
                ffi::lua_pushinteger(l, fd as _);
                1
            }
            None => lua::fail(l, "closed"),
        }
    }
}

pub(crate) const METHODS: &[Reg] = &[
    (c"sendto", datagram_sendto),
    (c"send", datagram_send),
    (c"recvfrom", datagram_recvfrom),
    (c"recv", datagram_recv),
    (c"setoption", datagram_setoption),
    (c"join", datagram_join),
    (c"leave", datagram_leave),
    (c"settimeout", settimeout::<Datagram>),
    (c"getsockname", datagram_getsockname),
    (c"close", datagram_close),
    (c"closed", datagram_closed),
    (c"fileno", datagram_fileno),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_as_std_writes_it() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.200.3.0",
            "1.22.100.9",
            "127.0.0.1",
            "::1",
            "fe80::1:2",
            "2001:db8:85a3::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let a: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new(a).as_bytes(), a.to_string().as_bytes(), "{ip}");
        }
        // The longest IPv6 text fits.
        let a: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap();
        assert_eq!(IpText::new(a).as_bytes(), a.to_string().as_bytes());
    }

    #[test]
    fn literal_cached_follows_each_host() {
        for host in [
            "127.0.0.1",
            "::1",
            "[::1]",
            "127.0.0.1",
            "10.0.0.1",
            "10.0.0.1",
        ] {
            assert_eq!(literal_cached(host.as_bytes()), literal(host), "{host}");
        }
        assert_eq!(literal_cached(b"example.com"), None);
        assert_eq!(literal_cached(b"\xff"), None);
        assert_eq!(
            literal_cached(b"10.0.0.1"),
            Some("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn kept_datagrams_come_in_order_each_cut_to_its_receive() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let b: SocketAddr = "[::1]:10".parse().unwrap();
        let mut k = Kept::default();
        let big = vec![7u8; 3 * KEPT_BUFFER * BATCH];
        k.keep(b"first", Some(a));
        k.keep(b"second", Some(b));
        k.keep(&big, None);
        let mut buf = [MaybeUninit::<u8>::uninit(); 8];
        let mut next = |max: usize| {
            let g = k.take(&mut buf[..max])?;
            // SAFETY: take wrote `len` bytes.
            Some((unsafe { written(&buf, g.len) }.to_vec(), g.from, g.drained))
        };
        assert_eq!(next(8), Some((b"first".to_vec(), Some(a), false)));
        assert_eq!(next(3), Some((b"sec".to_vec(), Some(b), false)));
        assert_eq!(next(8), Some((vec![7u8; 8], None, false)));
        assert_eq!(next(8), None);
        // Spent: nothing large is kept.
        assert_eq!(k.bytes.capacity(), 0);
        k.keep(b"again", Some(a));
        let mut buf = [MaybeUninit::<u8>::uninit(); 8];
        let g = k.take(&mut buf).unwrap();
        // SAFETY: take wrote `len` bytes.
        assert_eq!(unsafe { written(&buf, g.len) }, b"again");
        assert!(k.take(&mut buf).is_none());
    }
}
