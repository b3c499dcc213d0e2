//! The per-request hot path of `lua/lem/http/server.lua`, in Rust: reading
//! and checking a request head and building the `req` and `res` tables
//! ([`request`]), and sending an ordinary response as one write
//! ([`respond`]). The keep-alive loop, the handler call and every unusual
//! case (streamed bodies, files, headers with metamethods) stay in Lua.
//!
//! `core.request` reads with its own format: [`ServerHead::scan`] only
//! finds the end of the head (it runs after every fill of the buffer), and
//! [`ServerHead::push`] parses it once, applies the server's rules (the
//! version, `Connection`, the framing rules of RFC 9112 §6.3, `Expect`) and
//! builds the tables. The rules themselves are pure Rust, in `rules.rs`.

use std::ffi::c_int;

use super::chunked::bare_cr;
use super::format::push_fields;
use super::head::{find_head, with_fields, with_head, Bad, Kind, Start};
use super::head::{HEAD_LIMIT, NO_SPACE, PARSE_ERROR};
use super::response::{build_head, integer, valid_status, Length, ResponseHead};
use super::rules::{absolute_path, decode_path, rules, Framing};
use super::rules::{BAD_REQUEST, HEADERS_TOO_LARGE};
use crate::io::stream::{self, Stream, Write, STREAM};
use crate::runtime::lua::{self, ffi, lua_State};
use crate::runtime::parsers::{Fmt, Format, Scan};

/// Slots of the server's table (upvalue 1 of the functions here, filled
/// by `core.setup`).
const REQUEST: ffi::lua_Integer = 1;
const RESPONSE: ffi::lua_Integer = 2;
const STATUS: ffi::lua_Integer = 3;
const MODULE: ffi::lua_Integer = 4;
/// Functions that build a field of `req` on first use (`req.query`,
/// `req.cookies`), by name: see [`request_index`].
const GETTERS: ffi::lua_Integer = 5;

/// The field names the hot path reads and sets, kept as Lua strings in the
/// upvalues of the functions here from [`KEY_UPVALUE`] on: pushing one is
/// a copy from the function's own closure, where `lua_getfield` would look
/// the C string up in the string cache and go through `res`'s metatable on
/// a miss.
#[derive(Clone, Copy)]
enum Key {
    Method,
    Uri,
    Version,
    Headers,
    Path,
    Framing,
    Length,
    Expect,
    Req,
    Streaming,
    File,
    Status,
    ServerName,
    Head,
    // Not field names: the common methods and versions, pushed from here
    // rather than interned again for each request.
    Get,
    Post,
    HeadMethod,
    Http11,
    Http10,
}

/// The private fields of `req` and `res` this half shares with the Lua
/// halves (what each means: `lua/lem/http/response.lua`, where the Lua
/// halves take their names from one table, `shared`; a test below checks
/// that the two lists agree).
mod private {
    use std::ffi::CStr;

    pub const FRAMING: &CStr = c"_framing";
    pub const LENGTH: &CStr = c"_length";
    pub const EXPECT: &CStr = c"_expect";
    pub const HEAD: &CStr = c"_head";
    pub const REQ: &CStr = c"_req";
    pub const STREAMING: &CStr = c"_streaming";

    /// All of them.
    #[cfg(test)]
    pub const ALL: [&CStr; 6] = [FRAMING, LENGTH, EXPECT, HEAD, REQ, STREAMING];
}

const KEYS: [&std::ffi::CStr; 19] = [
    c"method",
    c"uri",
    c"version",
    c"headers",
    c"path",
    private::FRAMING,
    private::LENGTH,
    private::EXPECT,
    private::REQ,
    private::STREAMING,
    c"file",
    c"status",
    c"server_name",
    private::HEAD,
    c"GET",
    c"POST",
    c"HEAD",
    c"1.1",
    c"1.0",
];

/// The server's table: upvalue 1 of every function here.
const CONF: c_int = ffi::lua_upvalueindex(1);

/// The upvalue of the first key.
const KEY_UPVALUE: c_int = 2;

