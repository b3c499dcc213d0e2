//! The runtime, lem's bottom layer: the Lua state's C API helpers
//! ([`lua`]), its allocator (`alloc.rs`), coroutines as tasks
//! ([`scheduler`]), blocking work off the loop ([`pool`]), the read formats
//! ([`parsers`]), waiting one's turn ([`turn`]) and `lem.utils`
//! (`utils.rs`). Nothing here knows about sockets, protocols or processes;
//! the layers above hook into it.

pub(crate) mod alloc;
pub mod lifecycle;
pub mod lua;
pub mod parsers;
pub mod pool;
pub mod scheduler;
pub mod turn;
pub(crate) mod utils;

/// How the binary names itself in messages (`lem: msg`) until
/// [`set_progname`] says otherwise.
pub const PROGNAME: &str = "lem";

static PROGNAME_SET: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Name the program in messages as `lua` does: by its `argv[0]` (the first
/// call wins).
pub fn set_progname(name: &str) {
    let _ = PROGNAME_SET.set(name.to_owned());
}

/// The name messages start with: [`set_progname`]'s, else [`PROGNAME`].
pub fn progname() -> &'static str {
    PROGNAME_SET.get().map_or(PROGNAME, String::as_str)
}
