//! File: regular files and block devices; every operation that touches the
//! disk runs on the pool (Lua half: `File.lines` in `lua/lem/io.lua`). Also
//! `io.open` and `io.streamfile`. See docs/io.md.
//!
//! Reads use the same formats and buffer as streams; the buffer reads
//! ahead, so the descriptor's offset is past the unread bytes: `write`,
//! `seek` and `lock` account for that and drop the buffer first.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::fd::{fail_os, fd_kind, FdKind};
use super::op::{
    can_suspend, cannot_suspend, check_suspendable, setlimit, settimeout, Op, Settings,
};
use super::stream::push_stream;
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::parsers::{self, Fmt, Input};
use crate::runtime::pool;
use crate::runtime::scheduler::{self, Commit, Resume};

pub(crate) static FILE: &CStr = c"lem.File";

/// Bytes read from the disk per pool job (more when `read(n)` asks).
const FILE_CHUNK: usize = 64 << 10;

/// Most bytes one pool job reads, however many `read(n)` asks for: a size
/// from a script is never trusted for an allocation (`read(2^40)` must
/// not abort the process, `read(2^31)` not reserve 2 GiB up front), so
/// the buffer grows as data arrives.
const FILE_JOB_MAX: usize = 4 << 20;

pub(crate) struct Inner {
    /// `None` once closed; pool jobs hold their own `Arc`.
    fd: RefCell<Option<Arc<OwnedFd>>>,
    input: RefCell<Input>,
    /// One operation at a time.
    op: Op,
    timeout: Cell<Option<Duration>>,
    limit: Cell<usize>,
}

/// The userdata: `lem.File`.
pub(crate) struct File(Rc<Inner>);

impl File {
    /// The descriptor, unless closed (for `stream:sendfile`).
    pub(crate) fn fd(&self) -> Option<Arc<OwnedFd>> {
        self.0.fd.borrow().clone()
    }
}

/// Push a File on `fd` (a regular file or block device). Returns 1.
///
/// # Safety
/// `l` must be a thread of lem's state.
pub(crate) unsafe fn push_file(l: *mut lua_State, fd: OwnedFd) -> c_int {
    // SAFETY: `l` is a live thread of lem's state (this function's contract).
    unsafe { push_shared_file(l, Arc::new(fd)) }
}

/// Push a File on a descriptor others hold too (hathaway.static's cache of
/// open files): closing the File drops its hold, the descriptor closes with
/// the last one. Its file position is shared with them, so such a File is
/// meant to be read at offsets (sendfile, pread). Returns 1.
///
/// # Safety
/// `l` must be a thread of lem's state.
pub(crate) unsafe fn push_shared_file(l: *mut lua_State, fd: Arc<OwnedFd>) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::new_class(l, FILE, METHODS, Some(lua::gc::<File>));
        ffi::lua_pop(l, 1);
        let inner = Inner {
            fd: RefCell::new(Some(fd)),
            input: RefCell::new(Input::default()),
            op: Op::default(),
            timeout: Cell::new(None),
            limit: Cell::new(parsers::DEFAULT_LIMIT),
        };
        lua::push_object(l, FILE, File(Rc::new(inner)));
        1
    }
}

impl Settings for File {
    const CLASS: &'static CStr = FILE;
    fn timeout(&self) -> &Cell<Option<Duration>> {
        &self.0.timeout
    }
    fn limit(&self) -> &Cell<usize> {
        &self.0.limit
    }
}

#[inline]
unsafe fn check_file<'a>(l: *mut lua_State) -> &'a File {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { lua::check_object(l, 1, FILE) }
}

/// What a pool job hands back to the coroutine.
type Finish = Box<dyn FnOnce(*mut lua_State, &Inner) -> c_int>;

