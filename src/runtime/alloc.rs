//! Lua's allocator: the C library's `malloc`, with a cache of freed small
//! blocks in front of it.
//!
//! A Lua state allocates and frees the same few small sizes over and over:
//! each HTTP request makes four tables with their parts and a few strings,
//! and the collector frees the last requests' in bursts. glibc's thread
//! cache keeps seven freed blocks per size; past that every free and malloc
//! goes through its bins, and mlua's allocator adds its memory accounting
//! (which lem does not use) to each call. Here freed blocks wait for reuse,
//! up to [`KEEP_BYTES`] per size class (2 MiB in all); larger blocks go
//! straight to `malloc`.
//!
//! Each state has a [`Cache`] of its own, reached through the allocator's
//! user data (no thread-local lookup per call), that keeps each class's
//! freed blocks as a list linked through the blocks themselves. Blocks are
//! plain `malloc` blocks, so any block may be freed by either side: the
//! blocks a state allocated before it got this allocator, and the cached
//! ones when the cache is dropped.
//!
//! The cache also counts the bytes Lua holds, for the memory cap
//! (`lem --max-memory`, `utils.memlimit`): past the limit an allocation
//! that a running coroutine makes fails, so that coroutine gets Lua's
//! `not enough memory` (after an emergency collection) and the process
//! goes on. Allocations made outside a coroutine's run (the loop handing
//! values to a parked task) are not refused: nothing would catch the
//! error there.

use std::ffi::c_void;
use std::ptr;

use crate::runtime::lua::{ffi, lua_State};

/// Size classes: the usable sizes of glibc's chunks (24, 40, 56, ...: a
/// 16-byte grain less the 8-byte header), so a class wastes nothing that
/// `malloc` of the exact size would not.
const GRAIN: usize = 16;
const SMALLEST: usize = 24;
const CLASSES: usize = 16;
/// The largest size cached (264).
const MAX_SMALL: usize = SMALLEST + (CLASSES - 1) * GRAIN;
/// Bytes of freed blocks kept per class: enough for the garbage a sweep of
/// the collector frees between two of a busy server's cycles.
const KEEP_BYTES: usize = 128 * 1024;

/// The class of a small size (`0..=MAX_SMALL`).
#[inline]
const fn class(size: usize) -> usize {
    size.saturating_sub(SMALLEST).div_ceil(GRAIN)
}

#[inline]
const fn class_size(c: usize) -> usize {
    SMALLEST + c * GRAIN
}

/// How many freed blocks each class keeps.
const KEEP: [u32; CLASSES] = {
    let mut keep = [0; CLASSES];
    let mut c = 0;
    while c < CLASSES {
        keep[c] = (KEEP_BYTES / class_size(c)) as u32;
        c += 1;
    }
    keep
};

/// A freed block waiting in its class's list.
struct Free {
    next: *mut Free,
}

/// One state's freed small blocks.
pub(crate) struct Cache {
    heads: [*mut Free; CLASSES],
    counts: [u32; CLASSES],
    /// Bytes Lua holds, counted while a cap is set (from Lua's own count
    /// when the cap was set; never negative).
    used: usize,
    /// The memory cap in bytes (0: none).
    limit: usize,
}

impl Cache {
    fn new() -> Cache {
        Cache {
            heads: [ptr::null_mut(); CLASSES],
            counts: [0; CLASSES],
            used: 0,
            limit: 0,
        }
    }

    /// A block of at least `size` bytes, or null.
    #[inline]
    unsafe fn alloc(&mut self, size: usize) -> *mut c_void {
        // SAFETY: malloc is sound for any size; a cached block is one that
        // `release` put on its class's list, no longer in use by Lua.
        unsafe {
            if size > MAX_SMALL {
                return libc::malloc(size);
            }
            let c = class(size);
            let head = self.heads[c];
            if head.is_null() {
                return libc::malloc(class_size(c));
            }
            self.heads[c] = (*head).next;
            self.counts[c] -= 1;
            head.cast()
        }
    }

