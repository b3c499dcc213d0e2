//! One HTTP/2 request's stream, as the Lua half's handler sees it:
//! `st:read()` takes the body a chunk at a time (each chunk read gives its
//! bytes back to the peer's window, so a body nobody reads buffers at most
//! a window), `st:respond()` sends the head, `st:write()` the body (waiting
//! for the peer's window), `st:finish()` ends it (with trailers or not),
//! `st:reset()` breaks it off.

use std::cell::RefCell;
use std::ffi::{c_int, CStr};
use std::future::poll_fn;
use std::rc::Rc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{connection_specific, Shared};
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::scheduler::{self, Commit, Resume};

static H2STREAM: &CStr = c"lem.http.h2.Stream";

/// The userdata. Each half is taken out of its slot while a wait uses it
/// and put back when its coroutine resumes: an empty slot is a busy one
/// (or a finished one).
struct H2Stream {
    recv: Rc<RefCell<Option<RecvStream>>>,
    respond: RefCell<Option<SendResponse<Bytes>>>,
    send: Rc<RefCell<Option<SendStream<Bytes>>>>,
    /// The head was sent (the response has begun).
    responded: std::cell::Cell<bool>,
    /// The connection, told when the stream is let go of.
    conn: RefCell<Option<Rc<Shared>>>,
}

impl H2Stream {
    /// The connection has one stream fewer (once).
    fn let_go(&self) {
        if let Some(c) = self.conn.borrow_mut().take() {
            c.closed_stream();
        }
    }
}

impl Drop for H2Stream {
    fn drop(&mut self) {
        self.let_go();
    }
}

/// Push the stream object of a request.
pub(super) unsafe fn push_stream(
    l: *mut lua_State,
    body: RecvStream,
    respond: SendResponse<Bytes>,
    conn: Rc<Shared>,
) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::push_object(
            l,
            H2STREAM,
            H2Stream {
                recv: Rc::new(RefCell::new(Some(body))),
                respond: RefCell::new(Some(respond)),
                send: Rc::default(),
                responded: Default::default(),
                conn: RefCell::new(Some(conn)),
            },
        );
    }
}

/// st:read() -> chunk | nil, 'eof' | nil, err: the next piece of the
/// request's body, once it comes.
unsafe extern "C-unwind" fn stream_read(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let st: &H2Stream = lua::check_object(l, 1, H2STREAM);
        let Some(mut body) = st.recv.borrow_mut().take() else {
            return lua::fail(l, "busy");
        };
        if body.is_end_stream() {
            *st.recv.borrow_mut() = Some(body);
            return lua::fail(l, "eof");
        }
        let slot = st.recv.clone();
        let fut = async move {
            let r = body.data().await;
            if let Some(Ok(chunk)) = &r {
                // Read: the peer may send as much again.
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            Resume::Push(Box::new(move |co| {
                *slot.borrow_mut() = Some(body);
                // SAFETY: `co` is the resumed coroutine, with room for two
                // values.
                match r {
                    Some(Ok(chunk)) => {
                        lua::push_bytes(co, &chunk);
                        1
                    }
                    None => lua::fail(co, "eof"),
                    Some(Err(e)) => lua::fail(co, &e.to_string()),
                }
            }))
        };
        scheduler::prepare_or_raise(l, Commit::Future(Box::pin(fut)));
        scheduler::suspend(l)
    }
}

/// The fields of the table at `idx` (string names; string or number
/// values, or lists of them: one field each), or why they cannot be sent.
/// Connection-specific fields are left out (HTTP/2 has none).
pub(super) unsafe fn fields(l: *mut lua_State, idx: c_int) -> Result<HeaderMap, String> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let mut map = HeaderMap::new();
        if ffi::lua_type(l, idx) != ffi::LUA_TTABLE {
            return Ok(map);
        }
        let bad = |name: &[u8]| {
            format!(
                "header field {:?} cannot be sent",
                String::from_utf8_lossy(name)
            )
        };
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, idx) != 0 {
            let name = match ffi::lua_type(l, -2) {
                ffi::LUA_TSTRING => lua::to_bytes(l, -2).unwrap_or_default(),
                _ => b"",
            };
            let Ok(n) = HeaderName::from_bytes(name) else {
                let e = bad(name);
                ffi::lua_pop(l, 2);
                return Err(e);
            };
            let list = ffi::lua_type(l, -1) == ffi::LUA_TTABLE;
            let count = if list { ffi::lua_rawlen(l, -1) } else { 1 };
            let skip = connection_specific(n.as_str().as_bytes());
            for i in 1..=count {
                // A copy, so that a number is not turned into a string in
                // the table being walked.
                if list {
                    lua::push_index(l, -1, i as ffi::lua_Integer);
                } else {
                    ffi::lua_pushvalue(l, -1);
                }
                let value = match ffi::lua_type(l, -1) {
                    ffi::LUA_TSTRING | ffi::LUA_TNUMBER => {
                        lua::to_bytes(l, -1).and_then(|v| HeaderValue::from_bytes(v).ok())
                    }
                    _ => None,
                };
                ffi::lua_pop(l, 1);
                match value {
                    Some(_) if skip => {}
                    Some(v) => {
                        map.append(n.clone(), v);
                    }
                    None => {
                        let e = bad(name);
                        ffi::lua_pop(l, 2);
                        return Err(e);
                    }
                }
            }
            ffi::lua_pop(l, 1);
        }
        Ok(map)
    }
}