/// The upvalue holding the metatable of Streams, after the keys.
const STREAM_MT: c_int = ffi::lua_upvalueindex(KEY_UPVALUE + KEYS.len() as c_int);

/// The Stream at `arg`, its metatable compared with the one kept as an
/// upvalue.
unsafe fn check_stream<'a>(l: *mut lua_State, arg: c_int) -> &'a Stream {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one; STREAM_MT is the Streams' metatable
    // (register).
    unsafe { lua::check_object_with(l, arg, STREAM_MT, STREAM) }
}

/// Push the string `k`. Every function here has the keys as upvalues,
/// and the request format finishes in one of them even after its read
/// waited (`request` or `respond`): the resumed thread is still in that
/// call, on Lua 5.4 and on LuaJIT alike.
#[inline]
unsafe fn push_key(l: *mut lua_State, k: Key) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_pushvalue(l, key_index(k));
    }
}

/// The pseudo-index of the key `k`.
#[inline]
const fn key_index(k: Key) -> c_int {
    ffi::lua_upvalueindex(KEY_UPVALUE + k as c_int)
}

/// `t[k] = v` for the value `value` pushes, without metamethods.
#[inline]
unsafe fn set(l: *mut lua_State, t: c_int, k: Key, value: impl FnOnce()) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        push_key(l, k);
        value();
        ffi::lua_rawset(l, t);
    }
}

/// Push `t[k]`, without metamethods; returns its type.
#[inline]
unsafe fn get(l: *mut lua_State, t: c_int, k: Key) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        push_key(l, k);
        ffi::lua_rawget(l, t)
    }
}

/// The index of the value on top of the stack (the one just pushed).
#[inline]
unsafe fn top(l: *mut lua_State) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { ffi::lua_gettop(l) }
}

/// core.setup(Request, Response, status_string, server, getters): what
/// the Rust half needs of the Lua half: the metatables of `req` and `res`,
/// the status texts, the module (for `server_name`) and the builders of
/// `req`'s lazy fields.
unsafe extern "C-unwind" fn setup(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        for i in 1..=GETTERS as c_int {
            ffi::luaL_checktype(l, i, ffi::LUA_TTABLE);
            ffi::lua_pushvalue(l, i);
            ffi::lua_rawseti(l, CONF, i as _);
        }
        0
    }
}

/// The head of a request to a server.
struct ServerHead;

static SERVER_HEAD: ServerHead = ServerHead;

impl Format for ServerHead {
    fn scan(&self, input: &[u8], _eof: bool) -> Scan {
        match find_head(input) {
            // Empty lines before the head count to the limit: they are
            // buffered too.
            (start, Some(end)) if end <= HEAD_LIMIT => Scan::Ready {
                consume: end,
                mark: start,
            },
            // A CR that is not part of a line end is refused at once, not
            // once the rest of the head has come (or never has).
            (start, None) if input.len() <= HEAD_LIMIT => match bare_cr(&input[start..]) {
                false => Scan::Need,
                true => Scan::Invalid(PARSE_ERROR),
            },
            _ => Scan::Invalid(NO_SPACE),
        }
    }

    unsafe fn push(&self, l: *mut lua_State, input: &[u8], mark: usize) -> c_int {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            // `input` ends where scan found the head's end.
            match with_head(Kind::Request, &input[mark..], |start, fields, section| {
                push_request(l, start, fields, section)
            }) {
                Ok(n) => n,
                Err(Bad::Parse) => refuse(l, BAD_REQUEST),
                Err(Bad::TooBig) => refuse(l, HEADERS_TOO_LARGE),
            }
        }
    }

    fn limit_error(&self) -> &'static str {
        NO_SPACE
    }
}

/// The server's format, for the fuzz targets.
pub(super) fn server_head() -> &'static dyn Format {
    &SERVER_HEAD
}

