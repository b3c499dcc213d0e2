//! `lem.signal.core`: OS signals delivered to Lua handlers, each delivery in
//! a new coroutine. The Lua half (`lua/lem/signal.lua`) keeps the handler
//! lists; this half installs and removes the OS handlers, turns deliveries
//! into coroutines, and on `SIGCHLD` calls the reaper that
//! [`crate::system::process`] registers ([`watch_children`]), handing each
//! child event it reports to the Lua handlers. See docs/signal.md.
//!
//! An OS handler only writes the signal's number into a pipe (the one thing
//! it may safely do); a task on the loop reads the pipe and spawns the Lua
//! dispatcher. That task holds no [`Hold`](crate::runtime::scheduler::Hold): watching
//! a signal does not keep the process alive.
//!
//! Signal dispositions are process-wide: one runtime per process watches
//! signals (the first one that asks).

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::io::fd::os_error_text;
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::scheduler;

/// Signal names without `SIG`, canonical ones first: a number's name is the
/// first entry that has it.
const NAMES: &[(&str, c_int)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
    // aliases
    ("IOT", libc::SIGABRT),
    ("CLD", libc::SIGCHLD),
    ("POLL", libc::SIGIO),
];

/// Signal numbers are below this (Linux: 1..=64).
const NSIG: usize = 65;

/// `'SIGTERM'`, `'term'`, `'Sigterm'` -> 15.
fn number(name: &[u8]) -> Option<c_int> {
    let bare = match name.get(..3) {
        Some(p) if p.eq_ignore_ascii_case(b"SIG") => &name[3..],
        _ => name,
    };
    NAMES
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(bare))
        .map(|&(_, s)| s)
}

/// 15 -> `TERM`.
pub(crate) fn name(sig: c_int) -> Option<&'static str> {
    NAMES.iter().find(|&&(_, s)| s == sig).map(|&(n, _)| n)
}

/// The write end of the self-pipe, for the OS handler; -1 before it exists.
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

