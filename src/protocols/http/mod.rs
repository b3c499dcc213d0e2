//! `lem.http.core`: the Rust half of `lua/lem/http.lua` and
//! `lua/lem/http/server.lua`. See docs/http.md. One concept a
//! file:
//!
//! - `head.rs`: finding and checking heads (start line, fields with
//!   `httparse`); `fold.rs`: obsolete line folding in them.
//! - `format.rs`: the read formats `'HTTPRequest'` and `'HTTPResponse'`
//!   (registered in `parsers.lookup` when the module loads); `chunked.rs`:
//!   the three formats of chunked bodies, and `core.charge`.
//! - `response.rs`: building response heads (`core.head`, and the server's
//!   hot path), `res:add`; `date.rs`: the `Date` field (`core.date`).
//! - `server.rs`: the server's per-request hot path (`core.request`,
//!   `core.respond`); `rules.rs`: what it checks in a request head.
//! - `decode.rs`: content codings (gzip, deflate, br) for the client's
//!   bodies (`core.decoder`).
//! - `h2/`: HTTP/2 on the `h2` crate (`lem.http.h2.core`, for
//!   `lua/lem/http/h2.lua`).
//! - `multipart.rs`: the scanner of `multipart/form-data` bodies
//!   (`lua/lem/http/multipart.lua` reads them).
//! - `sign.rs`: HMAC-SHA256 signatures for signed cookies
//!   (`lua/lem/http/cookie.lua`).
//! - `static_file.rs`: opening a file beneath a root for
//!   `hathaway.static`, through a cache of open files (`core.static_cache`,
//!   `core.static_open`), and `core.file_pread` for bodies read at offsets.
//! - `fuzz.rs`: the fuzz targets' entry points.
//!
//! A head is found in two steps, as every read format: `scan` looks for
//! the empty line that ends it and checks the whole head, so that a bad
//! head is left unread; `push` parses the same bytes again and builds the
//! table. The server's own format checks in `push` only (its connection
//! closes after a bad head anyway), so it parses once.
//!
//! Deviations from the original, all for request smuggling (RFC 9112
//! §6.3): a repeated `Content-Length` or `Transfer-Encoding` field is not
//! replaced by its last value but combined (`"5, 6"`), so the server can
//! see the conflict; every other repeated field keeps its last value, except
//! in the server's `req.headers`, which joins them all (format.rs).

use std::ffi::{c_int, CStr};

use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::parsers::{self, Format};

mod chunked;
mod date;
mod decode;
mod fold;
mod format;
#[doc(hidden)]
pub mod fuzz;
pub mod h2;
mod head;
pub(crate) mod multipart;
mod response;
mod rules;
mod server;
mod sign;
mod static_file;

pub use head::HEAD_LIMIT;

const FUNCS: &[Reg] = &[
    (c"date", date::date),
    (c"head", response::head),
    (c"charge", chunked::charge),
    (c"decoder", decode::decoder),
    (c"hmac_sha256", sign::hmac_sha256),
    (c"hmac_verify", sign::hmac_verify),
    (c"multipart_scan", multipart::multipart_scan),
    (c"part_head", multipart::part_head_lua),
    (c"static_cache", static_file::static_cache),
    (c"static_open", static_file::static_open),
    (c"file_pread", static_file::file_pread),
];

/// Names of the formats, as registered in `parsers.lookup`.
const FORMATS: [(&CStr, &dyn Format); 5] = [
    (c"HTTPRequest", &format::REQUEST),
    (c"HTTPResponse", &format::RESPONSE),
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
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        for (name, f) in FORMATS {
            parsers::register(l, name, f);
        }
        ffi::lua_createtable(l, 0, FUNCS.len() as c_int + 4);
        lua::set_funcs(l, FUNCS);
        // add's upvalue: string.format as it is now (the Lua half kept a local).
        ffi::luaL_getsubtable(l, ffi::LUA_REGISTRYINDEX, ffi::LUA_LOADED_TABLE);
        ffi::lua_getfield(l, -1, c"string".as_ptr());
        ffi::lua_getfield(l, -1, c"format".as_ptr());
        ffi::lua_pushcclosure(l, response::add, 1);
        ffi::lua_setfield(l, -4, c"add".as_ptr());
        ffi::lua_pop(l, 2);
        server::register(l);
        decode::register(l);
        ffi::lua_pushinteger(l, HEAD_LIMIT as _);
        ffi::lua_setfield(l, -2, c"head_limit".as_ptr());
        1
    }
}
