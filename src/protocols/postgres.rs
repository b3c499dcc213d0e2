//! `lem.postgres.core`: the PostgreSQL wire protocol's bytes (version 3),
//! for the Lua half `lua/lem/postgres.lua`, which speaks it over a lem
//! Stream, so a query that waits on the server holds no thread.
//!
//! - The read format `'PgMessage'` reads one backend message and returns
//!   its type (a one-letter string) and body; data rows are returned in
//!   batches: every complete `DataRow` buffered, as `'D', {row, ...}`, each
//!   row an array of strings with `nil` for NULL (and its column count in
//!   `n`).
//! - The read format `'PgReply'` reads every complete message buffered, up
//!   to the reply's ReadyForQuery, in one call (see [`Reply`]): a query's
//!   answer costs one read, not one per message.
//! - Builders for the frontend messages (startup, query, the extended
//!   protocol with text parameters, COPY), and decoders for the bodies the
//!   Lua half looks into (row descriptions, errors, notifications).
//! - Authentication: MD5 and SCRAM-SHA-256 (with `ring`).

use std::ffi::c_int;

use base64::Engine;
use md5::{Digest, Md5};
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};

use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::parsers::{self, Format, Scan};

/// Largest backend message accepted (the server's own limit on a field is
/// 1 GiB).
pub const MAX_MESSAGE: usize = 1 << 30;

/// Where the message starting at `at` ends: `Ok(None)` if incomplete.
fn message_end(input: &[u8], at: usize) -> Result<Option<usize>, &'static str> {
    let Some(head) = input.get(at..at + 5) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len < 4 {
        return Err("postgres message with a length below 4");
    }
    if len > MAX_MESSAGE {
        return Err("postgres message too large");
    }
    let end = at + 1 + len;
    Ok((input.len() >= end).then_some(end))
}

/// Scan for `read('PgMessage')`: one message, or all complete data rows
/// from the start on. `Ok(Some(end))` when ready.
pub fn scan(input: &[u8]) -> Result<Option<usize>, &'static str> {
    let Some(mut end) = message_end(input, 0)? else {
        return Ok(None);
    };
    if input[0] == b'D' {
        while input.get(end) == Some(&b'D') {
            match message_end(input, end)? {
                Some(e) => end = e,
                None => break,
            }
        }
    }
    Ok(Some(end))
}

/// Walk the values of one `DataRow` body in order (`None` for NULL),
/// checking the lengths against the body; returns the column count.
pub fn each_value<'a>(
    body: &'a [u8],
    mut f: impl FnMut(usize, Option<&'a [u8]>),
) -> Result<usize, &'static str> {
    let bad = "postgres data row malformed";
    let n = u16::from_be_bytes(body.get(..2).ok_or(bad)?.try_into().unwrap()) as usize;
    let mut at = 2;
    for i in 0..n {
        let len = i32::from_be_bytes(body.get(at..at + 4).ok_or(bad)?.try_into().unwrap());
        at += 4;
        if len < 0 {
            f(i, None);
        } else {
            let v = body.get(at..at + len as usize).ok_or(bad)?;
            at += len as usize;
            f(i, Some(v));
        }
    }
    if at != body.len() {
        return Err(bad);
    }
    Ok(n)
}

/// The values of one `DataRow` body: `None` for NULL.
pub fn row_values(body: &[u8]) -> Result<Vec<Option<&[u8]>>, &'static str> {
    let mut out = Vec::new();
    each_value(body, |_, v| out.push(v))?;
    Ok(out)
}

/// Every message of `input` (complete ones, from its start): type and body.
fn messages(input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let end = message_end(input, at).ok().flatten()?;
        let m = (input[at], &input[at + 5..end]);
        at = end;
        Some(m)
    })
}

/// `read('PgMessage')`.
pub struct Message;

