//! The transport of a TLS Stream: the TCP socket the loop watches and the
//! rustls session over it, read and written in place by the Stream's own
//! read and write paths (src/io/stream.rs), so a TLS connection costs one
//! descriptor and no copy through the kernel. The handshake is done before
//! (src/tls.rs, with tokio-rustls), which hands over the socket and the
//! session.
//!
//! Reads decrypt into the Stream's input buffer; writes hand plaintext to
//! the session (which buffers at most its limit, 64 KiB, of records not
//! yet sent) and send its records until the socket is full. Closing sends
//! close_notify if the socket takes it at once.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;
use tokio_rustls::rustls;

pub(crate) struct Tls {
    pub(crate) fd: AsyncFd<OwnedFd>,
    conn: RefCell<rustls::Connection>,
    /// The session's error, once the peer's records made none: reads
    /// fail with it once the plaintext before it is read.
    failed: RefCell<Option<rustls::Error>>,
}

/// `read(2)`/`write(2)` on a descriptor, for rustls's `read_tls` and
/// `write_tls`.
struct Fd(RawFd);

impl Read for Fd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::io::stream::read_fd(self.0, buf)
    }
}

impl Write for Fd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: buf is readable for its length.
            let n = unsafe { libc::write(self.0, buf.as_ptr() as *const _, buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Send the session's pending records until none are left
/// (`WouldBlock` when the socket is full first).
fn flush(conn: &mut rustls::Connection, fd: RawFd) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(&mut Fd(fd))?;
    }
    Ok(())
}

impl Tls {
    /// A transport on a connected, non-blocking socket whose handshake is
    /// done.
    pub(crate) fn new(fd: OwnedFd, conn: rustls::Connection) -> io::Result<Tls> {
        // SAFETY: the OwnedFd owns the descriptor for the AsyncFd's life.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(Tls {
            fd,
            conn: RefCell::new(conn),
            failed: RefCell::new(None),
        })
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Decrypt into `buf`: what the session holds, else what the socket
    /// has (`WouldBlock` when it has nothing). 0 at the end: close_notify,
    /// or the peer closing without one (as many do). When the peer's
    /// records stop making sense, what they held before the bad one is
    /// still read, then every read fails with the session's error.
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut conn = self.conn.borrow_mut();
        loop {
            let failed = self.failed.borrow().clone();
            match conn.reader().read(buf) {
                Ok(n) if n > 0 || failed.is_none() => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && failed.is_none() => {
                    return Ok(0)
                }
                Err(e) if e.kind() != io::ErrorKind::WouldBlock && failed.is_none() => {
                    return Err(e)
                }
                _ => {}
            }
            if let Some(e) = failed {
                return Err(io::Error::new(io::ErrorKind::InvalidData, super::words(&e)));
            }
            conn.read_tls(&mut Fd(self.raw()))?;
            let r = conn.process_new_packets();
            // An alert after an error, or what the peer's messages call
            // for (a key update): sent if the socket takes it now.
            let _ = flush(&mut conn, self.raw());
            if let Err(e) = r {
                *self.failed.borrow_mut() = Some(e);
            }
        }
    }

    /// Encrypt and send `bufs` (skipping the first `skip` bytes overall):
    /// the plaintext bytes the session took, and the error that stopped it
    /// (`WouldBlock` while records are still waiting for the socket, even
    /// when all the plaintext was taken).
    pub(crate) fn write(&self, bufs: &[&[u8]], mut skip: usize) -> (usize, Option<io::Error>) {
        let mut conn = self.conn.borrow_mut();
        let mut done = 0;
        for b in bufs {
            if skip >= b.len() {
                skip -= b.len();
                continue;
            }
            let mut rest = &b[skip..];
            skip = 0;
            while !rest.is_empty() {
                match conn.writer().write(rest) {
                    // The session's buffer is full: send some of it first.
                    Ok(0) => {
                        if let Err(e) = flush(&mut conn, self.raw()) {
                            return (done, Some(e));
                        }
                    }
                    Ok(n) => {
                        done += n;
                        rest = &rest[n..];
                    }
                    Err(e) => return (done, Some(e)),
                }
            }
        }
        (done, flush(&mut conn, self.raw()).err())
    }

    /// Whether the session holds plaintext (or the peer's close) that no
    /// read has taken: the socket's readiness says nothing of it.
    pub(crate) fn holds_input(&self) -> bool {
        if self.failed.borrow().is_some() {
            // The read reports it.
            return true;
        }
        match self.conn.borrow_mut().process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
            Err(e) => {
                *self.failed.borrow_mut() = Some(e);
                true
            }
        }
    }

    /// Whether records are waiting for the socket.
    pub(crate) fn pending(&self) -> bool {
        self.conn.borrow().wants_write()
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let conn = self.conn.get_mut();
        conn.send_close_notify();
        let _ = flush(conn, self.fd.as_raw_fd());
    }
}
