//! `lem.lfs.core`: the filesystem calls of LuaFileSystem, each run on the
//! blocking pool so that a slow disk suspends only the calling coroutine.
//! The Lua half (`lua/lem/lfs.lua`) adds `lock`/`unlock` (on a File),
//! `lock_dir` and `setmode`. See docs/lfs.md.
//!
//! Beyond the original: `readlink(path)`, and the `target` field of
//! `symlinkattributes` for a symbolic link (as LuaFileSystem 1.8 has it).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::{c_int, CStr, CString, OsStr};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::PathBuf;
use std::rc::Rc;

use crate::io::fd::os_error_text;
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::pool;
use crate::runtime::scheduler::{self, Commit, Resume, Waiter};

static DIR: &CStr = c"lem.lfs.Dir";

/// Entries read from a directory per trip to the pool.
const DIR_BATCH: usize = 128;

/// Suspend the caller while `job` runs on the pool; `push` turns its result
/// into the caller's return values.
///
/// # Safety
/// Must be the `return` expression of a `lua_CFunction` running on `l`, with
/// every argument already checked (it may raise outside a lem coroutine).
unsafe fn on_pool<T: Send + 'static>(
    l: *mut lua_State,
    job: impl FnOnce() -> T + Send + 'static,
    push: impl FnOnce(*mut lua_State, T) -> c_int + 'static,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let fut = Box::pin(async move {
            let r = pool::run(job).await;
            Resume::Push(Box::new(move |t| push(t, r)))
        });
        suspend_with(l, Commit::Future(fut))
    }
}

/// Prepare `commit` and suspend, or raise outside a lem coroutine (the
/// commit, and everything it owns, is dropped before the raise).
unsafe fn suspend_with(l: *mut lua_State, commit: Commit) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        scheduler::prepare_or_raise(l, commit);
        crate::runtime::scheduler::suspend(l)
    }
}

/// `true` or `nil, strerror`.
unsafe fn push_unit(l: *mut lua_State, r: io::Result<()>) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match r {
            Ok(()) => {
                ffi::lua_pushboolean(l, 1);
                1
            }
            Err(e) => lua::fail(l, &os_error_text(&e)),
        }
    }
}

/// `luaL_checklstring` as an owned path. Call after every other check.
unsafe fn check_path(l: *mut lua_State, arg: c_int) -> PathBuf {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let mut len = 0usize;
        let p = lua::check_lstring(l, arg, &mut len);
        let bytes = std::slice::from_raw_parts(p as *const u8, len);
        PathBuf::from(OsStr::from_bytes(bytes))
    }
}

/// A path for a libc call; an embedded NUL is `EINVAL`, as the kernel
/// would say for a name it cannot take.
fn c_path(p: &std::path::Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Attribute names, in the manual's order (docs/lfs.md); `target` only for links.
const ATTRS: &[&CStr] = &[
    c"dev",
    c"ino",
    c"mode",
    c"permissions",
    c"nlink",
    c"uid",
    c"gid",
    c"rdev",
    c"size",
    c"blksize",
    c"blocks",
    c"access",
    c"modification",
    c"change",
    c"target",
];
const TARGET: usize = 14;

/// What `stat`/`lstat` found, plus a link's target.
struct Attrs {
    meta: std::fs::Metadata,
    target: Option<Vec<u8>>,
}

impl Attrs {
    /// Push attribute number `i` of [`ATTRS`] (nil for a missing `target`).
    unsafe fn push(&self, l: *mut lua_State, i: usize) {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let m = &self.meta;
            let int = |v: i64| ffi::lua_pushinteger(l, v as ffi::lua_Integer);
            match i {
                0 => int(m.dev() as i64),
                1 => int(m.ino() as i64),
                2 => lua::push_str(l, mode_name(m.mode())),
                3 => lua::push_bytes(l, &permissions(m.mode())),
                4 => int(m.nlink() as i64),
                5 => int(m.uid() as i64),
                6 => int(m.gid() as i64),
                7 => int(m.rdev() as i64),
                8 => int(m.size() as i64),
                9 => int(m.blksize() as i64),
                10 => int(m.blocks() as i64),
                11 => int(m.atime()),
                12 => int(m.mtime()),
                13 => int(m.ctime()),
                _ => match &self.target {
                    Some(t) => lua::push_bytes(l, t),
                    None => ffi::lua_pushnil(l),
                },
            }
        }
    }

    /// Set every attribute into the table at `idx`.
    unsafe fn fill(&self, l: *mut lua_State, idx: c_int) {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let idx = ffi::lua_absindex(l, idx);
            for (i, name) in ATTRS.iter().enumerate() {
                if i == TARGET && self.target.is_none() {
                    continue;
                }
                self.push(l, i);
                ffi::lua_setfield(l, idx, name.as_ptr());
            }
        }
    }
}

