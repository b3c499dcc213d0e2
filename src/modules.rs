//! Every built-in module, listed once: name -> native opener or embedded
//! `.lua` file, and the `require` searcher that serves them before
//! `package.path` is searched (so `package.path = '?.lua'` still finds them).
//!
//! Native modules registered through [`crate::native::register_module`] live
//! in the registry table `lem.modules` and are found by the same searcher.

use std::ffi::{c_int, CStr};

use crate::runtime::lua::{self, ffi, lua_State, CFunction};

/// How a built-in module is opened.
pub enum Opener {
    /// A native `luaopen`-style function.
    Native(CFunction),
    /// An embedded Lua file: `(chunk name, source)`.
    Lua(&'static CStr, &'static str),
}

macro_rules! lua_file {
    ($path:literal) => {
        Opener::Lua(
            // Chunk names point at the file in the repository, so tracebacks do too.
            const_cstr!(concat!("@", $path, "\0")),
            include_str!(concat!("../", $path)),
        )
    };
}

macro_rules! const_cstr {
    ($s:expr) => {
        match CStr::from_bytes_with_nul($s.as_bytes()) {
            Ok(c) => c,
            Err(_) => panic!("chunk name with a NUL"),
        }
    };
}

/// The built-in modules, in the manual's order (docs/README.md).
pub const BUILTINS: &[(&str, Opener)] = &[
    ("lem.utils", lua_file!("lua/lem/utils.lua")),
    (
        "lem.utils.core",
        Opener::Native(crate::runtime::utils::open),
    ),
    ("lem.queue", lua_file!("lua/lem/queue.lua")),
    ("lem.io", lua_file!("lua/lem/io.lua")),
    ("lem.io.core", Opener::Native(crate::io::open)),
    ("lem.io.queue", lua_file!("lua/lem/io/queue.lua")),
    ("lem.io.pool", lua_file!("lua/lem/io/pool.lua")),
    ("lem.io.tls", lua_file!("lua/lem/io/tls.lua")),
    ("lem.io.tls.core", Opener::Native(crate::io::tls::open)),
    ("lem.parsers", lua_file!("lua/lem/parsers.lua")),
    (
        "lem.parsers.core",
        Opener::Native(crate::runtime::parsers::open),
    ),
    ("lem.lfs", lua_file!("lua/lem/lfs.lua")),
    ("lem.lfs.core", Opener::Native(crate::system::lfs::open)),
    ("lem.signal", lua_file!("lua/lem/signal.lua")),
    (
        "lem.signal.core",
        Opener::Native(crate::system::signal::open),
    ),
    ("lem.process", lua_file!("lua/lem/process.lua")),
    (
        "lem.process.core",
        Opener::Native(crate::system::process::open),
    ),
    ("lem.http", lua_file!("lua/lem/http.lua")),
    (
        "lem.http.core",
        Opener::Native(crate::protocols::http::open),
    ),
    ("lem.http.server", lua_file!("lua/lem/http/server.lua")),
    ("lem.http.h2", lua_file!("lua/lem/http/h2.lua")),
    (
        "lem.http.h2.core",
        Opener::Native(crate::protocols::http::h2::open),
    ),
    ("lem.http.client", lua_file!("lua/lem/http/client.lua")),
    ("lem.http.response", lua_file!("lua/lem/http/response.lua")),
    ("lem.http.form", lua_file!("lua/lem/http/form.lua")),
    ("lem.http.cookie", lua_file!("lua/lem/http/cookie.lua")),
    (
        "lem.http.multipart",
        lua_file!("lua/lem/http/multipart.lua"),
    ),
    ("lem.http.log", lua_file!("lua/lem/http/log.lua")),
    ("lem.postgres", lua_file!("lua/lem/postgres.lua")),
    (
        "lem.postgres.core",
        Opener::Native(crate::protocols::postgres::open),
    ),
    (
        "lem.postgres.queued",
        lua_file!("lua/lem/postgres/queued.lua"),
    ),
    ("lem.redis", lua_file!("lua/lem/redis.lua")),
    (
        "lem.redis.core",
        Opener::Native(crate::protocols::redis::open),
    ),
    ("lem.redis.queued", lua_file!("lua/lem/redis/queued.lua")),
    ("lem.websocket", lua_file!("lua/lem/websocket.lua")),
    (
        "lem.websocket.core",
        Opener::Native(crate::protocols::websocket::open),
    ),
    ("lem.sqlite3", lua_file!("lua/lem/sqlite3.lua")),
    (
        "lem.sqlite3.core",
        Opener::Native(crate::protocols::sqlite3::open),
    ),
    (
        "lem.sqlite3.queued",
        lua_file!("lua/lem/sqlite3/queued.lua"),
    ),
    ("lem.shared", Opener::Native(crate::shared::open)),
    ("lem.json", Opener::Native(crate::protocols::json::open)),
    ("lem.hathaway", lua_file!("lua/lem/hathaway.lua")),
    ("lem.repl", lua_file!("lua/lem/repl.lua")),
    ("lem.repl.core", Opener::Native(crate::system::repl::open)),
];

