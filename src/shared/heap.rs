//! A buddy allocator over a span of a region, by offsets: blocks of 2^k
//! bytes (32 bytes to 2 GiB), each starting with its order and whether
//! it is used; a freed block merges with its free buddy. Free blocks of
//! each order are a doubly linked list whose heads live in the region's
//! header ([`Heap`]).
//!
//! The span is carved greedily into the largest aligned blocks that fit,
//! so no memory is lost to rounding the span to a power of two; a buddy
//! that would reach past the span is never free, so no block merges
//! across its end.

/// Smallest block: 32 bytes.
pub const MIN_ORDER: u32 = 5;
/// Orders 0..ORDERS (those below [`MIN_ORDER`] stay empty).
pub const ORDERS: usize = 32;

/// The allocator's state, kept in the region's header.
#[repr(C)]
pub struct Heap {
    /// Offset of the span in the region, and its length.
    pub start: u32,
    pub len: u32,
    /// Bytes in free blocks.
    pub free_bytes: u64,
    /// Head of each order's free list (0: empty; offset 0 is the header).
    pub free: [u32; ORDERS],
}

/// What every block starts with.
#[repr(C)]
pub struct Block {
    pub order: u8,
    pub used: u8,
}

/// A free block.
#[repr(C)]
struct Free {
    order: u8,
    used: u8,
    _pad: u16,
    next: u32,
    prev: u32,
}

/// The order of the smallest block holding `bytes`, if any may.
pub fn order_for(bytes: usize) -> Option<u32> {
    let order = bytes
        .max(1)
        .next_power_of_two()
        .trailing_zeros()
        .max(MIN_ORDER);
    ((order as usize) < ORDERS).then_some(order)
}

impl Heap {
    /// The heap of the span `start..start + len` of the region at `base`,
    /// all free. `start` is aligned to 2^MIN_ORDER.
    ///
    /// # Safety
    /// The span lies inside the region; nobody else uses it.
    pub unsafe fn init(&mut self, base: *mut u8, start: u32, len: u32) {
        // SAFETY: the callers keep the contract in this function's `# Safety`
        // section, which is all the calls below rely on.
        unsafe {
            self.start = start;
            self.len = len & !((1 << MIN_ORDER) - 1);
            self.free_bytes = 0;
            self.free = [0; ORDERS];
            let mut at = 0u32;
            while at < self.len {
                let mut order = (ORDERS - 1) as u32;
                while order > MIN_ORDER
                    && (at % (1u32 << order) != 0 || at as u64 + (1u64 << order) > self.len as u64)
                {
                    order -= 1;
                }
                if at as u64 + (1u64 << order) > self.len as u64 {
                    break;
                }
                self.push(base, start + at, order);
                at += 1 << order;
            }
        }
    }