fn mode_name(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "file",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "link",
        libc::S_IFSOCK => "socket",
        libc::S_IFIFO => "named pipe",
        libc::S_IFCHR => "char device",
        libc::S_IFBLK => "block device",
        _ => "other",
    }
}

/// `rwxr-xr-x` from the nine permission bits.
fn permissions(mode: u32) -> [u8; 9] {
    let mut s = *b"rwxrwxrwx";
    for (i, c) in s.iter_mut().enumerate() {
        if mode & (0o400 >> i) == 0 {
            *c = b'-';
        }
    }
    s
}

/// What `attributes` returns: the whole table, one field, or the table
/// given as argument 2, filled.
#[derive(Clone, Copy)]
enum Want {
    All,
    One(usize),
    /// The table, held by this registry reference meanwhile.
    Into(c_int),
}

/// Shared by `attributes` and `symlinkattributes`.
unsafe fn attributes_impl(l: *mut lua_State, link: bool) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::check_lstring(l, 1, std::ptr::null_mut());
        let mut want = match ffi::lua_type(l, 2) {
            ffi::LUA_TNONE | ffi::LUA_TNIL => Want::All,
            ffi::LUA_TTABLE => Want::Into(ffi::LUA_NOREF),
            ffi::LUA_TSTRING => {
                let name = CStr::from_ptr(ffi::lua_tostring(l, 2));
                match ATTRS.iter().position(|a| *a == name) {
                    Some(i) => Want::One(i),
                    None if name == c"*" => Want::All,
                    None => {
                        let msg = ffi::lua_pushfstring(
                            l,
                            c"invalid attribute name '%s'".as_ptr(),
                            name.as_ptr(),
                        );
                        lua::arg_error_ptr(l, 2, msg)
                    }
                }
            }
            _ => lua::arg_error(l, 2, c"string or table expected"),
        };
        if let Want::Into(_) = want {
            // The resumed thread cannot count on its arguments' stack slots
            // (LuaJIT drops them at the yield): hold the table by reference.
            ffi::lua_pushvalue(l, 2);
            want = Want::Into(ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX));
        }
        let path = check_path(l, 1);
        on_pool(
            l,
            move || -> io::Result<Attrs> {
                let meta = if link {
                    std::fs::symlink_metadata(&path)?
                } else {
                    std::fs::metadata(&path)?
                };
                let target = if link && meta.file_type().is_symlink() {
                    Some(std::fs::read_link(&path)?.into_os_string().into_vec())
                } else {
                    None
                };
                Ok(Attrs { meta, target })
            },
            move |t, r| {
                match want {
                    Want::All => ffi::lua_createtable(t, 0, ATTRS.len() as c_int),
                    Want::One(_) => {}
                    Want::Into(r) => {
                        ffi::lua_rawgeti(t, ffi::LUA_REGISTRYINDEX, r as _);
                        ffi::luaL_unref(t, ffi::LUA_REGISTRYINDEX, r);
                    }
                }
                match (r, want) {
                    (Ok(a), Want::One(i)) => a.push(t, i),
                    (Ok(a), _) => a.fill(t, -1),
                    (Err(e), Want::One(_)) => return lua::fail(t, &os_error_text(&e)),
                    (Err(e), _) => {
                        ffi::lua_pop(t, 1);
                        return lua::fail(t, &os_error_text(&e));
                    }
                }
                1
            },
        )
    }
}

