//! `io.unix.connect` and `io.unix.listen`: Unix domain stream sockets.

use std::ffi::c_int;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use socket2::{Domain, SockAddr, Socket, Type};

use super::fd::os_error_text;
use super::op::check_suspendable;
use super::server::{push_server, Family};
use super::stream::push_stream;
use crate::runtime::lua::{self, ffi, lua_State};
use crate::runtime::scheduler::{self, Commit, Resume};

/// Room in `sockaddr_un.sun_path`, less the terminating NUL.
const MAX_PATH: usize = 107;

/// Argument `arg` as a socket path; raises when it cannot fit.
unsafe fn check_path<'a>(l: *mut lua_State, arg: c_int) -> &'a [u8] {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let mut len = 0;
        let p = lua::check_lstring(l, arg, &mut len);
        if len > MAX_PATH {
            lua::arg_error(l, arg, c"path too long");
        }
        std::slice::from_raw_parts(p as *const u8, len)
    }
}

/// An octal-looking permission (`644`, `'0600'`) as mode bits.
pub(crate) unsafe fn check_perm(l: *mut lua_State, arg: c_int) -> Option<u32> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if lua::is_none_or_nil(l, arg) {
            return None;
        }
        let mut len = 0;
        // A number or a string: its decimal text is read as octal digits.
        let p = lua::check_lstring(l, arg, &mut len);
        let digits = std::slice::from_raw_parts(p as *const u8, len);
        let mut mode = 0u32;
        if digits.is_empty() || digits.len() > 4 {
            lua::arg_error(l, arg, c"invalid permissions");
        }
        for &d in digits {
            if !(b'0'..=b'7').contains(&d) {
                lua::arg_error(l, arg, c"invalid permissions");
            }
            mode = mode * 8 + (d - b'0') as u32;
        }
        Some(mode)
    }
}

fn as_path(b: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

/// core.unix_connect(path) -> Stream | nil, err
pub(crate) unsafe extern "C-unwind" fn connect(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let path = check_path(l, 1);
        check_suspendable(l);
        let path = as_path(path);
        let fut = Box::pin(async move {
            let r = tokio::net::UnixStream::connect(&path)
                .await
                .and_then(|s| s.into_std());
            let r = r.map(OwnedFd::from).map_err(|e| {
                format!(
                    "error connecting to '{}': {}",
                    path.display(),
                    os_error_text(&e)
                )
            });
            Resume::Push(Box::new(move |t| match r {
                Ok(fd) => push_stream(t, fd),
                Err(msg) => lua::fail(t, &msg),
            }))
        });
        scheduler::get().prepare(Commit::Future(fut));
        crate::runtime::scheduler::suspend(l)
    }
}

/// A listening socket bound to `path`, with permissions `perm`.
pub(crate) fn bind_listener(
    path: &std::path::Path,
    perm: Option<u32>,
    backlog: c_int,
) -> std::io::Result<OwnedFd> {
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    s.bind(&SockAddr::unix(path)?)?;
    if let Some(mode) = perm {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    }
    s.listen(backlog)?;
    // SAFETY: into_raw_fd hands us sole ownership.
    Ok(unsafe { OwnedFd::from_raw_fd(s.into_raw_fd()) })
}

/// core.unix_listen(path [, perm [, backlog]]) -> Server | nil, err
pub(crate) unsafe extern "C-unwind" fn listen(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let path = check_path(l, 1);
        let perm = check_perm(l, 2);
        let backlog =
            lua::opt_integer(l, 3, c_int::MAX as i64).clamp(0, c_int::MAX as i64) as c_int;
        let path = as_path(path);
        let r = match crate::io::broker::listen_unix(&path, perm, backlog) {
            Some(r) => r,
            None => bind_listener(&path, perm, backlog).map_err(|e| os_error_text(&e)),
        };
        match r {
            Ok(fd) => {
                drop(path);
                push_server(l, vec![fd], Family::Unix)
            }
            Err(e) => {
                let msg = format!("error binding to '{}': {e}", path.display());
                drop(path);
                lua::push_str(l, &msg);
                drop(msg);
                ffi::lua_pushnil(l);
                ffi::lua_insert(l, -2);
                2
            }
        }
    }
}