/// The self-pipe: (read end, write end), non-blocking and close-on-exec.
fn pipe() -> io::Result<(RawFd, RawFd)> {
    static PIPE: OnceLock<(RawFd, RawFd)> = OnceLock::new();
    if let Some(p) = PIPE.get() {
        return Ok(*p);
    }
    let mut fds = [0 as c_int; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let p = *PIPE.get_or_init(|| (fds[0], fds[1]));
    if p != (fds[0], fds[1]) {
        // Lost a race with another thread: ours are spare.
        // SAFETY: both are ours and unused.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
    WRITE_FD.store(p.1, Ordering::Release);
    Ok(p)
}

/// The OS handler: note the signal in the pipe. A full pipe drops the note;
/// enough others are pending to wake the reader.
extern "C" fn on_signal(sig: c_int) {
    let fd = WRITE_FD.load(Ordering::Acquire);
    if fd < 0 {
        return;
    }
    let b = sig as u8;
    // SAFETY: write(2) and errno are async-signal-safe; errno is restored so
    // that the interrupted code sees its own.
    unsafe {
        let errno = *libc::__errno_location();
        libc::write(fd, &b as *const u8 as *const c_void, 1);
        *libc::__errno_location() = errno;
    }
}

/// Who needs each signal caught, and what to restore when nobody does.
struct Dispositions {
    /// The action before ours, while ours is installed.
    saved: [Option<libc::sigaction>; NSIG],
    /// Lua handlers are registered.
    lua: [bool; NSIG],
    /// Lua handlers were registered since ours was installed: when nobody
    /// needs it caught any more, the signal gets its default action (the
    /// contract, as LEM's libev did), not the one it had before.
    to_default: [bool; NSIG],
    /// lem has children to reap (SIGCHLD only).
    children: bool,
}

static DISPOSITIONS: Mutex<Dispositions> = Mutex::new(Dispositions {
    saved: [None; NSIG],
    lua: [false; NSIG],
    to_default: [false; NSIG],
    children: false,
});

fn dispositions() -> std::sync::MutexGuard<'static, Dispositions> {
    // Nothing panics while holding it; take the guard either way.
    DISPOSITIONS.lock().unwrap_or_else(|e| e.into_inner())
}

impl Dispositions {
    fn wanted(&self, sig: c_int) -> bool {
        self.lua[sig as usize] || (sig == libc::SIGCHLD && self.children)
    }

    /// Install our handler for `sig` or restore the saved action, as needed.
    fn update(&mut self, sig: c_int) -> io::Result<()> {
        let i = sig as usize;
        let wanted = self.wanted(sig);
        match (wanted, self.saved[i]) {
            (true, None) => {
                pipe()?;
                // SAFETY: a zeroed sigaction is valid; we fill the handler,
                // an empty mask and the flags.
                unsafe {
                    let mut sa: libc::sigaction = std::mem::zeroed();
                    sa.sa_sigaction = on_signal as extern "C" fn(c_int) as libc::sighandler_t;
                    libc::sigemptyset(&mut sa.sa_mask);
                    // SA_RESTART: pool threads' system calls carry on.
                    // No SA_NOCLDSTOP: stopped and continued children are
                    // events too.
                    sa.sa_flags = libc::SA_RESTART;
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(sig, &sa, &mut old) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    self.saved[i] = Some(old);
                }
            }
            (false, Some(old)) => {
                // SAFETY: `old` is what sigaction gave us for this signal;
                // a zeroed sigaction with SIG_DFL or SIG_IGN is valid.
                unsafe {
                    if std::mem::take(&mut self.to_default[i]) {
                        let mut sa: libc::sigaction = std::mem::zeroed();
                        // SIGPIPE stays ignored: lem always ignores it.
                        sa.sa_sigaction = if sig == libc::SIGPIPE {
                            libc::SIG_IGN
                        } else {
                            libc::SIG_DFL
                        };
                        libc::sigemptyset(&mut sa.sa_mask);
                        libc::sigaction(sig, &sa, std::ptr::null_mut());
                    } else {
                        libc::sigaction(sig, &old, std::ptr::null_mut());
                    }
                }
                self.saved[i] = None;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A child's change of state, as `SIGCHLD` handlers get it.
pub(crate) trait ChildEvent {
    /// Push the event's table onto `l`.
    ///
    /// # Safety
    /// `l` has room for a few values.
    unsafe fn push(&self, l: *mut lua_State);
}

/// Reaps the children that ended or changed state, calling its argument
/// for each event in order (children live in `lem.process`).
pub(crate) type Reaper = fn(&mut dyn FnMut(&dyn ChildEvent));

/// The reaper [`watch_children`] was given.
static REAPER: OnceLock<Reaper> = OnceLock::new();

/// Per Lua state: where deliveries become coroutines.
struct Shared {
    /// A thread anchored in the registry, never run: the stack on which
    /// dispatcher calls are built for [`Scheduler::spawn`](scheduler::Scheduler::spawn).
    thread: *mut lua_State,
    /// Registry reference of the Lua dispatcher, `dispatch(signum [, event])`.
    dispatch: Cell<c_int>,
    /// The pipe reader runs.
    reading: Cell<bool>,
}

/// Registry key of the userdata holding this state's `Rc<Shared>`.
const SHARED: &CStr = c"lem.signal.shared";

/// This state's [`Shared`], made on first use.
unsafe fn shared(l: *mut lua_State) -> Rc<Shared> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, SHARED.as_ptr()) == ffi::LUA_TUSERDATA {
            let s = (*(ffi::lua_touserdata(l, -1) as *const Rc<Shared>)).clone();
            ffi::lua_pop(l, 1);
            return s;
        }
        ffi::lua_pop(l, 1);
        let thread = ffi::lua_newthread(l);
        let s = Rc::new(Shared {
            thread,
            dispatch: Cell::new(ffi::LUA_NOREF),
            reading: Cell::new(false),
        });
        let p = ffi::lua_newuserdata(l, std::mem::size_of::<Rc<Shared>>()) as *mut Rc<Shared>;
        p.write(s.clone());
        // The userdata's metatable drops the Rc and anchors the thread.
        ffi::lua_createtable(l, 0, 2);
        ffi::lua_pushcfunction(l, lua::gc::<Rc<Shared>>);
        ffi::lua_setfield(l, -2, c"__gc".as_ptr());
        ffi::lua_pushvalue(l, -3);
        ffi::lua_setfield(l, -2, c"thread".as_ptr());
        ffi::lua_setmetatable(l, -2);
        ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, SHARED.as_ptr());
        ffi::lua_pop(l, 1);
        s
    }
}

/// The descriptor the reader watches (the pipe outlives every reader).
struct PipeEnd(RawFd);

impl AsRawFd for PipeEnd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Shared {
    /// Start the task that reads the pipe, once per state.
    fn start_reader(self: &Rc<Self>) -> io::Result<()> {
        if self.reading.get() {
            return Ok(());
        }
        let (rd, _) = pipe()?;
        // SAFETY: the pipe's read end stays open for the process's life.
        let afd = unsafe { AsyncFd::register_with_interest(PipeEnd(rd), Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        self.reading.set(true);
        let this = self.clone();
        tokio::task::spawn_local(async move {
            let mut buf = [0u8; 256];
            loop {
                let Ok(mut guard) = afd.readable().await else {
                    break;
                };
                // SAFETY: buf is writable for its length.
                let n = unsafe { libc::read(rd, buf.as_mut_ptr() as *mut c_void, buf.len()) };
                if n > 0 {
                    this.deliver(&buf[..n as usize]);
                } else if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                } else if n == 0 {
                    break;
                }
            }
            this.reading.set(false);
        });
        Ok(())
    }

    /// Turn the noted signals into dispatcher coroutines; reap children on
    /// SIGCHLD (once for however many notes).
    fn deliver(&self, sigs: &[u8]) {
        let mut child = false;
        for &sig in sigs {
            let sig = sig as c_int;
            if sig == libc::SIGCHLD {
                child = true;
            } else if dispositions().lua[sig as usize] {
                self.dispatch(sig, None);
            }
        }
        if let (true, Some(reap)) = (child, REAPER.get()) {
            let lua = dispositions().lua[libc::SIGCHLD as usize];
            reap(&mut |ev| {
                if lua {
                    self.dispatch(libc::SIGCHLD, Some(ev));
                }
            });
        }
    }

    /// Spawn `dispatch(sig [, event])`.
    fn dispatch(&self, sig: c_int, ev: Option<&dyn ChildEvent>) {
        let r = self.dispatch.get();
        if r == ffi::LUA_NOREF {
            return;
        }
        let t = self.thread;
        // SAFETY: the thread is anchored for the state's life and never
        // runs; no Lua code runs while the loop polls this task.
        unsafe {
            ffi::lua_checkstack(t, 4);
            ffi::lua_rawgeti(t, ffi::LUA_REGISTRYINDEX, r as _);
            ffi::lua_pushinteger(t, sig as _);
            match ev {
                Some(ev) => {
                    ev.push(t);
                    scheduler::get().spawn(t, 2);
                }
                None => {
                    scheduler::get().spawn(t, 1);
                }
            }
        }
    }
}

/// Catch SIGCHLD (and read the pipe) while lem has children to reap, and
/// reap them with `reap` (the same function every time).
///
/// # Safety
/// `l` must be a thread of lem's state, on the loop's thread.
pub(crate) unsafe fn watch_children(l: *mut lua_State, reap: Reaper) -> io::Result<()> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let _ = REAPER.set(reap);
        shared(l).start_reader()?;
        let mut d = dispositions();
        d.children = true;
        d.update(libc::SIGCHLD)
    }
}