/// lfs.attributes(path [, name | table]) -> table | value | nil, err
unsafe extern "C-unwind" fn attributes(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { attributes_impl(l, false) }
}

/// lfs.symlinkattributes(path [, name | table]) -> table | value | nil, err
unsafe extern "C-unwind" fn symlinkattributes(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe { attributes_impl(l, true) }
}

/// A directory stream, moved to the pool for each batch of reads.
struct DirHandle(*mut libc::DIR);

// SAFETY: a DIR is used by one thread at a time: it is moved, whole, to
// the pool job that reads it and back.
unsafe impl Send for DirHandle {}

impl Drop for DirHandle {
    fn drop(&mut self) {
        // SAFETY: the pointer came from opendir and is closed only here.
        unsafe {
            libc::closedir(self.0);
        }
    }
}

impl DirHandle {
    fn open(path: &std::path::Path) -> io::Result<DirHandle> {
        let c = c_path(path)?;
        // SAFETY: c is a valid C string.
        let d = unsafe { libc::opendir(c.as_ptr()) };
        if d.is_null() {
            Err(io::Error::last_os_error())
        } else {
            Ok(DirHandle(d))
        }
    }

    /// Up to `DIR_BATCH` names; fewer means the end was reached.
    fn read_batch(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut names = Vec::new();
        while names.len() < DIR_BATCH {
            // SAFETY: errno is this thread's; the entry is read before the
            // next readdir on this stream.
            unsafe {
                *libc::__errno_location() = 0;
                let e = libc::readdir(self.0);
                if e.is_null() {
                    let errno = *libc::__errno_location();
                    if errno != 0 {
                        return Err(io::Error::from_raw_os_error(errno));
                    }
                    break;
                }
                names.push(CStr::from_ptr((*e).d_name.as_ptr()).to_bytes().to_vec());
            }
        }
        Ok(names)
    }
}

/// State of a dir object, shared with the pool trip in flight.
struct DirInner {
    /// `None` while on the pool, at the end and after `close`.
    handle: Cell<Option<DirHandle>>,
    /// Names read ahead.
    names: RefCell<VecDeque<Vec<u8>>>,
    /// The stream reached its end (and was closed) or `close` was called.
    done: Cell<bool>,
    /// The coroutine in `next`, while a batch is on the pool.
    reader: Cell<Option<Waiter>>,
}

/// The userdata of a dir object.
struct Dir(Rc<DirInner>);

impl DirInner {
    fn busy(&self) -> bool {
        self.reader
            .get()
            .is_some_and(|w| scheduler::get().is_parked(w))
    }

    /// Return the next buffered name, or nil at the end.
    unsafe fn push_next(&self, l: *mut lua_State) -> c_int {
        // SAFETY: `l` is a live thread of lem's state, the contract of every
        // function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            match self.names.borrow_mut().pop_front() {
                Some(name) => lua::push_bytes(l, &name),
                None => ffi::lua_pushnil(l),
            }
            1
        }
    }
}

/// lfs.dir(path) -> iterator, dir | nil, err
///
/// `for name in lfs.dir(path)` lists every entry, `.` and `..` included.
unsafe extern "C-unwind" fn dir(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let path = check_path(l, 1);
        on_pool(
            l,
            move || DirHandle::open(&path),
            |t, r| match r {
                Ok(h) => {
                    ffi::lua_pushcfunction(t, dir_next);
                    lua::push_object(
                        t,
                        DIR,
                        Dir(Rc::new(DirInner {
                            handle: Cell::new(Some(h)),
                            names: RefCell::new(VecDeque::new()),
                            done: Cell::new(false),
                            reader: Cell::new(None),
                        })),
                    );
                    2
                }
                Err(e) => lua::fail(t, &os_error_text(&e)),
            },
        )
    }
}

