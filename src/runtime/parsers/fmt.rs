//! [`Fmt`]: a read's format with its arguments (the built-in formats
//! `read()`, `read(n)`, `'*l'`, `'*a'`, or a registered one), and how a read
//! looks at its input and finishes with it.

use std::ffi::c_int;

use super::{budget, Format, Input, Scan};
use crate::runtime::lua::{self, lua_State};

/// A format with its arguments, as one `read` call asked for it.
#[derive(Clone, Copy)]
pub enum Fmt {
    /// `read()`: whatever is buffered, at least one byte.
    Available,
    /// `read(n)`: exactly `n` bytes.
    Count(usize),
    /// `read('*l' [, stop])`: up to the stop byte, without it.
    Line(u8),
    /// `read('*a')`: everything until the end.
    All,
    /// A registered format.
    Custom(&'static dyn Format),
}

impl Fmt {
    /// Look at the buffer: `Some(scan)` when a read can finish now (a
    /// value, a format error, the end of input, or the buffer at its
    /// `limit`), to be handed to [`finish`](Self::finish); `None` to wait
    /// for more input.
    pub fn look(&self, input: &Input, eof: bool, limit: usize) -> Option<Scan> {
        let bounded = self.bounded();
        let full = (bounded && input.len() >= limit) || budget::cut(input.len());
        // A delimited format sees no more than its limit, however the
        // input came: a value that ends past it is refused whether it
        // arrived in one piece or in many.
        match self.scan(input, eof, if bounded { limit } else { usize::MAX }) {
            Scan::Need if !eof && !full => None,
            scan => Some(scan),
        }
    }

    /// [`look`](Self::look) then [`finish`](Self::finish), for a read
    /// that resumes after its wait: `nil, 'busy'` if the input still holds
    /// no value (a descriptor that never waits).
    ///
    /// # Safety
    /// As for [`finish`](Self::finish).
    pub unsafe fn finish_now(
        &self,
        l: *mut lua_State,
        input: &mut Input,
        eof: bool,
        limit: usize,
        at_end: &str,
    ) -> c_int {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            match self.look(input, eof, limit) {
                Some(scan) => self.finish(l, input, scan, eof, limit, at_end),
                None => lua::fail(l, "busy"),
            }
        }
    }

    /// Whether a read can finish now (see [`look`](Self::look)).
    pub fn ready(&self, input: &Input, eof: bool, limit: usize) -> bool {
        self.look(input, eof, limit).is_some()
    }

    /// `read(n)` and `read('*a')` ask for their size themselves; the others
    /// buffer until a delimiter and are held to the limit.
    fn bounded(&self) -> bool {
        !matches!(self, Fmt::Count(_) | Fmt::All)
    }

    /// Scan the first `window` bytes of the input (`eof` holds only if
    /// that is all of it).
    fn scan(&self, input: &Input, eof: bool, window: usize) -> Scan {
        let all = input.bytes();
        let bytes = &all[..all.len().min(window)];
        let eof = eof && bytes.len() == all.len();
        match *self {
            Fmt::Available if !bytes.is_empty() => Scan::Ready {
                consume: bytes.len(),
                mark: bytes.len(),
            },
            Fmt::Count(n) if bytes.len() >= n => Scan::Ready {
                consume: n,
                mark: n,
            },
            Fmt::Line(stop) => {
                // Lines can arrive in many chunks: search only the new part.
                let from = input.scanned.get().min(bytes.len());
                match memchr::memchr(stop, &bytes[from..]) {
                    Some(i) => Scan::Ready {
                        consume: from + i + 1,
                        mark: from + i,
                    },
                    None => {
                        input.scanned.set(bytes.len());
                        Scan::Need
                    }
                }
            }
            Fmt::All if eof => Scan::Ready {
                consume: bytes.len(),
                mark: bytes.len(),
            },
            Fmt::Custom(f) => f.scan_within(bytes, eof, window),
            _ => Scan::Need,
        }
    }

    /// Finish a read with what [`look`](Self::look) found on the same
    /// input: push the value (or `nil, err`) onto `l` and consume its bytes.
    /// `at_end` is the error for input that ended first (`'closed'` for
    /// streams, `'eof'` for files).
    ///
    /// # Safety
    /// `l` must have room for two values.
    pub unsafe fn finish(
        &self,
        l: *mut lua_State,
        input: &mut Input,
        scan: Scan,
        eof: bool,
        limit: usize,
        at_end: &str,
    ) -> c_int {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            match scan {
                Scan::Ready { consume, mark } => {
                    let n = match *self {
                        Fmt::Custom(f) => f.push(l, &input.bytes()[..consume], mark),
                        _ => {
                            lua::push_bytes(l, &input.bytes()[..mark]);
                            1
                        }
                    };
                    input.consume(consume);
                    n
                }
                Scan::Invalid(msg) => lua::fail(l, msg),
                // The end of input before the limit.
                Scan::Need if eof && !(self.bounded() && input.len() >= limit) => {
                    lua::fail(l, at_end)
                }
                // Else `look` stopped at the limit or the budget (which may
                // have room again by now: the cut stands).
                Scan::Need => {
                    let msg = match *self {
                        Fmt::Custom(f) => f.limit_error(),
                        _ if self.bounded() => "line too long",
                        _ => budget::OVER,
                    };
                    lua::fail(l, msg)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(b: &[u8]) -> Input {
        let mut i = Input::default();
        i.extend(b);
        i
    }

    #[test]
    fn limits_hold_however_input_arrives() {
        // A line that ends past the limit, arrived in one piece: refused
        // as it is when it arrives in two (the first reaching the limit).
        let f = Fmt::Line(b'\n');
        let whole = input(b"0123456789abcdef\n");
        assert_eq!(f.look(&whole, false, 8), Some(Scan::Need));
        let mut parts = input(b"01234567");
        assert_eq!(f.look(&parts, false, 8), Some(Scan::Need));
        parts.extend(b"89abcdef\n");
        assert_eq!(f.look(&parts, false, 8), Some(Scan::Need));
        // Within the limit it is read, with more input behind it.
        let ok = input(b"0123\n456789abcdef");
        assert_eq!(
            f.look(&ok, false, 8),
            Some(Scan::Ready {
                consume: 5,
                mark: 4
            })
        );
        // The end of input past the limit: still the limit's error, not
        // a value cut short.
        assert_eq!(f.look(&whole, true, 8), Some(Scan::Need));
    }

    #[test]
    fn line_scan_resumes_where_it_stopped() {
        let mut i = input(b"abc");
        let f = Fmt::Line(b'\n');
        assert!(!f.ready(&i, false, 100));
        assert_eq!(i.scanned.get(), 3);
        i.extend(b"d\r\nrest");
        assert_eq!(
            f.scan(&i, false, usize::MAX),
            Scan::Ready {
                consume: 6,
                mark: 5
            }
        );
        i.consume(6);
        assert_eq!(i.bytes(), b"rest");
        assert_eq!(i.scanned.get(), 0);
    }

    #[test]
    fn limits_apply_to_delimited_formats_only() {
        let i = input(b"0123456789");
        assert!(Fmt::Line(b'\n').ready(&i, false, 10));
        assert!(!Fmt::Line(b'\n').ready(&i, false, 11));
        assert!(!Fmt::Count(20).ready(&i, false, 10));
        assert!(!Fmt::All.ready(&i, false, 10));
        assert!(Fmt::All.ready(&i, true, 10));
    }
}
