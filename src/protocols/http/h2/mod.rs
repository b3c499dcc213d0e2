//! `lem.http.h2.core`: HTTP/2 for `lua/lem/http/h2.lua`, on the `h2`
//! crate. A connection ([`Conn`]) takes over a Stream's descriptor
//! ([`Detached`]) and is driven by a tokio task of its own on the loop's
//! thread ([`drive`]), which answers SETTINGS, PING, WINDOW_UPDATE and
//! the rest of the framing; each request it accepts waits in the
//! connection's queue for `conn:accept()`, and the Lua half runs its
//! handler in a coroutine of its own, on the stream object of
//! `stream.rs` (`st:read()`, `st:respond()`, `st:write()`,
//! `st:finish()`).
//!
//! A graceful stop (`utils.shutdown`, `lem -w`'s reloads) sends GOAWAY
//! on every connection: open streams finish, new ones are refused, and
//! the connection ends with its last stream.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_int, CStr};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use tokio::sync::Notify;

use super::rules::decode_path;
use crate::io::stream::{Stream, STREAM};
use crate::runtime::lifecycle;
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::scheduler::{self, Commit, Resume};

mod client;
mod stream;
pub(super) mod upgrade;

pub(crate) static CONN: &CStr = c"lem.http.h2.Conn";

/// The connection preface as far as an HTTP/1.1 head reads it (`PRI *
/// HTTP/2.0` and an empty line); the rest, `SM\r\n\r\n`, stays buffered.
const PREFACE_HEAD: &[u8] = b"PRI * HTTP/2.0\r\n\r\n";

/// What the connection's task and its Lua object share.
#[derive(Default)]
struct Shared {
    /// Requests accepted, not yet taken by `conn:accept()`.
    queue: RefCell<VecDeque<(http::Request<RecvStream>, SendResponse<Bytes>)>>,
    /// Why the connection ended, once it has.
    ended: RefCell<Option<String>>,
    /// Wakes `conn:accept()`.
    arrived: Notify,
    /// `conn:close()`: the task stops at once.
    abort: Notify,
    /// Streams handed to the Lua half and not yet closed.
    open: std::cell::Cell<usize>,
    /// A stream was closed (the connection may now be idle).
    changed: Notify,
}

impl Shared {
    /// A stream was let go of.
    fn closed_stream(&self) {
        self.open.set(self.open.get().saturating_sub(1));
        self.changed.notify_one();
    }

    fn end(&self, why: String) {
        *self.ended.borrow_mut() = Some(why);
        self.arrived.notify_one();
    }
}

/// The Lua object: `conn`.
struct Conn(Rc<Shared>);

impl Drop for Conn {
    fn drop(&mut self) {
        // Nobody takes requests any more.
        self.0.abort.notify_one();
    }
}

thread_local! {
    /// Wakes every connection's task when a graceful stop starts.
    static DRAIN: Rc<Notify> = Rc::new(Notify::new());
}

/// The drain hook: every connection says GOAWAY.
fn drain() {
    DRAIN.with(|d| d.notify_waiters());
}

/// The limits of one connection (the server's options).
struct Limits {
    max_streams: u32,
    header_list: u32,
    /// How long the client has for its preface and settings, and how
    /// long a connection with no stream open may stay.
    idle: Option<Duration>,
}

