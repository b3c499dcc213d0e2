//! The `Date` field of responses: an IMF-fixdate made at most once a
//! second (alone for `http.date()`, and with the `Server` field as the
//! two lines of a head).

use std::cell::RefCell;
use std::ffi::c_int;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::runtime::lua::{self, lua_State};

thread_local! {
    /// The `Date` value of the current second: `(unix seconds, text)`.
    static DATE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for unix time `t`.
pub(super) fn imf_date(t: u64) -> Vec<u8> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (t / 86400) as i64;
    let secs = t % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
    .into_bytes()
}

/// The time in whole seconds since the Unix epoch.
fn unix_now() -> u64 {
    // The loop time when on the loop: no clock read per response.
    if let Some(s) = crate::runtime::scheduler::try_get() {
        return s.now() as u64;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Call `f` with the `Date` value of now (formatted once a second).
pub(super) fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    with_date_at(unix_now(), f)
}

/// [`with_date`] for the second `now`.
fn with_date_at<R>(now: u64, f: impl FnOnce(&[u8]) -> R) -> R {
    DATE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != now {
            *c = (now, imf_date(now));
        }
        f(&c.1)
    })
}

thread_local! {
    /// The `Date` and `Server` fields as they go in a head (`Date: ...\r\n
    /// Server: ...\r\n`), for the second and server name they were made
    /// for: `(unix seconds, name, lines)`.
    static DATE_SERVER: RefCell<(u64, Vec<u8>, Vec<u8>)> =
        const { RefCell::new((u64::MAX, Vec::new(), Vec::new())) };
}

/// Call `f` with the `Date` and `Server` fields of a head for now and
/// `server` (made once a second, or when the name changes).
pub(super) fn with_date_server<R>(server: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let now = unix_now();
    DATE_SERVER.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != now || c.1 != server {
            let (_, name, lines) = &mut *c;
            name.clear();
            name.extend_from_slice(server);
            lines.clear();
            lines.extend_from_slice(b"Date: ");
            with_date_at(now, |d| lines.extend_from_slice(d));
            lines.extend_from_slice(b"\r\nServer: ");
            lines.extend_from_slice(server);
            lines.extend_from_slice(b"\r\n");
            c.0 = now;
        }
        f(&c.2)
    })
}

/// core.date() -> the `Date` header value for now, formatted once a second.
pub(super) unsafe extern "C-unwind" fn date(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        with_date(|d| lua::push_bytes(l, d));
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_and_server_lines_follow_the_name() {
        for name in [&b"lem"[..], b"other/1.0", b"lem"] {
            let want = |d: &[u8]| [&b"Date: "[..], d, b"\r\nServer: ", name, b"\r\n"].concat();
            // The second may turn between two looks at the clock.
            let before = with_date(|d| d.to_vec());
            let got = with_date_server(name, |l| l.to_vec());
            let after = with_date(|d| d.to_vec());
            assert!(
                got == want(&before) || got == want(&after),
                "{:?}",
                String::from_utf8_lossy(&got)
            );
        }
    }

    #[test]
    fn formats_dates() {
        assert_eq!(imf_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT".to_vec());
        assert_eq!(
            imf_date(784111777),
            b"Sun, 06 Nov 1994 08:49:37 GMT".to_vec()
        );
        assert_eq!(
            imf_date(1709251199),
            b"Thu, 29 Feb 2024 23:59:59 GMT".to_vec()
        );
    }
}
