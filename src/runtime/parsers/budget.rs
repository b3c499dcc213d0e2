//! The budget for input buffered by all the streams and files of this
//! thread's loop (one per process): `io.setbudget`. Past it, the inputs
//! that hold more than their share (the budget over the number of inputs
//! holding anything) get no more: their reads fail as at their limit
//! (bounded formats: the format's limit error, `read(n)` and `'*a'`:
//! [`OVER`]), so the biggest offenders are cut first and the others go on.

use std::cell::Cell;

/// What `read(n)` and `read('*a')` return when cut.
pub const OVER: &str = "out of buffer space";

thread_local! {
    /// Bytes buffered, inputs holding any, the budget.
    static STATE: Cell<(usize, usize, usize)> = const { Cell::new((0, 0, 0)) };
}

/// The default budget: a quarter of the machine's memory, at most
/// 256 MiB.
pub fn default_budget() -> usize {
    // SAFETY: sysconf has no preconditions.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let ram = (pages.max(0) as usize).saturating_mul(size.max(0) as usize);
    let most = 256 << 20;
    if ram == 0 {
        most
    } else {
        (ram / 4).min(most)
    }
}

fn state() -> (usize, usize, usize) {
    STATE.with(|s| {
        let (b, h, budget) = s.get();
        if budget == 0 {
            let budget = default_budget();
            s.set((b, h, budget));
            return (b, h, budget);
        }
        (b, h, budget)
    })
}

/// An input went from `before` to `after` bytes.
#[inline]
pub(super) fn account(before: usize, after: usize) {
    if before == after {
        return;
    }
    STATE.with(|s| {
        let (b, h, budget) = s.get();
        let h = match (before, after) {
            (0, _) => h + 1,
            (_, 0) => h.saturating_sub(1),
            _ => h,
        };
        s.set((b.wrapping_sub(before).wrapping_add(after), h, budget));
    });
}

/// Whether an input holding `len` bytes is cut: the budget is spent
/// and it holds at least its share.
#[inline]
pub fn cut(len: usize) -> bool {
    let (b, h, budget) = STATE.with(|s| s.get());
    if budget != 0 && b <= budget {
        return false;
    }
    let (b, h, budget) = if budget == 0 { state() } else { (b, h, budget) };
    len > 0 && b > budget && len >= budget / h.max(1)
}

/// Bytes held elsewhere than in an input (a chunked body gathered in
/// pieces) and counted against the budget as one input holding them,
/// until dropped.
#[derive(Default)]
pub struct Charge(Cell<usize>);

impl Charge {
    /// Count `n` more bytes; false (and nothing counted) when the
    /// budget is spent and this holds its share, as [`cut`].
    pub fn add(&self, n: usize) -> bool {
        let before = self.0.get();
        let after = before.saturating_add(n);
        account(before, after);
        if cut(after) {
            account(after, before);
            return false;
        }
        self.0.set(after);
        true
    }

    /// Count nothing any more.
    pub fn release(&self) {
        account(self.0.replace(0), 0);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.release();
    }
}

/// The budget and the bytes buffered now.
pub fn get() -> (usize, usize) {
    let (b, _, budget) = state();
    (budget, b)
}

/// Set the budget (`None`: the default).
pub fn set(bytes: Option<usize>) {
    let budget = bytes.unwrap_or_else(default_budget).max(1);
    STATE.with(|s| {
        let (b, h, _) = s.get();
        s.set((b, h, budget));
    });
}
