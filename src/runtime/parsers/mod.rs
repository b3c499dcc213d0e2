//! `lem.parsers.core`: the read formats, over an input buffer ([`Input`]).
//! The Lua half is `lua/lem/parsers.lua` (`parsers.newreader`); the readers
//! are `stream:read`/`file:read` in `src/io/`.
//!
//! A format is looked at in two steps, so that the wait for more input can
//! run on the loop without a Lua state: [`Format::scan`] says whether the
//! buffered bytes hold a complete value (pure Rust, run after every fill),
//! then [`Format::push`] pushes it onto the reading coroutine. Built-in
//! formats (`read()`, `read(n)`, `'*l'`, `'*a'`) are variants of [`Fmt`];
//! native modules add their own with [`register`] (the HTTP module's
//! `'HTTPRequest'`), which puts them in `parsers.lookup`.
//!
//! Here: the [`Format`] trait and its [`Scan`]. `fmt.rs` has the formats a
//! read asks for ([`Fmt`]) and how a read finishes; `input.rs` the input
//! buffer; `budget.rs` the input budget of all streams and files;
//! `lookup.rs` `parsers.lookup`, [`register`] and [`check_format`];
//! `fuzz.rs` the checks every format's fuzz target shares.
//!
//! # Example: a format for native modules
//!
//! ```no_run
//! use lem::parsers::{self, Format, Scan};
//! use lem::lua::{self, lua_State};
//!
//! /// `read('word')`: bytes up to the next space.
//! struct Word;
//! impl Format for Word {
//!     fn scan(&self, input: &[u8], _eof: bool) -> Scan {
//!         match input.iter().position(|&b| b == b' ') {
//!             Some(i) => Scan::Ready { consume: i + 1, mark: i },
//!             None => Scan::Need,
//!         }
//!     }
//!     unsafe fn push(&self, l: *mut lua_State, input: &[u8], mark: usize) -> i32 {
//!         lua::push_bytes(l, &input[..mark]);
//!         1
//!     }
//! }
//! static WORD: Word = Word;
//! // In a module's opener, or anywhere with the Lua state:
//! # fn f(lua: &mlua::Lua) {
//! parsers::register_mlua(lua, "word", &WORD).unwrap();
//! # }
//! ```

use std::ffi::c_int;

use crate::runtime::lua::lua_State;

pub mod budget;
mod fmt;
#[doc(hidden)]
pub mod fuzz;
mod input;
mod lookup;

pub use fmt::Fmt;
pub use input::Input;
pub use lookup::{check_format, open, push_lookup, register, register_mlua};

/// Default bound on input buffered while a format looks for its end
/// (`stream:setlimit` changes it per object): 1 MiB.
pub const DEFAULT_LIMIT: usize = 1 << 20;

/// What [`Format::scan`] found in the buffered input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// Not complete yet: more input is needed.
    Need,
    /// A value is complete: it uses the first `consume` bytes; `mark` is
    /// handed to [`Format::push`] (the end of a line, say).
    Ready { consume: usize, mark: usize },
    /// The input can never make a value: `read` returns `nil, msg`.
    Invalid(&'static str),
}

impl Scan {
    /// What a scanner that finds the length of a whole value says: `n`
    /// bytes (consumed whole, `mark` at their end), not yet, or never.
    pub fn of_len(r: Result<Option<usize>, &'static str>) -> Scan {
        match r {
            Ok(Some(n)) => Scan::Ready {
                consume: n,
                mark: n,
            },
            Ok(None) => Scan::Need,
            Err(e) => Scan::Invalid(e),
        }
    }
}

/// A read format. Implementations must be cheap to `scan` repeatedly: it is
/// called again after every fill of the buffer.
pub trait Format: Sync {
    /// Look at all buffered input; `eof` when no more will ever come.
    fn scan(&self, input: &[u8], eof: bool) -> Scan;
    /// Push the value that `scan` found onto `l`; returns the number of
    /// values pushed. `input` is what the read consumes afterwards (the
    /// first `consume` bytes of what `scan` saw) and `mark` the one of
    /// [`Scan::Ready`].
    ///
    /// # Safety
    /// `l` is the reading coroutine, with room for a few values.
    unsafe fn push(&self, l: *mut lua_State, input: &[u8], mark: usize) -> c_int;
    /// [`scan`](Self::scan) told the stream's limit (`usize::MAX` for none):
    /// a format whose head declares its size (a WebSocket frame) refuses a
    /// value past the limit from the head, before its bytes arrive.
    fn scan_within(&self, input: &[u8], eof: bool, _limit: usize) -> Scan {
        self.scan(input, eof)
    }
    /// What `read` returns when the buffer is full and `scan` still says
    /// [`Scan::Need`].
    fn limit_error(&self) -> &'static str {
        "line too long"
    }
}

#[cfg(test)]
mod tests {
    use super::Scan;

    #[test]
    fn of_len_says_what_a_length_scanner_found() {
        assert!(matches!(
            Scan::of_len(Ok(Some(7))),
            Scan::Ready {
                consume: 7,
                mark: 7
            }
        ));
        assert!(matches!(Scan::of_len(Ok(None)), Scan::Need));
        assert!(matches!(Scan::of_len(Err("bad")), Scan::Invalid("bad")));
    }
}
