//! `core.static_open`: opening a file under a root for `hathaway.static`
//! (lua/lem/hathaway.lua), on the pool, in one job: the root, the file
//! beneath it, its `fstat`, its `ETag` and `Last-Modified`. One pool trip
//! where `io.open` and `file:size()` would take two, and the server's
//! checks of a `res.file` three more.
//!
//! The Lua half refuses `..`, `\` and NUL in the decoded path before it
//! gets here; the kernel refuses the rest: `openat2` with
//! `RESOLVE_BENEATH` fails any resolution that would leave the root
//! (`..` through a symbolic link, an absolute link, a link to a sibling),
//! so a link out of the root is refused without a walk of our own. Where
//! `openat2` is missing (Linux < 5.6, seccomp sandboxes answering
//! `ENOSYS` or `EPERM`) the path is canonicalized and must stay under the
//! canonical root.

use std::ffi::{c_int, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use super::date::imf_date;
use crate::io::fd::fail_os;
use crate::io::file::push_file;
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

/// core.static_open(root, path, follow) -> File, size, etag,
/// last_modified, mtime | false, 'directory' | false, 'not a file' |
/// nil, err
pub(super) unsafe extern "C-unwind" fn static_open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let root = lua::check_bytes(l, 1);
        let rel = lua::check_bytes(l, 2);
        let follow = ffi::lua_toboolean(l, 3) != 0;
        if root.contains(&0) || rel.contains(&0) {
            return lua::fail(l, "Invalid argument");
        }
        check_suspendable(l);
        let root = CString::new(root).unwrap_or_default();
        let rel = CString::new(rel).unwrap_or_default();
        let fut = Box::pin(async move {
            let r = pool::run(move || find(&root, &rel, follow)).await;
            Resume::Push(Box::new(move |t| match r {
                Ok(Found::File(fd, size, mtime, etag)) => {
                    push_file(t, fd);
                    ffi::lua_pushinteger(t, size as _);
                    lua::push_str(t, &etag);
                    lua::push_bytes(t, &imf_date(mtime.max(0) as u64));
                    ffi::lua_pushinteger(t, mtime as _);
                    5
                }
                Ok(Found::Directory) => {
                    ffi::lua_pushboolean(t, 0);
                    lua::push_str(t, "directory");
                    2
                }
                Ok(Found::Other) => {
                    ffi::lua_pushboolean(t, 0);
                    lua::push_str(t, "not a file");
                    2
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
