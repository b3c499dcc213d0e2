//! Writing a Stream: `stream:write` tries one vectored `writev(2)` of all
//! its arguments and copies only what the kernel did not take, to write from
//! a wait; `stream:sendfile` copies from a File with the kernel's sendfile
//! (read and written through the session on a TLS stream).

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use super::{check_stream, flush_c_stdio, Inner, Io, Stop, Stream};
use crate::io::fd::{fail_os, is_disconnect};
use crate::io::op::{can_suspend, cannot_suspend};
use crate::runtime::lua::{self, ffi, lua_State};
use crate::runtime::scheduler::{self, Commit, Resume};

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

/// Most buffers handed to one `writev(2)`.
const MAX_IOV: usize = 64;

/// Write `bufs` (skipping the first `skip` bytes overall) with as few
/// `writev(2)` calls as the kernel allows. Returns the bytes written and
/// the error that stopped it, if any (`WouldBlock` when the socket is full).
pub(super) fn writev_all(fd: RawFd, bufs: &[&[u8]], mut skip: usize) -> (usize, Option<io::Error>) {
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
pub(super) unsafe extern "C-unwind" fn stream_write(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
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
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            if self == Failure::False && n == 2 && ffi::lua_type(l, -2) == ffi::LUA_TNIL {
                ffi::lua_pushboolean(l, 0);
                ffi::lua_replace(l, -3);
            }
            n
        }
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
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            match self {
                Write::Sent => 1,
                Write::Failed(n) => n,
                Write::Suspend => crate::runtime::scheduler::suspend(l),
                Write::Outside => cannot_suspend(l),
            }
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
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
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
    // SAFETY: the scheduler calls a Resume::Push closure with the resumed
    // thread `t`, with room for the values it pushes.
    Resume::Push(Box::new(move |t| unsafe {
        failure.apply(t, write_result(t, &inner, r))
    }))
}

unsafe fn write_result<T>(t: *mut lua_State, inner: &Inner, r: Result<T, Stop>) -> c_int
where
    T: PushValue,
{
    // SAFETY: `t` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
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
}

/// A result a write-side wait hands back.
trait PushValue {
    unsafe fn push(self, l: *mut lua_State) -> c_int;
}

impl PushValue for () {
    unsafe fn push(self, l: *mut lua_State) -> c_int {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            ffi::lua_pushboolean(l, 1);
            1
        }
    }
}

impl PushValue for u64 {
    unsafe fn push(self, l: *mut lua_State) -> c_int {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            ffi::lua_pushinteger(l, self as _);
            1
        }
    }
}

/// stream:sendfile(file, size [, offset]) -> bytes | nil, err
pub(super) unsafe extern "C-unwind" fn stream_sendfile(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_stream(l);
        let f: &crate::io::file::File = lua::check_object(l, 2, crate::io::file::FILE);
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
        // SAFETY: the scheduler calls a Resume::Push closure with the resumed
        // thread `t`, with room for the values it pushes.
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
    // SAFETY: the scheduler calls a Resume::Push closure with the resumed
    // thread `t`, with room for the values it pushes.
    Resume::Push(Box::new(move |t| unsafe { write_result(t, &inner, r) }))
}

/// `sendfile` on a TLS stream: the file's bytes must be encrypted, so they
/// are read (64 KiB at a time, as the kernel's sendfile would from the page
/// cache) and written through the session, waiting for room between.
async fn copy_to_tls(
    t: &crate::io::tls::stream::Tls,
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