/// No child left to reap: SIGCHLD gets its old action back unless Lua
/// handlers want it.
pub(crate) fn unwatch_children() {
    let mut d = dispositions();
    d.children = false;
    // Restoring an action we saved cannot fail.
    let _ = d.update(libc::SIGCHLD);
}

/// Have the reader reap children now, as if SIGCHLD had come: for a child
/// that may have ended before it was in the table.
pub(crate) fn poke_children() {
    let fd = WRITE_FD.load(Ordering::Acquire);
    if fd >= 0 {
        let b = libc::SIGCHLD as u8;
        // SAFETY: one byte from a live buffer.
        unsafe {
            libc::write(fd, &b as *const u8 as *const c_void, 1);
        }
    }
}

/// Check argument `arg` is a known signal number; raise otherwise.
unsafe fn check_signum(l: *mut lua_State, arg: c_int) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let n = lua::check_integer(l, arg);
        if n <= 0 || n >= NSIG as i64 {
            lua::arg_error(l, arg, c"invalid signal number");
        }
        n as c_int
    }
}

/// core.lookup(name | number) -> number | 'SIGNAME' | nil
unsafe extern "C-unwind" fn lookup(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        match ffi::lua_type(l, 1) {
            ffi::LUA_TSTRING => match lua::to_bytes(l, 1).and_then(number) {
                Some(n) => ffi::lua_pushinteger(l, n as _),
                None => ffi::lua_pushnil(l),
            },
            ffi::LUA_TNUMBER => {
                let n = ffi::lua_tonumber(l, 1);
                match (n.fract() == 0.0 && n.abs() < 1e9)
                    .then(|| name(n as c_int))
                    .flatten()
                {
                    Some(s) => {
                        lua::push_str(l, "SIG");
                        lua::push_str(l, s);
                        ffi::lua_concat(l, 2);
                    }
                    None => ffi::lua_pushnil(l),
                }
            }
            _ => lua::arg_error(l, 1, c"string or number expected"),
        }
        1
    }
}

