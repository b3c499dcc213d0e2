//! What every `lem.io` object shares about descriptors: the OS's error
//! text as Lua gets it (`nil, strerror`, as LEM's `io_strerror`), the
//! descriptor flags lem sets, and which object a descriptor makes
//! ([`fd_kind`]).

use std::ffi::c_int;
use std::io;
use std::os::fd::RawFd;

use crate::runtime::lua::{self, lua_State};

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
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let msg = os_error_text(e);
        lua::fail(l, &msg)
    }
}

/// Whether an error means the peer went away (a write or read on it then
/// returns `'closed'`).
pub(crate) fn is_disconnect(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET))
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
    // SAFETY: `st` is a valid out-pointer; a bad fd is an error return.
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