/// What [`ServerHead::push`] does to a complete head, without Lua: whether
/// it parses; then the server's rules and the path, and what an
/// `Upgrade: h2c` would send to HTTP/2 (for the fuzz targets).
pub(super) fn check_request(head: &[u8]) -> bool {
    with_head(Kind::Request, head, |start, fields, _| {
        if let Ok(r) = rules(start.c, fields) {
            if r.more_tokens {
                if let Ok(Some(up)) = super::h2::upgrade::prepare(start.a, start.b, fields) {
                    assert_eq!(up.settings.len() % 6, 0);
                    assert!(up.request.len() >= 9);
                }
            }
            let path = match start.b.first() {
                Some(b'/') => start.b,
                _ => absolute_path(start.b).unwrap_or(start.b),
            };
            assert!(decode_path(path).len() <= path.len());
        }
    })
    .is_ok()
}

/// `return nil, status`.
unsafe fn refuse(l: *mut lua_State, status: i64) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_pushnil(l);
        ffi::lua_pushinteger(l, status as _);
        2
    }
}

/// Push `req, res, close, keepalive, framing` for a parsed head (or
/// `nil, status` when the server's rules refuse it). `section` is the
/// head's field section, kept as `req._head` until `req.headers` is first
/// asked for ([`request_index`]).
unsafe fn push_request(
    l: *mut lua_State,
    start: &Start,
    fields: &[httparse::Header],
    section: &[u8],
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let rules = match rules(start.c, fields) {
            Ok(r) => r,
            // HTTP/2's connection preface (cleartext, by prior knowledge):
            // `nil, 'h2'`, for the Lua half to hand the connection over.
            Err(_) if super::h2::is_preface(start.a, start.b, start.c) => {
                ffi::lua_pushnil(l);
                lua::push_str(l, "h2");
                return 2;
            }
            Err(status) => return refuse(l, status),
        };
        ffi::lua_createtable(l, 0, 8);
        let req = ffi::lua_gettop(l);
        set(l, req, Key::Method, || match start.a {
            b"GET" => push_key(l, Key::Get),
            b"POST" => push_key(l, Key::Post),
            b"HEAD" => push_key(l, Key::HeadMethod),
            other => lua::push_bytes(l, other),
        });
        set(l, req, Key::Uri, || lua::push_bytes(l, start.b));
        // rules() let only these two through.
        set(l, req, Key::Version, || match start.c {
            b"1.1" => push_key(l, Key::Http11),
            _ => push_key(l, Key::Http10),
        });
        set(l, req, Key::Head, || lua::push_bytes(l, section));
        set(l, req, Key::Path, || {
            // Origin form (`/path?q`) first: it is nearly every request.
            let path = match start.b.first() {
                Some(b'/') => None,
                _ => absolute_path(start.b),
            };
            match path {
                Some(path) => lua::push_bytes(l, &decode_path(path)),
                None if start.b.iter().any(|c| matches!(c, b'?' | b'%' | b'+')) => {
                    lua::push_bytes(l, &decode_path(start.b))
                }
                None => {
                    get(l, req, Key::Uri);
                }
            }
        });
        match rules.framing {
            Framing::None => {}
            Framing::Length(n) => {
                set(l, req, Key::Framing, || lua::push_str(l, "length"));
                set(l, req, Key::Length, || ffi::lua_pushinteger(l, n as _));
            }
            Framing::Chunked => {
                set(l, req, Key::Framing, || lua::push_str(l, "chunked"));
            }
        }
        if rules.expect {
            set(l, req, Key::Expect, || ffi::lua_pushboolean(l, 1));
        }
        lua::push_index(l, CONF, REQUEST);
        ffi::lua_setmetatable(l, req);
        // res = {headers = {}, _req = req}, with room for the body's first
        // part, status and file
        ffi::lua_createtable(l, 1, 4);
        let res = req + 1;
        set(l, res, Key::Headers, || ffi::lua_createtable(l, 0, 2));
        set(l, res, Key::Req, || ffi::lua_pushvalue(l, req));
        lua::push_index(l, CONF, RESPONSE);
        ffi::lua_setmetatable(l, res);
        ffi::lua_pushboolean(l, rules.close as c_int);
        ffi::lua_pushboolean(l, rules.keepalive as c_int);
        if matches!(rules.framing, Framing::None) {
            // `Upgrade: h2c` (on a request without a body, in HTTP/1.1):
            // 'h2c' in framing's place, for the Lua half to switch over.
            if rules.more_tokens && start.c == b"1.1" && super::h2::upgrade::wants_h2c(fields) {
                lua::push_str(l, "h2c");
            } else {
                ffi::lua_pushnil(l);
            }
        } else {
            get(l, req, Key::Framing);
        }
        5
    }
}