impl Format for Message {
    fn scan(&self, input: &[u8], _eof: bool) -> Scan {
        let r = scan(input);
        // Check the rows now: a malformed one is refused before anything is
        // pushed.
        if let Ok(Some(n)) = r {
            if input[0] == b'D' {
                for (_, body) in messages(&input[..n]) {
                    if let Err(e) = each_value(body, |_, _| ()) {
                        return Scan::Invalid(e);
                    }
                }
            }
        }
        Scan::of_len(r)
    }
    unsafe fn push(&self, l: *mut lua_State, input: &[u8], _mark: usize) -> c_int {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            lua::push_bytes(l, &input[..1]);
            if input[0] != b'D' {
                lua::push_bytes(l, &input[5..]);
                return 2;
            }
            // The batch and each row sized at once (a row's column count
            // leads its body; one hash slot each: the batch's for the
            // column names the Lua half puts at [0], the row's for `n`),
            // and the key "n" made once.
            ffi::lua_createtable(l, messages(input).count() as c_int, 1);
            lua::push_bytes(l, b"n");
            for (i, (_, body)) in messages(input).enumerate() {
                let cols = body
                    .get(..2)
                    .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
                ffi::lua_createtable(l, cols as c_int, 1);
                // Checked by scan: it cannot fail here.
                let n = each_value(body, |j, v| {
                    if let Some(v) = v {
                        lua::push_bytes(l, v);
                        ffi::lua_rawseti(l, -2, (j + 1) as _);
                    }
                })
                .unwrap_or(0);
                ffi::lua_pushvalue(l, -2);
                ffi::lua_pushinteger(l, n as _);
                ffi::lua_rawset(l, -3);
                ffi::lua_rawseti(l, -3, (i + 1) as _);
            }
            ffi::lua_pop(l, 1);
            2
        }
    }
    fn limit_error(&self) -> &'static str {
        "postgres message too large"
    }
}

static MESSAGE: Message = Message;

/// Scan for `read('PgReply')`: every complete message from the start, up to
/// and including the first that ends a reply (ReadyForQuery, a COPY's
/// start, or one the Lua half does not expect in a reply); at least one.
pub fn scan_reply(input: &[u8]) -> Result<Option<usize>, &'static str> {
    let mut at = 0;
    while let Some(end) = message_end(input, at)? {
        let kind = input[at];
        at = end;
        if !matches!(
            kind,
            b'1' | b'2'
                | b'3'
                | b'n'
                | b't'
                | b'T'
                | b'D'
                | b'C'
                | b'E'
                | b'I'
                | b'N'
                | b'S'
                | b'A'
        ) {
            break;
        }
    }
    Ok((at > 0).then_some(at))
}

/// `read('PgReply')`: the messages of a query's reply that are buffered,
/// in one call, as `kinds, values`: `kinds` has a letter per item (the
/// message's type; `D` for a run of data rows), `values[i]` is item i's
/// value: the rows (as `'PgMessage'` gives them) for `D`, the column names
/// for `T`, the tag for a `C` whose tag starts with `D` (DEALLOCATE,
/// DISCARD ALL: the Lua half looks for those; other tags are not made into
/// strings), the body for `Z`, `E`, `N`, `S` and `A`, nothing for the rest.
pub struct Reply;

impl Format for Reply {
    fn scan(&self, input: &[u8], _eof: bool) -> Scan {
        let r = scan_reply(input);
        if let Ok(Some(n)) = r {
            for (kind, body) in messages(&input[..n]) {
                let bad = match kind {
                    b'D' => each_value(body, |_, _| ()).err(),
                    b'T' => row_names(body).err(),
                    _ => None,
                };
                if let Some(e) = bad {
                    return Scan::Invalid(e);
                }
            }
        }
        Scan::of_len(r)
    }
    unsafe fn push(&self, l: *mut lua_State, input: &[u8], _mark: usize) -> c_int {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let mut kinds = Vec::new();
            ffi::lua_createtable(l, 8, 0);
            let mut at = 0;
            while at < input.len() {
                let kind = input[at];
                let item = kinds.len() as ffi::lua_Integer + 1;
                if kind == b'D' {
                    // The run of rows, pushed as 'PgMessage' does.
                    let mut end = at;
                    while input.get(end) == Some(&b'D') {
                        end = message_end(input, end)
                            .ok()
                            .flatten()
                            .unwrap_or(input.len());
                    }
                    MESSAGE.push(l, &input[at..end], 0);
                    ffi::lua_remove(l, -2);
                    ffi::lua_rawseti(l, -2, item as _);
                    kinds.push(b'D');
                    at = end;
                    continue;
                }
                // Checked by scan: complete.
                let end = message_end(input, at).ok().flatten().unwrap_or(input.len());
                let body = &input[at + 5..end];
                match kind {
                    b'T' => {
                        let names = row_names(body).unwrap_or_default();
                        ffi::lua_createtable(l, names.len() as c_int, 0);
                        for (i, n) in names.iter().enumerate() {
                            lua::push_bytes(l, n);
                            ffi::lua_rawseti(l, -2, (i + 1) as _);
                        }
                        ffi::lua_rawseti(l, -2, item as _);
                    }
                    b'C' if body.first() == Some(&b'D') => {
                        lua::push_bytes(l, body);
                        ffi::lua_rawseti(l, -2, item as _);
                    }
                    b'Z' | b'E' | b'N' | b'S' | b'A' | b'R' | b'K' => {
                        lua::push_bytes(l, body);
                        ffi::lua_rawseti(l, -2, item as _);
                    }
                    _ => {}
                }
                kinds.push(kind);
                at = end;
            }
            lua::push_bytes(l, &kinds);
            ffi::lua_insert(l, -2);
            2
        }
    }
    fn limit_error(&self) -> &'static str {
        "postgres message too large"
    }
}

