//! Entry points for the fuzz targets under `fuzz/` (libFuzzer, nightly)
//! and for the replay of their corpora in `cargo test` (`tests/fuzz.rs`,
//! stable). Each takes any bytes and panics only when an invariant of the
//! parser it drives does not hold; none may crash, hang or allocate more
//! than its input calls for.
//!
//! Not a stable API: hidden from the docs, for lem's own tests.

use crate::runtime::parsers::{Fmt, Input, Scan};

pub use crate::protocols::http::fuzz::{
    chunked_body, decoder as http_decode, multipart as http_multipart, request_head, response_head,
};
pub use crate::protocols::json::fuzz_decode as json_decode;
pub use crate::protocols::postgres::fuzz_message as postgres_message;
pub use crate::protocols::redis::fuzz_reply as redis_reply;
pub use crate::protocols::websocket::fuzz_frame as websocket_frame;
pub use crate::runtime::parsers::fuzz::{scan_prefixes, scan_prefixes_refused};

/// Split points and a format from the first bytes of `data`, then the
/// rest as input: read values one after another from the input fed whole
/// and fed in pieces cut at those points. The values, what they consume
/// and where they fail must be the same (a format may not depend on how
/// its input arrived).
pub fn read_formats(data: &[u8]) {
    let [which, arg, n_cuts, rest @ ..] = data else {
        return;
    };
    let n_cuts = (*n_cuts as usize % 8).min(rest.len());
    let (cuts, input) = rest.split_at(n_cuts);
    let fmt = match which % 8 {
        0 => Fmt::Available,
        1 => Fmt::Count(*arg as usize % 64 + 1),
        2 => Fmt::Line(b'\n'),
        3 => Fmt::Line(*arg),
        4 => Fmt::All,
        5 => Fmt::Custom(crate::protocols::http::fuzz::format(*arg)),
        6 => Fmt::Custom(crate::protocols::http::fuzz::format(arg.wrapping_add(1))),
        _ => Fmt::Custom(crate::protocols::http::fuzz::format(arg.wrapping_add(2))),
    };
    // A small limit too, so the limit's errors are reached.
    let limit = if arg & 0x80 != 0 { 64 } else { 1 << 20 };
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| c as usize * input.len() / 256)
        .collect();
    points.sort_unstable();
    points.push(input.len());
    let whole = read_all(fmt, limit, &[input.len()], input);
    let pieces = read_all(fmt, limit, &points, input);
    if matches!(fmt, Fmt::Available) {
        // read() returns what has come: the pieces differ, the bytes not.
        let total = |reads: &[Read]| -> usize {
            reads
                .iter()
                .map(|r| match r {
                    Read::Value { consume, .. } => *consume,
                    Read::Error(_) => 0,
                })
                .sum()
        };
        assert_eq!(
            total(&whole),
            total(&pieces),
            "fed whole and cut at {points:?}"
        );
    } else {
        assert_eq!(whole, pieces, "fed whole and cut at {points:?}");
    }
}

/// What one read found: the bytes it consumed and its mark, or an error.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Value { consume: usize, mark: usize },
    Error(&'static str),
}

/// Read values from `input` fed up to each of `points` in turn (the end
/// last, then the end of input), as a stream's reads do: after each fill,
/// every read that can finish does.
fn read_all(fmt: Fmt, limit: usize, points: &[usize], input: &[u8]) -> Vec<Read> {
    let mut buf = Input::default();
    let mut out = Vec::new();
    let mut fed = 0;
    let mut feeds = points
        .iter()
        .map(|&p| (p, false))
        .chain([(input.len(), true)]);
    let (mut upto, mut eof) = feeds.next().unwrap_or((input.len(), true));
    loop {
        if fed < upto {
            buf.extend(&input[fed..upto]);
            fed = upto;
        }
        match fmt.look(&buf, eof, limit) {
            Some(Scan::Ready { consume, mark }) => {
                assert!(consume <= buf.len() && mark <= consume, "{consume} {mark}");
                if let Fmt::Custom(f) = fmt {
                    if crate::protocols::http::fuzz::refuses(f, &buf.bytes()[mark..consume]) {
                        out.push(Read::Error("refused"));
                        return out;
                    }
                }
                if consume == 0 {
                    // Only a format that takes nothing at the end (read('*a')
                    // with nothing left) may consume nothing: stop there.
                    out.push(Read::Value { consume, mark });
                    return out;
                }
                out.push(Read::Value { consume, mark });
                buf.consume(consume);
            }
            Some(Scan::Invalid(msg)) => {
                // The server's format refuses a bare CR in scan when the
                // head is not complete, in push when it is.
                let refused = match fmt {
                    Fmt::Custom(f) => crate::protocols::http::fuzz::is_server_head(f),
                    _ => false,
                };
                out.push(Read::Error(if refused && msg == "parse error" {
                    "refused"
                } else {
                    msg
                }));
                return out;
            }
            Some(Scan::Need) => {
                // At the end of input or at the limit: the read fails.
                out.push(Read::Error(if eof { "end" } else { "limit" }));
                return out;
            }
            None => match feeds.next() {
                Some((p, e)) => (upto, eof) = (p, e),
                None => return out,
            },
        }
    }
}

thread_local! {
    /// One runtime for every URL: making a Lua state per input would be
    /// most of the work.
    static PARSEURL: (crate::Runtime, mlua::Function) = {
        let rt = crate::Runtime::new(crate::Options { ignore_env: true }).expect("runtime");
        let f = rt
            .lua()
            .load("return require('lem.http.client').parseurl")
            .eval()
            .expect("lem.http.client.parseurl");
        (rt, f)
    };
}

/// `data` as a URL for lem.http.client (its Lua `parseurl`): it never
/// raises, and what it accepts is an http or https URL with a host, a
/// port that can be one and a target that starts with `/`.
pub fn http_url(data: &[u8]) {
    PARSEURL.with(|(rt, parseurl)| {
        let url = rt.lua().create_string(data).expect("string");
        let r: mlua::MultiValue = parseurl.call(url).expect("parseurl raised");
        let mut r = r.into_iter();
        let scheme = match r.next() {
            None | Some(mlua::Value::Nil) => return,
            Some(mlua::Value::String(s)) => s.to_str().expect("scheme").to_string(),
            Some(v) => panic!("scheme {v:?}"),
        };
        assert!(scheme == "http" || scheme == "https", "{scheme}");
        let text = |v: Option<mlua::Value>| match v {
            Some(mlua::Value::String(s)) => s.as_bytes().to_vec(),
            v => panic!("not a string: {v:?}"),
        };
        let host = text(r.next());
        assert!(!host.is_empty(), "empty host");
        match r.next() {
            Some(mlua::Value::Integer(p)) => assert!((0..=65535).contains(&p), "port {p}"),
            Some(mlua::Value::Number(p)) => {
                assert!(p.fract() == 0.0 && (0.0..=65535.0).contains(&p), "port {p}")
            }
            v => panic!("port {v:?}"),
        }
        let target = text(r.next());
        assert!(
            target.starts_with(b"/") && !target.contains(&b'#'),
            "{target:?}"
        );
        let hostfield = text(r.next());
        assert!(
            hostfield.windows(host.len()).any(|w| w == host.as_slice()),
            "host field"
        );
    });
}
