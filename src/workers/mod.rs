//! Workers and graceful stops.
//!
//! `lem -w N script.lua` runs the script in N worker processes under a
//! supervisor ([`supervisor::supervise`]). This half is the
//! worker's side, and the graceful stop every lem process has:
//!
//! - A worker knows its number and the worker count from the environment
//!   the supervisor gave it ([`init_from_env`]), and a control socket to
//!   the supervisor.
//! - Its listening sockets are made and kept by the supervisor: `io.tcp.listen`
//!   and `io.unix.listen` ask for them over the control socket
//!   (the [`crate::io::broker::Broker`] it implements) and get descriptors back. TCP
//!   sockets are one per worker number, with `SO_REUSEPORT`, so the kernel
//!   spreads connections over the workers; a Unix socket is shared. Since
//!   the supervisor keeps them, the replacement of a worker that died, or
//!   the new worker of a reload, takes over the same socket with the
//!   connections waiting in its queue: none is refused or reset.
//! - The first time a worker accepts, it tells the supervisor it serves;
//!   a reload waits for that before it stops the old workers.
//! - The worker is the process's socket broker (`crate::io::broker`) and
//!   gives the runtime its identity (`crate::runtime::lifecycle`), whose
//!   graceful stop a worker starts on SIGTERM and SIGINT.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub mod supervisor;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendFlags,
};

/// The environment variable a worker finds its identity in:
/// `id count grace fd` (the control socket's descriptor).
pub(crate) const ENV: &str = "LEM_WORKER";

/// Largest request or answer on the control socket.
pub(crate) const MAX_MESSAGE: usize = 8 << 10;

/// Most descriptors in one answer (`'*'`: an IPv6 and an IPv4 socket).
pub(crate) const MAX_FDS: usize = 2;

struct Worker {
    /// The control socket; one request at a time (listens run on pool
    /// threads).
    ctl: Mutex<OwnedFd>,
    announced: AtomicBool,
}

/// Parse `id count grace fd`.
fn parse_env(v: &str) -> Option<(u32, u32, f64, i32)> {
    let mut it = v.split(' ');
    let id = it.next()?.parse().ok()?;
    let count = it.next()?.parse().ok()?;
    let grace: f64 = it.next()?.parse().ok()?;
    let fd = it.next()?.parse().ok()?;
    let valid = it.next().is_none()
        && (1..=count).contains(&id)
        && grace.is_finite()
        && grace >= 0.0
        && fd > 2;
    valid.then_some((id, count, grace, fd))
}