    /// Free a block Lua knows as `size` bytes.
    #[inline]
    unsafe fn release(&mut self, p: *mut c_void, size: usize) {
        // SAFETY: Lua frees only blocks it got from `alloc` with their size: a
        // small one goes back on its class's list, which only this cache reads.
        unsafe {
            if size <= MAX_SMALL {
                let c = class(size);
                if self.counts[c] < KEEP[c] && holds_class(p, c) {
                    let block: *mut Free = p.cast();
                    (*block).next = self.heads[c];
                    self.heads[c] = block;
                    self.counts[c] += 1;
                    return;
                }
            }
            libc::free(p);
        }
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        for head in &mut self.heads {
            let mut p = std::mem::replace(head, ptr::null_mut());
            while !p.is_null() {
                // SAFETY: cached blocks came from malloc and are owned here.
                unsafe {
                    let next = (*p).next;
                    libc::free(p.cast());
                    p = next;
                }
            }
        }
    }
}

/// Whether a `malloc` block that Lua uses for a size of class `c` holds the
/// whole class. glibc's usable size is its chunk's, which the classes are:
/// always. Elsewhere a block from before the switch may have been
/// allocated at its exact size, smaller than its class.
#[inline]
unsafe fn holds_class(p: *mut c_void, c: usize) -> bool {
    // SAFETY: `p` is a live block from malloc (the caller's contract).
    unsafe {
        cfg!(all(target_os = "linux", target_env = "gnu"))
            || libc::malloc_usable_size(p) >= class_size(c)
    }
}

/// The `lua_Alloc` function; `ud` is the state's [`Cache`]. With a null
/// `ptr`, Lua 5.4 passes the kind of object as `osize`: not a size.
unsafe extern "C" fn allocator(
    ud: *mut c_void,
    ptr: *mut c_void,
    osize: usize,
    nsize: usize,
) -> *mut c_void {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let cache = &mut *(ud as *mut Cache);
        // With a null `ptr`, `osize` is a kind of object, not a size.
        // The bytes held are counted only under a cap (set_limit starts the
        // count from Lua's own): without one this costs a single test.
        if cache.limit != 0 {
            let old = if ptr.is_null() { 0 } else { osize };
            if nsize > old && refused(cache, nsize - old) {
                return ptr::null_mut();
            }
            cache.used = (cache.used + nsize).saturating_sub(old);
        }
        if ptr.is_null() {
            return if nsize == 0 {
                ptr::null_mut()
            } else {
                cache.alloc(nsize)
            };
        }
        if nsize == 0 {
            cache.release(ptr, osize);
            return ptr::null_mut();
        }
        if osize > MAX_SMALL && nsize > MAX_SMALL {
            return libc::realloc(ptr, nsize);
        }
        // Within its class, a block stays where it is (if it holds the class).
        if osize <= MAX_SMALL
            && nsize <= MAX_SMALL
            && class(nsize) == class(osize)
            && holds_class(ptr, class(nsize))
        {
            return ptr;
        }
        let p = cache.alloc(nsize);
        if !p.is_null() {
            ptr::copy_nonoverlapping(ptr as *const u8, p as *mut u8, osize.min(nsize));
            cache.release(ptr, osize);
        }
        p
    }
}

/// Whether growing by `more` bytes passes the cap while a coroutine runs.
#[cold]
fn refused(cache: &Cache, more: usize) -> bool {
    cache.used.saturating_add(more) > cache.limit
        && crate::runtime::scheduler::try_get().is_some_and(|s| s.current().is_some())
}

/// Whether an allocation of `l`'s state may be refused now: a cap is set
/// and a coroutine runs.
///
/// # Safety
/// As [`cache_of`].
pub(crate) unsafe fn may_refuse(l: *mut lua_State) -> bool {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    let capped = unsafe { cache_of(l).limit != 0 };
    capped && crate::runtime::scheduler::try_get().is_some_and(|s| s.current().is_some())
}

/// The cache of `l`'s state.
///
/// # Safety
/// `l`'s state allocates through [`install`]'s allocator.
unsafe fn cache_of<'a>(l: *mut lua_State) -> &'a mut Cache {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let mut ud = ptr::null_mut();
        ffi::lua_getallocf(l, &mut ud);
        &mut *(ud as *mut Cache)
    }
}

/// Set the memory cap of `l`'s state (0: none).
///
/// # Safety
/// As [`cache_of`].
pub(crate) unsafe fn set_limit(l: *mut lua_State, bytes: usize) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let c = cache_of(l);
        if c.limit == 0 && bytes != 0 {
            // Counting starts now, from what Lua holds.
            c.used = ffi::lua_gc(l, ffi::LUA_GCCOUNT, 0) as usize * 1024
                + ffi::lua_gc(l, ffi::LUA_GCCOUNTB, 0) as usize;
        }
        c.limit = bytes;
    }
}

