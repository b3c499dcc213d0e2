//! lem: a Lua event machine.
//!
//! One Lua state and one current-thread tokio loop; every piece of Lua code
//! runs in a coroutine, and a call that would block suspends only its own
//! coroutine. The Lua API is LEM's, grown: the project's manual in `docs/`
//! describes every module; `ARCHITECTURE.md` says how the pieces fit. This
//! crate is the interpreter behind the `lem` binary and the library for
//! writing native modules (see [`native`]).
//!
//! # Layout
//!
//! The folders are the layers, lowest first; a layer uses the ones below
//! it and never one above (the layers above hook into the runtime through
//! [`runtime::lifecycle`] and the [`io::broker`] trait instead).
//!
//! - [`runtime`]: the Lua state's C API helpers ([`lua`]) and its
//!   allocator (`alloc.rs`: the memory cap), coroutines as tasks
//!   ([`scheduler`]: parking and waking, timers, cancels and deadlines,
//!   the guard that reaches busy code, error reports, the loop), blocking
//!   work off the loop ([`pool`]), the read formats and the input budget
//!   ([`parsers`]), waiting one's turn ([`runtime::turn`]), the process's
//!   identity and graceful stop ([`runtime::lifecycle`]) and `lem.utils`
//!   (`utils.rs`).
//! - [`io`]: `lem.io.core`: descriptors and suspended operations (`fd.rs`,
//!   `op.rs`), streams (`stream/`: transport, reads, writes and sendfile,
//!   idle reads, stdio), files, TCP, Unix sockets, UDP, DNS, servers, TLS
//!   (`tls/`: handshakes and servers with rustls, and the TLS transport of
//!   streams), and the socket broker a worker provides (`broker.rs`).
//! - `src/system/`: the operating system's side: `lem.lfs.core`
//!   (filesystem calls on the pool), `lem.signal.core` (OS signals to Lua
//!   handlers, SIGCHLD to the reaper), `lem.process.core` (children for
//!   `io.spawn`/`io.popen`), and the console under `lem.repl`.
//! - `src/protocols/`: what speaks over streams: `http/` (the HTTP heads'
//!   read formats, chunked bodies, response heads, the Date cache, the
//!   server's rules for a request and its per-request hot path in
//!   `server.rs`), `websocket/` (frames, permessage-deflate), `postgres.rs`,
//!   `redis.rs`, `sqlite3/` (the connection under its mutex, values, the
//!   objects' methods), and `json/`, the data format (`lem.json`: the
//!   decoder straight onto the Lua stack, the encoder, a Rust tree for
//!   tests and fuzzing), which uses nothing of `io` and sits here beside
//!   the protocols that carry it.
//! - `src/shared/`: `lem.shared`, dictionaries and messages in memory
//!   every worker of a `lem -w` maps (`region.rs`, `heap.rs`, `dict.rs`,
//!   `bus.rs`); beside `protocols/` and `system/`, above `io/`.
//! - [`workers`]: `lem -w N`: the worker's side (brokered sockets,
//!   draining) and the supervisor (`supervisor.rs`).
//! - The root: [`Runtime`] (this file: the Lua state, the loop, their
//!   life), [`modules`] (every built-in module once, and the `require`
//!   searcher), [`native`] (the documented API for native modules in
//!   Rust), `main.rs` (the `lua`-compatible command line) and `fuzz.rs`
//!   (the fuzz targets' entry points, `fuzz/`, replayed by `tests/fuzz.rs`).
//! - `lua/lem/`: the Lua halves, in the tree of their module names
//!   (`lem.http.server` is `lua/lem/http/server.lua`), embedded at build
//!   time under chunk names that point at those files.

#[doc(hidden)]
pub mod fuzz;
pub mod io;
pub mod modules;
pub mod native;
pub(crate) mod protocols;
pub mod runtime;
pub(crate) mod shared;
pub(crate) mod system;
pub mod workers;

pub use runtime::{lua, parsers, pool, progname, scheduler, set_progname, PROGNAME};

pub use runtime::scheduler::Outcome;

/// The version banner, as `lua -v` prints one.
pub fn version() -> String {
    format!("lem {} ({})", env!("CARGO_PKG_VERSION"), lua_version())
}

/// The Lua the binary was built with.
pub fn lua_version() -> &'static str {
    if cfg!(feature = "luajit") {
        "LuaJIT 2.1, Lua 5.1"
    } else {
        "Lua 5.4"
    }
}

