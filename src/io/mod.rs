//! `lem.io.core`: the native half of `lem.io` (the Lua half is
//! `lua/lem/io.lua`). Objects: `Stream` (sockets, pipes, ttys, fifos:
//! non-blocking on the loop; `stream.rs`), `File` (regular files: every
//! operation on the pool; `file.rs`), `Server` (listening sockets;
//! `server.rs`), `Datagram` (UDP sockets; `udp.rs`). See
//! docs/io.md.
//!
//! Beyond the original, every object that suspends has
//! `obj:settimeout(seconds | nil)` (applied to each suspending call: it then
//! returns `nil, 'timeout'` and the object stays usable), and streams and
//! files have `obj:setlimit(bytes)`: the most input a delimited format
//! (`'*l'`, `'HTTPRequest'`...) buffers before `read` gives up with
//! `nil, 'line too long'` (default [`crate::runtime::parsers::DEFAULT_LIMIT`], 1 MiB;
//! `read(n)` and `read('*a')` ask for their size themselves and are not held
//! to it). A server's timeout applies to `accept`, not to `autospawn`.
//! Also new: `server:getsockname()` (`ip, port`, or the Unix path: the port
//! a `'0'` listen got) and `obj:fileno()`.
//!
//! What the objects share is in files of its own: `fd.rs` (the OS's error
//! text, descriptor flags, what a descriptor is), `op.rs` (a suspended
//! operation, who may suspend, `settimeout`/`setlimit`); `core.rs` registers
//! the module.

pub mod broker;
mod core;
pub(crate) mod dns;
pub(crate) mod fd;
pub mod file;
pub(crate) mod op;
pub mod server;
pub mod stream;
pub(crate) mod tcp;
pub(crate) mod tls;
mod udp;
pub(crate) mod unix;

pub use self::core::{open, restore_stdio};
pub use fd::{os_error_text, strerror};
pub use stream::push_stream;