/// `(used, limit)` of `l`'s state, in bytes (limit 0: none).
///
/// # Safety
/// As [`cache_of`].
pub(crate) unsafe fn usage(l: *mut lua_State) -> (usize, usize) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let c = cache_of(l);
        (c.used, c.limit)
    }
}

/// The cache a state allocates through; dropping it frees the cached
/// blocks, so it must outlive the state (mlua drops its app data after
/// `lua_close`).
pub(crate) struct Installed(*mut Cache);

impl Drop for Installed {
    fn drop(&mut self) {
        // SAFETY: made by Box::into_raw in `install`; the state is closed.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

/// Make `l`'s state allocate through a new cache from now on; the state
/// must not allocate after the returned value is dropped.
///
/// # Safety
/// `l` must be a state whose allocator hands out `malloc` blocks (mlua's
/// does, through Rust's system allocator); nothing else may be allocating
/// in it meanwhile.
pub(crate) unsafe fn install(l: *mut lua_State) -> Installed {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let cache = Box::into_raw(Box::new(Cache::new()));
        ffi::lua_setallocf(l, allocator, cache.cast());
        Installed(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_glibc_chunk_sizes() {
        assert_eq!((class(0), class(24), class(25), class(40)), (0, 0, 1, 1));
        assert_eq!(class(MAX_SMALL), CLASSES - 1);
        for n in [1, 24, 25, 40, 100, MAX_SMALL] {
            // SAFETY: a plain malloc/free pair.
            unsafe {
                let p = libc::malloc(n);
                // glibc may hand out a larger free chunk whole when the
                // rest would be too small to split (it depends on the
                // heap's state: tests run side by side), never a smaller
                // one than the class of `n`.
                assert!(libc::malloc_usable_size(p) >= class_size(class(n)));
                libc::free(p);
            }
            let size = class_size(class(n));
            // The class is the smallest chunk that holds `n`: 16 bytes apart.
            assert!(size >= n && size < n.max(24) + 16, "{n}: {size}");
        }
    }

    #[test]
    fn blocks_are_reused_per_class_and_grow_and_shrink() {
        let null = std::ptr::null_mut();
        let mut cache = Cache::new();
        let ud = &mut cache as *mut Cache as *mut c_void;
        // SAFETY: every block is used within the size it was given.
        unsafe {
            let a = allocator(ud, null, 5, 40);
            assert!(!a.is_null());
            std::ptr::write_bytes(a as *mut u8, 7, 40);
            // Same class: in place.
            let b = allocator(ud, a, 40, 36);
            assert_eq!(a, b);
            // Larger: moved, contents kept.
            let c = allocator(ud, b, 36, 1000);
            assert!((0..36).all(|i| *(c as *const u8).add(i) == 7));
            // The freed small block serves the next one of its class.
            let d = allocator(ud, null, 0, 33);
            assert_eq!(d, a);
            // Large to small: moved into a cached class.
            let e = allocator(ud, c, 1000, 20);
            assert!((0..20).all(|i| *(e as *const u8).add(i) == 7));
            assert!(allocator(ud, d, 33, 0).is_null());
            assert!(allocator(ud, e, 20, 0).is_null());
            // A block malloc gave before the switch is cached like ours.
            let f = libc::malloc(30);
            allocator(ud, f, 30, 0);
            let g = allocator(ud, null, 0, 40);
            assert_eq!(g, f);
            allocator(ud, g, 40, 0);
        }
    }

    #[test]
    fn each_class_keeps_a_bounded_number_of_blocks() {
        let null = std::ptr::null_mut();
        let mut cache = Cache::new();
        let ud = &mut cache as *mut Cache as *mut c_void;
        let c = class(100);
        let n = KEEP[c] as usize + 10;
        // SAFETY: blocks are only allocated and freed.
        unsafe {
            let blocks: Vec<_> = (0..n).map(|_| allocator(ud, null, 0, 100)).collect();
            assert!(blocks.iter().all(|p| !p.is_null()));
            for &p in &blocks {
                allocator(ud, p, 100, 0);
            }
            assert_eq!(cache.counts[c], KEEP[c]);
            assert!(KEEP[c] as usize * class_size(c) <= KEEP_BYTES);
            // The cached ones come back newest first, then malloc's.
            let last = allocator(ud, null, 0, 100);
            assert_eq!(last, blocks[KEEP[c] as usize - 1]);
            allocator(ud, last, 100, 0);
        }
        // Dropping the cache frees what it holds (valgrind would say).
        drop(cache);
    }
}
