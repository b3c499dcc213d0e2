//! Listening sockets made by someone else: under `lem -w` the worker
//! supervisor binds and keeps them, so a replaced or reloaded worker takes
//! over the same socket with its queue (`crate::workers`). The workers
//! layer registers itself here at startup ([`set`]); `io.tcp.listen` and
//! `io.unix.listen` ask it first and bind their own socket when there is
//! no broker. Servers tell it when they first accept (`serving`).
//! It also hands out `lem.shared`'s memory ([`shared_memory`]), which
//! must outlive the workers as the sockets do.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::OnceLock;

/// Who hands out listening sockets. Its calls block (they run on the
/// pool), but for [`Broker::serving`], which must not.
pub trait Broker: Send + Sync {
    /// The listening TCP sockets for `host:port` (one per address family
    /// `'*'` stands for), or an error text.
    fn listen_tcp(
        &self,
        host: &str,
        port: &str,
        backlog: i32,
        family: i32,
    ) -> Result<Vec<OwnedFd>, String>;
    /// The listening Unix socket at `path`, or the OS's error text.
    fn listen_unix(&self, path: &Path, perm: Option<u32>, backlog: i32) -> Result<OwnedFd, String>;
    /// The shared memory `kind`/`name` (`lem.shared`), made with `size`
    /// bytes (0: the default) if it does not exist yet, or an error text.
    fn shared_memory(&self, kind: &str, name: &str, size: usize) -> Result<OwnedFd, String>;
    /// This process accepts connections now (called at every accept;
    /// the broker acts on the first).
    fn serving(&self);
}

static BROKER: OnceLock<Box<dyn Broker>> = OnceLock::new();

/// Make `b` the process's broker (once, at startup; later calls are
/// ignored).
pub fn set(b: Box<dyn Broker>) {
    let _ = BROKER.set(b);
}

/// [`Broker::listen_tcp`], or `None` without a broker.
pub(crate) fn listen_tcp(
    host: &str,
    port: &str,
    backlog: i32,
    family: i32,
) -> Option<Result<Vec<OwnedFd>, String>> {
    Some(BROKER.get()?.listen_tcp(host, port, backlog, family))
}

/// [`Broker::listen_unix`], or `None` without a broker.
pub(crate) fn listen_unix(
    path: &Path,
    perm: Option<u32>,
    backlog: i32,
) -> Option<Result<OwnedFd, String>> {
    Some(BROKER.get()?.listen_unix(path, perm, backlog))
}

/// [`Broker::shared_memory`], or `None` without a broker.
pub fn shared_memory(kind: &str, name: &str, size: usize) -> Option<Result<OwnedFd, String>> {
    Some(BROKER.get()?.shared_memory(kind, name, size))
}

/// [`Broker::serving`], if there is a broker.
pub(crate) fn serving() {
    if let Some(b) = BROKER.get() {
        b.serving();
    }
}