static REPLY: Reply = Reply;

/// A frontend message: `kind` (0 for the startup message, which has none)
/// and its body.
pub fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    if kind != 0 {
        out.push(kind);
    }
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s);
    out.push(0);
}

/// A count and length-prefixed values (-1 for NULL), as Bind's parameters
/// and DataRow's columns are.
fn put_values(b: &mut Vec<u8>, values: &[Option<&[u8]>]) {
    b.extend_from_slice(&(values.len() as u16).to_be_bytes());
    for v in values {
        match v {
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                b.extend_from_slice(&(v.len() as u32).to_be_bytes());
                b.extend_from_slice(v);
            }
        }
    }
}

/// Where a query of the extended protocol asks for its rows' description.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Describe {
    /// Describe the portal, after Bind: every call learns it (unnamed
    /// statements, `run`).
    Portal,
    /// Describe the statement, after Parse: once, when a statement of the
    /// cache is prepared (the caller keeps the description).
    Statement,
    /// None: the caller knows the description already (a cache hit).
    Nothing,
}

/// Append one frontend message, its body written by `body` (no copy).
fn push_frame(out: &mut Vec<u8>, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(kind);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Parse (when `sql` is given), Bind with text parameters, Describe as
/// `describe` says, Execute, Sync: one query of the extended protocol.
pub fn extended(
    statement: &[u8],
    sql: Option<&[u8]>,
    describe: Describe,
    params: &[Option<&[u8]>],
) -> Vec<u8> {
    // The exact length, so the message is built in one allocation.
    let values: usize = params.iter().map(|v| 4 + v.map_or(0, <[u8]>::len)).sum();
    let len = sql.map_or(0, |s| 5 + statement.len() + 1 + s.len() + 1 + 2)
        + if describe == Describe::Statement {
            5 + 1 + statement.len() + 1
        } else {
            0
        }
        + 5
        + 1
        + statement.len()
        + 1
        + 2
        + 2
        + values
        + 2
        + if describe == Describe::Portal { 7 } else { 0 }
        + 10
        + 5;
    let mut out = Vec::with_capacity(len);
    if let Some(sql) = sql {
        push_frame(&mut out, b'P', |b| {
            cstr(b, statement);
            cstr(b, sql);
            // No parameter types: the server infers them.
            b.extend_from_slice(&0u16.to_be_bytes());
        });
    }
    if describe == Describe::Statement {
        push_frame(&mut out, b'D', |b| {
            b.push(b'S');
            cstr(b, statement);
        });
    }
    push_frame(&mut out, b'B', |b| {
        cstr(b, b"");
        cstr(b, statement);
        // No parameter formats: all text; then the values.
        b.extend_from_slice(&0u16.to_be_bytes());
        put_values(b, params);
        // Results in text.
        b.extend_from_slice(&0u16.to_be_bytes());
    });
    if describe == Describe::Portal {
        out.extend_from_slice(b"D\0\0\0\x06P\0");
    }
    out.extend_from_slice(b"E\0\0\0\x09\0\0\0\0\0S\0\0\0\x04");
    debug_assert_eq!(out.len(), len);
    out
}

/// The field names of a `RowDescription` body.
pub fn row_names(body: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let bad = "postgres row description malformed";
    let n = u16::from_be_bytes(body.get(..2).ok_or(bad)?.try_into().unwrap()) as usize;
    let mut at = 2;
    let mut names = Vec::with_capacity(n.min(body.len() / 19 + 1));
    for _ in 0..n {
        let len = memchr::memchr(0, body.get(at..).ok_or(bad)?).ok_or(bad)?;
        names.push(&body[at..at + len]);
        // The name, its NUL, then 18 bytes of table, column and type.
        at += len + 1 + 18;
    }
    if at != body.len() {
        return Err(bad);
    }
    Ok(names)
}

/// The fields of an `ErrorResponse` or `NoticeResponse` body, by code.
pub fn error_fields(body: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() && body[at] != 0 {
        let code = body[at];
        let rest = &body[at + 1..];
        let len = memchr::memchr(0, rest).unwrap_or(rest.len());
        out.push((code, &rest[..len]));
        at += 1 + len + 1;
    }
    out
}

/// An error as libpq words it: `ERROR:  message`, with `DETAIL:` and
/// `HINT:` lines when the server sent them.
pub fn error_text(body: &[u8]) -> (String, String) {
    let fields = error_fields(body);
    let get = |c: u8| {
        fields
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let severity = get(b'V').or_else(|| get(b'S')).unwrap_or("ERROR".into());
    let mut text = format!(
        "{severity}:  {}",
        get(b'M').unwrap_or_else(|| "unknown error".into())
    );
    if let Some(d) = get(b'D') {
        text.push_str(&format!("\nDETAIL:  {d}"));
    }
    if let Some(h) = get(b'H') {
        text.push_str(&format!("\nHINT:  {h}"));
    }
    (text, get(b'C').unwrap_or_default())
}

/// `md5` + hex(md5(hex(md5(password + user)) + salt)): the MD5 answer.
pub fn md5_password(user: &[u8], password: &[u8], salt: &[u8]) -> String {
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let inner = hex(&Md5::new()
        .chain_update(password)
        .chain_update(user)
        .finalize());
    let outer = hex(&Md5::new()
        .chain_update(inner.as_bytes())
        .chain_update(salt)
        .finalize());
    format!("md5{outer}")
}

/// SCRAM-SHA-256 (RFC 5802, 7677), the client's side.
pub mod scram {
    use super::*;

    /// The client-first message's bare part for `nonce`.
    pub fn client_first_bare(nonce: &str) -> String {
        format!("n=,r={nonce}")
    }

    /// Parse the server-first message: (nonce, salt, iterations).
    pub fn parse_server_first(msg: &str) -> Result<(String, Vec<u8>, u32), String> {
        let bad = || format!("malformed SCRAM message from the server: {msg:?}");
        let mut nonce = None;
        let mut salt = None;
        let mut iter = None;
        for part in msg.split(',') {
            match part.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v.to_owned()),
                Some(("s=", v)) => {
                    salt = Some(
                        base64::engine::general_purpose::STANDARD
                            .decode(v)
                            .map_err(|_| bad())?,
                    )
                }
                Some(("i=", v)) => iter = Some(v.parse::<u32>().map_err(|_| bad())?),
                _ => {}
            }
        }
        match (nonce, salt, iter) {
            (Some(n), Some(s), Some(i)) if i > 0 && i <= 10_000_000 => Ok((n, s, i)),
            _ => Err(bad()),
        }
    }

    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let k = hmac::Key::new(hmac::HMAC_SHA256, key);
        hmac::sign(&k, data).as_ref().to_vec()
    }

    /// The client-final message and the server signature to expect, from
    /// the password, our nonce's bare first message and the server's first.
    pub fn client_final(
        password: &[u8],
        client_nonce: &str,
        server_first: &str,
    ) -> Result<(String, Vec<u8>), String> {
        let (nonce, salt, iterations) = parse_server_first(server_first)?;
        if !nonce.starts_with(client_nonce) {
            return Err("the server's SCRAM nonce does not extend ours".into());
        }
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(iterations).expect("checked above"),
            &salt,
            password,
            &mut salted,
        );
        let client_key = hmac(&salted, b"Client Key");
        let stored = digest::digest(&digest::SHA256, &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!(
            "{},{server_first},{without_proof}",
            client_first_bare(client_nonce)
        );
        let signature = hmac(stored.as_ref(), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        let server_sig = hmac(&server_key, auth.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(proof);
        Ok((format!("{without_proof},p={b64}"), server_sig))
    }

    /// Check the server-final message against the expected signature.
    pub fn verify_server_final(msg: &str, expected: &[u8]) -> bool {
        msg.strip_prefix("v=")
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .is_some_and(|v| v == expected)
    }
}

/// frame(kind, body) -> message (`kind` `''` for the startup message).
unsafe extern "C-unwind" fn l_frame(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let kind = lua::check_bytes(l, 1).first().copied().unwrap_or(0);
        let body = lua::check_bytes(l, 2);
        lua::push_bytes(l, &frame(kind, body));
        1
    }
}

