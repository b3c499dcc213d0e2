//! `core.static_open`: opening a file under a root for `hathaway.static`
//! (lua/lem/hathaway.lua), through a cache of kept files
//! (`core.static_cache`).
//!
//! A file found is kept, with its size, `ETag` and `Last-Modified`, for
//! `valid` seconds: a request for it in that time is answered from the
//! loop thread alone, with no system call here. A file of up to [`SMALL`]
//! bytes is read whole when opened (its descriptor closed then) and kept as
//! a Lua string, the body of its answers; a larger one is kept open, and
//! its answers get Files on the same descriptor (an `Arc`). The strings of
//! an entry live in a Lua table of the cache's (registry-referenced), so a
//! hit pushes them without a copy. Past `valid`, or for a path not kept,
//! the file is opened again, in one pool job: the root, the file beneath
//! it, its `fstat` (and a small file's bytes). A file replaced, removed or
//! made a link is therefore seen within `valid` seconds; until then the
//! old one is sent (a larger one never beyond the size its `fstat` gave:
//! the senders stop there and close a connection whose file came up
//! short). Failures (a missing file, a refusal) and directories are not
//! kept. The cache holds at most `max` entries: a new one first drops the
//! expired, then the oldest (a scan, only when full).
//!
//! Requests share the kept descriptor, so its file position too: the
//! answers read it at offsets only (`sendfile` with an offset, `pread`
//! through `core.file_pread` where there is no sendfile, as on HTTP/2).
//!
//! The Lua half refuses `..`, `\` and NUL in the decoded path before it
//! gets here; the kernel refuses the rest: `openat2` with
//! `RESOLVE_BENEATH` fails any resolution that would leave the root
//! (`..` through a symbolic link, an absolute link, a link to a sibling),
//! so a link out of the root is refused without a walk of our own. Where
//! `openat2` is missing (Linux < 5.6, seccomp sandboxes answering
//! `ENOSYS` or `EPERM`) the path is canonicalized and must stay under the
//! canonical root.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_int, CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::date::imf_date;
use crate::io::fd::fail_os;
use crate::io::file::{push_shared_file, File, FILE};
use crate::io::op::check_suspendable;
use crate::runtime::lua::{self, ffi, lua_State};
use crate::runtime::pool;
use crate::runtime::scheduler::{self, Commit, Resume};

/// Files up to this size are read whole when opened, and their answers
/// carry the bytes (sent with the head in one write, the descriptor closed
/// at once); larger ones are kept open and sent with `sendfile`.
pub(super) const SMALL: u64 = 16 << 10;

/// A regular file's contents: open, or read.
#[derive(Debug)]
enum Body {
    Fd(OwnedFd),
    Bytes(Vec<u8>),
}

/// What was found at the path.
#[derive(Debug)]
enum Found {
    /// A regular file: its body, size, mtime (unix seconds), ETag.
    File(Body, u64, i64, String),
    Directory,
    /// Not a regular file or directory (a fifo, a device, a socket).
    Other,
}

