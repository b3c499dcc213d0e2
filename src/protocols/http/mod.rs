//! `lem.http.core`: the read formats `'HTTPRequest'` and `'HTTPResponse'`
//! (registered in `parsers.lookup` when the module loads), the response
//! head (`core.head`, `core.date`), and in `server.rs` the server's
//! per-request hot path (`core.request`, `core.respond`). Lua halves:
//! `lua/lem/http.lua`, `lua/lem/http/server.lua`. See LEM-API.md
//! "lem.http ...".
//!
//! A head is found in two steps, as every read format: [`Format::scan`]
//! looks for the empty line that ends it and checks the whole head (start
//! line by hand, header fields with `httparse`), so that a bad head is left
//! unread; [`Format::push`] parses the same bytes again and builds the
//! table. The server's own format checks in `push` only (its connection
//! closes after a bad head anyway), so it parses once.
//!
//! Deviations from the original, all for request smuggling (RFC 9112
//! §6.3): a repeated `Content-Length` or `Transfer-Encoding` field is not
//! replaced by its last value but combined (`"5, 6"`), so the server can
//! see the conflict; every other repeated field keeps its last value.

use std::cell::RefCell;
use std::ffi::{c_int, CStr};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use memchr::memmem;

use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::parsers::{self, Format, Scan};

mod chunked;
#[doc(hidden)]
pub mod fuzz;
mod server;

/// Largest head accepted (start line and fields): past it `read` returns
/// `nil, 'out of buffer space'` (the server answers 431).
pub const HEAD_LIMIT: usize = 32 << 10;

/// Most header fields in one head (more: `'out of buffer space'` too).
const MAX_FIELDS: usize = 100;

/// Longest field name (names are lower-cased in a stack buffer).
const MAX_NAME: usize = 256;

const PARSE_ERROR: &str = "parse error";
const NO_SPACE: &str = "out of buffer space";

/// Which start line a head has.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Response,
}

struct Head(Kind);

static REQUEST: Head = Head(Kind::Request);
static RESPONSE: Head = Head(Kind::Response);

/// Up to this many bytes, a head is searched line by line: setting up the
/// vector searches for its few lines costs more than they save.
const SHORT: usize = 256;

/// Where the head starts (after empty lines a client may send between
/// requests, RFC 9112 §2.2) and ends (after its empty line), if complete.
fn find_head(input: &[u8]) -> (usize, Option<usize>) {
    let mut start = 0;
    while start < input.len() && (input[start] == b'\r' || input[start] == b'\n') {
        start += 1;
    }
    let body = &input[start..];
    let end = if body.len() <= SHORT {
        head_end_by_lines(body)
    } else {
        head_end_by_search(body)
    };
    (start, end.map(|end| start + end))
}

/// The end of the empty line that ends `body`'s head: each line end looked
/// at once; the first that starts an empty line (LF or CRLF) ends it.
fn head_end_by_lines(body: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', body).find_map(|i| match body.get(i + 1) {
        Some(b'\n') => Some(i + 2),
        Some(b'\r') if body.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

/// [`head_end_by_lines`] in two vector searches, not one call per line:
/// the first "\n\r\n" (CRLF endings), unless a "\n\n" (bare LF endings)
/// comes before it.
fn head_end_by_search(body: &[u8]) -> Option<usize> {
    static CRLF: LazyLock<memmem::Finder> = LazyLock::new(|| memmem::Finder::new(b"\n\r\n"));
    static LF: LazyLock<memmem::Finder> = LazyLock::new(|| memmem::Finder::new(b"\n\n"));
    let crlf = CRLF.find(body).map(|i| i + 3);
    let before = crlf.map_or(body.len(), |end| end - 1);
    match LF.find(&body[..before]) {
        Some(i) => Some(i + 2),
        None => crlf,
    }
}

/// The start line's parts: request `(method, uri, version)` or response
/// `(version, status, text)`; versions without `HTTP/`.
struct Start<'a> {
    a: &'a [u8],
    b: &'a [u8],
    c: &'a [u8],
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `HTTP/d.d` -> `d.d`.
fn version(v: &[u8]) -> Option<&[u8]> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(&v[5..])
        }
        _ => None,
    }
}