/// st:respond(status, headers, last [, body]) -> true | nil, err: send
/// the response's head; `last`: there is no body. `body` (a string): the
/// whole body, sent with the head in the same call, and the stream ends
/// (no trailers): h2 queues it and sends it as the peer's window allows,
/// so the call does not wait (the caller bounds its size; the string
/// would be held as long by a waiting `st:write()`).
unsafe extern "C-unwind" fn stream_respond(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let st: &H2Stream = lua::check_object(l, 1, H2STREAM);
        let status = lua::check_integer(l, 2);
        let body = match ffi::lua_type(l, 5) {
            ffi::LUA_TSTRING => Some(Bytes::copy_from_slice(lua::check_bytes(l, 5))),
            _ => None,
        };
        let last = ffi::lua_toboolean(l, 4) != 0 && body.is_none();
        let Ok(status) = http::StatusCode::from_u16(status.clamp(0, 9999) as u16) else {
            return lua::fail(l, "bad status");
        };
        let headers = match fields(l, 3) {
            Ok(h) => h,
            Err(e) => return lua::fail(l, &e),
        };
        let Some(mut respond) = st.respond.borrow_mut().take() else {
            return lua::fail(l, "already responded");
        };
        let mut res = http::Response::new(());
        *res.status_mut() = status;
        *res.headers_mut() = headers;
        match respond.send_response(res, last) {
            Ok(mut send) => {
                st.responded.set(true);
                if let Some(body) = body {
                    if let Err(e) = send.send_data(body, true) {
                        return lua::fail(l, &e.to_string());
                    }
                }
                *st.send.borrow_mut() = Some(send);
                ffi::lua_pushboolean(l, 1);
                1
            }
            Err(e) => lua::fail(l, &e.to_string()),
        }
    }
}

/// The largest body [`stream_send`] sends (h2 queues what the peer's
/// window does not take yet); larger ones go by `st:write()`.
const WHOLE: usize = 64 << 10;

/// The ordinary response of `res` (the table at `res`) as a head and a
/// body, or `None` when it is not one this fast path sends (the Lua half
/// then checks and sends it, or raises for it): a status that is not an
/// integer from 100 to 999, headers that are not a plain table or that
/// HTTP/2 cannot carry, a Content-Length the handler set, body parts that
/// are not strings or numbers, a body larger than [`WHOLE`].
unsafe fn ordinary(
    l: *mut lua_State,
    res: c_int,
    server: &[u8],
) -> Option<(http::Response<()>, Vec<u8>)> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let mut body = Vec::new();
        for i in 1..=ffi::lua_rawlen(l, res) {
            lua::push_index(l, res, i as ffi::lua_Integer);
            let part = match ffi::lua_type(l, -1) {
                ffi::LUA_TSTRING | ffi::LUA_TNUMBER => lua::to_bytes(l, -1),
                _ => None,
            };
            let fits = part.is_some_and(|p| body.len() + p.len() <= WHOLE);
            if fits {
                body.extend_from_slice(part.unwrap_or_default());
            }
            ffi::lua_pop(l, 1);
            if !fits {
                return None;
            }
        }
        ffi::lua_getfield(l, res, c"status".as_ptr());
        let status = match ffi::lua_type(l, -1) {
            ffi::LUA_TNIL if body.is_empty() => Some(204),
            ffi::LUA_TNIL => Some(200),
            ffi::LUA_TNUMBER if ffi::lua_isinteger(l, -1) != 0 => {
                Some(ffi::lua_tointeger(l, -1)).filter(|s| (100..=999).contains(s))
            }
            _ => None,
        };
        ffi::lua_pop(l, 1);
        let status = http::StatusCode::from_u16(status? as u16).ok()?;
        let top = ffi::lua_gettop(l);
        ffi::lua_getfield(l, res, c"headers".as_ptr());
        let plain = ffi::lua_type(l, -1) == ffi::LUA_TTABLE && ffi::lua_getmetatable(l, -1) == 0;
        if !plain {
            // The headers, and their metatable if there is one.
            ffi::lua_settop(l, top);
            return None;
        }
        let headers = fields(l, ffi::lua_gettop(l));
        ffi::lua_pop(l, 1);
        let mut headers = headers.ok()?;
        if headers.contains_key(http::header::CONTENT_LENGTH) {
            return None;
        }
        if !headers.contains_key(http::header::DATE) {
            let date = super::super::date::with_date(HeaderValue::from_bytes);
            headers.insert(http::header::DATE, date.ok()?);
        }
        if !headers.contains_key(http::header::SERVER) {
            headers.insert(http::header::SERVER, HeaderValue::from_bytes(server).ok()?);
        }
        let code = status.as_u16();
        if !(code == 204 || code == 304 || code < 200) {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        } else {
            body.clear();
        }
        let mut r = http::Response::new(());
        *r.status_mut() = status;
        *r.headers_mut() = headers;
        Some((r, body))
    }
}