/// core.request(client) -> req, res, close, keepalive, framing | nil,
/// status | nil, 'h2' | nil, err: the next request on a server's connection
/// (`'h2'`: the client sent HTTP/2's connection preface)
/// (`framing`: `req._framing`, nil without a body, `'h2c'` for a request
/// without one that asks for `Upgrade: h2c`). `status` (a
/// number) is the answer to a head the server refuses; `err` a read error
/// (`'closed'`, `'timeout'`...). `idle`: the connection waits between
/// requests, which a graceful stop may cut short.
unsafe extern "C-unwind" fn request(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_stream(l, 1);
        if ffi::lua_toboolean(l, 2) != 0 {
            return stream::read_idle(l, s, Fmt::Custom(&SERVER_HEAD));
        }
        stream::read(l, s, Fmt::Custom(&SERVER_HEAD))
    }
}

/// `Request.__index(req, k)`: the methods of `Request`, and `req.headers`,
/// which is built on first use from the field section kept in
/// `req._head`, then stored in `req` (and `_head` dropped). Most handlers
/// never look at the headers; building the table for each request was a
/// tenth of a hello world's work (one field), more with more fields.
/// Any other key with a function in the getters table (`core.setup`'s
/// fifth argument) is built by calling it with `req`, and stored too: so
/// `req.query` costs nothing until read. A getter must not suspend.
unsafe extern "C-unwind" fn request_index(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        // The arguments: req and the key.
        const REQ: c_int = 1;
        const K: c_int = 2;
        ffi::lua_settop(l, K);
        // Request[k]
        lua::push_index(l, CONF, REQUEST);
        ffi::lua_pushvalue(l, K);
        ffi::lua_rawget(l, -2);
        if ffi::lua_type(l, -1) != ffi::LUA_TNIL || ffi::lua_type(l, REQ) != ffi::LUA_TTABLE {
            return 1;
        }
        push_key(l, Key::Headers);
        let headers_key = top(l);
        if ffi::lua_rawequal(l, K, headers_key) == 0 {
            // getters[k](req), stored in req.
            lua::push_index(l, CONF, GETTERS);
            ffi::lua_pushvalue(l, K);
            if ffi::lua_rawget(l, -2) != ffi::LUA_TFUNCTION {
                ffi::lua_pushnil(l);
                return 1;
            }
            ffi::lua_pushvalue(l, REQ);
            ffi::lua_call(l, 1, 1);
            ffi::lua_pushvalue(l, K);
            ffi::lua_pushvalue(l, -2);
            ffi::lua_rawset(l, REQ);
            return 1;
        }
        if get(l, REQ, Key::Head) != ffi::LUA_TSTRING {
            ffi::lua_pushnil(l);
            return 1;
        }
        let section = lua::to_bytes(l, -1).unwrap_or_default();
        // The section was parsed when the request was read: it cannot fail.
        if with_fields(section, |fields| push_fields(l, fields, true)).is_err() {
            ffi::lua_createtable(l, 0, 0);
        }
        let headers = top(l);
        // req.headers = headers; req._head = nil
        ffi::lua_pushvalue(l, headers_key);
        ffi::lua_pushvalue(l, headers);
        ffi::lua_rawset(l, REQ);
        set(l, REQ, Key::Head, || ffi::lua_pushnil(l));
        1
    }
}