/// dir:next() -> name | nil (at the end) | nil, err
unsafe extern "C-unwind" fn dir_next(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d: &Dir = lua::check_object(l, 1, DIR);
        let inner = &d.0;
        if inner.busy() {
            return lua::fail(l, "busy");
        }
        if !inner.names.borrow().is_empty() {
            return inner.push_next(l);
        }
        let Some(mut h) = inner.handle.take() else {
            // LEM: the end closes the stream; reading on says so.
            return if inner.done.get() {
                lua::fail(l, "closed")
            } else {
                inner.push_next(l)
            };
        };
        let inner = inner.clone();
        let fut = Box::pin(async move {
            let (h, r) = pool::run(move || {
                let r = h.read_batch();
                (h, r)
            })
            .await;
            Resume::Push(Box::new(move |t| match r {
                Ok(names) if names.len() == DIR_BATCH => {
                    inner.names.borrow_mut().extend(names);
                    inner.handle.set(Some(h));
                    inner.push_next(t)
                }
                Ok(names) => {
                    // The end: close now (a free and a close(2), no pool trip).
                    inner.names.borrow_mut().extend(names);
                    inner.done.set(true);
                    drop(h);
                    inner.push_next(t)
                }
                Err(e) => {
                    inner.done.set(true);
                    drop(h);
                    lua::fail(t, &os_error_text(&e))
                }
            }))
        });
        let w = scheduler::prepare_or_raise(l, Commit::Future(fut));
        d.0.reader.set(Some(w));
        crate::runtime::scheduler::suspend(l)
    }
}

/// dir:close() -> true | nil, 'busy' | nil, 'closed'
unsafe extern "C-unwind" fn dir_close(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let d: &Dir = lua::check_object(l, 1, DIR);
        let inner = &d.0;
        if inner.busy() {
            return lua::fail(l, "busy");
        }
        if inner.done.get() && inner.names.borrow().is_empty() {
            return lua::fail(l, "closed");
        }
        inner.done.set(true);
        inner.names.borrow_mut().clear();
        drop(inner.handle.take());
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// A call taking one path and returning `true | nil, err`.
macro_rules! path_op {
    ($(#[$doc:meta])* $name:ident, |$p:ident| $body:expr) => {
        $(#[$doc])*
        unsafe extern "C-unwind" fn $name(l: *mut lua_State) -> c_int {
            // SAFETY: Lua calls this C function on a thread of lem's
            // state; it reads only its argument, checked here.
            unsafe {
                let $p = check_path(l, 1);
                on_pool(l, move || $body, |t, r| push_unit(t, r))
            }
        }
    };
}

path_op!(
    /// lfs.mkdir(path) -> true | nil, err
    mkdir,
    |p| std::fs::DirBuilder::new().mode(0o777).create(&p)
);
path_op!(
    /// lfs.rmdir(path) -> true | nil, err
    rmdir,
    |p| std::fs::remove_dir(&p)
);
path_op!(
    /// lfs.remove(path) -> true | nil, err
    ///
    /// LEM: unlink(2), so not for directories (use `rmdir`).
    remove,
    |p| std::fs::remove_file(&p)
);
path_op!(
    /// lfs.chdir(path) -> true | nil, err
    chdir,
    |p| std::env::set_current_dir(&p)
);

/// lfs.rename(old, new) -> true | nil, err
unsafe extern "C-unwind" fn rename(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_lstring(l, 1, std::ptr::null_mut());
        lua::check_lstring(l, 2, std::ptr::null_mut());
        let (old, new) = (check_path(l, 1), check_path(l, 2));
        on_pool(
            l,
            move || std::fs::rename(&old, &new),
            |t, r| push_unit(t, r),
        )
    }
}

/// lfs.link(old, new [, symlink]) -> true | nil, err
///
/// Makes `new` a hard link to `old`, or a symbolic link holding `old`.
unsafe extern "C-unwind" fn link(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_lstring(l, 1, std::ptr::null_mut());
        lua::check_lstring(l, 2, std::ptr::null_mut());
        let symbolic = ffi::lua_toboolean(l, 3) != 0;
        let (old, new) = (check_path(l, 1), check_path(l, 2));
        on_pool(
            l,
            move || {
                if symbolic {
                    std::os::unix::fs::symlink(&old, &new)
                } else {
                    std::fs::hard_link(&old, &new)
                }
            },
            |t, r| push_unit(t, r),
        )
    }
}

/// A time argument as a `timespec` (fractions of a second kept).
fn timespec(t: f64) -> libc::timespec {
    let s = t.floor();
    libc::timespec {
        tv_sec: s as libc::time_t,
        tv_nsec: (((t - s) * 1e9) as libc::c_long).clamp(0, 999_999_999),
    }
}

/// lfs.touch(path [, atime [, mtime]]) -> true | nil, err
///
/// No times: now. Only `atime`: both times are `atime`. The file must exist.
unsafe extern "C-unwind" fn touch(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_lstring(l, 1, std::ptr::null_mut());
        let times = if lua::is_none_or_nil(l, 2) && lua::is_none_or_nil(l, 3) {
            None
        } else {
            let atime = lua::check_number(l, 2);
            let mtime = lua::opt_number(l, 3, atime);
            Some([timespec(atime), timespec(mtime)])
        };
        let path = check_path(l, 1);
        on_pool(
            l,
            move || {
                let c = c_path(&path)?;
                let ts = times.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
                // SAFETY: c is a C string; ts is null or two timespecs.
                if { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts, 0) } == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            },
            |t, r| push_unit(t, r),
        )
    }
}

