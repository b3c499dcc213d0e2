//! Lua's allocator: the C library's `malloc`, with a cache of freed small
//! blocks in front of it.
//!
//! A Lua state allocates and frees the same few small sizes over and over:
//! each HTTP request makes four tables with their parts and a few strings,
//! and the collector frees the last requests' in bursts. glibc's thread
//! cache keeps seven freed blocks per size; past that every free and malloc
//! goes through its bins, ~4% of a request's instructions, and mlua's
//! allocator adds its memory accounting (which lem does not use) to each
//! call. Here freed blocks wait for reuse, up to [`KEEP_BYTES`] per size
//! class (2 MiB in all); larger blocks go straight to `malloc`.
//!
//! Blocks are plain `malloc` blocks, so any block may be freed by either
//! side: the blocks a state allocated before it got this allocator, a block
//! cached by one state and reused by another on the same thread.

use std::cell::RefCell;
use std::ffi::c_void;

use crate::lua::{ffi, lua_State};

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

struct Cache {
    free: [Vec<*mut c_void>; CLASSES],
}

impl Drop for Cache {
    fn drop(&mut self) {
        for list in &mut self.free {
            for p in list.drain(..) {
                // SAFETY: cached blocks came from malloc and are owned here.
                unsafe { libc::free(p) };
            }
        }
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache {
        free: std::array::from_fn(|_| Vec::new()),
    });
}

/// The class of a small size (`0..=MAX_SMALL`).
#[inline]
fn class(size: usize) -> usize {
    size.saturating_sub(SMALLEST).div_ceil(GRAIN)
}

#[inline]
fn class_size(c: usize) -> usize {
    SMALLEST + c * GRAIN
}

/// A block of at least `size` bytes, or null.
#[inline]
unsafe fn alloc(size: usize) -> *mut c_void {
    if size > MAX_SMALL {
        return libc::malloc(size);
    }
    let c = class(size);
    let cached = CACHE
        .try_with(|cache| cache.borrow_mut().free[c].pop())
        .ok()
        .flatten();
    cached.unwrap_or_else(|| libc::malloc(class_size(c)))
}

/// Free a block Lua knows as `size` bytes.
#[inline]
unsafe fn release(p: *mut c_void, size: usize) {
    if size <= MAX_SMALL {
        let c = class(size);
        // Blocks from before the switch were allocated at their exact size:
        // only those that hold the whole class go to the cache.
        if libc::malloc_usable_size(p) >= class_size(c) {
            let kept = CACHE
                .try_with(|cache| {
                    let list = &mut cache.borrow_mut().free[c];
                    let room = list.len() * class_size(c) < KEEP_BYTES;
                    if room {
                        list.push(p);
                    }
                    room
                })
                .unwrap_or(false);
            if kept {
                return;
            }
        }
    }
    libc::free(p);
}

/// The `lua_Alloc` function. With a null `ptr`, Lua 5.4 passes the kind of
/// object as `osize`: not a size.
unsafe extern "C" fn allocator(
    _ud: *mut c_void,
    ptr: *mut c_void,
    osize: usize,
    nsize: usize,
) -> *mut c_void {
    if ptr.is_null() {
        return if nsize == 0 {
            std::ptr::null_mut()
        } else {
            alloc(nsize)
        };
    }
    if nsize == 0 {
        release(ptr, osize);
        return std::ptr::null_mut();
    }
    if osize > MAX_SMALL && nsize > MAX_SMALL {
        return libc::realloc(ptr, nsize);
    }
    // Within its class, a block stays where it is (if it holds the class:
    // see `release`).
    if osize <= MAX_SMALL
        && nsize <= MAX_SMALL
        && class(nsize) == class(osize)
        && libc::malloc_usable_size(ptr) >= class_size(class(nsize))
    {
        return ptr;
    }
    let p = alloc(nsize);
    if !p.is_null() {
        std::ptr::copy_nonoverlapping(ptr as *const u8, p as *mut u8, osize.min(nsize));
        release(ptr, osize);
    }
    p
}

/// Make `l`'s state allocate through the cache from now on.
///
/// # Safety
/// `l` must be a state whose allocator hands out `malloc` blocks (mlua's
/// does, through Rust's system allocator); nothing else may be allocating
/// in it meanwhile.
pub(crate) unsafe fn install(l: *mut lua_State) {
    ffi::lua_setallocf(l, allocator, std::ptr::null_mut());
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
                assert_eq!(libc::malloc_usable_size(p), class_size(class(n)));
                libc::free(p);
            }
        }
    }

    #[test]
    fn blocks_are_reused_per_class_and_grow_and_shrink() {
        let null = std::ptr::null_mut();
        // SAFETY: every block is used within the size it was given.
        unsafe {
            let a = allocator(null, null, 5, 40);
            assert!(!a.is_null());
            std::ptr::write_bytes(a as *mut u8, 7, 40);
            // Same class: in place.
            let b = allocator(null, a, 40, 36);
            assert_eq!(a, b);
            // Larger: moved, contents kept.
            let c = allocator(null, b, 36, 1000);
            assert!((0..36).all(|i| *(c as *const u8).add(i) == 7));
            // The freed small block serves the next one of its class.
            let d = allocator(null, null, 0, 33);
            assert_eq!(d, a);
            // Large to small: moved into a cached class.
            let e = allocator(null, c, 1000, 20);
            assert!((0..20).all(|i| *(e as *const u8).add(i) == 7));
            assert!(allocator(null, d, 33, 0).is_null());
            assert!(allocator(null, e, 20, 0).is_null());
            // A block malloc gave before the switch is cached like ours.
            let f = libc::malloc(30);
            allocator(null, f, 30, 0);
            let g = allocator(null, null, 0, 40);
            assert_eq!(g, f);
            allocator(null, g, 40, 0);
        }
    }
}
