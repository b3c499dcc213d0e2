//! The client side of `lem.http.h2.core`, for lem.http.client: an
//! HTTP/2 connection ([`Client`], `h2::client`) takes over a Stream's
//! descriptor ([`Detached`], plain or TLS) and is driven by a tokio task
//! of its own on the loop's thread ([`drive`]), as the server's are. Each
//! request is a stream object ([`Call`]): `call:write()` and
//! `call:finish()` send the body, `call:response()` waits for the head,
//! `call:read()` takes the body a chunk at a time (giving its bytes back
//! to the server's window, so a body nobody reads buffers at most a
//! window), `call:trailers()` what follows it, `call:close()` lets go of it (RST_STREAM CANCEL if it has not
//! ended). Many coroutines' requests share the connection; h2 opens them
//! as the server's SETTINGS_MAX_CONCURRENT_STREAMS lets it and holds the
//! rest until a stream ends.

use std::cell::RefCell;
use std::ffi::{c_int, CStr};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};
use http::HeaderMap;

use crate::io::stream::{Stream, STREAM};
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::scheduler::{self, Commit, Resume};

static CLIENT: &CStr = c"lem.http.h2.Client";
static CALL: &CStr = c"lem.http.h2.Call";

/// The windows the client gives the server: per stream, and for the whole
/// connection (what unread bodies may hold at most).
const STREAM_WINDOW: u32 = 256 << 10;
const CONN_WINDOW: u32 = 1 << 20;

/// What the connection's task and its Lua object share.
#[derive(Default)]
struct Shared {
    /// Why the connection ended, once it has.
    ended: RefCell<Option<String>>,
    /// `conn:close('now')`: the task stops at once.
    abort: tokio::sync::Notify,
}

/// The Lua object: `conn`. Its `SendRequest` goes with `conn:close()`;
/// the connection then ends with its last stream.
struct Client {
    send: RefCell<Option<SendRequest<Bytes>>>,
    shared: Rc<Shared>,
}

/// One request's stream. Each half is taken out of its slot while a wait
/// uses it and put back when its coroutine resumes: an empty slot is a
/// busy one (or one that is done).
struct Call {
    response: Rc<RefCell<Option<ResponseFuture>>>,
    send: Rc<RefCell<Option<SendStream<Bytes>>>>,
    recv: Rc<RefCell<Option<RecvStream>>>,
}

/// Drive the connection until it ends (every handle and stream let go
/// of, the server gone, or `conn:close('now')`).
async fn drive(
    conn: h2::client::Connection<crate::io::stream::Detached, Bytes>,
    shared: Rc<Shared>,
) {
    let why = tokio::select! {
        r = conn => match r {
            Ok(()) => "closed".to_string(),
            Err(e) => e.to_string(),
        },
        _ = shared.abort.notified() => "closed".to_string(),
    };
    *shared.ended.borrow_mut() = Some(why);
}

/// Poll `f` once, without a task to wake: its output if it is ready now.
fn now<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(f).poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Whether a request that failed with `e` may not have reached the
/// server's application, so that it may be sent again: `'refused'`
/// (RST_STREAM REFUSED_STREAM: it did not, RFC 9113 §8.7) or `'goaway'`
/// (the server's GOAWAY ended it: it did not if it was past the GOAWAY's
/// last stream, which h2 does not tell).
fn unprocessed(e: &h2::Error) -> Option<&'static str> {
    if e.reason() == Some(Reason::REFUSED_STREAM) && e.is_reset() {
        Some("refused")
    } else if e.is_go_away() && e.is_remote() {
        Some("goaway")
    } else {
        None
    }
}

