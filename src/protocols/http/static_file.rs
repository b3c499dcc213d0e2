//! `core.static_open`: opening a file under a root for `hathaway.static`
//! (lua/lem/hathaway.lua), through a cache of open files (`core.static_cache`).
//!
//! A file found is kept open, with its size, `ETag` and `Last-Modified`,
//! for `valid` seconds: a request for it in that time gets a File on the
//! same descriptor (an `Arc`, no system call) and its answer is sent from
//! the loop thread alone. Past that time, or for a path not kept, the
//! file is opened again, in one pool job: the root, the file beneath it,
//! its `fstat`. A file replaced, removed or made a link is therefore seen
//! within `valid` seconds; until then the old file is sent (its old bytes,
//! never a byte beyond the size its `fstat` gave: the senders stop there
//! and close a connection whose file came up short). Failures (a missing
//! file, a refusal) and directories are not kept. The cache holds at most
//! `max` entries (each one descriptor): a new one first drops the expired,
//! then the oldest.
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

use std::cell::RefCell;
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

/// What was found at the path.
#[derive(Debug)]
enum Found {
    /// A regular file: its descriptor, size, mtime (unix seconds), ETag.
    File(OwnedFd, u64, i64, String),
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
    // The file is read with pread and sendfile at offsets: blocking reads.
    crate::io::fd::set_nonblocking(fd.as_raw_fd(), false)?;
    let size = st.st_size as u64;
    Ok(Found::File(fd, size, st.st_mtime, etag(&st)))
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

/// A file kept open, and what its answers say of it.
struct Entry {
    fd: Arc<OwnedFd>,
    size: u64,
    mtime: i64,
    etag: String,
    modified: Vec<u8>,
    /// When the open that found it began: the entry serves until
    /// `opened + valid`.
    opened: Instant,
}

/// The open files of one `hathaway.static` handler, by path beneath its
/// root.
pub(super) struct Cache {
    root: CString,
    follow: bool,
    max: usize,
    valid: Duration,
    files: RefCell<HashMap<Vec<u8>, Entry>>,
}

/// The userdata of `core.static_cache`.
struct Files(Rc<Cache>);

const FILES: &CStr = c"lem.http.StaticFiles";

impl Cache {
    /// The entry for `rel` if it is still valid at `now`.
    fn fresh<R>(&self, rel: &[u8], now: Instant, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        let files = self.files.borrow();
        let e = files.get(rel)?;
        (now.duration_since(e.opened) < self.valid).then(|| f(e))
    }

    /// Keep `e` for `rel` (opened at `e.opened`), within `max` entries.
    fn keep(&self, rel: Vec<u8>, e: Entry) {
        if self.max == 0 || self.valid.is_zero() {
            return;
        }
        let mut files = self.files.borrow_mut();
        if !files.contains_key(&rel) && files.len() >= self.max {
            let now = Instant::now();
            files.retain(|_, e| now.duration_since(e.opened) < self.valid);
            if files.len() >= self.max {
                let oldest = files
                    .iter()
                    .min_by_key(|(_, e)| e.opened)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    files.remove(&k);
                }
            }
        }
        match files.get(&rel) {
            // A later open of the same path came back first: keep that one.
            Some(old) if old.opened > e.opened => {}
            _ => {
                files.insert(rel, e);
            }
        }
    }

    /// Forget `rel`, unless an open later than `since` put it back.
    fn forget(&self, rel: &[u8], since: Instant) {
        let mut files = self.files.borrow_mut();
        if files.get(rel).is_some_and(|e| e.opened <= since) {
            files.remove(rel);
        }
    }
}

/// Push what core.static_open answers for a file: File, size, etag,
/// last_modified, mtime. Returns 5.
///
/// # Safety
/// `t` must be a thread of lem's state with 5 free slots.
unsafe fn push_found(t: *mut lua_State, e: &Entry) -> c_int {
    // SAFETY: `t` is a live thread of lem's state with room (the contract).
    unsafe {
        push_shared_file(t, e.fd.clone());
        ffi::lua_pushinteger(t, e.size as _);
        lua::push_str(t, &e.etag);
        lua::push_bytes(t, &e.modified);
        ffi::lua_pushinteger(t, e.mtime as _);
        5
    }
}

/// core.static_cache(root, follow, max, valid) -> the open files of a
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
        lua::new_class(l, FILES, &[], Some(lua::gc::<Files>));
        ffi::lua_pop(l, 1);
        let cache = Cache {
            root,
            follow,
            max: max as usize,
            valid: Duration::from_secs_f64(valid),
            files: RefCell::new(HashMap::new()),
        };
        lua::push_object(l, FILES, Files(Rc::new(cache)));
        1
    }
}

/// core.static_open(files, path) -> File, size, etag, last_modified, mtime
/// | false, 'directory' | false, 'not a file' | nil, err
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
        // A file kept and still valid: answered now, from the loop thread
        // (`l` has the LUA_MINSTACK free slots push_found needs).
        if let Some(n) = cache.fresh(rel, now, |e| push_found(l, e)) {
            return n;
        }
        let key = rel.to_vec();
        let root = cache.root.clone();
        let follow = cache.follow;
        let path = CString::new(rel).unwrap_or_default();
        let fut = Box::pin(async move {
            let r = pool::run(move || find(&root, &path, follow)).await;
            Resume::Push(Box::new(move |t| match r {
                Ok(Found::File(fd, size, mtime, etag)) => {
                    let e = Entry {
                        fd: Arc::new(fd),
                        size,
                        mtime,
                        etag,
                        modified: imf_date(mtime.max(0) as u64),
                        opened: now,
                    };
                    let n = push_found(t, &e);
                    cache.keep(key, e);
                    n
                }
                found => {
                    cache.forget(&key, now);
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
        let Some(fd) = f.fd() else {
            return lua::fail(l, "closed");
        };
        check_suspendable(l);
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
            Found::File(_, 5, _, tag) => assert!(tag.starts_with('"')),
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