/// The glue that lets suspending calls pass through user coroutines; run
/// once per state by [`install`].
const COROUTINE_GLUE: Opener = lua_file!("lua/lem/coroutine.lua");

/// Registry key of the table of natively registered modules.
pub const REGISTERED: &CStr = c"lem.modules";

/// The `require` searcher: built-ins, then registered native modules.
unsafe extern "C-unwind" fn searcher(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let name = lua::check_lstring(l, 1, std::ptr::null_mut());
        let name = CStr::from_ptr(name).to_bytes();
        for (n, opener) in BUILTINS {
            if n.as_bytes() == name {
                match opener {
                    Opener::Native(f) => ffi::lua_pushcfunction(l, *f),
                    Opener::Lua(chunk, src) => load_chunk(l, chunk, src),
                }
                lua::push_str(l, ":lem:");
                return 2;
            }
        }
        ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, REGISTERED.as_ptr());
        ffi::lua_pushvalue(l, 1);
        ffi::lua_rawget(l, -2);
        if ffi::lua_type(l, -1) != ffi::LUA_TNIL {
            lua::push_str(l, ":lem:");
            return 2;
        }
        // Nothing to add to `require`'s "module not found" message: the name
        // is no built-in, and saying so would only make it differ from lua's.
        0
    }
}

/// Compile an embedded chunk, raising its (impossible outside development)
/// syntax error.
unsafe fn load_chunk(l: *mut lua_State, chunk: &CStr, src: &str) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if ffi::luaL_loadbufferx(
            l,
            src.as_ptr() as *const _,
            src.len(),
            chunk.as_ptr(),
            c"t".as_ptr(),
        ) != ffi::LUA_OK
        {
            ffi::lua_error(l);
        }
    }
}

/// Install the searcher (second, after `package.preload`), the table of
/// registered modules, and the coroutine glue.
///
/// # Safety
/// `l` must be a state with the standard libraries open.
pub unsafe fn install(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_createtable(l, 0, 0);
        ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, REGISTERED.as_ptr());

        ffi::lua_getglobal(l, c"package".as_ptr());
        #[cfg(feature = "luajit")]
        ffi::lua_getfield(l, -1, c"loaders".as_ptr());
        #[cfg(not(feature = "luajit"))]
        ffi::lua_getfield(l, -1, c"searchers".as_ptr());
        let n = ffi::lua_rawlen(l, -1) as ffi::lua_Integer;
        let mut i = n;
        while i >= 2 {
            ffi::lua_rawgeti(l, -1, i);
            ffi::lua_rawseti(l, -2, i + 1);
            i -= 1;
        }
        ffi::lua_pushcfunction(l, searcher);
        ffi::lua_rawseti(l, -2, 2);
        ffi::lua_pop(l, 2);

        if let Opener::Lua(chunk, src) = COROUTINE_GLUE {
            load_chunk(l, chunk, src);
            ffi::lua_pushlightuserdata(l, crate::runtime::scheduler::pending());
            // Lua 5.4: a resume that passes the guard's hook on (LuaJIT's
            // hooks are global: the stock resume does).
            #[cfg(not(feature = "luajit"))]
            ffi::lua_pushcfunction(l, crate::runtime::scheduler::guarded_resume);
            #[cfg(feature = "luajit")]
            ffi::lua_pushnil(l);
            ffi::lua_pushcfunction(l, crate::runtime::utils::doomtext);
            ffi::lua_call(l, 3, 0);
        }
    }
}