/// lfs.currentdir() -> path | nil, err
unsafe extern "C-unwind" fn currentdir(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        on_pool(l, std::env::current_dir, |t, r| match r {
            Ok(p) => {
                lua::push_bytes(t, p.as_os_str().as_bytes());
                1
            }
            Err(e) => lua::fail(t, &os_error_text(&e)),
        })
    }
}

/// lfs.readlink(path) -> target | nil, err
unsafe extern "C-unwind" fn readlink(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let path = check_path(l, 1);
        on_pool(
            l,
            move || std::fs::read_link(&path),
            |t, r| match r {
                Ok(p) => {
                    lua::push_bytes(t, p.as_os_str().as_bytes());
                    1
                }
                Err(e) => lua::fail(t, &os_error_text(&e)),
            },
        )
    }
}

const FUNCS: &[Reg] = &[
    (c"attributes", attributes),
    (c"symlinkattributes", symlinkattributes),
    (c"dir", dir),
    (c"mkdir", mkdir),
    (c"rmdir", rmdir),
    (c"remove", remove),
    (c"rename", rename),
    (c"link", link),
    (c"touch", touch),
    (c"chdir", chdir),
    (c"currentdir", currentdir),
    (c"readlink", readlink),
];

const DIR_METHODS: &[Reg] = &[(c"next", dir_next), (c"close", dir_close)];

/// luaopen for `lem.lfs.core`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::new_class(l, DIR, DIR_METHODS, Some(lua::gc::<Dir>));
        ffi::lua_pop(l, 1);
        lua::new_lib(l, FUNCS);
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_strings() {
        assert_eq!(&permissions(0o644), b"rw-r--r--");
        assert_eq!(&permissions(0o100755), b"rwxr-xr-x");
        assert_eq!(&permissions(0), b"---------");
    }

    #[test]
    fn timespec_keeps_fractions() {
        let t = timespec(12.25);
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 250_000_000));
    }
}