/// Serve the connection until it ends: its frames, and its requests into
/// the queue.
async fn drive<T>(io: T, shared: Rc<Shared>, limits: Limits)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(limits.max_streams)
        .max_header_list_size(limits.header_list)
        .header_table_size(4096)
        .max_pending_accept_reset_streams(limits.max_streams as usize)
        .max_local_error_reset_streams(Some(1024))
        .max_send_buffer_size(64 << 10);
    let handshake = b.handshake::<_, Bytes>(io);
    let handshake = async {
        match limits.idle {
            Some(t) => tokio::time::timeout(t, handshake)
                .await
                .unwrap_or_else(|_| Err(h2::Error::from(h2::Reason::SETTINGS_TIMEOUT))),
            None => handshake.await,
        }
    };
    let mut conn = tokio::select! {
        r = handshake => match r {
            Ok(c) => c,
            Err(e) => return shared.end(e.to_string()),
        },
        _ = shared.abort.notified() => return shared.end("closed".into()),
    };
    let drain = DRAIN.with(Rc::clone);
    // Set once GOAWAY was sent: by a graceful stop, or for an idle
    // connection (which then has as long again to go).
    let mut stopping = false;
    let mut idle_stop = false;
    loop {
        let draining = drain.notified();
        if !stopping && lifecycle::draining() {
            conn.graceful_shutdown();
            stopping = true;
        }
        let quiet = shared.open.get() == 0 && shared.queue.borrow().is_empty();
        let idle = async {
            match (quiet || idle_stop, limits.idle) {
                (true, Some(t)) => tokio::time::sleep(t).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            r = conn.accept() => match r {
                Some(Ok(pair)) => {
                    shared.open.set(shared.open.get() + 1);
                    shared.queue.borrow_mut().push_back(pair);
                    shared.arrived.notify_one();
                }
                Some(Err(e)) => return shared.end(e.to_string()),
                None => break,
            },
            _ = draining, if !stopping => {}
            _ = shared.changed.notified() => {}
            _ = idle => {
                if idle_stop {
                    break;
                }
                conn.graceful_shutdown();
                stopping = true;
                idle_stop = true;
            }
            _ = shared.abort.notified() => break,
        }
    }
    shared.end("closed".into());
}

/// core.serve(stream, preface, max_streams, header_list, timeout) ->
/// conn | nil, err: HTTP/2 on the Stream (a server's connection), which
/// is closed: the connection takes its descriptor and what it had
/// buffered over. `preface`: the Stream's read took the preface's first
/// line as an HTTP/1.1 head (cleartext by prior knowledge). `timeout`:
/// seconds the client has to send its preface and settings, and that a
/// connection with no stream open may stay (then GOAWAY, and as long
/// again before it is closed; nil: no limit).
unsafe extern "C-unwind" fn serve(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s: &Stream = lua::check_object(l, 1, STREAM);
        let preface = ffi::lua_toboolean(l, 2) != 0;
        let max_streams = lua::opt_integer(l, 3, 128).clamp(1, u32::MAX as i64) as u32;
        let header_list = lua::opt_integer(l, 4, 64 << 10).clamp(1, u32::MAX as i64) as u32;
        let handshake = match ffi::lua_isnoneornil(l, 5) != 0 {
            true => None,
            false => Some(ffi::luaL_checknumber(l, 5)),
        };
        let prefix = if preface { PREFACE_HEAD } else { &[] };
        let Some(io) = s.0.detach(prefix) else {
            return lua::fail(l, "closed");
        };
        lifecycle::on_drain(drain);
        let shared = Rc::new(Shared::default());
        let limits = Limits {
            max_streams,
            header_list,
            idle: handshake
                .filter(|t| t.is_finite() && *t > 0.0)
                .map(Duration::from_secs_f64),
        };
        tokio::task::spawn_local(drive(io, shared.clone(), limits));
        lua::push_object(l, CONN, Conn(shared));
        1
    }
}