/// startup({k, v, ...}) -> the startup message (protocol 3.0).
unsafe extern "C-unwind" fn l_startup(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_type(l, 1, ffi::LUA_TTABLE);
        let mut body = 196608u32.to_be_bytes().to_vec();
        let n = ffi::lua_rawlen(l, 1);
        for i in 1..=n {
            ffi::lua_rawgeti(l, 1, i as _);
            let s = lua::to_bytes(l, -1).unwrap_or_default();
            cstr(&mut body, s);
            ffi::lua_pop(l, 1);
        }
        body.push(0);
        lua::push_bytes(l, &frame(0, &body));
        1
    }
}

/// extended(statement, sql | nil, describe, n, ...) -> Parse? Describe?
/// Bind Describe? Execute Sync: `describe` is `'P'` (the portal), `'S'`
/// (the statement) or `''` (none); the `n` parameters go as text (numbers
/// by their Lua text, nil as NULL).
unsafe extern "C-unwind" fn l_extended(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let statement = lua::check_bytes(l, 1);
        let sql = if lua::is_none_or_nil(l, 2) {
            None
        } else {
            Some(lua::check_bytes(l, 2))
        };
        let describe = match lua::check_bytes(l, 3) {
            b"P" => Describe::Portal,
            b"S" => Describe::Statement,
            b"" => Describe::Nothing,
            _ => lua::arg_error(l, 3, c"'P', 'S' or '' expected"),
        };
        let n = lua::check_integer(l, 4).max(0) as c_int;
        if n > u16::MAX as c_int {
            lua::arg_error(l, 4, c"too many parameters (at most 65535)");
        }
        // Whole numbers are written here (with `itoa`, in the digits Lua's
        // tostring gives them), sparing Lua's printf and the string it
        // leaves in the argument's slot; `ints` holds their text, `at`
        // where each parameter's is.
        let mut ints = Vec::new();
        let mut at: Vec<Option<(usize, usize)>> = Vec::with_capacity(n as usize);
        let mut params = Vec::with_capacity(n as usize);
        for i in 0..n {
            let idx = 5 + i;
            let ty = ffi::lua_type(l, idx);
            if let Some(int) = (ty == ffi::LUA_TNUMBER).then(|| whole(l, idx)).flatten() {
                let start = ints.len();
                ints.extend_from_slice(itoa::Buffer::new().format(int).as_bytes());
                at.push(Some((start, ints.len())));
                params.push(None);
                continue;
            }
            match ty {
                ffi::LUA_TNIL | ffi::LUA_TNONE => params.push(None),
                ffi::LUA_TSTRING | ffi::LUA_TNUMBER => {
                    let mut len = 0;
                    let p = ffi::lua_tolstring(l, idx, &mut len);
                    params.push(Some(std::slice::from_raw_parts(p as *const u8, len)));
                }
                ffi::LUA_TBOOLEAN => params.push(Some(if ffi::lua_toboolean(l, idx) != 0 {
                    &b"t"[..]
                } else {
                    &b"f"[..]
                })),
                _ => lua::arg_error(l, idx, c"string, number, boolean or nil expected"),
            }
            at.push(None);
        }
        for (p, a) in params.iter_mut().zip(&at) {
            if let Some((start, end)) = *a {
                *p = Some(&ints[start..end]);
            }
        }
        let out = extended(statement, sql, describe, &params);
        lua::push_bytes(l, &out);
        1
    }
}

