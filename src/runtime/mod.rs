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

/// A size as the command line and `utils.memlimit` take it: bytes, or a
/// number with `k`, `m` or `g` (binary multiples; `'512m'`, `'1.5g'`).
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()?.to_ascii_lowercase() {
        b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' => (&s[..s.len() - 1], 1 << 20),
        b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    let bytes = n * mult as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < usize::MAX as f64).then_some(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("4k"), Some(4096));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        for bad in ["", "m", "-1k", "x", "1t", "nan", "inf"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
