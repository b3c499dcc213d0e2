//! `lem.process.core`: child processes whose end can be awaited, behind
//! `io.spawn` and `io.popen` (Lua half: `lua/lem/process.lua`).
//!
//! lem reaps only the children it started, by pid, so `os.execute` and the
//! stdlib's `io.popen` keep their own. Each child is in a table from its
//! start until it ends (and, while a process object refers to it, until that
//! object is collected, so a late `wait()` still gets the status). SIGCHLD
//! is caught while any child runs ([`crate::system::signal`] reads the
//! deliveries and calls [`reap_each`], which this file registers); every event goes to the `SIGCHLD` handlers, the end
//! also to each coroutine in `wait()`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_int, CStr, OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use tokio::sync::oneshot;

use crate::io::fd::os_error_text;
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::pool;
use crate::runtime::scheduler::{self, Commit, Resume};
use crate::system::signal;

static CHILD: &CStr = c"lem.process.Child";

/// What happened to a child, as `waitpid` tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Exited(c_int),
    Signaled { signal: c_int, core: bool },
    Stopped(c_int),
    Continued,
}

/// One child event: the `SIGCHLD` handlers' table, and `wait()`'s result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    pub pid: libc::pid_t,
    pub kind: Kind,
}

impl signal::ChildEvent for Event {
    unsafe fn push(&self, l: *mut lua_State) {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe { Event::push(self, l) }
    }
}

impl Event {
    fn from_status(pid: libc::pid_t, status: c_int) -> Option<Event> {
        let kind = if libc::WIFEXITED(status) {
            Kind::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Kind::Signaled {
                signal: libc::WTERMSIG(status),
                core: libc::WCOREDUMP(status),
            }
        } else if libc::WIFSTOPPED(status) {
            Kind::Stopped(libc::WSTOPSIG(status))
        } else if libc::WIFCONTINUED(status) {
            Kind::Continued
        } else {
            return None;
        };
        Some(Event { pid, kind })
    }

    /// The child is gone (exited or killed).
    fn ended(&self) -> bool {
        matches!(self.kind, Kind::Exited(_) | Kind::Signaled { .. })
    }

    /// Push `{pid =, rpid =, type =, status | signal [, coredumped]}`.
    /// LEM: `pid` was the watched pid (0: any) and `rpid` the child's; here
    /// both are the child's.
    ///
    /// # Safety
    /// `l` needs three free slots.
    pub(crate) unsafe fn push(&self, l: *mut lua_State) {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            ffi::lua_createtable(l, 0, 5);
            let int = |v: c_int, k: &CStr| {
                ffi::lua_pushinteger(l, v as _);
                ffi::lua_setfield(l, -2, k.as_ptr());
            };
            int(self.pid, c"pid");
            int(self.pid, c"rpid");
            let ty = match self.kind {
                Kind::Exited(status) => {
                    int(status, c"status");
                    "exited"
                }
                Kind::Signaled { signal, core } => {
                    int(signal, c"signal");
                    ffi::lua_pushboolean(l, core as c_int);
                    ffi::lua_setfield(l, -2, c"coredumped".as_ptr());
                    "signaled"
                }
                Kind::Stopped(signal) => {
                    int(signal, c"signal");
                    "stopped"
                }
                Kind::Continued => "continued",
            };
            lua::push_str(l, ty);
            ffi::lua_setfield(l, -2, c"type".as_ptr());
        }
    }
}

/// A child lem started.
struct Child {
    /// How it ended, once it has.
    end: Option<Event>,
    /// The coroutines in `wait()`.
    waiters: Vec<oneshot::Sender<Event>>,
    /// A process object refers to it: keep the entry after the end.
    owned: bool,
}

thread_local! {
    static CHILDREN: RefCell<HashMap<libc::pid_t, Child>> = RefCell::new(HashMap::new());
    /// Spawns in flight plus children not yet ended: SIGCHLD is caught
    /// while this is not zero.
    static ACTIVE: Cell<usize> = const { Cell::new(0) };
}

