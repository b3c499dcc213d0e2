//! The standard streams `io.stdin`, `io.stdout`, `io.stderr` (`core.stdio`):
//! a descriptor of their own where one can be opened, fds 0–2 restored at
//! exit where not; and C stdio's buffers flushed before a standard Stream's
//! own output (ARCHITECTURE.md, "Reads: formats, buffers, readiness").

use std::ffi::c_int;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};

use super::{push_stream, Stream};
use crate::io::fd::{fail_os, set_nonblocking};
use crate::runtime::lua::{self, ffi, lua_State};

/// Flush C stdio's output buffers (`print`, `_G.io.write`), so that what
/// a script wrote through them comes before what it writes next through
/// `lem.io.stdout`/`stderr`, and is not lost when the descriptor closes.
pub(super) fn flush_c_stdio() {
    // SAFETY: fflush(NULL) flushes every output stream; no arguments.
    unsafe {
        libc::fflush(std::ptr::null_mut());
    }
}

/// Which of fds 0–2 lem made non-blocking (bit n for fd n).
pub(super) static STDIO_NONBLOCK: AtomicU8 = AtomicU8::new(0);

/// core.stdio(fd) -> Stream: fd 0, 1 or 2 as a non-blocking Stream.
///
/// A pipe, fifo or terminal is opened again (`/proc/self/fd/N`): the Stream
/// gets an open file description of its own, non-blocking, while fd N's
/// stays blocking for C stdio. Making fd N itself non-blocking (as LEM did)
/// made a `print` into a full pipe fail with `EAGAIN` and lose its output.
/// Anything else (a socket, which cannot be opened again) is fd N itself,
/// made non-blocking and restored at exit; a regular file never waits.
pub(crate) unsafe extern "C-unwind" fn stdio(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
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