/// Options for a new [`Runtime`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Ignore `LUA_PATH`, `LUA_CPATH` and `LUA_INIT` (`lua -E`).
    pub ignore_env: bool,
}

/// A Lua state with lem's modules and the event loop that runs it.
pub struct Runtime {
    local: Option<tokio::task::LocalSet>,
    rt: Option<tokio::runtime::Runtime>,
    sched: *mut scheduler::Scheduler,
    lua: mlua::Lua,
}

impl Runtime {
    /// A runtime with every standard library, C modules allowed.
    pub fn new(options: Options) -> mlua::Result<Runtime> {
        // SAFETY: C modules are the point (`require 'lpeg'`); the state is
        // ours alone.
        let lua =
            unsafe { mlua::Lua::unsafe_new_with(mlua::StdLib::NONE, mlua::LuaOptions::new()) };
        let mut cache = None;
        raw_exec(&lua, (), |l| {
            // SAFETY: the state is new and ours; mlua's allocator gives
            // malloc blocks (Rust's system allocator).
            cache = Some(unsafe { runtime::alloc::install(l) });
            0
        })?;
        // mlua drops app data after closing the state: the cache outlives
        // every allocation.
        lua.set_app_data(cache);
        if options.ignore_env {
            lua.set_named_registry_value("LUA_NOENV", true)?;
        }
        lua.load_std_libs(mlua::StdLib::ALL)?;
        set_search_paths(&lua, options.ignore_env)?;
        #[cfg(not(feature = "luajit"))]
        install_warnings(&lua);
        #[cfg(not(feature = "luajit"))]
        // SAFETY: raw_exec hands the closure the main thread, set up above.
        raw_exec(&lua, (), |l| unsafe {
            install_os_exit(l);
            0
        })?;
        // SAFETY: raw_exec hands the closure the main thread, set up above.
        let main = raw_exec(&lua, (), |l| unsafe {
            modules::install(l);
            0
        })
        .map(|(_, l)| l)?;
        // SAFETY: `main` is the main thread of `lua`, which the runtime owns
        // and drops after the scheduler.
        let sched = Box::into_raw(unsafe { scheduler::Scheduler::install(main) });
        // What a graceful stop closes: the runtime knows only the hooks.
        runtime::lifecycle::on_drain(|| {
            io::server::close_all();
        });
        runtime::lifecycle::on_drain(|| {
            io::stream::drain_idle(runtime::lifecycle::idle_drain());
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(mlua::Error::external)?;
        Ok(Runtime {
            local: Some(tokio::task::LocalSet::new()),
            rt: Some(rt),
            sched,
            lua,
        })
    }

    /// Cap the Lua heap at `bytes` (0: no cap): past it, allocations of a
    /// running coroutine fail with `not enough memory`.
    pub fn set_memory_limit(&self, bytes: usize) {
        // SAFETY: the scheduler's main thread is the state's, whose
        // allocator `new` installed.
        unsafe { runtime::alloc::set_limit(self.scheduler().main_thread(), bytes) }
    }

    /// The Lua state.
    pub fn lua(&self) -> &mlua::Lua {
        &self.lua
    }

    /// The scheduler.
    pub fn scheduler(&self) -> &'static scheduler::Scheduler {
        // SAFETY: freed only in `drop`, after everything that could use it.
        unsafe { &*self.sched }
    }

    /// Start `f(args...)` as a new coroutine; it runs when the loop runs.
    pub fn spawn(
        &self,
        f: mlua::Function,
        args: impl mlua::IntoLuaMulti,
    ) -> mlua::Result<scheduler::TaskId> {
        let sched = self.scheduler();
        // SAFETY: raw_exec hands the closure the main thread with the function
        // and its arguments on its stack.
        raw_exec(&self.lua, (f, args), |l| unsafe {
            // The stack holds exactly the function and its arguments.
            sched.spawn(l, ffi::lua_gettop(l) - 1)
        })
        .map(|(id, _)| id)
    }

    /// Run the loop until nothing is left to run or wait for (or exit).
    pub fn run(&mut self) -> Outcome {
        self.drive(None)
    }

    /// Run the loop until task `id` has ended (or the process must exit);
    /// other coroutines keep running meanwhile and afterwards.
    pub fn run_until(&mut self, id: scheduler::TaskId) -> Outcome {
        self.drive(Some(id))
    }

    fn drive(&mut self, until: Option<scheduler::TaskId>) -> Outcome {
        let sched = self.scheduler();
        let (Some(local), Some(rt)) = (&self.local, &self.rt) else {
            return Outcome::Idle;
        };
        local.block_on(rt, sched.run(until))
    }
}

use lua::ffi;

/// The Lua ABI directories are named after: `5.4`, or `5.1` for LuaJIT.
const ABI: &str = if cfg!(feature = "luajit") {
    "5.1"
} else {
    "5.4"
};

/// `package.path` and `package.cpath` when the environment sets neither:
/// Debian's `lua5.4` (and `luajit`) defaults, so modules installed with
/// `apt install lua-lpeg` (`/usr/lib/<multiarch>/lua/5.4/`,
/// `/usr/share/lua/5.4/`) or by LuaRocks (`/usr/local/...`) are found.
fn default_paths() -> (String, String) {
    let v = ABI;
    let path = format!(
        "/usr/local/share/lua/{v}/?.lua;/usr/local/share/lua/{v}/?/init.lua;\
         /usr/local/lib/lua/{v}/?.lua;/usr/local/lib/lua/{v}/?/init.lua;\
         /usr/share/lua/{v}/?.lua;/usr/share/lua/{v}/?/init.lua;\
         ./?.lua;./?/init.lua"
    );
    let multiarch = option_env!("LEM_MULTIARCH")
        .map(|t| format!("/usr/lib/{t}/lua/{v}/?.so;"))
        .unwrap_or_default();
    let cpath = format!(
        "/usr/local/lib/lua/{v}/?.so;{multiarch}/usr/lib/lua/{v}/?.so;\
         /usr/local/lib/lua/{v}/loadall.so;./?.so"
    );
    (path, cpath)
}

/// A search path from the environment as `package` makes it (`LUA_PATH_5_4`
/// before `LUA_PATH` on Lua 5.4), with [`default_paths`] as the default:
/// what `;;` stands for (Lua 5.4: the first one, the extra `;` dropped at
/// either end; LuaJIT, as Lua 5.1: every one, as `;default;`).
fn search_path(env: &str, default: &str, ignore_env: bool) -> String {
    let versioned = format!("{env}_{}", ABI.replace('.', "_"));
    let value = if ignore_env {
        None
    } else if cfg!(feature = "luajit") {
        std::env::var(env).ok()
    } else {
        std::env::var(&versioned)
            .or_else(|_| std::env::var(env))
            .ok()
    };
    let Some(value) = value else {
        return default.to_owned();
    };
    if cfg!(feature = "luajit") {
        return value.replace(";;", &format!(";{default};"));
    }
    match value.split_once(";;") {
        None => value,
        Some((before, after)) => {
            let mut out = String::new();
            if !before.is_empty() {
                out.push_str(before);
                out.push(';');
            }
            out.push_str(default);
            if !after.is_empty() {
                out.push(';');
                out.push_str(after);
            }
            out
        }
    }
}

/// Set `package.path`/`cpath` from the environment over lem's defaults.
fn set_search_paths(lua: &mlua::Lua, ignore_env: bool) -> mlua::Result<()> {
    let (path, cpath) = default_paths();
    let package: mlua::Table = lua.globals().get("package")?;
    package.set("path", search_path("LUA_PATH", &path, ignore_env))?;
    package.set("cpath", search_path("LUA_CPATH", &cpath, ignore_env))
}

/// `warn` as the standalone `lua` has it (lauxlib's warning function): off
/// until `@on`, printed to stderr as `Lua warning: msg`, the pieces of a
/// multi-part warning joined. Only a message of one piece can be a control
/// message (`warn('@off', 'x')` is a warning), and pieces after the first
/// never are.
#[cfg(not(feature = "luajit"))]
fn install_warnings(lua: &mlua::Lua) {
    use std::cell::Cell;
    #[derive(Clone, Copy, PartialEq)]
    enum Warn {
        Off,
        On,
        /// Within a multi-part warning that is being printed.
        Continuing,
    }
    let state = Cell::new(Warn::Off);
    lua.set_warning_function(move |_, msg, tocont| {
        use std::io::Write;
        if state.get() != Warn::Continuing && !tocont {
            if let Some(control) = msg.strip_prefix('@') {
                match control {
                    "on" => state.set(Warn::On),
                    "off" => state.set(Warn::Off),
                    _ => {}
                }
                return Ok(());
            }
        }
        if state.get() == Warn::Off {
            return Ok(());
        }
        let mut err = std::io::stderr().lock();
        if state.get() == Warn::On {
            let _ = err.write_all(b"Lua warning: ");
        }
        let _ = err.write_all(msg.as_bytes());
        if tocont {
            state.set(Warn::Continuing);
        } else {
            let _ = err.write_all(b"\n");
            state.set(Warn::On);
        }
        Ok(())
    });
}

/// Wrap `os.exit` so that `os.exit(code, true)` closes the to-be-closed
/// variables of the coroutine that calls it when that is a lem task (a
/// script's main chunk is one), as `lua`'s closes its main chunk's: Lua's
/// `lua_close` only closes the main thread's.
#[cfg(not(feature = "luajit"))]
unsafe fn install_os_exit(l: *mut lua::lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        ffi::lua_getglobal(l, c"os".as_ptr());
        ffi::lua_getfield(l, -1, c"exit".as_ptr());
        ffi::lua_pushcclosure(l, os_exit, 1);
        ffi::lua_setfield(l, -2, c"exit".as_ptr());
        ffi::lua_pop(l, 1);
    }
}