/// core.client(stream [, timeout]) -> conn | nil, err: HTTP/2 on the
/// Stream (a client's connection, plain or TLS), which is closed: the
/// connection takes its descriptor over. Sends the preface and settings,
/// and returns once the server's settings have come (within `timeout`
/// seconds if given: else `nil, 'timeout'`).
unsafe extern "C-unwind" fn client(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s: &Stream = lua::check_object(l, 1, STREAM);
        let wait = match ffi::lua_isnoneornil(l, 2) != 0 {
            true => None,
            false => Some(ffi::luaL_checknumber(l, 2)),
        }
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(std::time::Duration::from_secs_f64);
        let Some(io) = s.0.detach(&[]) else {
            return lua::fail(l, "closed");
        };
        let fut = async move {
            let mut b = h2::client::Builder::new();
            b.enable_push(false)
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONN_WINDOW)
                .max_header_list_size(256 << 10)
                .max_send_buffer_size(64 << 10);
            let start = async {
                let (send, mut conn) = b.handshake::<_, Bytes>(io).await?;
                let shared = Rc::new(Shared::default());
                let ping = conn.ping_pong();
                tokio::task::spawn_local(drive(conn, shared.clone()));
                // The server's SETTINGS come before its answer to a PING:
                // once it is there, its limit on streams is known, and
                // requests made at once do not go past it.
                if let Some(mut ping) = ping {
                    if let Err(e) = ping.ping(h2::Ping::opaque()).await {
                        shared.abort.notify_one();
                        return Err(e);
                    }
                }
                Ok((send, shared))
            };
            let r = match wait {
                Some(t) => tokio::time::timeout(t, start)
                    .await
                    .unwrap_or_else(|_| Err(h2::Error::from(Reason::SETTINGS_TIMEOUT))),
                None => start.await,
            };
            Resume::Push(Box::new(move |co| match r {
                Ok((send, shared)) => {
                    // SAFETY: `co` is the resumed coroutine, with room for
                    // the value (LUA_MINSTACK).
                    lua::push_object(
                        co,
                        CLIENT,
                        Client {
                            send: RefCell::new(Some(send)),
                            shared,
                        },
                    );
                    1
                }
                // SAFETY: as above.
                Err(e) if e.reason() == Some(Reason::SETTINGS_TIMEOUT) => lua::fail(co, "timeout"),
                // SAFETY: as above.
                Err(e) => lua::fail(co, &e.to_string()),
            }))
        };
        scheduler::prepare_or_raise(l, Commit::Future(Box::pin(fut)));
        scheduler::suspend(l)
    }
}

/// A ready handle for a new stream, or why there is none.
fn ready(c: &Client) -> Result<SendRequest<Bytes>, String> {
    let Some(mut send) = c.send.borrow().clone() else {
        return Err("closed".into());
    };
    if let Some(why) = c.shared.ended.borrow().as_ref() {
        return Err(why.clone());
    }
    // A fresh clone has no stream pending of its own: ready at once unless
    // the connection failed or was told GOAWAY.
    match now(&mut poll_fn(|cx| send.poll_ready(cx))) {
        Some(Err(e)) => Err(e.to_string()),
        _ => Ok(send),
    }
}

/// conn:alive() -> boolean: whether new requests may go on the connection
/// (not closed, failed, or told GOAWAY).
unsafe extern "C-unwind" fn client_alive(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let c: &Client = lua::check_object(l, 1, CLIENT);
        ffi::lua_pushboolean(l, ready(c).is_ok() as c_int);
        1
    }
}

/// conn:request(method, url, headers, last) -> call | nil, err, retry:
/// open a stream and send the request's head (`url` absolute: its scheme
/// and authority are the pseudo-header fields; `headers` without the
/// connection-specific ones). `last`: there is no body. `retry` is
/// `'unsent'` when the connection took no new stream (closed, failed,
/// told GOAWAY): nothing was sent.
unsafe extern "C-unwind" fn client_request(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let c: &Client = lua::check_object(l, 1, CLIENT);
        let method = lua::check_bytes(l, 2);
        let url = lua::check_bytes(l, 3);
        let last = ffi::lua_toboolean(l, 5) != 0;
        let Ok(method) = http::Method::from_bytes(method) else {
            return lua::fail(l, "bad method");
        };
        let Ok(uri) = http::Uri::try_from(url) else {
            return lua::fail(l, "bad url");
        };
        let headers = match super::stream::fields(l, 4) {
            Ok(h) => h,
            Err(e) => return lua::fail(l, &e),
        };
        let mut send = match ready(c) {
            Ok(s) => s,
            Err(e) => {
                ffi::lua_pushnil(l);
                lua::push_str(l, &e);
                lua::push_str(l, "unsent");
                return 3;
            }
        };
        let mut req = http::Request::new(());
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        match send.send_request(req, last) {
            Ok((response, body)) => {
                lua::push_object(
                    l,
                    CALL,
                    Call {
                        response: Rc::new(RefCell::new(Some(response))),
                        send: Rc::new(RefCell::new((!last).then_some(body))),
                        recv: Rc::default(),
                    },
                );
                1
            }
            // A request h2 refuses to send (a malformed head) is not retried.
            Err(e) if !(e.is_go_away() || e.is_io()) => lua::fail(l, &e.to_string()),
            Err(e) => {
                ffi::lua_pushnil(l);
                lua::push_str(l, &e.to_string());
                lua::push_str(l, "unsent");
                3
            }
        }
    }
}