/// st:send(res, head_only, server) -> true | false | nil, err: send the
/// ordinary response `res` (status, headers, body parts; no file, no
/// trailers) whole in one call that does not wait, its body (at most 64
/// KiB) queued for the peer's window; `Date`, `Server` (`server`) and the
/// body's length added. `head_only`: the request was HEAD (the length is
/// sent, not the body). `false`: nothing was sent; `res` is not an
/// ordinary response this path sends (the Lua half checks and sends it).
unsafe extern "C-unwind" fn stream_send(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let st: &H2Stream = lua::check_object(l, 1, H2STREAM);
        ffi::luaL_checktype(l, 2, ffi::LUA_TTABLE);
        let head_only = ffi::lua_toboolean(l, 3) != 0;
        let server = lua::check_bytes(l, 4);
        let Some((head, body)) = ordinary(l, 2, server) else {
            ffi::lua_pushboolean(l, 0);
            return 1;
        };
        let Some(mut respond) = st.respond.borrow_mut().take() else {
            return lua::fail(l, "already responded");
        };
        let last = head_only || body.is_empty();
        match respond.send_response(head, last) {
            Ok(mut send) => {
                st.responded.set(true);
                if !last {
                    if let Err(e) = send.send_data(Bytes::from(body), true) {
                        return lua::fail(l, &e.to_string());
                    }
                }
                *st.send.borrow_mut() = Some(send);
                ffi::lua_pushboolean(l, 1);
                1
            }
            Err(e) => lua::fail(l, &e.to_string()),
        }
    }
}

/// Send `data` on `send` as the peer's window lets it.
async fn send_all(send: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), String> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        match poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(0)) => {}
            Some(Ok(n)) => {
                let chunk = data.split_to(n.min(data.len()));
                send.send_data(chunk, false).map_err(|e| e.to_string())?;
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("closed".into()),
        }
    }
    Ok(())
}

/// Suspend `l` until `data` has gone out on `send` (taken from `slot`,
/// put back there when done): the coroutine resumes with `true`, or
/// `nil, err`. The body writes of both a server's stream (st:write) and a
/// client's request (call:write).
///
/// # Safety
///
/// `l` is a live thread of lem's state (runtime/lua.rs), about to return
/// what this returns from a C function.
pub(super) unsafe fn write_body(
    l: *mut lua_State,
    slot: Rc<RefCell<Option<SendStream<Bytes>>>>,
    mut send: SendStream<Bytes>,
    data: Bytes,
) -> c_int {
    let fut = async move {
        let r = send_all(&mut send, data).await;
        Resume::Push(Box::new(move |co| {
            *slot.borrow_mut() = Some(send);
            // SAFETY: `co` is the resumed coroutine, with room for two
            // values.
            unsafe {
                match r {
                    Ok(()) => {
                        ffi::lua_pushboolean(co, 1);
                        1
                    }
                    Err(e) => lua::fail(co, &e),
                }
            }
        }))
    };
    // SAFETY: `l` is live, as the caller promises.
    unsafe {
        scheduler::prepare_or_raise(l, Commit::Future(Box::pin(fut)));
        scheduler::suspend(l)
    }
}