fn start_line(kind: Kind, line: &[u8]) -> Option<Start<'_>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // The method or version before the first space, the version after the
    // last one are a few bytes: a loop finds them sooner than a vector
    // search is set up. (A request line with more spaces has one in its
    // target, which is refused either way.)
    let sp1 = line.iter().position(|&c| c == b' ')?;
    let (first, rest) = (&line[..sp1], &line[sp1 + 1..]);
    match kind {
        Kind::Request => {
            let sp2 = rest.iter().rposition(|&c| c == b' ')?;
            let (uri, ver) = (&rest[..sp2], &rest[sp2 + 1..]);
            if first.is_empty() || !first.iter().all(|&c| is_tchar(c)) {
                return None;
            }
            if uri.is_empty() || !uri.iter().all(|&c| c > b' ' && c != 0x7f) {
                return None;
            }
            Some(Start {
                a: first,
                b: uri,
                c: version(ver)?,
            })
        }
        Kind::Response => {
            let ver = version(first)?;
            let (code, text) = match rest.iter().position(|&c| c == b' ') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &b""[..]),
            };
            if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
                return None;
            }
            if text.iter().any(|&c| c < b' ' && c != b'\t') {
                return None;
            }
            Some(Start {
                a: ver,
                b: code,
                c: text,
            })
        }
    }
}

/// Whether the field section has obsolete line folding.
fn folded(fields: &[u8]) -> bool {
    if fields.len() <= SHORT {
        folded_by_lines(fields)
    } else {
        folded_by_search(fields)
    }
}

fn folded_by_lines(fields: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', fields).any(|i| matches!(fields.get(i + 1), Some(b' ' | b'\t')))
}

/// [`folded_by_lines`] in two vector searches, not one call per line.
fn folded_by_search(fields: &[u8]) -> bool {
    static SPACE: LazyLock<memmem::Finder> = LazyLock::new(|| memmem::Finder::new(b"\n "));
    static TAB: LazyLock<memmem::Finder> = LazyLock::new(|| memmem::Finder::new(b"\n\t"));
    SPACE.find(fields).is_some() || TAB.find(fields).is_some()
}