/// Suspend the caller on `job` (a future run on the loop, bounded by the
/// file's timeout), then finish with its result. The caller has checked
/// that the file is open and idle.
unsafe fn suspend_on(
    l: *mut lua_State,
    inner: &Rc<Inner>,
    job: impl std::future::Future<Output = Finish> + 'static,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let inner = inner.clone();
        scheduler::get().prepare(Commit::Custom(Box::new(move |w| {
            let me = inner.clone();
            let timeout = inner.timeout.get();
            let fut = Box::pin(async move {
                let r = match timeout {
                    None => Some(job.await),
                    Some(d) => tokio::time::timeout(d, job).await.ok(),
                };
                Resume::Push(Box::new(move |t| {
                    me.op.end();
                    if me.fd.borrow().is_none() {
                        return lua::fail(t, "closed");
                    }
                    match r {
                        Some(f) => f(t, &me),
                        None => lua::fail(t, "timeout"),
                    }
                }))
            });
            inner.op.begin(w, fut);
        })));
        crate::runtime::scheduler::suspend(l)
    }
}

/// Check the file is open and idle; `Err(n)` has pushed `nil, err`.
unsafe fn ready_fd(l: *mut lua_State, f: &File) -> Result<Arc<OwnedFd>, c_int> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if f.0.op.is_active() {
            return Err(lua::fail(l, "busy"));
        }
        match f.fd() {
            Some(fd) => Ok(fd),
            None => Err(lua::fail(l, "closed")),
        }
    }
}

/// file:read([fmt, ...]) -> data | nil, 'eof' | nil, err
unsafe extern "C-unwind" fn file_read(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let f = check_file(l);
        let fmt = parsers::check_format(l, 2);
        file_read_fmt(l, f, fmt)
    }
}

/// file:readp(parser, ...): `read` with a `parsers.lookup` value.
unsafe extern "C-unwind" fn file_readp(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let f = check_file(l);
        lua::check_any(l, 2);
        let fmt = parsers::check_format(l, 2);
        file_read_fmt(l, f, fmt)
    }
}