/// One fewer spawn in flight or child running.
fn deactivate() {
    let n = ACTIVE.with(|a| {
        let n = a.get().saturating_sub(1);
        a.set(n);
        n
    });
    if n == 0 {
        signal::unwatch_children();
    }
}

/// A spawn in flight, counted in `ACTIVE`: dropped (the spawn failed, or its
/// suspension was never applied), it uncounts itself; once the child is in
/// the table, [`Pending::started`] hands the count over to it.
struct Pending;

impl Pending {
    fn new() -> Pending {
        ACTIVE.with(|a| a.set(a.get() + 1));
        Pending
    }

    fn started(self) {
        std::mem::forget(self);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        deactivate();
    }
}

/// [`reap`] for [`signal`]: each event in order.
fn reap_each(f: &mut dyn FnMut(&dyn signal::ChildEvent)) {
    for ev in reap() {
        f(&ev);
    }
}

/// Collect what happened to lem's running children (non-blocking), settle
/// the ended ones, and return every event for the `SIGCHLD` handlers.
pub(crate) fn reap() -> Vec<Event> {
    let running: Vec<libc::pid_t> = CHILDREN.with(|c| {
        c.borrow()
            .iter()
            .filter(|(_, ch)| ch.end.is_none())
            .map(|(&pid, _)| pid)
            .collect()
    });
    let mut events = Vec::new();
    for pid in running {
        loop {
            let mut status: c_int = 0;
            // SAFETY: plain system call on our own child.
            let r = unsafe {
                libc::waitpid(
                    pid,
                    &mut status,
                    libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED,
                )
            };
            if r == 0 {
                break;
            }
            if r < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                // ECHILD: reaped behind our back (SIGCHLD ignored by someone,
                // say). Its waiters learn it from their dropped senders.
                CHILDREN.with(|c| c.borrow_mut().remove(&pid));
                deactivate();
                break;
            }
            let Some(ev) = Event::from_status(pid, status) else {
                continue;
            };
            events.push(ev);
            if ev.ended() {
                settle(ev);
                break;
            }
        }
    }
    events
}

/// Record a child's end and wake its waiters.
fn settle(ev: Event) {
    let waiters = CHILDREN.with(|c| {
        let mut c = c.borrow_mut();
        let Some(ch) = c.get_mut(&ev.pid) else {
            return Vec::new();
        };
        ch.end = Some(ev);
        let w = std::mem::take(&mut ch.waiters);
        if !ch.owned {
            c.remove(&ev.pid);
        }
        w
    });
    for tx in waiters {
        let _ = tx.send(ev);
    }
    deactivate();
}

/// How a child's stdin, stdout or stderr is set up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Inherit,
    Null,
    /// A pipe, returned as a Stream.
    Pipe,
    /// stdin and stdout both on one socket pair (`popen(cmd, 'rw')`).
    Duplex,
}

const MODES: [&CStr; 3] = [c"inherit", c"null", c"pipe"];

/// What to run.
struct Spec {
    argv: Vec<OsString>,
    env: Option<Vec<(OsString, OsString)>>,
    cwd: Option<PathBuf>,
    stdio: [Mode; 3],
}

/// The running child: its pid and our ends of its piped stdio.
type Started = (libc::pid_t, [Option<OwnedFd>; 3]);

impl Spec {
    /// Start the child (on a pool thread: fork and exec take a while).
    fn start(self) -> io::Result<Started> {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]);
        if let Some(env) = self.env {
            cmd.env_clear();
            cmd.envs(env);
        }
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        let mut duplex = None;
        if self.stdio[0] == Mode::Duplex {
            let (ours, theirs) = UnixStream::pair()?;
            cmd.stdin(Stdio::from(OwnedFd::from(theirs.try_clone()?)));
            cmd.stdout(Stdio::from(OwnedFd::from(theirs)));
            duplex = Some(OwnedFd::from(ours));
        } else {
            cmd.stdin(stdio(self.stdio[0]));
            cmd.stdout(stdio(self.stdio[1]));
        }
        cmd.stderr(stdio(self.stdio[2]));
        let mut child = cmd.spawn()?;
        let pid = child.id() as libc::pid_t;
        let fds = match duplex {
            Some(fd) => [Some(fd), None, None],
            None => [
                child.stdin.take().map(OwnedFd::from),
                child.stdout.take().map(OwnedFd::from),
                child.stderr.take().map(OwnedFd::from),
            ],
        };
        // Dropping a std Child neither waits nor kills: lem reaps it.
        drop(child);
        Ok((pid, fds))
    }
}