/// Whether `fd` is a Unix socket of type `SOCK_SEQPACKET`, as the
/// supervisor's control sockets are.
fn is_control_socket(fd: i32) -> bool {
    // SAFETY: the descriptor is borrowed for the call only.
    let s = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let s = socket2::SockRef::from(&s);
    matches!(s.r#type(), Ok(t) if t == socket2::Type::SEQPACKET)
        && matches!(s.domain(), Ok(d) if d == socket2::Domain::UNIX)
}

/// Become a worker if the supervisor started this process: read and
/// remove `ENV` (so that processes the script starts are not workers
/// too) and take the control socket. Call at startup, before any thread.
/// Returns `(id, count)`. A malformed value is ignored.
pub fn init_from_env() -> Option<(u32, u32)> {
    let v = std::env::var(ENV).ok()?;
    std::env::remove_var(ENV);
    let (id, count, grace, fd) = parse_env(&v)?;
    if !is_control_socket(fd) {
        return None;
    }
    // SAFETY: the supervisor passed this descriptor for us to own.
    let ctl = unsafe { OwnedFd::from_raw_fd(fd) };
    crate::io::fd::set_cloexec(ctl.as_raw_fd());
    let _ = crate::io::fd::set_nonblocking(ctl.as_raw_fd(), false);
    crate::runtime::lifecycle::set_identity(id, count, grace);
    crate::io::broker::set(Box::new(Worker {
        ctl: Mutex::new(ctl),
        announced: AtomicBool::new(false),
    }));
    Some((id, count))
}

/// Send one request to the supervisor and wait for the answer: the
/// descriptors it carries, or the supervisor's error text.
fn request(w: &Worker, msg: &[u8]) -> Result<Vec<OwnedFd>, String> {
    let ctl = w.ctl.lock().unwrap_or_else(|e| e.into_inner());
    let gone = |e: std::io::Error| format!("the worker supervisor did not answer ({e})");
    rustix::net::sendmsg(
        &*ctl,
        &[IoSlice::new(msg)],
        &mut SendAncillaryBuffer::default(),
        SendFlags::NOSIGNAL,
    )
    .map_err(|e| gone(e.into()))?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        &*ctl,
        &mut [IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| gone(e.into()))?;
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    match &buf[..got.bytes] {
        b"" => Err("the worker supervisor is gone".into()),
        b"ok" if !fds.is_empty() => Ok(fds),
        answer => match answer.strip_prefix(b"err\0") {
            Some(text) => Err(String::from_utf8_lossy(text).into_owned()),
            None => Err("the worker supervisor gave a malformed answer".into()),
        },
    }
}

/// A request's fields, joined by NULs.
fn message(fields: &[&[u8]]) -> Vec<u8> {
    fields.join(&b'\0')
}

impl crate::io::broker::Broker for Worker {
    /// One socket per address for this worker number, with `SO_REUSEPORT`.
    fn listen_tcp(
        &self,
        host: &str,
        port: &str,
        backlog: i32,
        family: i32,
    ) -> Result<Vec<OwnedFd>, String> {
        let (backlog, family) = (backlog.to_string(), family.to_string());
        let msg = message(&[
            b"tcp",
            host.as_bytes(),
            port.as_bytes(),
            backlog.as_bytes(),
            family.as_bytes(),
        ]);
        request(self, &msg)
    }

    /// One socket shared by all workers.
    fn listen_unix(&self, path: &Path, perm: Option<u32>, backlog: i32) -> Result<OwnedFd, String> {
        use std::os::unix::ffi::OsStrExt;
        // The supervisor's directory is where the worker started; the
        // script may have moved since.
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let perm = perm.map(|p| p.to_string()).unwrap_or_default();
        let backlog = backlog.to_string();
        let msg = message(&[
            b"unix",
            path.as_os_str().as_bytes(),
            perm.as_bytes(),
            backlog.as_bytes(),
        ]);
        request(self, &msg).map(|mut fds| fds.swap_remove(0))
    }

    /// Memory the supervisor makes and keeps, so it outlives workers.
    fn shared_memory(&self, kind: &str, name: &str, size: usize) -> Result<OwnedFd, String> {
        let size = size.to_string();
        let msg = message(&[b"shm", kind.as_bytes(), name.as_bytes(), size.as_bytes()]);
        request(self, &msg).map(|mut fds| fds.swap_remove(0))
    }

    /// Tell the supervisor once: its reload waits for it.
    fn serving(&self) {
        if self.announced.swap(true, Ordering::Relaxed) {
            return;
        }
        let ctl = self.ctl.lock().unwrap_or_else(|e| e.into_inner());
        let _ = rustix::net::send(&*ctl, b"serving", SendFlags::NOSIGNAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_values() {
        assert_eq!(parse_env("2 4 10 7"), Some((2, 4, 10.0, 7)));
        assert_eq!(parse_env("1 1 0.5 3"), Some((1, 1, 0.5, 3)));
        for bad in [
            "",
            "1",
            "1 2",
            "1 2 3",
            "0 2 1 5",
            "3 2 1 5",
            "1 2 -1 5",
            "1 2 nan 5",
            "1 2 inf 5",
            "1 2 1 2",
            "1 2 1 x",
            "1 2 1 5 6",
            "1  2 1 5",
        ] {
            assert_eq!(parse_env(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_a_seqpacket_socket_is_a_control_socket() {
        let (a, _b) =
            socket2::Socket::pair(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None).unwrap();
        assert!(is_control_socket(a.as_raw_fd()));
        let (s, _t) =
            socket2::Socket::pair(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
        assert!(!is_control_socket(s.as_raw_fd()));
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(!is_control_socket(f.as_raw_fd()));
    }

    #[test]
    fn messages_join_fields_with_nuls() {
        assert_eq!(message(&[b"tcp", b"*", b"80"]), b"tcp\0*\x0080");
    }
}