unsafe fn file_read_fmt(l: *mut lua_State, f: &File, fmt: Fmt) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let fd = match ready_fd(l, f) {
            Ok(fd) => fd,
            Err(n) => return n,
        };
        let limit = f.0.limit.get();
        {
            let mut input = f.0.input.borrow_mut();
            if let Some(scan) = fmt.look(&input, false, limit) {
                drop(fd);
                // Raised under a memory cap once the input is given back
                // (see `lua::push_protected`).
                let r = lua::push_protected(l, &mut |l| {
                    fmt.finish(l, &mut input, scan, false, limit, "eof")
                });
                drop(input);
                return match r {
                    Some(n) => n,
                    None => ffi::lua_error(l),
                };
            }
        }
        if !can_suspend(l) {
            drop(fd);
            cannot_suspend(l);
        }
        let inner = f.0.clone();
        let job = async move {
            let mut eof = false;
            let mut failed = None;
            loop {
                let want = match fmt {
                    Fmt::Count(n) => n
                        .saturating_sub(inner.input.borrow().len())
                        .clamp(FILE_CHUNK, FILE_JOB_MAX),
                    _ => FILE_CHUNK,
                };
                let fd2 = fd.clone();
                let r = pool::run(move || {
                    let mut buf = vec![0u8; want];
                    let r = loop {
                        // SAFETY: buf is writable for its length.
                        let n = { libc::read(fd2.as_raw_fd(), buf.as_mut_ptr() as *mut _, want) };
                        if n >= 0 {
                            break Ok(n as usize);
                        }
                        let e = io::Error::last_os_error();
                        if e.raw_os_error() != Some(libc::EINTR) {
                            break Err(e);
                        }
                    };
                    r.map(|n| {
                        buf.truncate(n);
                        buf
                    })
                })
                .await;
                match r {
                    Ok(b) if b.is_empty() => {
                        eof = true;
                        break;
                    }
                    Ok(b) => {
                        inner.input.borrow_mut().extend(&b);
                        if fmt.ready(&inner.input.borrow(), false, limit) {
                            break;
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            Box::new(move |t: *mut lua_State, me: &Inner| match failed {
                Some(e) => fail_os(t, &e),
                None => fmt.finish_now(t, &mut me.input.borrow_mut(), eof, limit, "eof"),
            }) as Finish
        };
        let inner = f.0.clone();
        suspend_on(l, &inner, job)
    }
}

/// Move the descriptor's offset back over read-ahead bytes, dropping them
/// (before a write, seek or lock, on the pool).
fn unread(fd: RawFd, buffered: usize) -> io::Result<()> {
    if buffered > 0 {
        // SAFETY: lseek on a descriptor we hold.
        if unsafe { libc::lseek(fd, -(buffered as libc::off_t), libc::SEEK_CUR) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Take the read-ahead out of the buffer: its length.
fn take_buffered(inner: &Inner) -> usize {
    let mut input = inner.input.borrow_mut();
    let n = input.len();
    input.clear();
    n
}

/// file:write(s1, s2, ...) -> true | nil, err
unsafe extern "C-unwind" fn file_write(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let f = check_file(l);
        let n = ffi::lua_gettop(l);
        for i in 2..=n {
            lua::check_lstring(l, i, std::ptr::null_mut());
        }
        check_suspendable(l);
        let fd = match ready_fd(l, f) {
            Ok(fd) => fd,
            Err(n) => return n,
        };
        let mut data = Vec::new();
        for i in 2..=n {
            data.extend_from_slice(lua::to_bytes(l, i).unwrap_or_default());
        }
        let buffered = take_buffered(&f.0);
        let job = async move {
            let r = pool::run(move || -> io::Result<()> {
                unread(fd.as_raw_fd(), buffered)?;
                let mut off = 0;
                while off < data.len() {
                    // SAFETY: data is readable for its length.
                    let w = {
                        libc::write(
                            fd.as_raw_fd(),
                            data[off..].as_ptr() as *const _,
                            data.len() - off,
                        )
                    };
                    if w < 0 {
                        let e = io::Error::last_os_error();
                        if e.raw_os_error() == Some(libc::EINTR) {
                            continue;
                        }
                        return Err(e);
                    }
                    off += w as usize;
                }
                Ok(())
            })
            .await;
            Box::new(move |t: *mut lua_State, _: &Inner| match r {
                Ok(()) => {
                    ffi::lua_pushboolean(t, 1);
                    1
                }
                Err(e) => fail_os(t, &e),
            }) as Finish
        };
        suspend_on(l, &f.0, job)
    }
}

/// Run `op` on the pool with the descriptor and the read-ahead count; push
/// its integer result (`true` when `boolean`).
unsafe fn pool_int(
    l: *mut lua_State,
    f: &File,
    drop_buffer: bool,
    boolean: bool,
    op: impl FnOnce(RawFd, usize) -> io::Result<i64> + Send + 'static,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        check_suspendable(l);
        let fd = match ready_fd(l, f) {
            Ok(fd) => fd,
            Err(n) => return n,
        };
        let buffered = if drop_buffer {
            take_buffered(&f.0)
        } else {
            f.0.input.borrow().len()
        };
        let job = async move {
            let r = pool::run(move || op(fd.as_raw_fd(), buffered)).await;
            Box::new(move |t: *mut lua_State, _: &Inner| match r {
                Ok(_) if boolean => {
                    ffi::lua_pushboolean(t, 1);
                    1
                }
                Ok(v) => {
                    ffi::lua_pushinteger(t, v as _);
                    1
                }
                Err(e) => fail_os(t, &e),
            }) as Finish
        };
        suspend_on(l, &f.0, job)
    }
}

/// file:size() -> bytes | nil, err
unsafe extern "C-unwind" fn file_size(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let f = check_file(l);
        pool_int(l, f, false, false, |fd, _| {
            // SAFETY: fstat into a zeroed struct.
            let mut st: libc::stat = { std::mem::zeroed() };
            if { libc::fstat(fd, &mut st) } < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(st.st_size as i64)
        })
    }
}

/// file:seek([whence [, offset]]) -> position | nil, err
unsafe extern "C-unwind" fn file_seek(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let f = check_file(l);
        let whence = if lua::is_none_or_nil(l, 2) {
            libc::SEEK_CUR
        } else {
            let s = lua::check_lstring(l, 2, std::ptr::null_mut());
            match CStr::from_ptr(s).to_bytes() {
                b"set" => libc::SEEK_SET,
                b"cur" => libc::SEEK_CUR,
                b"end" => libc::SEEK_END,
                _ => lua::arg_error(l, 2, c"invalid option"),
            }
        };
        let offset = lua::opt_integer(l, 3, 0);
        pool_int(l, f, true, false, move |fd, buffered| {
            let off = if whence == libc::SEEK_CUR {
                offset - buffered as i64
            } else {
                offset
            };
            // SAFETY: lseek on a descriptor we hold.
            let r = { libc::lseek(fd, off as libc::off_t, whence) };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(r as i64)
        })
    }
}

/// file:lock(mode [, start [, len]]) -> true | nil, err: a POSIX record
/// lock (`'r'`, `'w'`, `'u'` to unlock) that does not wait.
unsafe extern "C-unwind" fn file_lock(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let f = check_file(l);
        let s = lua::check_lstring(l, 2, std::ptr::null_mut());
        let ty = match CStr::from_ptr(s).to_bytes() {
            b"r" => libc::F_RDLCK,
            b"w" => libc::F_WRLCK,
            b"u" => libc::F_UNLCK,
            // LEM's text.
            _ => lua::arg_error(l, 2, c"invalid option"),
        };
        let start = lua::opt_integer(l, 3, 0);
        let len = lua::opt_integer(l, 4, 0);
        pool_int(l, f, true, true, move |fd, _| {
            // SAFETY: a zeroed flock filled below.
            let mut fl: libc::flock = { std::mem::zeroed() };
            fl.l_type = ty as _;
            fl.l_whence = libc::SEEK_SET as _;
            fl.l_start = start as _;
            fl.l_len = len as _;
            if { libc::fcntl(fd, libc::F_SETLK, &fl) } < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(1)
        })
    }
}