/// Push a request's values: `method, uri, path, headers, stream`. The
/// headers as HTTP/1.1's are: lower-case names, the values of a repeated
/// field joined with `, ` (`cookie`'s with `; `, RFC 9113 §8.2.3); `host`
/// from `:authority` when the request has none.
unsafe fn push_request(
    l: *mut lua_State,
    req: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    shared: Rc<Shared>,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let (parts, body) = req.into_parts();
        lua::push_str(l, parts.method.as_str());
        let uri = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        lua::push_str(l, &uri);
        lua::push_bytes(l, &decode_path(uri.as_bytes()));
        drop(uri);
        ffi::lua_createtable(l, 0, parts.headers.keys_len() as c_int + 1);
        let headers = ffi::lua_gettop(l);
        for name in parts.headers.keys() {
            // Every value of a repeated field, as HTTP/1.1's req.headers
            // keeps them (format.rs): joined with ", ", cookie's with "; ".
            let sep: &[u8] = if name == http::header::COOKIE {
                b"; "
            } else {
                b", "
            };
            lua::push_str(l, name.as_str());
            let mut joined = Vec::new();
            for (i, v) in parts.headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    joined.extend_from_slice(sep);
                }
                joined.extend_from_slice(v.as_bytes());
            }
            lua::push_bytes(l, &joined);
            ffi::lua_rawset(l, headers);
        }
        if !parts.headers.contains_key(http::header::HOST) {
            if let Some(a) = parts.uri.authority() {
                lua::push_str(l, "host");
                lua::push_str(l, a.as_str());
                ffi::lua_rawset(l, headers);
            }
        }
        drop(parts);
        stream::push_stream(l, body, respond, shared);
        5
    }
}

/// conn:accept() -> method, uri, path, headers, stream | nil, err: the
/// next request on the connection, once one comes; `nil, 'closed'` (or
/// the connection's error) once it has ended.
unsafe extern "C-unwind" fn conn_accept(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let c: &Conn = lua::check_object(l, 1, CONN);
        let next = c.0.queue.borrow_mut().pop_front();
        if let Some((req, respond)) = next {
            return push_request(l, req, respond, c.0.clone());
        }
        if let Some(why) = c.0.ended.borrow().clone() {
            return lua::fail(l, &why);
        }
        let shared = c.0.clone();
        let fut = async move {
            loop {
                let next = shared.queue.borrow_mut().pop_front();
                if let Some((req, respond)) = next {
                    let shared = shared.clone();
                    return Resume::Push(Box::new(move |co| {
                        // SAFETY: `co` is the resumed coroutine, with room
                        // for the values (LUA_MINSTACK).
                        push_request(co, req, respond, shared)
                    }));
                }
                if let Some(why) = shared.ended.borrow().clone() {
                    return Resume::Push(Box::new(move |co| {
                        // SAFETY: as above.
                        lua::fail(co, &why)
                    }));
                }
                shared.arrived.notified().await;
            }
        };
        scheduler::prepare_or_raise(l, Commit::Future(Box::pin(fut)));
        scheduler::suspend(l)
    }
}

/// conn:close(): the connection ends at once (its streams fail).
unsafe extern "C-unwind" fn conn_close(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let c: &Conn = lua::check_object(l, 1, CONN);
        c.0.abort.notify_one();
        c.0.queue.borrow_mut().clear();
        0
    }
}

const CONN_METHODS: &[Reg] = &[(c"accept", conn_accept), (c"close", conn_close)];

const FUNCS: &[Reg] = &[(c"serve", serve), (c"upgrade", upgrade::upgrade)];

/// luaopen for `lem.http.h2.core`.
///
/// # Safety
/// Called by `require`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::new_class(l, CONN, CONN_METHODS, Some(lua::gc::<Conn>));
        ffi::lua_pop(l, 1);
        stream::register(l);
        client::register(l);
        ffi::lua_createtable(l, 0, (FUNCS.len() + client::FUNCS.len()) as c_int);
        lua::set_funcs(l, FUNCS);
        lua::set_funcs(l, client::FUNCS);
        1
    }
}

/// Whether a head's start line is the HTTP/2 connection preface's (a
/// cleartext client speaking HTTP/2 by prior knowledge).
pub(super) fn is_preface(method: &[u8], target: &[u8], version: &[u8]) -> bool {
    method == b"PRI" && target == b"*" && version == b"2.0"
}

/// The field names HTTP/2 forbids (RFC 9113 §8.2.2), dropped from
/// responses.
pub(super) fn connection_specific(name: &[u8]) -> bool {
    [
        &b"connection"[..],
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
    ]
    .iter()
    .any(|n| n.eq_ignore_ascii_case(name))
}
