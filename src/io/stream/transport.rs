//! The descriptor under a Stream ([`Io`]): registered with the loop, used
//! directly (what epoll refuses: regular files, `/dev/null`), or a TLS
//! session over a TCP socket (`src/io/tls/stream.rs`); and which kind of
//! socket it is ([`Kind`]).

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;

use tokio::io::unix::AsyncFd;

use super::stdio::{flush_c_stdio, STDIO_NONBLOCK};
use super::write::writev_all;
use crate::io::fd::{set_cloexec, set_nonblocking};

/// The descriptor: registered with the loop, or (for what epoll refuses:
/// regular files and `/dev/null` handed over as stdio) used directly, where
/// reads and writes never wait.
pub(crate) enum Io {
    Async(AsyncFd<OwnedFd>),
    Direct(OwnedFd),
    /// A TCP socket with a TLS session over it (src/io/tls_io.rs).
    Tls(Box<crate::io::tls::stream::Tls>),
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
    pub(super) fn watched(&self) -> Option<&AsyncFd<OwnedFd>> {
        match self {
            Io::Async(a) => Some(a),
            Io::Tls(t) => Some(&t.fd),
            Io::Direct(_) => None,
        }
    }

    /// Write `bufs` after the first `skip` bytes: what was taken, and the
    /// error that stopped it (`WouldBlock`: wait for room, then go on).
    pub(super) fn write(&self, bufs: &[&[u8]], skip: usize) -> (usize, Option<io::Error>) {
        match self {
            Io::Tls(t) => t.write(bufs, skip),
            _ => writev_all(self.raw(), bufs, skip),
        }
    }

    /// Read what the descriptor has (`WouldBlock` when nothing), as a
    /// Stream's reads do: through the TLS session if there is one.
    pub(super) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Tls(t) => t.read(buf),
            _ => super::read_fd(self.raw(), buf),
        }
    }

    /// Whether input waits in the transport itself, not in the socket (a
    /// TLS session's records read with the handshake's, or read along
    /// with others): it is read without waiting for readiness.
    pub(super) fn holds_input(&self) -> bool {
        match self {
            Io::Tls(t) => t.holds_input(),
            _ => false,
        }
    }

    /// Read what [`holds_input`](Self::holds_input) found.
    pub(super) fn read_held(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Tls(t) => t.read(buf),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Whether written bytes still wait to leave (a TLS session's records).
    pub(super) fn pending(&self) -> bool {
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

/// What a descriptor is, for `cork` and `getpeer`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Tcp,
    Unix,
    Other,
}

pub(super) fn socket_kind(fd: RawFd) -> Kind {
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