/// file:close() -> true | nil, 'closed'
unsafe extern "C-unwind" fn file_close(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let f = check_file(l);
        let fd = f.0.fd.borrow_mut().take();
        if fd.is_none() {
            return lua::fail(l, "closed");
        }
        f.0.op.cancel("closed");
        f.0.input.borrow_mut().clear();
        // Closing a regular file does not wait for the disk (no fsync).
        drop(fd);
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// file:closed() -> boolean
unsafe extern "C-unwind" fn file_closed(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let f = check_file(l);
        ffi::lua_pushboolean(l, f.0.fd.borrow().is_none() as c_int);
        1
    }
}

/// file:fileno() -> fd | nil, 'closed'
unsafe extern "C-unwind" fn file_fileno(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let f = check_file(l);
        match f.fd() {
            Some(fd) => {
                ffi::lua_pushinteger(l, fd.as_raw_fd() as _);
                1
            }
            None => lua::fail(l, "closed"),
        }
    }
}

/// `open(2)` flags for a Lua mode: `r w a`, then any of `+ b x`.
fn mode_flags(mode: &[u8]) -> Option<c_int> {
    let (&first, rest) = mode.split_first()?;
    let mut plus = false;
    let mut excl = false;
    for &c in rest {
        match c {
            b'+' if !plus => plus = true,
            b'b' => {}
            b'x' if !excl && first != b'r' => excl = true,
            _ => return None,
        }
    }
    let rw = if plus { libc::O_RDWR } else { 0 };
    let flags = match first {
        b'r' => {
            if plus {
                libc::O_RDWR
            } else {
                libc::O_RDONLY
            }
        }
        b'w' => (if plus { rw } else { libc::O_WRONLY }) | libc::O_CREAT | libc::O_TRUNC,
        b'a' => (if plus { rw } else { libc::O_WRONLY }) | libc::O_CREAT | libc::O_APPEND,
        _ => return None,
    };
    Some(flags | if excl { libc::O_EXCL } else { 0 } | libc::O_CLOEXEC)
}

