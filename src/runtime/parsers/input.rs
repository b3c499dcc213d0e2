//! [`Input`]: the input buffer of a stream or file, over 64 KiB chunks
//! kept between uses in a small per-thread pool of spares, and the
//! accounting of what it holds against the input [`budget`](super::budget).

use super::budget;

/// Bytes asked of the kernel per read: 16 KiB at least, more for bulk.
const CHUNK: usize = 64 << 10;

/// Largest buffer kept for reuse.
const SPARE_MAX: usize = 256 << 10;

/// Most spare buffers kept: enough for the streams one turn of the loop
/// fills before their coroutines run (a busy server's connections).
const SPARES: usize = 8;

/// Input up to this size is copied out of the chunk it was read into.
const SMALL: usize = 4 << 10;

/// Copies up to this size go into a buffer of exactly this capacity from
/// a pool of their own (a request head, a line), not a fresh allocation.
const TINY: usize = 512;

/// Most tiny buffers kept: a busy server's connections each hold one
/// between a fill and their coroutine's read (128 KiB at most).
const TINIES: usize = 256;

thread_local! {
    /// Empty buffers that streams gave back when they ran dry: a line echo
    /// or a keep-alive connection takes and returns one every round trip
    /// instead of asking malloc for 64 KiB twice, and an idle connection
    /// still holds no buffer.
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The same for the [`TINY`] copies: with a loop turn filling dozens
    /// of streams, their allocations went past malloc's per-thread cache.
    static TINY_SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Keep `data`'s allocation among the spare buffers when it is an ordinary
/// chunk or a tiny copy and there is room; else free it.
fn give_back(mut data: Vec<u8>) {
    let (pool, most) = match data.capacity() {
        TINY => (&TINY_SPARE, TINIES),
        c if (CHUNK..=SPARE_MAX).contains(&c) => (&SPARE, SPARES),
        _ => return,
    };
    data.clear();
    pool.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < most {
            s.push(data);
        }
    });
}

/// A copy of `bytes` (at most [`SMALL`]), in a pooled buffer when tiny.
fn small_copy(bytes: &[u8]) -> Vec<u8> {
    if bytes.len() > TINY {
        return bytes.to_vec();
    }
    let mut v = TINY_SPARE
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(TINY));
    v.extend_from_slice(bytes);
    v
}

/// The input buffer of a stream or file: bytes `start..` of `data` are
/// unread. The allocation is dropped whenever the buffer runs empty, so an
/// idle connection holds no buffer.
#[derive(Default)]
pub struct Input {
    data: Vec<u8>,
    start: usize,
    /// How far a line search already looked (relative to `start`).
    pub(super) scanned: std::cell::Cell<usize>,
}

impl Input {
    /// The unread bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..]
    }

    /// Number of unread bytes.
    pub fn len(&self) -> usize {
        self.data.len() - self.start
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop the first `n` unread bytes.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len());
        budget::account(self.len(), self.len() - n);
        self.start += n;
        self.scanned.set(0);
        if self.start == self.data.len() {
            self.clear();
        }
    }

    /// Drop everything, and the allocation with it (kept as this thread's
    /// spare buffers when it is an ordinary chunk).
    pub fn clear(&mut self) {
        budget::account(self.len(), 0);
        let data = std::mem::take(&mut self.data);
        self.start = 0;
        self.scanned.set(0);
        give_back(data);
    }

    /// Read into the buffer with `read(buf) -> io::Result<usize>` (0: end of
    /// input), making room for at least a chunk first.
    pub fn fill(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        if self.start > 0
            && (self.start >= self.data.len() / 2 || self.data.capacity() - self.data.len() < CHUNK)
        {
            self.data.drain(..self.start);
            self.start = 0;
        }
        let borrowed = self.data.capacity() == 0;
        if borrowed {
            self.data = SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_default();
        }
        let want = CHUNK.max(self.len().min(256 << 10));
        if self.data.capacity() - self.data.len() < want {
            self.data.reserve(want);
        }
        let len = self.data.len();
        let cap = self.data.capacity();
        // SAFETY: the spare capacity is only written by `read`, and only the
        // `n` bytes it reports are made part of the vector. Zeroing it first
        // would cost as much as the read for bulk transfers.
        let spare =
            unsafe { std::slice::from_raw_parts_mut(self.data.as_mut_ptr().add(len), cap - len) };
        let r = read(spare);
        if let Ok(n) = r {
            let before = self.len();
            // SAFETY: `read` initialised `n <= cap - len` bytes.
            unsafe { self.data.set_len(len + n.min(cap - len)) };
            budget::account(before, self.len());
        }
        if self.is_empty() {
            self.clear();
        } else if borrowed && self.data.len() <= SMALL {
            // A request or a line: keep a copy its size and hand the chunk
            // back at once, so that the streams a busy loop fills in one
            // turn share one chunk instead of each allocating its own.
            let small = small_copy(&self.data);
            let chunk = std::mem::replace(&mut self.data, small);
            give_back(chunk);
        }
        r
    }

    /// Append bytes (for tests and for sources that hand over owned data).
    pub fn extend(&mut self, bytes: &[u8]) {
        budget::account(self.len(), self.len() + bytes.len());
        self.data.extend_from_slice(bytes);
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        budget::account(self.len(), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(b: &[u8]) -> Input {
        let mut i = Input::default();
        i.extend(b);
        i
    }

    #[test]
    fn empty_input_holds_no_allocation() {
        let mut i = input(b"xy");
        i.consume(2);
        assert_eq!(i.data.capacity(), 0);
        i.fill(|buf| {
            buf[0] = b'z';
            Ok(1)
        })
        .unwrap();
        assert!(
            i.data.capacity() < CHUNK,
            "a small read is copied out of the chunk"
        );
        assert_eq!(i.bytes(), b"z");
        assert_eq!(i.data.capacity(), TINY, "into a pooled tiny buffer");
        let tiny = i.data.as_ptr();
        i.consume(1);
        assert_eq!(i.data.capacity(), 0, "a drained buffer is dropped");
        i.fill(|buf| {
            buf[..3].copy_from_slice(b"abc");
            Ok(3)
        })
        .unwrap();
        assert_eq!(i.data.as_ptr(), tiny, "the tiny buffer is reused");
        assert_eq!(i.bytes(), b"abc");
        i.consume(3);
        i.fill(|buf| {
            buf[..TINY + 1].fill(b'x');
            Ok(TINY + 1)
        })
        .unwrap();
        assert_eq!(
            i.data.capacity(),
            TINY + 1,
            "a larger copy has its own size"
        );
        i.consume(TINY + 1);
        i.fill(|buf| {
            buf[..SMALL + 1].fill(b'b');
            Ok(SMALL + 1)
        })
        .unwrap();
        assert!(i.data.capacity() >= CHUNK, "a bulk read keeps its chunk");
        i.fill(|buf| {
            buf[0] = b'c';
            Ok(1)
        })
        .unwrap();
        assert_eq!(i.len(), SMALL + 2);
        i.consume(SMALL + 2);
        assert_eq!(i.data.capacity(), 0);
        let r = i.fill(|_| Ok(0));
        assert_eq!(r.unwrap(), 0);
        assert_eq!(i.data.capacity(), 0);
    }

    #[test]
    fn fill_appends_after_unread_bytes() {
        let mut i = input(b"ab");
        i.consume(1);
        i.fill(|buf| {
            buf[..2].copy_from_slice(b"cd");
            Ok(2)
        })
        .unwrap();
        assert_eq!(i.bytes(), b"bcd");
    }
}
