//! `lem.io.core`'s registration: the module's functions (`io.fromfd`,
//! `io.setbudget`, and the constructors the objects' files define) and its
//! classes, `Stream`, `File`, `Server`, `Datagram`, `Resolver`.

use std::ffi::c_int;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::fd::{fail_os, fd_kind, set_cloexec, FdKind};
use super::stream::push_stream;
use super::{dns, file, server, stream, tcp, udp, unix};
use crate::runtime::lua::{self, ffi, lua_State, Reg};

/// io.fromfd(fd) -> File | Stream | Server | nil, err
unsafe extern "C-unwind" fn fromfd(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let fd = lua::check_integer(l, 1);
        if fd < 0 || fd > i32::MAX as i64 {
            lua::arg_error(l, 1, c"invalid file descriptor");
        }
        let fd = fd as RawFd;
        let kind = match fd_kind(fd) {
            Ok(k) => k,
            Err(e) => return fail_os(l, &e),
        };
        // SAFETY: the script hands the descriptor over to the new object.
        let owned = OwnedFd::from_raw_fd(fd);
        set_cloexec(owned.as_raw_fd());
        match kind {
            FdKind::File => file::push_file(l, owned),
            FdKind::Listening => server::push_server(l, vec![owned], server::Family::Inherited),
            FdKind::Stream => push_stream(l, owned),
        }
    }
}

/// io.setbudget(bytes | nil) -> true: the most input all streams and files
/// buffer together (nil: the default, a quarter of RAM up to 256 MiB);
/// see [`crate::runtime::parsers::budget`].
unsafe extern "C-unwind" fn setbudget(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let bytes = if lua::is_none_or_nil(l, 1) {
            None
        } else {
            let n = lua::check_integer(l, 1);
            if n <= 0 {
                lua::arg_error(l, 1, c"budget must be a positive number of bytes");
            }
            Some(usize::try_from(n).unwrap_or(usize::MAX))
        };
        crate::runtime::parsers::budget::set(bytes);
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// io.budget() -> budget, buffered: the budget and the bytes buffered now.
unsafe extern "C-unwind" fn budget(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let (budget, buffered) = crate::runtime::parsers::budget::get();
        ffi::lua_pushinteger(l, budget as _);
        ffi::lua_pushinteger(l, buffered as _);
        2
    }
}

const FUNCS: &[Reg] = &[
    (c"setbudget", setbudget),
    (c"budget", budget),
    (c"open", file::open),
    (c"fromfd", fromfd),
    (c"streamfile", file::streamfile),
    (c"stdio", stream::stdio),
    (c"tcp_connect", tcp::connect),
    (c"tcp_listen", tcp::listen),
    (c"unix_connect", unix::connect),
    (c"unix_listen", unix::listen),
    (c"udp_bind", udp::bind),
    (c"udp_connect", udp::connect),
    (c"resolve", dns::resolve),
    (c"resolver", dns::new_resolver),
];

/// luaopen for `lem.io.core`: the functions above plus the method tables
/// `Stream`, `File`, `Server` (the Lua half adds `lines` and friends).
///
/// # Safety
/// Called by `require`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        ffi::lua_createtable(l, 0, FUNCS.len() as c_int + 4);
        lua::set_funcs(l, FUNCS);
        for (name, tname, methods, gc) in [
            (
                c"Stream",
                stream::STREAM,
                stream::METHODS,
                lua::gc::<stream::Stream> as lua::CFunction,
            ),
            (
                c"File",
                file::FILE,
                file::METHODS,
                lua::gc::<file::File> as lua::CFunction,
            ),
            (
                c"Server",
                server::SERVER,
                server::METHODS,
                lua::gc::<server::Server> as lua::CFunction,
            ),
            (
                c"Datagram",
                udp::DATAGRAM,
                udp::METHODS,
                lua::gc::<udp::Datagram> as lua::CFunction,
            ),
            (
                c"Resolver",
                dns::RESOLVER,
                dns::METHODS,
                lua::gc::<dns::Resolver> as lua::CFunction,
            ),
        ] {
            lua::new_class(l, tname, methods, Some(gc));
            ffi::lua_setfield(l, -2, name.as_ptr());
        }
        1
    }
}

/// Put fds 0–2 back in blocking mode if lem made them non-blocking, so the
/// terminal or the parent's pipes are not left broken. Called by `main` just
/// before the process exits.
pub fn restore_stdio() {
    stream::restore_stdio();
}