/// The number at `idx` when Lua's tostring writes it as plain digits: an
/// integer (Lua 5.4), or on LuaJIT a whole float under 10^14 (`%.14g` gives
/// digits up to there) that is not -0.
unsafe fn whole(l: *mut lua_State, idx: c_int) -> Option<i64> {
    // SAFETY: `idx` holds a number on `l`, a live thread of lem's state.
    unsafe {
        #[cfg(not(feature = "luajit"))]
        {
            (ffi::lua_isinteger(l, idx) != 0).then(|| ffi::lua_tointeger(l, idx) as i64)
        }
        #[cfg(feature = "luajit")]
        {
            let f = ffi::lua_tonumber(l, idx) as f64;
            (f.fract() == 0.0 && f.abs() < 1e14 && !(f == 0.0 && f.is_sign_negative()))
                .then_some(f as i64)
        }
    }
}

/// names(body) -> {name, ...} of a RowDescription | nil, err
unsafe extern "C-unwind" fn l_names(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        match row_names(lua::check_bytes(l, 1)) {
            Ok(names) => {
                ffi::lua_createtable(l, names.len() as c_int, 0);
                for (i, n) in names.iter().enumerate() {
                    lua::push_bytes(l, n);
                    ffi::lua_rawseti(l, -2, (i + 1) as _);
                }
                1
            }
            Err(e) => lua::fail(l, e),
        }
    }
}

