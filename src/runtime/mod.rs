//! The runtime, lem's bottom layer: the Lua state's C API helpers
//! ([`lua`]), its allocator (`alloc.rs`), coroutines as tasks
//! ([`scheduler`]), blocking work off the loop ([`pool`]), the read formats
//! ([`parsers`]) and `lem.utils` (`utils.rs`). Nothing here knows about
//! sockets, protocols or processes; the layers above hook into it.

pub(crate) mod alloc;
pub mod lifecycle;
pub mod lua;
pub mod parsers;
pub mod pool;
pub mod scheduler;
pub(crate) mod utils;