/// core.sethandler(dispatch): the function every delivery is spawned with.
unsafe extern "C-unwind" fn sethandler(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_type(l, 1, ffi::LUA_TFUNCTION);
        let s = shared(l);
        ffi::lua_settop(l, 1);
        ffi::luaL_unref(l, ffi::LUA_REGISTRYINDEX, s.dispatch.get());
        s.dispatch.set(ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX));
        0
    }
}

/// core.watch(signum) -> true | nil, err
unsafe extern "C-unwind" fn watch(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let sig = check_signum(l, 1);
        let r = shared(l).start_reader().and_then(|()| {
            let mut d = dispositions();
            d.lua[sig as usize] = true;
            d.to_default[sig as usize] = true;
            let r = d.update(sig);
            if r.is_err() {
                d.lua[sig as usize] = false;
            }
            r
        });
        match r {
            Ok(()) => {
                ffi::lua_pushboolean(l, 1);
                1
            }
            Err(e) => lua::fail(l, &os_error_text(&e)),
        }
    }
}

/// core.unwatch(signum) -> true | nil, err: the signal's default action
/// comes back (unless lem still reaps children on SIGCHLD).
unsafe extern "C-unwind" fn unwatch(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let sig = check_signum(l, 1);
        let r = {
            let mut d = dispositions();
            d.lua[sig as usize] = false;
            d.update(sig)
        };
        match r {
            Ok(()) => {
                ffi::lua_pushboolean(l, 1);
                1
            }
            Err(e) => lua::fail(l, &os_error_text(&e)),
        }
    }
}

/// core.kill(pid, signum) -> true | nil, err
unsafe extern "C-unwind" fn kill(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let pid = lua::check_integer(l, 1);
        let sig = lua::check_integer(l, 2);
        if sig < 0 || sig >= NSIG as i64 {
            lua::arg_error(l, 2, c"invalid signal number");
        }
        if libc::kill(pid as libc::pid_t, sig as c_int) == 0 {
            ffi::lua_pushboolean(l, 1);
            1
        } else {
            lua::fail(l, &os_error_text(&io::Error::last_os_error()))
        }
    }
}

const FUNCS: &[Reg] = &[
    (c"lookup", lookup),
    (c"sethandler", sethandler),
    (c"watch", watch),
    (c"unwatch", unwatch),
    (c"kill", kill),
];

/// luaopen for `lem.signal.core`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::new_lib(l, FUNCS);
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(number(b"SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(number(b"term"), Some(libc::SIGTERM));
        assert_eq!(number(b"SigChld"), Some(libc::SIGCHLD));
        assert_eq!(number(b"cld"), Some(libc::SIGCHLD));
        assert_eq!(number(b"SIG"), None);
        assert_eq!(number(b"nope"), None);
        assert_eq!(name(libc::SIGABRT), Some("ABRT"));
        assert_eq!(name(libc::SIGIO), Some("IO"));
        assert_eq!(name(0), None);
        for &(_, n) in NAMES {
            assert!(n > 0 && (n as usize) < NSIG);
        }
    }
}