/// The arguments of [`respond`], by stack index.
const CLIENT: c_int = 1;
const REQ: c_int = 2;
const RES: c_int = 3;
const CLOSE: c_int = 4;
const KEEPALIVE: c_int = 5;

/// core.respond(client, req, res, close, keepalive) -> next request |
/// true | false, err | false: send what a handler left in `res` as one
/// write: the head and the body (the strings of its array part), only the
/// head for `HEAD`. When the connection stays and the write went out whole
/// at once, the same call goes on to read the next request, and returns
/// what `core.request` would (a table first, or `nil, status | err`);
/// else `true` once sent, `false, err` when the write failed. A lone
/// `false`, with nothing sent, when the response is not an ordinary one
/// (streamed, a file, a status or header that is not a plain string or
/// number, body parts that are not strings): the Lua half sends those.
/// During a graceful stop every response closes its connection.
unsafe extern "C-unwind" fn respond(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = check_stream(l, CLIENT);
        ffi::luaL_checktype(l, REQ, ffi::LUA_TTABLE);
        ffi::luaL_checktype(l, RES, ffi::LUA_TTABLE);
        let close = ffi::lua_toboolean(l, CLOSE) != 0 || crate::runtime::lifecycle::draining();
        let keepalive = ffi::lua_toboolean(l, KEEPALIVE) != 0;
        // What is looked at is pushed above the arguments and stays there (the
        // byte slices below borrow its strings): each value that is used
        // later is named by its index when it is pushed (`top`).
        ffi::lua_settop(l, RES);
        let unusual = || {
            ffi::lua_pushboolean(l, 0);
            1
        };
        if get(l, RES, Key::Streaming) != ffi::LUA_TNIL || get(l, RES, Key::File) != ffi::LUA_TNIL {
            return unusual();
        }
        // A status that is not an integer from 100 to 999 is the Lua half's
        // to refuse.
        let status = match get(l, RES, Key::Status) {
            ffi::LUA_TNIL => None,
            _ => match integer(l, -1) {
                Some(n) if valid_status(n) => Some(n),
                _ => return unusual(),
            },
        };
        if get(l, RES, Key::Headers) != ffi::LUA_TTABLE {
            return unusual();
        }
        let headers = top(l);
        // The body: the one string (pushed), or all of them joined (and a nil
        // pushed in its place).
        let parts = ffi::lua_rawlen(l, RES);
        let mut joined = Vec::new();
        if parts == 1 {
            if ffi::lua_rawgeti(l, RES, 1) != ffi::LUA_TSTRING {
                return unusual();
            }
        } else {
            for i in 1..=parts {
                if ffi::lua_rawgeti(l, RES, i as _) != ffi::LUA_TSTRING {
                    return unusual();
                }
                joined.extend_from_slice(lua::to_bytes(l, -1).unwrap_or_default());
                ffi::lua_pop(l, 1);
            }
            ffi::lua_pushnil(l);
        }
        let body: &[u8] = if parts == 1 {
            lua::to_bytes(l, top(l)).unwrap_or_default()
        } else {
            &joined
        };
        let status = status.unwrap_or(if body.is_empty() { 204 } else { 200 });
        // The status texts, then this status's.
        if ffi::lua_rawgeti(l, CONF, STATUS) != ffi::LUA_TTABLE {
            return unusual();
        }
        let texts = top(l);
        let text = match ffi::lua_rawgeti(l, texts, status as _) {
            ffi::LUA_TNIL => &b"Unknown"[..],
            ffi::LUA_TSTRING => lua::to_bytes(l, -1).unwrap_or_default(),
            _ => return unusual(),
        };
        // The module, then its server_name.
        ffi::lua_rawgeti(l, CONF, MODULE);
        let module = top(l);
        if get(l, module, Key::ServerName) != ffi::LUA_TSTRING {
            return unusual();
        }
        let server = lua::to_bytes(l, -1).unwrap_or_default();
        let length = if status == 204 || status == 304 || status < 200 {
            Length::None
        } else {
            Length::Bytes(body.len() as i64)
        };
        let mut out = HEAD_BUF.take();
        out.clear();
        out.reserve(256);
        let head = ResponseHead {
            status,
            text,
            headers,
            length,
            close,
            keepalive,
            server,
        };
        if !build_head(l, &mut out, head) {
            return unusual();
        }
        // The method, compared as Lua compares strings.
        get(l, REQ, Key::Method);
        let head_only = ffi::lua_rawequal(l, -1, key_index(Key::HeadMethod)) != 0;
        let with_body = !head_only && !matches!(length, Length::None);
        let w = stream::write(
            l,
            s,
            &[&out, if with_body { body } else { &[] }],
            stream::Failure::False,
        );
        // What the socket did not take was copied: the buffer is free again.
        if out.capacity() <= HEAD_BUF_MAX {
            HEAD_BUF.set(out);
        }
        drop(joined);
        // Sent whole on a connection that stays: the next request is read in
        // this same call.
        if !close && matches!(w, Write::Sent) {
            return stream::read_idle(l, s, Fmt::Custom(&SERVER_HEAD));
        }
        w.finish(l)
    }
}