/// conn:close(['now']): no new requests on the connection; it ends with
/// its last stream (`'now'`: at once, its streams failing).
unsafe extern "C-unwind" fn client_close(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let c: &Client = lua::check_object(l, 1, CLIENT);
        drop(c.send.borrow_mut().take());
        if lua::to_bytes(l, 2) == Some(b"now") {
            c.shared.abort.notify_one();
        }
        0
    }
}

/// call:write(data) -> true | nil, err: send part of the body, once the
/// server's window takes it all.
unsafe extern "C-unwind" fn call_write(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let call: &Call = lua::check_object(l, 1, CALL);
        let data = lua::check_bytes(l, 2);
        if data.is_empty() {
            ffi::lua_pushboolean(l, 1);
            return 1;
        }
        let data = Bytes::copy_from_slice(data);
        let Some(send) = call.send.borrow_mut().take() else {
            return lua::fail(l, "busy");
        };
        super::stream::write_body(l, call.send.clone(), send, data)
    }
}

/// call:finish() -> true | nil, err: end the request's body.
unsafe extern "C-unwind" fn call_finish(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let call: &Call = lua::check_object(l, 1, CALL);
        let Some(mut send) = call.send.borrow_mut().take() else {
            return lua::fail(l, "busy");
        };
        match send.send_data(Bytes::new(), true) {
            Ok(()) => {
                ffi::lua_pushboolean(l, 1);
                1
            }
            Err(e) => lua::fail(l, &e.to_string()),
        }
    }
}

/// Push a response's `status, text, headers, fields`: lower-case names,
/// the last value of a repeated field in `headers`, every field in order
/// as `{name, value}` in `fields`.
unsafe fn push_response(
    l: *mut lua_State,
    res: http::Response<RecvStream>,
    slot: &RefCell<Option<RecvStream>>,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let (parts, body) = res.into_parts();
        *slot.borrow_mut() = Some(body);
        ffi::lua_pushinteger(l, parts.status.as_u16() as _);
        lua::push_str(l, parts.status.canonical_reason().unwrap_or(""));
        ffi::lua_createtable(l, 0, parts.headers.keys_len() as c_int);
        ffi::lua_createtable(l, parts.headers.len() as c_int, 0);
        for (i, (name, value)) in parts.headers.iter().enumerate() {
            lua::push_str(l, name.as_str());
            lua::push_bytes(l, value.as_bytes());
            ffi::lua_rawset(l, -4);
            ffi::lua_createtable(l, 2, 0);
            lua::push_str(l, name.as_str());
            ffi::lua_rawseti(l, -2, 1);
            lua::push_bytes(l, value.as_bytes());
            ffi::lua_rawseti(l, -2, 2);
            ffi::lua_rawseti(l, -2, (i + 1) as _);
        }
        4
    }
}

/// Push `nil, err[, retry]` for a stream's error (see [`unprocessed`]).
unsafe fn push_error(l: *mut lua_State, e: &h2::Error) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_pushnil(l);
        lua::push_str(l, &e.to_string());
        match unprocessed(e) {
            Some(why) => {
                lua::push_str(l, why);
                3
            }
            None => 2,
        }
    }
}

/// call:response() -> status, text, headers, fields | nil, err [, retry]:
/// the response's head, once it comes. `retry`: the server did not
/// may not have processed the request (`'refused'`, `'goaway'`).
unsafe extern "C-unwind" fn call_response(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let call: &Call = lua::check_object(l, 1, CALL);
        let Some(mut fut) = call.response.borrow_mut().take() else {
            return lua::fail(l, "busy");
        };
        match now(&mut fut) {
            Some(Ok(res)) => return push_response(l, res, &call.recv),
            Some(Err(e)) => return push_error(l, &e),
            None => {}
        }
        let slot = call.recv.clone();
        let back = call.response.clone();
        let wait = async move {
            let r = (&mut fut).await;
            Resume::Push(Box::new(move |co| {
                // SAFETY: `co` is the resumed coroutine, with room for the
                // values (LUA_MINSTACK).
                match r {
                    Ok(res) => push_response(co, res, &slot),
                    Err(e) => {
                        *back.borrow_mut() = None;
                        push_error(co, &e)
                    }
                }
            }))
        };
        scheduler::prepare_or_raise(l, Commit::Future(Box::pin(wait)));
        scheduler::suspend(l)
    }
}

/// Push what a body's read gave: the chunk (its bytes given back to the
/// server's window), `nil, 'eof'`, or `nil, err, retry`.
unsafe fn push_data(
    l: *mut lua_State,
    body: &mut RecvStream,
    r: Option<Result<Bytes, h2::Error>>,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match r {
            Some(Ok(chunk)) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                lua::push_bytes(l, &chunk);
                1
            }
            None => lua::fail(l, "eof"),
            Some(Err(e)) => push_error(l, &e),
        }
    }
}