fn stdio(m: Mode) -> Stdio {
    match m {
        Mode::Inherit => Stdio::inherit(),
        Mode::Null => Stdio::null(),
        Mode::Pipe | Mode::Duplex => Stdio::piped(),
    }
}

/// Start `spec` on the pool and suspend; then record the child (owned by a
/// process object if `owned`) and return what `push` makes of it.
unsafe fn start(
    l: *mut lua_State,
    spec: Spec,
    owned: bool,
    push: impl FnOnce(*mut lua_State, Started) -> c_int + 'static,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        // SIGCHLD is caught before the child can end.
        if let Err(e) = signal::watch_children(l, reap_each) {
            return lua::fail(l, &os_error_text(&e));
        }
        let pending = Pending::new();
        let program = spec.argv[0].clone();
        let fut = Box::pin(async move {
            let r = pool::run(move || spec.start()).await;
            if let Ok((pid, _)) = &r {
                pending.started();
                CHILDREN.with(|c| {
                    c.borrow_mut().insert(
                        *pid,
                        Child {
                            end: None,
                            waiters: Vec::new(),
                            owned,
                        },
                    )
                });
                // It may have ended before it was in the table.
                signal::poke_children();
            } else {
                drop(pending);
            }
            Resume::Push(Box::new(move |t| match r {
                Ok(started) => push(t, started),
                Err(e) => {
                    let msg = format!(
                        "cannot run '{}': {}",
                        program.to_string_lossy(),
                        os_error_text(&e)
                    );
                    lua::fail(t, &msg)
                }
            }))
        });
        scheduler::prepare_or_raise(l, Commit::Future(fut));
        crate::runtime::scheduler::suspend(l)
    }
}

/// Push a Stream on `fd`, or nil (when there is none, or the loop cannot
/// watch it).
unsafe fn push_stream(l: *mut lua_State, fd: Option<OwnedFd>) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match fd {
            Some(fd) => {
                if crate::io::push_stream(l, fd) == 2 {
                    ffi::lua_pop(l, 2);
                    ffi::lua_pushnil(l);
                }
            }
            None => ffi::lua_pushnil(l),
        }
    }
}

/// Check that `argv` at `arg` is a table of strings; raise otherwise.
unsafe fn check_argv(l: *mut lua_State, arg: c_int) -> usize {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::check_type(l, arg, ffi::LUA_TTABLE);
        let n = ffi::lua_rawlen(l, arg) as usize;
        if n == 0 {
            lua::arg_error(l, arg, c"argv is empty: no program to run");
        }
        for i in 1..=n {
            ffi::lua_rawgeti(l, arg, i as _);
            if ffi::lua_type(l, -1) != ffi::LUA_TSTRING {
                let msg = ffi::lua_pushfstring(
                    l,
                    c"argv[%d] is a %s, not a string".as_ptr(),
                    i as c_int,
                    ffi::luaL_typename(l, -1),
                );
                lua::arg_error_ptr(l, arg, msg);
            }
            ffi::lua_pop(l, 1);
        }
        n
    }
}

/// Check that the environment at `arg` is nil or a table of strings.
unsafe fn check_env(l: *mut lua_State, arg: c_int) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if lua::is_none_or_nil(l, arg) {
            return;
        }
        lua::check_type(l, arg, ffi::LUA_TTABLE);
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, arg) != 0 {
            if ffi::lua_type(l, -2) != ffi::LUA_TSTRING || ffi::lua_type(l, -1) != ffi::LUA_TSTRING
            {
                lua::arg_error(l, arg, c"env must map strings to strings");
            }
            ffi::lua_pop(l, 1);
        }
    }
}

unsafe fn string_at(l: *mut lua_State, idx: c_int) -> OsString {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { OsStr::from_bytes(lua::to_bytes(l, idx).unwrap_or_default()).to_owned() }
}