/// io.open(path [, mode [, perm]]) -> File | Stream | nil, err
pub(crate) unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let mut len = 0;
        let p = lua::check_lstring(l, 1, &mut len);
        let path = std::slice::from_raw_parts(p as *const u8, len);
        let flags = if lua::is_none_or_nil(l, 2) {
            Some(libc::O_RDONLY | libc::O_CLOEXEC)
        } else {
            let mut mlen = 0;
            let m = lua::check_lstring(l, 2, &mut mlen);
            mode_flags(std::slice::from_raw_parts(m as *const u8, mlen))
        };
        let Some(flags) = flags else {
            // LEM's text (Lua's io.open says `invalid mode`).
            lua::arg_error(l, 2, c"invalid mode string");
        };
        let perm = super::unix::check_perm(l, 3).unwrap_or(0o666);
        if path.contains(&0) {
            return lua::fail(l, "Invalid argument");
        }
        check_suspendable(l);
        let path = CString::new(path).unwrap_or_default();
        let fut = Box::pin(async move {
            // Opening a fifo waits for the other side: on the pool, as LEM did.
            let r = pool::run(move || -> io::Result<(OwnedFd, FdKind)> {
                // SAFETY: a NUL-terminated path; a fresh descriptor we own.
                let fd = { libc::open(path.as_ptr(), flags, perm as libc::c_uint) };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let fd = { OwnedFd::from_raw_fd(fd) };
                let kind = fd_kind(fd.as_raw_fd())?;
                Ok((fd, kind))
            })
            .await;
            Resume::Push(Box::new(move |t| match r {
                Ok((fd, FdKind::File)) => push_file(t, fd),
                Ok((fd, _)) => push_stream(t, fd),
                Err(e) => fail_os(t, &e),
            }))
        });
        scheduler::get().prepare(Commit::Future(fut));
        crate::runtime::scheduler::suspend(l)
    }
}

/// io.streamfile(path) -> Stream | nil, err: the file's bytes through a
/// pipe, written by a thread of its own (so a slow reader holds no pool
/// thread).
pub(crate) unsafe extern "C-unwind" fn streamfile(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let mut len = 0;
        let p = lua::check_lstring(l, 1, &mut len);
        let path = std::slice::from_raw_parts(p as *const u8, len);
        if path.contains(&0) {
            return lua::fail(l, "Invalid argument");
        }
        check_suspendable(l);
        let path = CString::new(path).unwrap_or_default();
        let fut = Box::pin(async move {
            let r = pool::run(move || -> io::Result<OwnedFd> {
                use std::os::unix::ffi::OsStrExt;
                let file = std::fs::File::open(std::ffi::OsStr::from_bytes(path.as_bytes()))?;
                let mut fds = [0 as c_int; 2];
                // SAFETY: pipe2 fills two fresh descriptors.
                if { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
                    return Err(io::Error::last_os_error());
                }
                let (rd, wr) = { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
                let mut wr = std::fs::File::from(wr);
                let mut file = file;
                std::thread::Builder::new()
                    .name("lem-streamfile".into())
                    .spawn(move || {
                        // A reader that closes early ends the copy with EPIPE.
                        let _ = io::copy(&mut file, &mut wr);
                    })?;
                Ok(rd)
            })
            .await;
            Resume::Push(Box::new(move |t| match r {
                Ok(rd) => push_stream(t, rd),
                Err(e) => fail_os(t, &e),
            }))
        });
        scheduler::get().prepare(Commit::Future(fut));
        crate::runtime::scheduler::suspend(l)
    }
}

pub(crate) const METHODS: &[Reg] = &[
    (c"read", file_read),
    (c"readp", file_readp),
    (c"write", file_write),
    (c"close", file_close),
    (c"closed", file_closed),
    (c"size", file_size),
    (c"seek", file_seek),
    (c"lock", file_lock),
    (c"settimeout", settimeout::<File>),
    (c"setlimit", setlimit::<File>),
    (c"fileno", file_fileno),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode_flags(b"r"), Some(libc::O_RDONLY | libc::O_CLOEXEC));
        assert!(mode_flags(b"r+b").unwrap() & libc::O_RDWR != 0);
        assert!(mode_flags(b"wx").unwrap() & libc::O_EXCL != 0);
        assert_eq!(mode_flags(b"rx"), None);
        assert_eq!(mode_flags(b"q"), None);
        assert_eq!(mode_flags(b""), None);
        assert_eq!(mode_flags(b"r++"), None);
    }
}