/// Whether a fold continues a field that frames the message or names its
/// host (`Content-Length`, `Transfer-Encoding`, `Host`): joined, such a
/// value could be read one way here and another by a front end, so the
/// head is refused instead.
///
/// So is a continuation line that reads as such a field itself (` Content-
/// Length: 3` under another field): a front end that takes a folded line
/// for a field of its own would frame the message by it.
fn folds_framing(fields: &[u8]) -> bool {
    let names_framing = |line: &[u8]| {
        let name = &line[..memchr::memchr(b':', line).unwrap_or(line.len())];
        let name = name.trim_ascii();
        [&b"content-length"[..], b"transfer-encoding", b"host"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
    };
    let mut framing = false;
    for line in fields.split(|&c| c == b'\n') {
        match line.first() {
            Some(b' ' | b'\t') if framing || names_framing(line) => return true,
            Some(b' ' | b'\t') => {}
            _ => framing = names_framing(line),
        }
    }
    false
}

/// The field section with each fold (line end plus white space) replaced
/// by one space.
fn unfold(fields: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.len());
    let mut i = 0;
    while i < fields.len() {
        let c = fields[i];
        let nl = if c == b'\r' && fields.get(i + 1) == Some(&b'\n') {
            2
        } else if c == b'\n' {
            1
        } else {
            0
        };
        if nl > 0 && matches!(fields.get(i + nl), Some(b' ' | b'\t')) {
            // Drop trailing white space before the fold and leading after.
            while matches!(out.last(), Some(b' ' | b'\t')) {
                out.pop();
            }
            out.push(b' ');
            i += nl;
            while matches!(fields.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Why a complete head cannot be used.
#[derive(Debug, PartialEq, Eq)]
enum Bad {
    Parse,
    TooBig,
}

/// Fields most heads fit in.
const FEW_FIELDS: usize = 24;

/// Parse the fields of `fields` (which ends with the empty line) into
/// `out`; returns how many there are.
fn parse_fields<'b>(fields: &'b [u8], out: &mut [httparse::Header<'b>]) -> Result<usize, Bad> {
    match httparse::parse_headers(fields, out) {
        Ok(httparse::Status::Complete((_, h))) => {
            if h.iter().any(|f| f.name.len() > MAX_NAME) {
                return Err(Bad::TooBig);
            }
            Ok(h.len())
        }
        Ok(httparse::Status::Partial) => Err(Bad::Parse),
        Err(httparse::Error::TooManyHeaders) => Err(Bad::TooBig),
        Err(_) => Err(Bad::Parse),
    }
}

/// Check (and with `visit`, walk) one complete head `head`: `visit` gets
/// the start line, the fields and the raw field section they came from.
fn with_head<R>(
    kind: Kind,
    head: &[u8],
    visit: impl FnOnce(&Start, &[httparse::Header], &[u8]) -> R,
) -> Result<R, Bad> {
    let nl = memchr::memchr(b'\n', head).ok_or(Bad::Parse)?;
    let start = start_line(kind, &head[..nl]).ok_or(Bad::Parse)?;
    let section = &head[nl + 1..];
    with_fields(section, |fields| visit(&start, fields, section))
}

/// Check (and with `visit`, walk) the field section `fields` of a head
/// (what follows the start line, up to and with the empty line).
fn with_fields<R>(fields: &[u8], visit: impl FnOnce(&[httparse::Header]) -> R) -> Result<R, Bad> {
    // Slots for most heads first (the array is filled anew for each
    // parse); for all the fields allowed only when there are more.
    let mut few = [httparse::EMPTY_HEADER; FEW_FIELDS];
    let err = match parse_fields(fields, &mut few) {
        Ok(n) => return Ok(visit(&few[..n])),
        Err(e) => e,
    };
    let err = match err {
        Bad::TooBig => {
            let mut buf = [httparse::EMPTY_HEADER; MAX_FIELDS];
            match parse_fields(fields, &mut buf) {
                Ok(n) => return Ok(visit(&buf[..n])),
                Err(e) => e,
            }
        }
        e => e,
    };
    // httparse refuses a folded line (it starts with white space, not a
    // name), so a section is looked at for folds only when it fails.
    if !folded(fields) || folds_framing(fields) {
        return Err(err);
    }
    let unfolded = unfold(fields);
    let mut buf = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let n = parse_fields(&unfolded, &mut buf)?;
    Ok(visit(&buf[..n]))
}

/// Whether repeated fields of this (lower-case) name are combined rather
/// than replaced: the framing fields the server checks for smuggling.
fn combined(name: &[u8]) -> bool {
    name == b"content-length" || name == b"transfer-encoding"
}

impl Format for Head {
    fn scan(&self, input: &[u8], _eof: bool) -> Scan {
        let (start, end) = find_head(input);
        let Some(end) = end else {
            // Empty lines before the head count too: they are buffered.
            if input.len() > HEAD_LIMIT {
                return Scan::Invalid(NO_SPACE);
            }
            return Scan::Need;
        };
        if end > HEAD_LIMIT {
            return Scan::Invalid(NO_SPACE);
        }
        match with_head(self.0, &input[start..end], |_, _, _| ()) {
            Ok(()) => Scan::Ready {
                consume: end,
                mark: start,
            },
            Err(Bad::Parse) => Scan::Invalid(PARSE_ERROR),
            Err(Bad::TooBig) => Scan::Invalid(NO_SPACE),
        }
    }

    unsafe fn push(&self, l: *mut lua_State, input: &[u8], mark: usize) -> c_int {
        // `input` ends where scan found the head's end.
        let kind = self.0;
        let r = with_head(kind, &input[mark..], |start, fields, _| {
            push_head(l, kind, start, fields);
        });
        match r {
            Ok(()) => 1,
            Err(_) => lua::fail(l, PARSE_ERROR),
        }
    }

    fn limit_error(&self) -> &'static str {
        NO_SPACE
    }
}

/// Push the head's table. Nothing here raises but out of memory.
unsafe fn push_head(l: *mut lua_State, kind: Kind, start: &Start, fields: &[httparse::Header]) {
    ffi::lua_createtable(l, 0, 5);
    match kind {
        Kind::Request => push_request_line(l, start),
        Kind::Response => {
            lua::push_bytes(l, start.a);
            ffi::lua_setfield(l, -2, c"version".as_ptr());
            let code = start.b.iter().fold(0, |n, &d| n * 10 + (d - b'0') as i64);
            ffi::lua_pushinteger(l, code as _);
            ffi::lua_setfield(l, -2, c"status".as_ptr());
            lua::push_bytes(l, start.c);
            ffi::lua_setfield(l, -2, c"text".as_ptr());
        }
    }
    push_fields(l, fields);
    ffi::lua_setfield(l, -2, c"headers".as_ptr());
    if kind == Kind::Response {
        // Every field in order, repeated ones too: {{name, value}, ...}.
        let mut name = [0u8; MAX_NAME];
        ffi::lua_createtable(l, fields.len() as c_int, 0);
        for (i, f) in fields.iter().enumerate() {
            ffi::lua_createtable(l, 2, 0);
            lua::push_bytes(l, lower(&mut name, f.name));
            ffi::lua_rawseti(l, -2, 1);
            lua::push_bytes(l, f.value);
            ffi::lua_rawseti(l, -2, 2);
            ffi::lua_rawseti(l, -2, (i + 1) as _);
        }
        ffi::lua_setfield(l, -2, c"fields".as_ptr());
    }
}

/// `name` lower-cased into `buf` (names are at most [`MAX_NAME`] bytes).
fn lower<'b>(buf: &'b mut [u8; MAX_NAME], name: &str) -> &'b [u8] {
    for (d, s) in buf.iter_mut().zip(name.bytes()) {
        *d = s.to_ascii_lowercase();
    }
    &buf[..name.len()]
}

/// Set a request's `method`, `uri` and `version` in the table on top.
unsafe fn push_request_line(l: *mut lua_State, start: &Start) {
    lua::push_bytes(l, start.a);
    ffi::lua_setfield(l, -2, c"method".as_ptr());
    lua::push_bytes(l, start.b);
    ffi::lua_setfield(l, -2, c"uri".as_ptr());
    lua::push_bytes(l, start.c);
    ffi::lua_setfield(l, -2, c"version".as_ptr());
}

/// Push the `headers` table: lower-cased names, the last value of a
/// repeated field (the framing fields combined, see the module's notes).
unsafe fn push_fields(l: *mut lua_State, fields: &[httparse::Header]) {
    ffi::lua_createtable(l, 0, fields.len() as c_int);
    let mut name = [0u8; MAX_NAME];
    for f in fields {
        let key = lower(&mut name, f.name);
        lua::push_bytes(l, key);
        if combined(key) {
            ffi::lua_pushvalue(l, -1);
            if ffi::lua_rawget(l, -3) != ffi::LUA_TNIL {
                lua::push_str(l, ", ");
                lua::push_bytes(l, f.value);
                ffi::lua_concat(l, 3);
            } else {
                ffi::lua_pop(l, 1);
                lua::push_bytes(l, f.value);
            }
        } else {
            lua::push_bytes(l, f.value);
        }
        ffi::lua_rawset(l, -3);
    }
}

thread_local! {
    /// The `Date` value of the current second: `(unix seconds, text)`.
    static DATE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for unix time `t`.
fn imf_date(t: u64) -> Vec<u8> {
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
fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
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
fn with_date_server<R>(server: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
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
unsafe extern "C-unwind" fn date(l: *mut lua_State) -> c_int {
    with_date(|d| lua::push_bytes(l, d));
    1
}

/// res:add(fmt, ...): append `string.format(fmt, ...)` to the response's
/// body (its array part). A lone format with no `%` in it is the text
/// itself, so it is appended without a call to `string.format` (upvalue 1).
unsafe extern "C-unwind" fn add(l: *mut lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    let n = ffi::lua_gettop(l);
    let verbatim = n == 2
        && ffi::lua_type(l, 2) == ffi::LUA_TSTRING
        && lua::to_bytes(l, 2).is_some_and(|s| !s.contains(&b'%'));
    if !verbatim {
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
        ffi::lua_insert(l, 2);
        ffi::lua_call(l, n - 1, 1);
    }
    let len = ffi::lua_rawlen(l, 1);
    ffi::lua_rawseti(l, 1, len as ffi::lua_Integer + 1);
    0
}

/// What a response head says about the body's length.
#[derive(Clone, Copy)]
enum Length {
    None,
    Bytes(i64),
    Chunked,
}

/// core.head(status, text, headers, length, close, keepalive, server)
/// -> head | nil: the response head `lua/lem/http/server.lua` builds
/// (same fields, same order), or nil when a header name is not a string
/// or a value neither string nor number (the Lua half then builds it, with
/// `tostring` and its metamethods), or any argument is unusual (a status
/// that is not an integer...). `length` is nil, a byte count or
/// `'chunked'`.
unsafe extern "C-unwind" fn head(l: *mut lua_State) -> c_int {
    ffi::luaL_checktype(l, 3, ffi::LUA_TTABLE);
    let status = integer(l, 1);
    let plain_args = status.is_some()
        && ffi::lua_type(l, 2) == ffi::LUA_TSTRING
        && ffi::lua_type(l, 7) == ffi::LUA_TSTRING;
    let length = match ffi::lua_type(l, 4) {
        ffi::LUA_TNONE | ffi::LUA_TNIL => Some(Length::None),
        ffi::LUA_TSTRING => Some(Length::Chunked),
        ffi::LUA_TNUMBER => integer(l, 4).map(Length::Bytes),
        _ => None,
    };
    let (true, Some(status), Some(length)) = (plain_args, status, length) else {
        ffi::lua_pushnil(l);
        return 1;
    };
    let mut out = Vec::with_capacity(256);
    let built = build_head(
        l,
        &mut out,
        ResponseHead {
            status,
            text: lua::to_bytes(l, 2).unwrap_or_default(),
            headers: 3,
            length,
            close: ffi::lua_toboolean(l, 5) != 0,
            keepalive: ffi::lua_toboolean(l, 6) != 0,
            server: lua::to_bytes(l, 7).unwrap_or_default(),
        },
    );
    if built {
        lua::push_bytes(l, &out);
    } else {
        ffi::lua_pushnil(l);
    }
    1
}

/// What a response head is made of.
struct ResponseHead<'a> {
    status: i64,
    /// The reason phrase.
    text: &'a [u8],
    /// Stack index of the headers table.
    headers: c_int,
    length: Length,
    /// Say `Connection: close` (unless the headers have a Connection).
    close: bool,
    /// Say `Connection: keep-alive` (HTTP/1.0 clients that asked).
    keepalive: bool,
    /// The `Server` value (unless the headers have one).
    server: &'a [u8],
}

/// Append a response head to `out`: the status line, the handler's
/// headers, then Content-Length / Transfer-Encoding, Date, Server and
/// Connection where the handler did not set them. Returns false (with
/// `out` holding a part of the head, to be dropped) when a header name is
/// not a string or a value neither a string nor a number. Raises only when
/// out of memory.
unsafe fn build_head(l: *mut lua_State, out: &mut Vec<u8>, h: ResponseHead) -> bool {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_int(out, h.status);
    out.push(b' ');
    out.extend_from_slice(h.text);
    out.extend_from_slice(b"\r\n");
    let (mut haslength, mut hasdate, mut hasserver, mut hasconn) = (false, false, false, false);
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, h.headers) != 0 {
        // Only strings and numbers: converting them cannot raise (and
        // to_bytes leaves a string key as it is, as lua_next needs).
        let plain = ffi::lua_type(l, -2) == ffi::LUA_TSTRING
            && matches!(ffi::lua_type(l, -1), ffi::LUA_TSTRING | ffi::LUA_TNUMBER);
        if !plain {
            ffi::lua_pop(l, 2);
            return false;
        }
        let k = lua::to_bytes(l, -2).unwrap_or_default();
        // A line end (or NUL) in a field would let a value that came from
        // the request forge fields or a response of its own: the Lua half
        // refuses such a head.
        let v = lua::to_bytes(l, -1).unwrap_or_default();
        if breaks_line(k) || breaks_line(v) {
            ffi::lua_pop(l, 2);
            return false;
        }
        if k.eq_ignore_ascii_case(b"content-length") {
            haslength = true;
        } else if k.eq_ignore_ascii_case(b"date") {
            hasdate = true;
        } else if k.eq_ignore_ascii_case(b"server") {
            hasserver = true;
        } else if k.eq_ignore_ascii_case(b"connection") {
            hasconn = true;
        }
        out.extend_from_slice(k);
        out.extend_from_slice(b": ");
        // A number value was converted in place (allowed for values).
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
        ffi::lua_pop(l, 1);
    }
    match h.length {
        Length::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Length::Bytes(n) if !haslength => {
            out.extend_from_slice(b"Content-Length: ");
            push_int(out, n);
            out.extend_from_slice(b"\r\n");
        }
        _ => {}
    }
    match (hasdate, hasserver) {
        (false, false) => with_date_server(h.server, |lines| out.extend_from_slice(lines)),
        (false, true) => {
            out.extend_from_slice(b"Date: ");
            with_date(|d| out.extend_from_slice(d));
            out.extend_from_slice(b"\r\n");
        }
        (true, false) => {
            out.extend_from_slice(b"Server: ");
            out.extend_from_slice(h.server);
            out.extend_from_slice(b"\r\n");
        }
        (true, true) => {}
    }
    if !hasconn {
        if h.close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if h.keepalive {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    true
}

/// Whether a response field's name or value holds a CR, LF or NUL. A
/// plain loop: fields are short, and a vector search costs more to set up
/// than it saves on them.
fn breaks_line(s: &[u8]) -> bool {
    s.iter()
        .any(|&c| c <= b'\r' && matches!(c, b'\r' | b'\n' | 0))
}

/// The number at `idx` if it is an integer (LuaJIT's `lua_tointeger`
/// truncates, so compare).
unsafe fn integer(l: *mut lua_State, idx: c_int) -> Option<i64> {
    if ffi::lua_type(l, idx) != ffi::LUA_TNUMBER {
        return None;
    }
    let f = ffi::lua_tonumber(l, idx) as f64;
    let n = ffi::lua_tointeger(l, idx) as i64;
    (n as f64 == f).then_some(n)
}

/// Append `n` in decimal.
fn push_int(out: &mut Vec<u8>, n: i64) {
    // A status code, or a small body's length: no loop, no copy call.
    if (100..1000).contains(&n) {
        let n = n as u16;
        let digits = [
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ];
        out.extend_from_slice(&digits);
        return;
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

static CHARGE: &CStr = c"lem.http.Charge";

/// core.charge() -> charge: bytes of a body gathered in pieces, counted
/// against the input budget (`parsers::budget::Charge`) until released
/// or collected. `charge:add(n) -> true | false` (false: the budget is
/// spent and this body holds its share), `charge:release()`.
unsafe extern "C-unwind" fn charge(l: *mut lua_State) -> c_int {
    lua::new_class(
        l,
        CHARGE,
        CHARGE_METHODS,
        Some(lua::gc::<parsers::budget::Charge>),
    );
    ffi::lua_pop(l, 1);
    lua::push_object(l, CHARGE, parsers::budget::Charge::default());
    1
}

unsafe extern "C-unwind" fn charge_add(l: *mut lua_State) -> c_int {
    let c: &parsers::budget::Charge = lua::check_object(l, 1, CHARGE);
    let n = lua::check_integer(l, 2);
    ffi::lua_pushboolean(l, c.add(n.max(0) as usize) as c_int);
    1
}

unsafe extern "C-unwind" fn charge_release(l: *mut lua_State) -> c_int {
    let c: &parsers::budget::Charge = lua::check_object(l, 1, CHARGE);
    c.release();
    0
}

const CHARGE_METHODS: &[Reg] = &[(c"add", charge_add), (c"release", charge_release)];

const FUNCS: &[Reg] = &[(c"date", date), (c"head", head), (c"charge", charge)];

/// Names of the formats, as registered in `parsers.lookup`.
const FORMATS: [(&CStr, &dyn Format); 5] = [
    (c"HTTPRequest", &REQUEST),
    (c"HTTPResponse", &RESPONSE),
    (c"HTTPChunkSize", &chunked::CHUNK_SIZE),
    (c"HTTPChunkEnd", &chunked::CHUNK_END),
    (c"HTTPTrailers", &chunked::TRAILERS),
];

/// luaopen for `lem.http.core`: registers the read formats; returns the
/// helper functions.
///
/// # Safety
/// Called by `require`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    for (name, f) in FORMATS {
        parsers::register(l, name, f);
    }
    ffi::lua_createtable(l, 0, FUNCS.len() as c_int + 4);
    lua::set_funcs(l, FUNCS);
    // add's upvalue: string.format as it is now (the Lua half kept a local).
    ffi::luaL_getsubtable(l, ffi::LUA_REGISTRYINDEX, ffi::LUA_LOADED_TABLE);
    ffi::lua_getfield(l, -1, c"string".as_ptr());
    ffi::lua_getfield(l, -1, c"format".as_ptr());
    ffi::lua_pushcclosure(l, add, 1);
    ffi::lua_setfield(l, -4, c"add".as_ptr());
    ffi::lua_pop(l, 2);
    server::register(l);
    ffi::lua_pushinteger(l, HEAD_LIMIT as _);
    ffi::lua_setfield(l, -2, c"head_limit".as_ptr());
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(kind: Kind, s: &[u8]) -> Scan {
        Head(kind).scan(s, false)
    }

    #[test]
    fn finds_the_end_of_a_head() {
        assert_eq!(find_head(b"GET / HTTP/1.1\r\n\r\nx"), (0, Some(18)));
        assert_eq!(find_head(b"\r\nGET / HTTP/1.1\n\nx"), (2, Some(18)));
        assert_eq!(find_head(b"GET / HTTP/1.1\r\nA: b\r\n"), (0, None));
        // Mixed line ends: the first empty line counts, whichever kind.
        assert_eq!(find_head(b"GET / HTTP/1.1\nA: b\r\n\r\n"), (0, Some(23)));
        assert_eq!(find_head(b"GET / HTTP/1.1\r\nA: b\n\r\nx"), (0, Some(23)));
        assert_eq!(
            find_head(b"GET / HTTP/1.1\nA: b\n\nB: c\r\n\r\n"),
            (0, Some(21))
        );
        assert_eq!(
            find_head(b"GET / HTTP/1.1\r\nA: b\r\n\r\n\nx"),
            (0, Some(24))
        );
        assert_eq!(find_head(b"GET / HTTP/1.1\r\nA: b\r\n\n"), (0, Some(23)));
        assert_eq!(find_head(b"\r\n\r\n"), (4, None));
    }

    #[test]
    fn many_fields() {
        let section = |n: usize| {
            let mut s: Vec<u8> = (0..n)
                .flat_map(|i| format!("X-{i}: v\r\n").into_bytes())
                .collect();
            s.extend_from_slice(b"\r\n");
            s
        };
        for n in [0, FEW_FIELDS, FEW_FIELDS + 1, MAX_FIELDS] {
            let got = with_fields(&section(n), |f| {
                (f.len(), f.last().map(|h| h.name.to_string()))
            });
            assert_eq!(
                got,
                Ok((n, n.checked_sub(1).map(|i| format!("X-{i}")))),
                "{n} fields"
            );
        }
        assert_eq!(
            with_fields(&section(MAX_FIELDS + 1), |_| ()),
            Err(Bad::TooBig)
        );
        // Folded, past the first slots.
        let mut s = section(FEW_FIELDS + 2);
        s.splice(0..0, b"A: b\r\n c\r\n".iter().copied());
        let got = with_fields(&s, |f| (f.len(), f[0].value.to_vec()));
        assert_eq!(got, Ok((FEW_FIELDS + 3, b"b c".to_vec())));
    }

    #[test]
    fn start_lines() {
        let r = start_line(Kind::Request, b"GET /a?b HTTP/1.1\r").unwrap();
        assert_eq!((r.a, r.b, r.c), (&b"GET"[..], &b"/a?b"[..], &b"1.1"[..]));
        // A space too many, wherever it is, is refused.
        for bad in [
            &b"GET /a b HTTP/1.1"[..],
            b"GET  /a HTTP/1.1",
            b"GET /a  HTTP/1.1",
            b"GET /a HTTP/1.1 ",
            b" GET /a HTTP/1.1",
            b"GET /a",
            b"GET",
            b"G(T /a HTTP/1.1",
        ] {
            assert!(start_line(Kind::Request, bad).is_none(), "{bad:?}");
        }
        let r = start_line(Kind::Response, b"HTTP/1.0 404 Not Found\r").unwrap();
        assert_eq!(
            (r.a, r.b, r.c),
            (&b"1.0"[..], &b"404"[..], &b"Not Found"[..])
        );
        let r = start_line(Kind::Response, b"HTTP/1.1 204").unwrap();
        assert_eq!((r.b, r.c), (&b"204"[..], &b""[..]));
        assert!(start_line(Kind::Response, b"HTTP/1.1 20 OK").is_none());
        assert!(start_line(Kind::Response, b"HTTP/1.1  200 OK").is_none());
    }

    #[test]
    fn scans_requests_and_responses() {
        assert!(matches!(
            scan(Kind::Request, b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n"),
            Scan::Ready { consume: 30, .. }
        ));
        assert_eq!(scan(Kind::Request, b"GET /a HTTP/1.1\r\nHost"), Scan::Need);
        assert_eq!(
            scan(Kind::Request, b"GET /a HTTX/1.1\r\n\r\n"),
            Scan::Invalid(PARSE_ERROR)
        );
        assert_eq!(
            scan(Kind::Request, b"GET  / HTTP/1.1\r\n\r\n"),
            Scan::Invalid(PARSE_ERROR)
        );
        assert_eq!(
            scan(Kind::Request, b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
            Scan::Invalid(PARSE_ERROR)
        );
        assert!(matches!(
            scan(Kind::Request, b"GET / HTTP/2.0\r\n\r\n"),
            Scan::Ready { .. }
        ));
        assert!(matches!(
            scan(Kind::Response, b"HTTP/1.0 404 Not Found\r\n\r\n"),
            Scan::Ready { .. }
        ));
        assert!(matches!(
            scan(Kind::Response, b"HTTP/1.1 204\r\n\r\n"),
            Scan::Ready { .. }
        ));
        let big = [b'a'; HEAD_LIMIT + 10];
        assert_eq!(scan(Kind::Request, &big), Scan::Invalid(NO_SPACE));
    }

    #[test]
    fn line_by_line_and_vector_searches_agree() {
        // Every string of up to 7 bytes over the bytes that matter, and
        // longer ones made from them.
        let alphabet = [b'a', b'\r', b'\n', b' ', b'\t'];
        let mut cases: Vec<Vec<u8>> = vec![Vec::new()];
        for len in 1..=7u32 {
            for mut k in 0..5usize.pow(len) {
                let mut v = Vec::new();
                for _ in 0..len {
                    v.push(alphabet[k % 5]);
                    k /= 5;
                }
                cases.push(v);
            }
        }
        let longer: Vec<Vec<u8>> = (0..cases.len())
            .step_by(97)
            .map(|i| [&b"x"[..], &cases[cases.len() - 1 - i], &cases[i], &cases[i]].concat())
            .collect();
        cases.extend(longer);
        for c in &cases {
            assert_eq!(head_end_by_lines(c), head_end_by_search(c), "{c:?}");
            assert_eq!(folded_by_lines(c), folded_by_search(c), "{c:?}");
        }
    }

    #[test]
    fn folded_framing_fields_are_refused() {
        let ok = b"X-A: a\r\n b\r\nHost: h\r\n\r\n";
        assert!(with_fields(ok, |f| f.len()).is_ok());
        for bad in [
            &b"Content-Length:\r\n 3\r\n\r\n"[..],
            b"Transfer-Encoding: x,\r\n\tchunked\r\n\r\n",
            b"X-A: a\r\nHOST: a\r\n b\r\n\r\n",
            b"X-A: a\r\n Transfer-Encoding: chunked\r\n\r\n",
            b"X-A: a\r\n\tcontent-length : 3\r\n\r\n",
        ] {
            assert_eq!(with_fields(bad, |_| ()), Err(Bad::Parse));
        }
    }

    #[test]
    fn folded_lines_are_joined() {
        assert_eq!(
            unfold(b"A: b\r\n  c\r\nD: e\r\n\r\n"),
            b"A: b c\r\nD: e\r\n\r\n".to_vec()
        );
        let n = with_head(
            Kind::Request,
            b"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n",
            |_, f, _| {
                assert_eq!(f[0].value, b"b c");
                f.len()
            },
        );
        assert_eq!(n, Ok(1));
    }

    #[test]
    fn formats_integers() {
        for n in [
            0i64,
            7,
            14,
            99,
            100,
            200,
            999,
            1000,
            1234567890,
            -5,
            -100,
            i64::MIN,
        ] {
            let mut v = Vec::new();
            push_int(&mut v, n);
            assert_eq!(v, n.to_string().into_bytes());
        }
    }

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