/// `openat(2)`, returning an owned descriptor.
fn open_at(dir: c_int, path: &CString, flags: c_int) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated path that outlives the call.
    let fd = unsafe { libc::openat(dir, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2(dir, path, flags, resolve)`; `Ok(None)` where the kernel has
/// no `openat2` (or a sandbox forbids it).
fn openat2(dir: c_int, path: &CString, flags: c_int, resolve: u64) -> io::Result<Option<OwnedFd>> {
    // SAFETY: open_how is plain data, and all zeros is its documented
    // default (the kernel requires the unused fields to be zero).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = resolve;
    // SAFETY: a NUL-terminated path and an open_how of the size we pass,
    // both alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EPERM) => Ok(None),
            // EXDEV: the path would leave the root.
            Some(libc::EXDEV) => Err(io::Error::from_raw_os_error(libc::EACCES)),
            _ => Err(e),
        };
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as c_int) }))
}

/// Open `rel` under `root`; `follow` lets symbolic links lead out of it.
/// An absolute `rel` is refused whatever `follow` says (openat would
/// ignore the root).
fn find(root: &CString, rel: &CString, follow: bool) -> io::Result<Found> {
    if rel.as_bytes().first() == Some(&b'/') {
        return Err(io::Error::from_raw_os_error(libc::EACCES));
    }
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
    let dir = open_at(
        libc::AT_FDCWD,
        root,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
    )?;
    let fd = if follow {
        open_at(dir.as_raw_fd(), rel, flags)?
    } else {
        let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        match openat2(dir.as_raw_fd(), rel, flags, resolve)? {
            Some(fd) => fd,
            None => {
                let base = std::fs::canonicalize(OsStr::from_bytes(root.as_bytes()))?;
                let real = std::fs::canonicalize(base.join(OsStr::from_bytes(rel.as_bytes())))?;
                if !real.starts_with(&base) {
                    return Err(io::Error::from_raw_os_error(libc::EACCES));
                }
                open_at(
                    libc::AT_FDCWD,
                    &CString::new(real.as_os_str().as_bytes())?,
                    flags,
                )?
            }
        }
    };
    // SAFETY: all zeros is a valid stat (plain integers), filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a descriptor we own and a stat to fill, alive for the call.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {}
        libc::S_IFDIR => return Ok(Found::Directory),
        _ => return Ok(Found::Other),
    }
    let size = st.st_size as u64;
    if size <= SMALL {
        // Read whole (up to the size fstat gave: a file that shrank since
        // is what could be read).
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            // SAFETY: buf is writable from got for the rest of its length;
            // fd is a descriptor we own.
            let n = unsafe {
                libc::pread(
                    fd.as_raw_fd(),
                    buf[got..].as_mut_ptr() as *mut _,
                    buf.len() - got,
                    got as libc::off_t,
                )
            };
            if n > 0 {
                got += n as usize;
            } else if n == 0 {
                break;
            } else {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
        buf.truncate(got);
        return Ok(Found::File(
            Body::Bytes(buf),
            got as u64,
            st.st_mtime,
            etag(&st),
        ));
    }
    // The file is read with pread and sendfile at offsets: blocking reads.
    crate::io::fd::set_nonblocking(fd.as_raw_fd(), false)?;
    Ok(Found::File(Body::Fd(fd), size, st.st_mtime, etag(&st)))
}

/// A strong validator from what changes when the file does: mtime (to the
/// nanosecond), size and inode (a file replaced by a rename).
fn etag(st: &libc::stat) -> String {
    format!(
        "\"{:x}-{:x}-{:x}\"",
        st.st_mtime,
        st.st_size,
        (st.st_mtime_nsec as u64) ^ st.st_ino
    )
}

/// A file kept, and what its answers say of it. Its Lua strings (the
/// bytes of a small file, the `ETag`, the `Last-Modified`) are made once,
/// kept in the cache's table, so that an answer pushes them without a copy
/// (and without the garbage a 4 KB string a request would make).
struct Entry {
    /// The open file, shared with the answers in flight; `None`: a small
    /// file, whose bytes are in the table.
    fd: Option<Arc<OwnedFd>>,
    size: u64,
    mtime: i64,
    /// Its key in the cache's table: `{bytes or false, etag, last_modified}`.
    slot: c_int,
    /// When the open that found it began: the entry serves until
    /// `opened + valid`.
    opened: Instant,
}

/// The files kept by one `hathaway.static` handler, by path beneath its
/// root.
pub(super) struct Cache {
    root: CString,
    follow: bool,
    max: usize,
    valid: Duration,
    files: RefCell<HashMap<Vec<u8>, Entry>>,
    /// The registry reference of the table of the entries' strings;
    /// `LUA_NOREF` once the handler is collected (nothing is kept then).
    strings: Cell<c_int>,
}

/// The userdata of `core.static_cache`.
struct Files(Rc<Cache>);

const FILES: &CStr = c"lem.http.StaticFiles";

impl Cache {
    /// Whether a file found now would be kept.
    fn keeps(&self) -> bool {
        self.max > 0 && !self.valid.is_zero() && self.strings.get() != ffi::LUA_NOREF
    }

    /// Free the strings of `slots`.
    ///
    /// # Safety
    /// `t` must be a thread of lem's state.
    unsafe fn release(&self, t: *mut lua_State, slots: &[c_int]) {
        if slots.is_empty() || self.strings.get() == ffi::LUA_NOREF {
            return;
        }
        // SAFETY: `t` is a live thread of lem's state (the contract); the
        // table pushed is the cache's own.
        unsafe {
            ffi::luaL_checkstack(t, 2, std::ptr::null());
            ffi::lua_rawgeti(t, ffi::LUA_REGISTRYINDEX, self.strings.get() as _);
            for &s in slots {
                ffi::luaL_unref(t, -1, s);
            }
            ffi::lua_pop(t, 1);
        }
    }

    /// Keep `e` for `rel` (opened at `e.opened`), within `max` entries.
    ///
    /// # Safety
    /// `t` must be a thread of lem's state.
    unsafe fn keep(&self, t: *mut lua_State, rel: Vec<u8>, e: Entry) {
        let mut dead = Vec::new();
        {
            let mut files = self.files.borrow_mut();
            if !files.contains_key(&rel) && files.len() >= self.max {
                let now = Instant::now();
                files.retain(|_, e| {
                    let live = now.duration_since(e.opened) < self.valid;
                    if !live {
                        dead.push(e.slot);
                    }
                    live
                });
                if files.len() >= self.max {
                    let oldest = files
                        .iter()
                        .min_by_key(|(_, e)| e.opened)
                        .map(|(k, _)| k.clone());
                    if let Some(e) = oldest.and_then(|k| files.remove(&k)) {
                        dead.push(e.slot);
                    }
                }
            }
            match files.get(&rel) {
                // A later open of the same path came back first: keep that one.
                Some(old) if old.opened > e.opened => dead.push(e.slot),
                _ => {
                    if let Some(old) = files.insert(rel, e) {
                        dead.push(old.slot);
                    }
                }
            }
        }
        // SAFETY: `t` is a live thread of lem's state (the contract).
        unsafe { self.release(t, &dead) }
    }

    /// Forget `rel`, unless an open later than `since` put it back.
    ///
    /// # Safety
    /// `t` must be a thread of lem's state.
    unsafe fn forget(&self, t: *mut lua_State, rel: &[u8], since: Instant) {
        let gone = {
            let mut files = self.files.borrow_mut();
            match files.get(rel) {
                Some(e) if e.opened <= since => files.remove(rel),
                _ => None,
            }
        };
        if let Some(e) = gone {
            // SAFETY: `t` is a live thread of lem's state (the contract).
            unsafe { self.release(t, &[e.slot]) }
        }
    }
}

/// Push what core.static_open answers for a kept file: File (or its
/// bytes), size, etag, last_modified, mtime. Returns 5.
///
/// # Safety
/// `t` must be a thread of lem's state; the cache's table must be alive
/// (`strings` is not `LUA_NOREF`).
unsafe fn push_kept(t: *mut lua_State, cache: &Cache, e: &Entry) -> c_int {
    // SAFETY: `t` is a live thread of lem's state (the contract); the
    // tables read are the cache's and the entry's own.
    unsafe {
        ffi::luaL_checkstack(t, 8, std::ptr::null());
        ffi::lua_rawgeti(t, ffi::LUA_REGISTRYINDEX, cache.strings.get() as _);
        ffi::lua_rawgeti(t, -1, e.slot as _);
        match &e.fd {
            Some(fd) => {
                push_shared_file(t, fd.clone());
            }
            None => {
                ffi::lua_rawgeti(t, -1, 1);
            }
        }
        ffi::lua_pushinteger(t, e.size as _);
        ffi::lua_rawgeti(t, -3, 2);
        ffi::lua_rawgeti(t, -4, 3);
        ffi::lua_pushinteger(t, e.mtime as _);
        // The two tables below the five values.
        ffi::lua_remove(t, -6);
        ffi::lua_remove(t, -6);
        5
    }
}

/// `__gc` of the cache: its table is let go, and nothing is kept after
/// (an open in flight may still come back to it).
unsafe extern "C-unwind" fn files_gc(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; the userdata at 1 is a Files (this
    // is the __gc of its class only), dropped once here.
    unsafe {
        let p = ffi::lua_touserdata(l, 1) as *mut Files;
        if !p.is_null() {
            let cache = &(*p).0;
            let r = cache.strings.replace(ffi::LUA_NOREF);
            if r != ffi::LUA_NOREF {
                ffi::luaL_unref(l, ffi::LUA_REGISTRYINDEX, r);
            }
            cache.files.borrow_mut().clear();
            std::ptr::drop_in_place(p);
        }
        0
    }
}

/// core.static_cache(root, follow, max, valid) -> the kept files of a
/// handler: at most max entries (0: none kept), each kept valid seconds.
pub(super) unsafe extern "C-unwind" fn static_cache(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let root = lua::check_bytes(l, 1);
        let follow = ffi::lua_toboolean(l, 2) != 0;
        let max = lua::check_integer(l, 3);
        let valid = lua::check_number(l, 4);
        if max < 0 {
            lua::arg_error(l, 3, c"must not be negative");
        }
        if !(0.0..=1e9).contains(&valid) {
            lua::arg_error(l, 4, c"must be between 0 and 1e9 seconds");
        }
        let Ok(root) = CString::new(root) else {
            lua::arg_error(l, 1, c"root contains a NUL byte");
        };
        lua::new_class(l, FILES, &[], Some(files_gc));
        ffi::lua_pop(l, 1);
        ffi::lua_createtable(l, 0, 0);
        let strings = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
        let cache = Cache {
            root,
            follow,
            max: max as usize,
            valid: Duration::from_secs_f64(valid),
            files: RefCell::new(HashMap::new()),
            strings: Cell::new(strings),
        };
        lua::push_object(l, FILES, Files(Rc::new(cache)));
        1
    }
}

/// core.static_open(files, path) -> File or bytes (up to SMALL), size,
/// etag, last_modified, mtime | false, 'directory' | false, 'not a file' |
/// nil, err
pub(super) unsafe extern "C-unwind" fn static_open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let files: &Files = lua::check_object(l, 1, FILES);
        let rel = lua::check_bytes(l, 2);
        if rel.contains(&0) {
            return lua::fail(l, "Invalid argument");
        }
        check_suspendable(l);
        let cache = files.0.clone();
        let now = Instant::now();
        // A file kept and still valid: answered now, from the loop thread.
        if let Some(e) = cache.files.borrow().get(rel) {
            if now.duration_since(e.opened) < cache.valid && cache.strings.get() != ffi::LUA_NOREF {
                return push_kept(l, &cache, e);
            }
        }
        let key = rel.to_vec();
        let root = cache.root.clone();
        let follow = cache.follow;
        let path = CString::new(rel).unwrap_or_default();
        let fut = Box::pin(async move {
            let r = pool::run(move || find(&root, &path, follow)).await;
            Resume::Push(Box::new(move |t| match r {
                Ok(Found::File(body, size, mtime, etag)) => {
                    ffi::luaL_checkstack(t, 10, std::ptr::null());
                    // The five values of the answer.
                    let fd = match body {
                        Body::Fd(fd) => {
                            let fd = Arc::new(fd);
                            push_shared_file(t, fd.clone());
                            Some(fd)
                        }
                        Body::Bytes(b) => {
                            lua::push_bytes(t, &b);
                            None
                        }
                    };
                    ffi::lua_pushinteger(t, size as _);
                    lua::push_str(t, &etag);
                    lua::push_bytes(t, &imf_date(mtime.max(0) as u64));
                    ffi::lua_pushinteger(t, mtime as _);
                    if cache.keeps() {
                        // The entry's strings, copied from them into a table
                        // of the cache's table.
                        ffi::lua_rawgeti(t, ffi::LUA_REGISTRYINDEX, cache.strings.get() as _);
                        ffi::lua_createtable(t, 3, 0);
                        if fd.is_none() {
                            ffi::lua_pushvalue(t, -7);
                        } else {
                            ffi::lua_pushboolean(t, 0);
                        }
                        ffi::lua_rawseti(t, -2, 1);
                        ffi::lua_pushvalue(t, -5);
                        ffi::lua_rawseti(t, -2, 2);
                        ffi::lua_pushvalue(t, -4);
                        ffi::lua_rawseti(t, -2, 3);
                        let slot = ffi::luaL_ref(t, -2);
                        ffi::lua_pop(t, 1);
                        let e = Entry {
                            fd,
                            size,
                            mtime,
                            slot,
                            opened: now,
                        };
                        cache.keep(t, key, e);
                    }
                    5
                }
                found => {
                    cache.forget(t, &key, now);
                    match found {
                        Ok(Found::Directory) => {
                            ffi::lua_pushboolean(t, 0);
                            lua::push_str(t, "directory");
                            2
                        }
                        Ok(_) => {
                            ffi::lua_pushboolean(t, 0);
                            lua::push_str(t, "not a file");
                            2
                        }
                        Err(e) => fail_os(t, &e),
                    }
                }
            }))
        });
        scheduler::get().prepare(Commit::Future(fut));
        scheduler::suspend(l)
    }
}

/// core.file_pread(file, size, offset) -> data | nil, 'eof' | nil, err:
/// up to size bytes of File file from offset, on the pool, without moving
/// (or using) its file position.
pub(super) unsafe extern "C-unwind" fn file_pread(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let f: &File = lua::check_object(l, 1, FILE);
        let size = lua::check_integer(l, 2);
        let offset = lua::check_integer(l, 3);
        if !(0..=1 << 24).contains(&size) {
            lua::arg_error(l, 2, c"size must be between 0 and 16 MiB");
        }
        if offset < 0 {
            lua::arg_error(l, 3, c"offset must not be negative");
        }
        // May raise: before anything owned is made.
        check_suspendable(l);
        let Some(fd) = f.fd() else {
            return lua::fail(l, "closed");
        };
        let fut = Box::pin(async move {
            let r = pool::run(move || {
                let mut buf = vec![0u8; size as usize];
                loop {
                    // (Within the unsafe block above.) pread into buf, which
                    // is writable for its length, from fd, alive (held by
                    // the Arc).
                    let n = libc::pread(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr() as *mut _,
                        buf.len(),
                        offset as libc::off_t,
                    );
                    if n >= 0 {
                        buf.truncate(n as usize);
                        return Ok(buf);
                    }
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            })
            .await;
            Resume::Push(Box::new(move |t| match r {
                Ok(b) if b.is_empty() && size > 0 => lua::fail(t, "eof"),
                Ok(b) => {
                    lua::push_bytes(t, &b);
                    1
                }
                Err(e) => fail_os(t, &e),
            }))
        });
        scheduler::get().prepare(Commit::Future(fut));
        scheduler::suspend(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn stays_beneath_the_root() {
        let base = std::env::temp_dir().join(format!("lem-static-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), b"hello").unwrap();
        std::fs::write(base.join("secret"), b"no").unwrap();
        symlink(base.join("secret"), root.join("out")).unwrap();
        symlink("sub/a.txt", root.join("in")).unwrap();
        let r = c(root.to_str().unwrap());
        match find(&r, &c("sub/a.txt"), false).unwrap() {
            Found::File(Body::Bytes(b), 5, _, tag) => {
                assert!(tag.starts_with('"') && b == b"hello")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(find(&r, &c("in"), false), Ok(Found::File(..))));
        assert!(matches!(find(&r, &c("sub"), false), Ok(Found::Directory)));
        for bad in ["out", "../secret", "sub/../../secret", "/etc/hostname"] {
            assert!(find(&r, &c(bad), false).is_err(), "{bad}");
        }
        assert!(matches!(find(&r, &c("out"), true), Ok(Found::File(..))));
        assert!(find(&r, &c("/etc/hostname"), true).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