thread_local! {
    /// The buffer `respond` builds heads in, kept between responses.
    static HEAD_BUF: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Largest head buffer kept for the next response.
const HEAD_BUF_MAX: usize = 16 << 10;

/// Add the server functions to the module table on top of the stack. They
/// share their upvalues: the server's table (filled by `core.setup`), the
/// keys and the metatable of Streams.
pub(super) unsafe fn register(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let funcs: [(&std::ffi::CStr, ffi::lua_CFunction); 4] = [
            (c"setup", setup),
            (c"request", request),
            (c"respond", respond),
            (c"request_index", request_index),
        ];
        ffi::luaL_checkstack(l, KEYS.len() as c_int + 3, std::ptr::null());
        ffi::lua_createtable(l, GETTERS as c_int, 0);
        let conf = ffi::lua_gettop(l);
        for (name, f) in funcs {
            ffi::lua_pushvalue(l, conf);
            for k in KEYS {
                ffi::lua_pushstring(l, k.as_ptr());
            }
            stream::push_class(l);
            ffi::lua_pushcclosure(l, f, 2 + KEYS.len() as c_int);
            ffi::lua_setfield(l, conf - 1, name.as_ptr());
        }
        ffi::lua_pop(l, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of the table `shared` in the Lua half that declares the
    /// private fields.
    fn declared_in_lua() -> Vec<String> {
        let src = include_str!("../../../lua/lem/http/response.lua");
        let open = "\nlocal shared = {\n";
        let start = src.find(open).expect("no `local shared = {`") + open.len();
        let body = &src[start..];
        let body = &body[..body.find("\n}").expect("`shared` not closed")];
        body.lines()
            .filter_map(|line| {
                let code = line.split("--").next()?;
                let (_, v) = code.split_once('=')?;
                Some(
                    v.trim()
                        .trim_end_matches(',')
                        .trim_matches('\'')
                        .to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn the_lua_half_declares_the_same_private_fields() {
        let mut lua = declared_in_lua();
        let mut rust: Vec<String> = private::ALL
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect();
        lua.sort();
        rust.sort();
        assert_eq!(lua, rust);
        // And the keys use them, not names of their own.
        for k in KEYS {
            let k = k.to_str().unwrap();
            assert!(!k.starts_with('_') || rust.iter().any(|r| r == k), "{k}");
        }
    }

    #[test]
    fn heads_are_found_not_checked() {
        let s = ServerHead;
        assert_eq!(
            s.scan(b"\r\nBAD\r\n\r\nx", false),
            Scan::Ready {
                consume: 9,
                mark: 2
            }
        );
        assert_eq!(s.scan(b"GET / HTTP/1.1\r\n", false), Scan::Need);
        assert_eq!(
            s.scan(&[b'a'; HEAD_LIMIT + 1], false),
            Scan::Invalid(NO_SPACE)
        );
    }
}