/// st:write(data) -> true | nil, err: send part of the body, once the
/// peer's window takes it all.
unsafe extern "C-unwind" fn stream_write(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let st: &H2Stream = lua::check_object(l, 1, H2STREAM);
        let data = lua::check_bytes(l, 2);
        if data.is_empty() {
            ffi::lua_pushboolean(l, 1);
            return 1;
        }
        let data = Bytes::copy_from_slice(data);
        let Some(send) = st.send.borrow_mut().take() else {
            return lua::fail(
                l,
                if st.responded.get() {
                    "busy"
                } else {
                    "not responding"
                },
            );
        };
        write_body(l, st.send.clone(), send, data)
    }
}

/// st:finish([trailers]) -> true | nil, err: end the body, with trailer
/// fields if given.
unsafe extern "C-unwind" fn stream_finish(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let st: &H2Stream = lua::check_object(l, 1, H2STREAM);
        let trailers = match ffi::lua_type(l, 2) {
            ffi::LUA_TTABLE => match fields(l, 2) {
                Ok(h) => Some(h),
                Err(e) => return lua::fail(l, &e),
            },
            _ => None,
        };
        let mut slot = st.send.borrow_mut();
        let Some(send) = slot.as_mut() else {
            drop(slot);
            let why = if st.responded.get() {
                "busy"
            } else {
                "not responding"
            };
            return lua::fail(l, why);
        };
        let r = match trailers {
            Some(t) => send.send_trailers(t),
            None => send.send_data(Bytes::new(), true),
        };
        drop(slot);
        match r {
            Ok(()) => {
                ffi::lua_pushboolean(l, 1);
                1
            }
            Err(e) => lua::fail(l, &e.to_string()),
        }
    }
}

/// st:reset(): break the stream off (RST_STREAM with INTERNAL_ERROR), as
/// when a streamed response's handler fails.
unsafe extern "C-unwind" fn stream_reset(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let st: &H2Stream = lua::check_object(l, 1, H2STREAM);
        if let Some(mut send) = st.send.borrow_mut().take() {
            send.send_reset(h2::Reason::INTERNAL_ERROR);
        } else if let Some(mut respond) = st.respond.borrow_mut().take() {
            respond.send_reset(h2::Reason::INTERNAL_ERROR);
        }
        0
    }
}

/// The most of a body nobody read that is taken (and dropped) after the
/// response, and for how long, before the stream is reset.
const DISCARD_BYTES: usize = 1 << 20;
const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// The rest of a request's body, after its response: read and dropped
/// (within bounds), so that the response, still queued, goes out whole;
/// then, if the body has not ended, the client is told to stop sending it
/// without error (RST_STREAM with NO_ERROR, RFC 9113 §8.1). A reset at
/// once would drop the response's frames still queued.
async fn discard(mut recv: RecvStream, mut send: SendStream<Bytes>) {
    let mut left = DISCARD_BYTES;
    let drain = async {
        while let Some(Ok(chunk)) = recv.data().await {
            let _ = recv.flow_control().release_capacity(chunk.len());
            match left.checked_sub(chunk.len()) {
                Some(n) => left = n,
                None => break,
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
    if !recv.is_end_stream() {
        send.send_reset(h2::Reason::NO_ERROR);
    }
}

/// st:close(): let go of the stream (the handler is done with it): a
/// body not read is refused from here on.
unsafe extern "C-unwind" fn stream_close(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let st: &H2Stream = lua::check_object(l, 1, H2STREAM);
        let recv = st.recv.borrow_mut().take();
        let send = st.send.borrow_mut().take();
        drop(st.respond.borrow_mut().take());
        st.let_go();
        if let (Some(recv), Some(send)) = (recv, send) {
            if !recv.is_end_stream() {
                tokio::task::spawn_local(discard(recv, send));
            }
        }
        0
    }
}

const METHODS: &[Reg] = &[
    (c"close", stream_close),
    (c"read", stream_read),
    (c"respond", stream_respond),
    (c"send", stream_send),
    (c"write", stream_write),
    (c"finish", stream_finish),
    (c"reset", stream_reset),
];

/// Make the class of streams.
pub(super) unsafe fn register(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::new_class(l, H2STREAM, METHODS, Some(lua::gc::<H2Stream>));
        ffi::lua_pop(l, 1);
    }
}