/// call:read() -> chunk | nil, 'eof' | nil, err: the next piece of the
/// response's body, once it comes.
unsafe extern "C-unwind" fn call_read(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let call: &Call = lua::check_object(l, 1, CALL);
        let Some(mut body) = call.recv.borrow_mut().take() else {
            return lua::fail(l, "busy");
        };
        if body.is_end_stream() {
            *call.recv.borrow_mut() = Some(body);
            return lua::fail(l, "eof");
        }
        // What has arrived already is taken without suspending.
        if let Some(r) = now(&mut poll_fn(|cx| body.poll_data(cx))) {
            let n = push_data(l, &mut body, r);
            *call.recv.borrow_mut() = Some(body);
            return n;
        }
        let slot = call.recv.clone();
        let fut = async move {
            let r = body.data().await;
            Resume::Push(Box::new(move |co| {
                // SAFETY: `co` is the resumed coroutine, with room for the
                // values.
                let n = push_data(co, &mut body, r);
                *slot.borrow_mut() = Some(body);
                n
            }))
        };
        scheduler::prepare_or_raise(l, Commit::Future(Box::pin(fut)));
        scheduler::suspend(l)
    }
}

/// Push a trailer section as a table (lower-case names, the last value of
/// a repeated field), or nil.
unsafe fn push_trailers(l: *mut lua_State, r: Result<Option<HeaderMap>, h2::Error>) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match r {
            Ok(Some(map)) => {
                ffi::lua_createtable(l, 0, map.keys_len() as c_int);
                for (name, value) in map.iter() {
                    lua::push_str(l, name.as_str());
                    lua::push_bytes(l, value.as_bytes());
                    ffi::lua_rawset(l, -3);
                }
                1
            }
            Ok(None) => {
                ffi::lua_pushnil(l);
                1
            }
            Err(e) => push_error(l, &e),
        }
    }
}

/// call:trailers() -> table | nil | nil, err: the response's trailer
/// fields, once its body has been read (`call:read()` said `'eof'`).
unsafe extern "C-unwind" fn call_trailers(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let call: &Call = lua::check_object(l, 1, CALL);
        let Some(mut body) = call.recv.borrow_mut().take() else {
            return lua::fail(l, "busy");
        };
        // After the end of the data they have come, or there are none.
        if let Some(r) = now(&mut poll_fn(|cx| body.poll_trailers(cx))) {
            *call.recv.borrow_mut() = Some(body);
            return push_trailers(l, r);
        }
        let slot = call.recv.clone();
        let fut = async move {
            let r = body.trailers().await;
            Resume::Push(Box::new(move |co| {
                *slot.borrow_mut() = Some(body);
                // SAFETY: `co` is the resumed coroutine, with room for the
                // values.
                push_trailers(co, r)
            }))
        };
        scheduler::prepare_or_raise(l, Commit::Future(Box::pin(fut)));
        scheduler::suspend(l)
    }
}

/// call:close(): let go of the stream; one that has not ended is reset
/// (CANCEL).
unsafe extern "C-unwind" fn call_close(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let call: &Call = lua::check_object(l, 1, CALL);
        let recv = call.recv.borrow_mut().take();
        let send = call.send.borrow_mut().take();
        let response = call.response.borrow_mut().take();
        let ended = recv.as_ref().is_some_and(|r| r.is_end_stream());
        if !ended {
            if let Some(mut s) = send {
                s.send_reset(Reason::CANCEL);
            }
        }
        // Dropping the last handle of a stream that has not ended resets
        // it (h2 does so itself).
        drop(response);
        drop(recv);
        0
    }
}

const CLIENT_METHODS: &[Reg] = &[
    (c"alive", client_alive),
    (c"request", client_request),
    (c"close", client_close),
];

const CALL_METHODS: &[Reg] = &[
    (c"write", call_write),
    (c"finish", call_finish),
    (c"response", call_response),
    (c"read", call_read),
    (c"trailers", call_trailers),
    (c"close", call_close),
];

/// The module's client functions.
pub(super) const FUNCS: &[Reg] = &[(c"client", client)];

/// Make the classes of client connections and their streams.
pub(super) unsafe fn register(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::new_class(l, CLIENT, CLIENT_METHODS, Some(lua::gc::<Client>));
        ffi::lua_pop(l, 1);
        lua::new_class(l, CALL, CALL_METHODS, Some(lua::gc::<Call>));
        ffi::lua_pop(l, 1);
    }
}
