//! A Stream's descriptor taken out of it for a protocol driven by a tokio
//! codec (HTTP/2 with the `h2` crate): [`Inner::detach`] takes the
//! descriptor and what was already buffered, and [`Detached`] is tokio's
//! `AsyncRead` and `AsyncWrite` on them, through the same transport as the
//! Stream's own reads and writes (a plain socket or a TLS session).

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Inner, Io};

/// The transport of a detached Stream, with the bytes it had read ahead.
pub(crate) struct Detached {
    io: Rc<Io>,
    ahead: Vec<u8>,
    at: usize,
}

impl Inner {
    /// Whether the stream is a TLS session (false once closed).
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.io.borrow().as_deref(), Some(Io::Tls(_)))
    }

    /// Take the descriptor out of the stream, which is then closed (its
    /// waiters get `'closed'`), with the input it had buffered after
    /// `prefix` (bytes the caller had consumed and wants read again).
    /// `None` when it was closed already or is not watched by the loop.
    pub(crate) fn detach(&self, prefix: &[u8]) -> Option<Detached> {
        self.io.borrow().as_ref()?.watched()?;
        let io = self.io.borrow_mut().take()?;
        self.rd.cancel("closed");
        self.wr.cancel("closed");
        let mut input = self.input.borrow_mut();
        let mut ahead = prefix.to_vec();
        ahead.extend_from_slice(input.bytes());
        input.clear();
        Some(Detached { io, ahead, at: 0 })
    }
}

impl AsyncRead for Detached {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.ahead.len() {
            let n = buf.remaining().min(this.ahead.len() - this.at);
            buf.put_slice(&this.ahead[this.at..this.at + n]);
            this.at += n;
            if this.at == this.ahead.len() {
                this.ahead = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let io = &this.io;
        let Some(fd) = io.watched() else {
            return Poll::Ready(Err(io::ErrorKind::Unsupported.into()));
        };
        loop {
            if io.holds_input() {
                let n = io.read_held(buf.initialize_unfilled())?;
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            let mut guard = ready!(fd.poll_read_ready(cx))?;
            let dst = buf.initialize_unfilled();
            match guard.try_io(|_| io.read(dst)) {
                Ok(r) => {
                    buf.advance(r?);
                    return Poll::Ready(Ok(()));
                }
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Detached {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let io = &self.io;
        let Some(fd) = io.watched() else {
            return Poll::Ready(Err(io::ErrorKind::Unsupported.into()));
        };
        loop {
            // Without waiting first: the socket mostly has room.
            let (n, e) = io.write(&[data], 0);
            match e {
                _ if n > 0 => return Poll::Ready(Ok(n)),
                None => return Poll::Ready(Ok(0)),
                Some(e) if e.kind() != io::ErrorKind::WouldBlock => return Poll::Ready(Err(e)),
                Some(_) => {}
            }
            let mut guard = ready!(fd.poll_write_ready(cx))?;
            guard.clear_ready();
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let io = &self.io;
        let Some(fd) = io.watched() else {
            return Poll::Ready(Ok(()));
        };
        // Only a TLS session holds written bytes back (its records).
        while io.pending() {
            match io.write(&[], 0).1 {
                None => break,
                Some(e) if e.kind() != io::ErrorKind::WouldBlock => return Poll::Ready(Err(e)),
                Some(_) => {
                    let mut guard = ready!(fd.poll_write_ready(cx))?;
                    guard.clear_ready();
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        // SAFETY: shutdown(2) on the descriptor the transport owns.
        unsafe {
            libc::shutdown(self.io.raw(), libc::SHUT_WR);
        }
        Poll::Ready(Ok(()))
    }
}
