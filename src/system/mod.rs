//! The operating system's modules, over the transports: `lem.lfs`
//! (filesystem calls on the pool), `lem.signal` (OS signals to Lua
//! handlers), `lem.process` (child processes for `io.spawn`/`io.popen`,
//! and SIGCHLD) and the console under `lem.repl`.

pub(crate) mod lfs;
pub(crate) mod process;
pub(crate) mod repl;
pub(crate) mod signal;