/// error(body) -> text, sqlstate
unsafe extern "C-unwind" fn l_error(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let (text, code) = error_text(lua::check_bytes(l, 1));
        lua::push_str(l, &text);
        lua::push_str(l, &code);
        2
    }
}

/// int32(body [, at]) -> the big-endian integer at byte `at` (0-based).
unsafe extern "C-unwind" fn l_int32(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let body = lua::check_bytes(l, 1);
        let at = lua::opt_integer(l, 2, 0).max(0) as usize;
        match body.get(at..at + 4) {
            Some(b) => ffi::lua_pushinteger(l, i32::from_be_bytes(b.try_into().unwrap()) as _),
            None => ffi::lua_pushnil(l),
        }
        1
    }
}

/// notification(body) -> channel, payload, pid
unsafe extern "C-unwind" fn l_notification(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let body = lua::check_bytes(l, 1);
        let pid = body
            .get(..4)
            .map_or(0, |b| i32::from_be_bytes(b.try_into().unwrap()));
        let rest = body.get(4..).unwrap_or_default();
        let mut parts = rest.split(|&b| b == 0);
        lua::push_bytes(l, parts.next().unwrap_or_default());
        lua::push_bytes(l, parts.next().unwrap_or_default());
        ffi::lua_pushinteger(l, pid as _);
        3
    }
}

/// md5(user, password, salt) -> the MD5 password answer
unsafe extern "C-unwind" fn l_md5(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let s = md5_password(
            lua::check_bytes(l, 1),
            lua::check_bytes(l, 2),
            lua::check_bytes(l, 3),
        );
        lua::push_str(l, &s);
        1
    }
}

/// scram_first() -> the SASLInitialResponse body, our nonce
unsafe extern "C-unwind" fn l_scram_first(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let mut raw = [0u8; 18];
        if ring::rand::SystemRandom::new().fill(&mut raw).is_err() {
            return lua::fail(l, "no random numbers for SCRAM");
        }
        let nonce = base64::engine::general_purpose::STANDARD.encode(raw);
        let first = format!("n,,{}", scram::client_first_bare(&nonce));
        let mut body = Vec::new();
        cstr(&mut body, b"SCRAM-SHA-256");
        body.extend_from_slice(&(first.len() as u32).to_be_bytes());
        body.extend_from_slice(first.as_bytes());
        lua::push_bytes(l, &body);
        lua::push_str(l, &nonce);
        2
    }
}

/// scram_final(password, nonce, server_first) -> client_final, signature |
/// nil, err
unsafe extern "C-unwind" fn l_scram_final(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let password = lua::check_bytes(l, 1);
        let nonce = String::from_utf8_lossy(lua::check_bytes(l, 2)).into_owned();
        let first = String::from_utf8_lossy(lua::check_bytes(l, 3)).into_owned();
        match scram::client_final(password, &nonce, &first) {
            Ok((msg, sig)) => {
                lua::push_str(l, &msg);
                lua::push_bytes(l, &sig);
                2
            }
            Err(e) => lua::fail(l, &e),
        }
    }
}

/// scram_verify(server_final, signature) -> bool
unsafe extern "C-unwind" fn l_scram_verify(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let msg = String::from_utf8_lossy(lua::check_bytes(l, 1)).into_owned();
        let ok = scram::verify_server_final(&msg, lua::check_bytes(l, 2));
        ffi::lua_pushboolean(l, ok as c_int);
        1
    }
}