/// core.spawn(argv [, env [, cwd [, stdin [, stdout [, stderr]]]]])
///   -> child, pid, stdin, stdout, stderr | nil, err
///
/// `env` replaces the whole environment; the stdio modes are `'inherit'`
/// (default), `'null'` or `'pipe'` (a Stream is returned for it).
unsafe extern "C-unwind" fn spawn(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let n = check_argv(l, 1);
        check_env(l, 2);
        if !lua::is_none_or_nil(l, 3) {
            lua::check_lstring(l, 3, std::ptr::null_mut());
        }
        let mut stdio = [Mode::Inherit; 3];
        for (i, m) in stdio.iter_mut().enumerate() {
            let arg = 4 + i as c_int;
            let opts = [
                MODES[0].as_ptr(),
                MODES[1].as_ptr(),
                MODES[2].as_ptr(),
                std::ptr::null(),
            ];
            *m = match lua::check_option(l, arg, c"inherit".as_ptr(), opts.as_ptr()) {
                0 => Mode::Inherit,
                1 => Mode::Null,
                _ => Mode::Pipe,
            };
        }
        // Every check done: collect.
        let mut argv = Vec::with_capacity(n);
        for i in 1..=n {
            ffi::lua_rawgeti(l, 1, i as _);
            argv.push(string_at(l, -1));
            ffi::lua_pop(l, 1);
        }
        let env = if lua::is_none_or_nil(l, 2) {
            None
        } else {
            let mut env = Vec::new();
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, 2) != 0 {
                env.push((string_at(l, -2), string_at(l, -1)));
                ffi::lua_pop(l, 1);
            }
            Some(env)
        };
        let cwd = (!lua::is_none_or_nil(l, 3)).then(|| PathBuf::from(string_at(l, 3)));
        let spec = Spec {
            argv,
            env,
            cwd,
            stdio,
        };
        start(l, spec, true, |t, (pid, [i, o, e])| {
            lua::push_object(t, CHILD, ChildRef { pid });
            ffi::lua_pushinteger(t, pid as _);
            push_stream(t, i);
            push_stream(t, o);
            push_stream(t, e);
            5
        })
    }
}

/// core.popen(cmd [, mode]) -> stream, pid | nil, err
///
/// `/bin/sh -c cmd`; mode `'r'` (default: its stdout), `'w'` (its stdin),
/// `'rw'` (both, over one socket pair).
unsafe extern "C-unwind" fn popen(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_lstring(l, 1, std::ptr::null_mut());
        let mode = if lua::is_none_or_nil(l, 2) {
            b"r".as_slice()
        } else {
            lua::check_lstring(l, 2, std::ptr::null_mut());
            lua::to_bytes(l, 2).unwrap_or_default()
        };
        let stdio = match mode {
            b"r" => [Mode::Inherit, Mode::Pipe, Mode::Inherit],
            b"w" => [Mode::Pipe, Mode::Inherit, Mode::Inherit],
            b"rw" => [Mode::Duplex, Mode::Duplex, Mode::Inherit],
            // LEM's text: `invalid option 'x'`.
            _ => {
                let msg = ffi::lua_pushfstring(
                    l,
                    c"invalid option '%s'".as_ptr(),
                    ffi::lua_tostring(l, 2),
                );
                lua::arg_error_ptr(l, 2, msg)
            }
        };
        let spec = Spec {
            argv: vec!["/bin/sh".into(), "-c".into(), string_at(l, 1)],
            env: None,
            cwd: None,
            stdio,
        };
        start(l, spec, false, |t, (pid, fds)| {
            let [i, o, _] = fds;
            push_stream(t, i.or(o));
            ffi::lua_pushinteger(t, pid as _);
            2
        })
    }
}

/// The Lua handle of a child started by `spawn`.
struct ChildRef {
    pid: libc::pid_t,
}

impl Drop for ChildRef {
    /// Collected: nobody can `wait()` any more; forget the child once it
    /// has ended (now, or when reaped).
    fn drop(&mut self) {
        CHILDREN.with(|c| {
            let mut c = c.borrow_mut();
            if let Some(ch) = c.get_mut(&self.pid) {
                if ch.end.is_some() {
                    c.remove(&self.pid);
                } else {
                    ch.owned = false;
                }
            }
        });
    }
}