/// `os.exit([code [, close]])`; the original is upvalue 1.
#[cfg(not(feature = "luajit"))]
unsafe extern "C-unwind" fn os_exit(l: *mut lua::lua_State) -> std::ffi::c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let task =
            scheduler::try_get().filter(|s| s.current().is_some() && s.task_of(l) == s.current());
        if ffi::lua_toboolean(l, 2) == 0 || task.is_none() {
            ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
            ffi::lua_insert(l, 1);
            ffi::lua_call(l, ffi::lua_gettop(l) - 1, 0);
            return 0;
        }
        // As loslib's os_exit; the thread's stack is gone after the reset, so
        // the status is read first.
        let status = if ffi::lua_type(l, 1) == ffi::LUA_TBOOLEAN {
            if ffi::lua_toboolean(l, 1) != 0 {
                libc::EXIT_SUCCESS
            } else {
                libc::EXIT_FAILURE
            }
        } else {
            ffi::luaL_optinteger(l, 1, libc::EXIT_SUCCESS as ffi::lua_Integer) as std::ffi::c_int
        };
        ffi::lua_closethread(l, std::ptr::null_mut());
        ffi::lua_close(l);
        libc::exit(status)
    }
}

/// Run `f` on the main thread in protected mode with `args` on the stack;
/// returns its result and the main thread.
fn raw_exec<R: Copy + Default>(
    lua: &mlua::Lua,
    args: impl mlua::IntoLuaMulti,
    f: impl FnOnce(*mut lua::lua_State) -> R,
) -> mlua::Result<(R, *mut lua::lua_State)> {
    let mut out = (R::default(), std::ptr::null_mut());
    // SAFETY: `f` keeps the stack discipline of a C function.
    unsafe {
        lua.exec_raw::<()>(args, |l| {
            out = (f(l), main_thread(l));
            ffi::lua_settop(l, 0);
        })?;
    }
    Ok(out)
}

/// The main thread of the state `l` belongs to.
unsafe fn main_thread(l: *mut lua::lua_State) -> *mut lua::lua_State {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    #[cfg_attr(feature = "luajit", allow(unused_unsafe))]
    unsafe {
        #[cfg(not(feature = "luajit"))]
        {
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, ffi::LUA_RIDX_MAINTHREAD);
            let m = ffi::lua_tothread(l, -1);
            ffi::lua_pop(l, 1);
            m
        }
        #[cfg(feature = "luajit")]
        {
            // LuaJIT has no registry slot for it; mlua runs exec_raw on the main
            // thread.
            l
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Futures on the loop may hold Lua values and scheduler holds: end
        // them first (the waits' futures inside the runtime, whose timers
        // and descriptors they deregister from), then the scheduler, then
        // (by field order) the state.
        if let Some(rt) = &self.rt {
            let _entered = rt.enter();
            self.scheduler().clear_waits();
        }
        drop(self.local.take());
        drop(self.rt.take());
        // SAFETY: allocated in `new` by Box::into_raw; nothing uses it now.
        unsafe {
            (*self.sched).uninstall();
            drop(Box::from_raw(self.sched));
        }
    }
}