const FUNCS: &[Reg] = &[
    (c"frame", l_frame),
    (c"startup", l_startup),
    (c"extended", l_extended),
    (c"names", l_names),
    (c"error", l_error),
    (c"int32", l_int32),
    (c"notification", l_notification),
    (c"md5", l_md5),
    (c"scram_first", l_scram_first),
    (c"scram_final", l_scram_final),
    (c"scram_verify", l_scram_verify),
];

/// `require 'lem.postgres.core'`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        parsers::register(l, c"PgMessage", &MESSAGE);
        parsers::register(l, c"PgReply", &REPLY);
        ffi::lua_createtable(l, 0, FUNCS.len() as c_int + 1);
        lua::set_funcs(l, FUNCS);
        ffi::lua_pushinteger(l, MAX_MESSAGE as _);
        ffi::lua_setfield(l, -2, c"max_message".as_ptr());
        1
    }
}

/// The fuzz entry point: scanning and decoding never panic, and a message
/// accepted whole is refused as incomplete from every shorter prefix.
pub fn fuzz_message(data: &[u8]) {
    if let Ok(Some(end)) = scan(data) {
        assert!(end <= data.len() && end >= 5);
        if data[0] != b'D' {
            assert_eq!(scan(&data[..end - 1]), Ok(None));
        }
        let body = &data[5..message_end(data, 0).unwrap().unwrap()];
        let _ = row_values(body);
        let _ = row_names(body);
        let _ = error_text(body);
    }
    // A reply is read up to a message's end, at least one message, and
    // never past the first that ends a reply.
    if let Ok(Some(end)) = scan_reply(data) {
        assert!(end <= data.len() && end >= 5);
        let all: Vec<_> = messages(&data[..end]).collect();
        assert!(!all.is_empty());
        for (i, (kind, body)) in all.iter().enumerate() {
            if matches!(kind, b'Z' | b'G' | b'H') {
                assert_eq!(i, all.len() - 1);
            }
            let _ = row_values(body);
            let _ = row_names(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        frame(kind, body)
    }

    #[test]
    fn messages_are_framed_and_scanned() {
        let m = msg(b'Z', b"I");
        assert_eq!(m, b"Z\0\0\0\x05I");
        assert_eq!(scan(&m), Ok(Some(6)));
        assert_eq!(scan(&m[..5]), Ok(None));
        assert_eq!(
            scan(b"Z\0\0\0\x03"),
            Err("postgres message with a length below 4")
        );
        assert_eq!(
            scan(b"D\x7f\xff\xff\xff"),
            Err("postgres message too large")
        );
        let startup = frame(0, b"ab");
        assert_eq!(startup, b"\0\0\0\x06ab");
    }

    #[test]
    fn data_rows_come_in_batches() {
        let row = |vals: &[Option<&[u8]>]| {
            let mut b = Vec::new();
            put_values(&mut b, vals);
            msg(b'D', &b)
        };
        let mut input = row(&[Some(b"1"), None]);
        input.extend(row(&[Some(b""), Some(b"x")]));
        let two = input.len();
        input.extend(msg(b'C', b"SELECT 2\0"));
        assert_eq!(scan(&input), Ok(Some(two)));
        assert_eq!(
            row_values(&input[5..5 + 2 + 4 + 1 + 4]).unwrap(),
            vec![Some(&b"1"[..]), None]
        );
        assert!(
            row_values(b"\0\x01\0\0\0\x09ab").is_err(),
            "length past the end"
        );
        assert!(
            row_values(b"\0\x01\0\0\0\x01ab").is_err(),
            "bytes left over"
        );
        assert!(matches!(
            Message.scan(&msg(b'D', b"\0\x05"), false),
            Scan::Invalid(_)
        ));
    }

    #[test]
    fn replies_are_read_whole() {
        let mut rows = Vec::new();
        put_values(&mut rows, &[Some(b"7")]);
        let mut reply = msg(b'2', b"");
        reply.extend(msg(b'D', &rows));
        reply.extend(msg(b'D', &rows));
        reply.extend(msg(b'C', b"SELECT 2\0"));
        let before_z = reply.len();
        reply.extend(msg(b'Z', b"I"));
        let whole = reply.len();
        reply.extend(msg(b'2', b""));
        assert_eq!(scan_reply(&reply), Ok(Some(whole)), "up to ReadyForQuery");
        assert_eq!(
            scan_reply(&reply[..whole - 1]),
            Ok(Some(before_z)),
            "what is complete"
        );
        assert_eq!(scan_reply(&reply[..3]), Ok(None));
        let mut copy = msg(b'C', b"SET\0");
        copy.extend(msg(b'G', b"\0\0\0"));
        let g = copy.len();
        copy.extend(msg(b'd', b"x"));
        assert_eq!(scan_reply(&copy), Ok(Some(g)), "not past a COPY's start");
        assert!(matches!(
            Reply.scan(&msg(b'T', b"\0\x01x"), false),
            Scan::Invalid(_)
        ));
    }

    #[test]
    fn descriptions_and_errors() {
        let mut b = 2u16.to_be_bytes().to_vec();
        for name in [&b"id"[..], b"name"] {
            cstr(&mut b, name);
            b.extend_from_slice(&[0; 18]);
        }
        assert_eq!(row_names(&b).unwrap(), vec![&b"id"[..], b"name"]);
        assert!(row_names(&b[..b.len() - 1]).is_err());
        let e = b"SERROR\0VERROR\0C23505\0Mduplicate key\0DKey (id)=(1) already exists.\0\0";
        let (text, code) = error_text(e);
        assert_eq!(
            text,
            "ERROR:  duplicate key\nDETAIL:  Key (id)=(1) already exists."
        );
        assert_eq!(code, "23505");
        assert_eq!(error_text(b"").0, "ERROR:  unknown error");
    }

    #[test]
    fn extended_queries() {
        // The message types in order, each length checked against the rest.
        let kinds = |m: &[u8]| {
            let mut at = 0;
            let mut out = Vec::new();
            while at < m.len() {
                out.push(m[at]);
                at += 1 + u32::from_be_bytes(m[at + 1..at + 5].try_into().unwrap()) as usize;
            }
            assert_eq!(at, m.len());
            out
        };
        let params = [Some(&b"7"[..]), None];
        let m = extended(b"", Some(b"SELECT $1"), Describe::Portal, &params);
        assert_eq!(kinds(&m), b"PBDES");
        assert!(m.ends_with(b"S\0\0\0\x04"));
        let m = extended(b"s1", None, Describe::Portal, &[]);
        assert_eq!(kinds(&m), b"BDES");
        let m = extended(b"s1", Some(b"SELECT $1"), Describe::Statement, &params);
        assert_eq!(kinds(&m), b"PDBES");
        assert!(
            m.windows(4).any(|w| w == b"Ss1\0"),
            "describes the statement"
        );
        let m = extended(b"s1", None, Describe::Nothing, &params);
        assert_eq!(kinds(&m), b"BES");
        // Bind: portal "", statement "s1", no formats, 2 values (7 and
        // NULL), no result formats.
        assert_eq!(
            &m[5..m.len() - 15],
            b"\0s1\0\0\0\0\x02\0\0\0\x017\xff\xff\xff\xff\0\0"
        );
    }

    #[test]
    fn md5_answer() {
        // md5(hex(md5("secret" + "lem")) + salt), computed with Python's
        // hashlib.
        assert_eq!(
            md5_password(b"lem", b"secret", b"\x01\x02\x03\x04"),
            "md552504e2781e51076e107407f02665cdf"
        );
    }

    #[test]
    fn scram_of_rfc_7677() {
        // RFC 7677's example: user "user", password "pencil".
        let nonce = "rOprNGfwEbeRWgbNEkqO";
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let (fin, sig) = scram::client_final(b"pencil", nonce, server_first).unwrap();
        // The RFC's first message has n=user where PostgreSQL's has n=.
        assert!(fin.starts_with("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p="));
        assert_eq!(sig.len(), 32);
        assert!(scram::client_final(b"pencil", "other", server_first).is_err());
        assert!(scram::parse_server_first("r=x,s=!!,i=1").is_err());
        assert!(scram::parse_server_first("r=x,s=AAAA,i=0").is_err());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&sig);
        assert!(scram::verify_server_final(&format!("v={b64}"), &sig));
        assert!(!scram::verify_server_final("v=AAAA", &sig));
    }
}