/// child:wait() -> event | nil, err
///
/// Suspends until the child has ended; returns how (`type` `'exited'` with
/// `status`, or `'signaled'` with `signal` and `coredumped`), at once if it
/// already has. Several coroutines may wait on one child.
unsafe extern "C-unwind" fn child_wait(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let c: &ChildRef = lua::check_object(l, 1, CHILD);
        let pid = c.pid;
        let state = CHILDREN.with(|c| {
            let mut c = c.borrow_mut();
            match c.get_mut(&pid) {
                None => None,
                Some(ch) => match ch.end {
                    Some(ev) => Some(Ok(ev)),
                    None => {
                        let (tx, rx) = oneshot::channel();
                        ch.waiters.push(tx);
                        Some(Err(rx))
                    }
                },
            }
        });
        match state {
            None => lua::fail(
                l,
                &os_error_text(&io::Error::from_raw_os_error(libc::ECHILD)),
            ),
            Some(Ok(ev)) => {
                ev.push(l);
                1
            }
            Some(Err(rx)) => {
                let fut = Box::pin(async move {
                    match rx.await {
                        Ok(ev) => Resume::Push(Box::new(move |t| {
                            ev.push(t);
                            1
                        })),
                        Err(_) => Resume::Push(Box::new(|t| {
                            lua::fail(
                                t,
                                &os_error_text(&io::Error::from_raw_os_error(libc::ECHILD)),
                            )
                        })),
                    }
                });
                scheduler::prepare_or_raise(l, Commit::Future(fut));
                crate::runtime::scheduler::suspend(l)
            }
        }
    }
}

/// child:kill(signum) -> true | nil, err
///
/// `nil, 'No such process'` once the child has been reaped: its pid may
/// belong to someone else by then.
unsafe extern "C-unwind" fn child_kill(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let c: &ChildRef = lua::check_object(l, 1, CHILD);
        let sig = lua::check_integer(l, 2);
        if !(0..65).contains(&sig) {
            lua::arg_error(l, 2, c"invalid signal number");
        }
        let running =
            CHILDREN.with(|ch| ch.borrow().get(&c.pid).is_some_and(|ch| ch.end.is_none()));
        let r = if !running {
            Err(io::Error::from_raw_os_error(libc::ESRCH))
        } else if libc::kill(c.pid, sig as c_int) == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
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

/// child:pid() -> pid
unsafe extern "C-unwind" fn child_pid(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let c: &ChildRef = lua::check_object(l, 1, CHILD);
        ffi::lua_pushinteger(l, c.pid as _);
        1
    }
}

const FUNCS: &[Reg] = &[(c"spawn", spawn), (c"popen", popen)];

const CHILD_METHODS: &[Reg] = &[
    (c"wait", child_wait),
    (c"kill", child_kill),
    (c"pid", child_pid),
];

/// luaopen for `lem.process.core`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::new_class(l, CHILD, CHILD_METHODS, Some(lua::gc::<ChildRef>));
        ffi::lua_pop(l, 1);
        lua::new_lib(l, FUNCS);
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wait_statuses() {
        let ev = |s| Event::from_status(7, s).map(|e| e.kind);
        assert_eq!(ev(3 << 8), Some(Kind::Exited(3)));
        assert_eq!(
            ev(libc::SIGTERM),
            Some(Kind::Signaled {
                signal: libc::SIGTERM,
                core: false
            })
        );
        assert_eq!(
            ev(libc::SIGSEGV | 0x80),
            Some(Kind::Signaled {
                signal: libc::SIGSEGV,
                core: true
            })
        );
        assert_eq!(
            ev((libc::SIGSTOP << 8) | 0x7f),
            Some(Kind::Stopped(libc::SIGSTOP))
        );
        assert_eq!(ev(0xffff), Some(Kind::Continued));
        assert!(Event::from_status(7, 0).unwrap().ended());
        assert!(!Event::from_status(7, 0xffff).unwrap().ended());
    }
}