    /// The largest order any block may have.
    pub fn max_order(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            31 - self.len.leading_zeros()
        }
    }

    unsafe fn free_at(base: *mut u8, off: u32) -> *mut Free {
        // SAFETY: `off` is inside the region at `base` (the caller's contract).
        unsafe { base.add(off as usize) as *mut Free }
    }

    unsafe fn push(&mut self, base: *mut u8, off: u32, order: u32) {
        // SAFETY: `off` is a block inside the region at `base` that the caller
        // hands back, so its header is ours to write.
        unsafe {
            let f = Self::free_at(base, off);
            let head = self.free[order as usize];
            (*f).order = order as u8;
            (*f).used = 0;
            (*f).next = head;
            (*f).prev = 0;
            if head != 0 {
                (*Self::free_at(base, head)).prev = off;
            }
            self.free[order as usize] = off;
            self.free_bytes += 1 << order;
        }
    }

    unsafe fn unlink(&mut self, base: *mut u8, off: u32) {
        // SAFETY: `off` is a free block inside the region at `base` (the caller's
        // contract), so its header is valid to read and relink.
        unsafe {
            let f = Self::free_at(base, off);
            let order = (*f).order as usize;
            let (next, prev) = ((*f).next, (*f).prev);
            if prev != 0 {
                (*Self::free_at(base, prev)).next = next;
            } else {
                self.free[order] = next;
            }
            if next != 0 {
                (*Self::free_at(base, next)).prev = prev;
            }
            self.free_bytes -= 1 << order;
        }
    }

    /// A used block of `order`, or `None` when no free block is that big.
    ///
    /// # Safety
    /// The heap is this region's, under its lock.
    pub unsafe fn alloc(&mut self, base: *mut u8, order: u32) -> Option<u32> {
        // SAFETY: the callers keep the contract in this function's `# Safety`
        // section, which is all the calls below rely on.
        unsafe {
            let mut k = order as usize;
            while k < ORDERS && self.free[k] == 0 {
                k += 1;
            }
            if k >= ORDERS {
                return None;
            }
            let off = self.free[k];
            self.unlink(base, off);
            while k > order as usize {
                k -= 1;
                self.push(base, off + (1 << k), k as u32);
            }
            let b = base.add(off as usize) as *mut Block;
            (*b).order = order as u8;
            (*b).used = 1;
            Some(off)
        }
    }

    /// Give back the used block at `off`.
    ///
    /// # Safety
    /// `off` came from [`Heap::alloc`] and was not freed since.
    pub unsafe fn free(&mut self, base: *mut u8, mut off: u32) {
        // SAFETY: the callers keep the contract in this function's `# Safety`
        // section, which is all the calls below rely on.
        unsafe {
            let mut order = (*(base.add(off as usize) as *const Block)).order as u32;
            while (order as usize) < ORDERS - 1 {
                let rel = off - self.start;
                let buddy_rel = rel ^ (1 << order);
                if buddy_rel as u64 + (1u64 << order) > self.len as u64 {
                    break;
                }
                let buddy = self.start + buddy_rel;
                let b = base.add(buddy as usize) as *const Block;
                if (*b).used != 0 || (*b).order as u32 != order {
                    break;
                }
                self.unlink(base, buddy);
                off = off.min(buddy);
                order += 1;
            }
            self.push(base, off, order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap(len: u32) -> (Vec<u64>, Heap) {
        let mem = vec![0u64; (len as usize + 64) / 8];
        let mut h = Heap {
            start: 0,
            len: 0,
            free_bytes: 0,
            free: [0; ORDERS],
        };
        // Offset 0 is never a block: start at 64.
        // SAFETY: the buffer is len + 64 bytes and outlives `h` (returned with it).
        unsafe { h.init(mem.as_ptr() as *mut u8, 64, len) };
        (mem, h)
    }

    #[test]
    fn orders() {
        assert_eq!(order_for(1), Some(5));
        assert_eq!(order_for(32), Some(5));
        assert_eq!(order_for(33), Some(6));
        assert_eq!(order_for(4096), Some(12));
        assert_eq!(order_for(usize::MAX / 2), None);
    }

    #[test]
    fn allocations_merge_back() {
        let len = 3 * 4096 + 96;
        let (mem, mut h) = heap(len);
        let base = mem.as_ptr() as *mut u8;
        assert_eq!(h.free_bytes, len as u64);
        let mut got = Vec::new();
        // SAFETY: `base` is the test's own buffer, which `h` was set up on.
        unsafe {
            while let Some(off) = h.alloc(base, 6) {
                assert!(off >= 64 && off + 64 <= 64 + len);
                got.push(off);
            }
            assert_eq!(got.len() as u32, len / 64);
            assert!(h.free_bytes < 64);
            let mut sorted = got.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), got.len(), "no block given twice");
            for off in got.drain(..).rev() {
                h.free(base, off);
            }
            assert_eq!(h.free_bytes, len as u64);
            // Merged: a 8 KiB block is there again.
            let big = h.alloc(base, 13).expect("merged");
            h.free(base, big);
        }
    }
}
