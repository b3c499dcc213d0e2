//! Checks the fuzz targets of every read format share (`crate::fuzz` and
//! each protocol's `fuzz.rs` call them): a format's `scan` must not depend
//! on how its input arrived.

use super::{Format, Scan};

/// `f.scan` of every prefix of `input` agrees with its scan of the whole:
/// a prefix is `Need` until the value is complete, and the same value
/// after.
/// (Some 64 prefixes: every one of a long input would take too long.)
pub fn scan_prefixes(f: &dyn Format, input: &[u8]) {
    scan_prefixes_refused(f, input, false)
}

/// [`scan_prefixes`], where `refused` says the whole's value is refused
/// once pushed (the server's format finds a head's end in `scan` and
/// parses it in `push`): a prefix may then be `Invalid` already.
pub fn scan_prefixes_refused(f: &dyn Format, input: &[u8], refused: bool) {
    let whole = f.scan(input, false);
    let step = (input.len() / 64).max(1);
    let ends = (0..input.len()).step_by(step);
    for n in ends.chain(input.len().saturating_sub(4)..input.len()) {
        match (f.scan(&input[..n], false), whole) {
            (Scan::Need, _) => {}
            (Scan::Ready { consume, .. }, Scan::Ready { consume: c, .. }) if consume <= n => {
                assert_eq!(consume, c);
            }
            (Scan::Invalid(_), Scan::Invalid(_)) => {}
            (Scan::Invalid(_), Scan::Ready { .. }) if refused => {}
            (p, w) => panic!("prefix of {n} bytes: {p:?}, whole: {w:?}"),
        }
    }
}
