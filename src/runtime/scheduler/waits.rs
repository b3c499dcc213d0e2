//! The futures suspended coroutines wait on, polled by the loop itself.
//!
//! A coroutine that waits for a socket, a timer or the blocking pool parks
//! on a future whose output resumes it ([`Scheduler::spawn_wait`]). Such a
//! future used to be a tokio task of its own: an aligned allocation, a trip
//! through the `LocalSet` queue and a join handle for every read that found
//! no data, which on a keep-alive HTTP connection is every request. Here a
//! future sits in a reusable *slot* instead; the slot's waker (made once per
//! slot) puts the slot on a ready list and wakes the loop, which polls the
//! ready futures between runs of coroutines. A slot may hold an object
//! that is its own wait instead of a future ([`Pending`]): a stream's read
//! then allocates nothing at all.
//!
//! A waker may be called from another thread (a blocking-pool job ending),
//! so the ready list sits behind a mutex; the loop itself only takes it to
//! swap the list out. A stale waker (of a finished wait whose slot now holds
//! another) makes at most one needless poll.
//!
//! [`Scheduler::spawn_wait`]: super::Scheduler::spawn_wait

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use super::{Pending, Resume, WaitFuture, Waiter};

/// Names one wait, to abort it; stale once the wait has ended.
#[derive(Clone, Copy, Debug)]
pub struct WaitHandle {
    pub(super) slot: u32,
    gen: u32,
}

/// What a slot waits on.
pub(super) enum Wait {
    /// A future; its output resumes the waiter.
    Future(WaitFuture),
    /// An object that is polled itself and then resumes the waiter
    /// ([`Resume::Object`]).
    Object(Rc<dyn Pending>),
}

impl Wait {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Resume> {
        match self {
            Wait::Future(f) => f.as_mut().poll(cx),
            Wait::Object(o) => o.poll(cx).map(|()| Resume::Object(o.clone())),
        }
    }
}

enum State {
    Free,
    Waiting(Wait),
    /// Taken out by the loop for a poll.
    Polling,
}

struct Slot {
    state: State,
    /// Bumped each time the slot's wait ends, so a stale handle aborts
    /// nothing.
    gen: u32,
    waiter: Waiter,
    signal: Arc<SlotSignal>,
    waker: Waker,
}

/// What the loop and the wakers share.
#[derive(Default)]
struct Shared {
    ready: Vec<u32>,
    /// The loop's waker.
    loop_waker: Option<Waker>,
    /// The loop waits for something to do: the first slot made ready wakes
    /// it. (While it runs, it looks at the list before it idles again.)
    idle: bool,
}

struct SlotSignal {
    shared: Arc<Mutex<Shared>>,
    slot: u32,
    /// On the ready list already.
    queued: AtomicBool,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // Nothing panics while holding it; a poisoned list is still a list.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Wake the loop if it idles.
    fn wake_loop(&mut self) {
        if self.idle {
            self.idle = false;
            if let Some(w) = &self.loop_waker {
                w.wake_by_ref();
            }
        }
    }
}

impl Wake for SlotSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut shared = lock(&self.shared);
        shared.ready.push(self.slot);
        shared.wake_loop();
    }
}

/// The slots, the ready list and the loop's view of them.
pub(super) struct Waits {
    slots: RefCell<Vec<Slot>>,
    /// Slots without a wait, for `start` to reuse.
    free: RefCell<Vec<u32>>,
    shared: Arc<Mutex<Shared>>,
    /// The list swapped out of `shared` by the last poll (kept for its
    /// capacity).
    batch: RefCell<Vec<u32>>,
}

impl Waits {
    pub(super) fn new() -> Waits {
        Waits {
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            shared: Arc::new(Mutex::new(Shared::default())),
            batch: RefCell::new(Vec::new()),
        }
    }

    /// Waits in flight.
    pub(super) fn live(&self) -> usize {
        self.slots.borrow().len() - self.free.borrow().len()
    }

    /// Start waiting on `fut` for `waiter`; it is first polled at the loop's
    /// next turn.
    pub(super) fn start(&self, waiter: Waiter, fut: Wait) -> WaitHandle {
        let (slot, handle) = self.take_slot(waiter, State::Waiting(fut));
        let signal = self.slots.borrow()[slot as usize].signal.clone();
        signal.wake_by_ref();
        handle
    }

    /// Start waiting on the object `o` for `waiter`, polling it at once (it
    /// registers its wakers now, not at the loop's next turn). Returns the
    /// handle, and whether `o` was ready already: then the wait is over and
    /// the waiter is to be woken with it.
    pub(super) fn start_polled(&self, waiter: Waiter, o: Rc<dyn Pending>) -> (WaitHandle, bool) {
        let (slot, handle) = self.take_slot(waiter, State::Polling);
        let waker = self.slots.borrow()[slot as usize].waker.clone();
        let ready = o.poll(&mut Context::from_waker(&waker)).is_ready();
        if ready {
            self.release(slot);
        } else {
            self.slots.borrow_mut()[slot as usize].state = State::Waiting(Wait::Object(o));
        }
        (handle, ready)
    }

    /// A free slot (reused or new) for `waiter`, put in `state`.
    fn take_slot(&self, waiter: Waiter, state: State) -> (u32, WaitHandle) {
        let reused = self.free.borrow_mut().pop();
        let mut slots = self.slots.borrow_mut();
        let slot = match reused {
            Some(i) => i,
            None => {
                let i = slots.len() as u32;
                let signal = Arc::new(SlotSignal {
                    shared: self.shared.clone(),
                    slot: i,
                    queued: AtomicBool::new(false),
                });
                slots.push(Slot {
                    state: State::Free,
                    gen: 0,
                    waiter,
                    waker: Waker::from(signal.clone()),
                    signal,
                });
                i
            }
        };
        let s = &mut slots[slot as usize];
        s.state = state;
        s.waiter = waiter;
        (slot, WaitHandle { slot, gen: s.gen })
    }

    /// End the slot's wait (its future, if any, is returned to be dropped
    /// by the caller, outside any borrow).
    fn release(&self, slot: u32) -> Option<Wait> {
        let mut slots = self.slots.borrow_mut();
        let s = &mut slots[slot as usize];
        let fut = match std::mem::replace(&mut s.state, State::Free) {
            State::Waiting(f) => Some(f),
            State::Polling => None,
            State::Free => unreachable!("released a free slot"),
        };
        s.gen = s.gen.wrapping_add(1);
        drop(slots);
        self.free.borrow_mut().push(slot);
        fut
    }

    /// Drop the wait's future without waking anyone; a no-op once it ended.
    pub(super) fn abort(&self, h: WaitHandle) {
        let active = self
            .slots
            .borrow()
            .get(h.slot as usize)
            .is_some_and(|s| s.gen == h.gen && !matches!(s.state, State::Free));
        if active {
            drop(self.release(h.slot));
        }
    }

    /// Drop the wait in `slot` if it is `waiter`'s (a parked task is being
    /// cancelled), without waking anyone.
    pub(super) fn abort_for(&self, slot: u32, waiter: Waiter) {
        let mine = self
            .slots
            .borrow()
            .get(slot as usize)
            .is_some_and(|s| s.waiter == waiter && matches!(s.state, State::Waiting(_)));
        if mine {
            drop(self.release(slot));
        }
    }

    /// The loop is about to idle: false (and the loop is to run on) when a
    /// slot is ready already, else `w` is kept for the first slot made
    /// ready to wake.
    pub(super) fn idle(&self, w: &Waker) -> bool {
        let mut shared = lock(&self.shared);
        if !shared.ready.is_empty() {
            return false;
        }
        match &shared.loop_waker {
            Some(old) if old.will_wake(w) => {}
            _ => shared.loop_waker = Some(w.clone()),
        }
        shared.idle = true;
        true
    }

    /// The loop runs again (woken by anything).
    pub(super) fn busy(&self) {
        lock(&self.shared).idle = false;
    }

    /// Wake the loop if it idles (it has something else to do).
    pub(super) fn wake_idle_loop(&self) {
        lock(&self.shared).wake_loop();
    }

    /// Poll the futures whose wakers were called; `done` gets the waiter
    /// and output of each that finished.
    pub(super) fn poll_ready(&self, mut done: impl FnMut(Waiter, Resume)) {
        let mut batch = std::mem::take(&mut *self.batch.borrow_mut());
        {
            let mut shared = lock(&self.shared);
            if shared.ready.is_empty() {
                drop(shared);
                *self.batch.borrow_mut() = batch;
                return;
            }
            std::mem::swap(&mut shared.ready, &mut batch);
        }
        for &slot in &batch {
            let (mut fut, gen, waker) = {
                let mut slots = self.slots.borrow_mut();
                let s = &mut slots[slot as usize];
                s.signal.queued.store(false, Ordering::Release);
                match std::mem::replace(&mut s.state, State::Polling) {
                    State::Waiting(f) => (f, s.gen, s.waker.clone()),
                    other => {
                        s.state = other;
                        continue;
                    }
                }
            };
            let r = fut.poll(&mut Context::from_waker(&waker));
            let current = {
                let slots = self.slots.borrow();
                let s = &slots[slot as usize];
                s.gen == gen && matches!(s.state, State::Polling)
            };
            if !current {
                // Aborted while polled.
                drop(fut);
                continue;
            }
            match r {
                Poll::Pending => {
                    self.slots.borrow_mut()[slot as usize].state = State::Waiting(fut);
                }
                Poll::Ready(resume) => {
                    let waiter = self.slots.borrow()[slot as usize].waiter;
                    self.release(slot);
                    drop(fut);
                    done(waiter, resume);
                }
            }
        }
        batch.clear();
        *self.batch.borrow_mut() = batch;
    }

    /// Drop every wait (the runtime is ending).
    pub(super) fn clear(&self) {
        let n = self.slots.borrow().len() as u32;
        for slot in 0..n {
            let waiting = matches!(self.slots.borrow()[slot as usize].state, State::Waiting(_));
            if waiting {
                drop(self.release(slot));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A future that is ready once `go` is set, keeping its last waker in
    /// `waker` and counting its drops in `drops`.
    fn gate(go: Rc<Cell<bool>>, waker: Rc<RefCell<Option<Waker>>>, drops: Rc<Cell<u32>>) -> Wait {
        struct Bomb(Rc<Cell<u32>>);
        impl Drop for Bomb {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let bomb = Bomb(drops);
        Wait::Future(Box::pin(std::future::poll_fn(move |cx| {
            let _ = &bomb;
            if go.get() {
                Poll::Ready(Resume::Staged(7))
            } else {
                *waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })))
    }

    fn waiter(task: i32) -> Waiter {
        Waiter { task, seq: 1 }
    }

    #[test]
    fn a_wait_is_polled_when_woken_and_resumes_its_waiter() {
        let waits = Waits::new();
        let go = Rc::new(Cell::new(false));
        let waker = Rc::new(RefCell::new(None));
        let drops = Rc::new(Cell::new(0));
        waits.start(waiter(3), gate(go.clone(), waker.clone(), drops.clone()));
        assert_eq!(waits.live(), 1);
        let mut woken = Vec::new();
        waits.poll_ready(|w, _| woken.push(w.task));
        assert!(woken.is_empty() && waker.borrow().is_some());
        // Not woken: not polled, even when it could finish.
        go.set(true);
        waits.poll_ready(|w, _| woken.push(w.task));
        assert!(woken.is_empty());
        waker.borrow().as_ref().unwrap().wake_by_ref();
        waits.poll_ready(|w, r| {
            assert!(matches!(r, Resume::Staged(7)));
            woken.push(w.task)
        });
        assert_eq!(woken, [3]);
        assert_eq!((waits.live(), drops.get()), (0, 1));
    }

    #[test]
    fn an_aborted_wait_is_dropped_and_its_slot_reused() {
        let waits = Waits::new();
        let go = Rc::new(Cell::new(false));
        let waker = Rc::new(RefCell::new(None));
        let drops = Rc::new(Cell::new(0));
        let h = waits.start(waiter(1), gate(go.clone(), waker.clone(), drops.clone()));
        waits.poll_ready(|_, _| panic!("not ready"));
        waits.abort(h);
        assert_eq!((waits.live(), drops.get()), (0, 1));
        // The slot serves the next wait; the old handle and waker are stale.
        let h2 = waits.start(waiter(2), gate(go.clone(), waker.clone(), drops.clone()));
        assert_eq!(h2.slot, h.slot);
        waits.abort(h);
        assert_eq!(waits.live(), 1);
        go.set(true);
        let mut woken = Vec::new();
        waits.poll_ready(|w, _| woken.push(w.task));
        assert_eq!(woken, [2]);
        waits.abort(h2);
        assert_eq!((waits.live(), drops.get()), (0, 2));
    }

    /// A [`Pending`] that is ready once `go` is set, counting its polls.
    struct Gate {
        go: Cell<bool>,
        polls: Cell<u32>,
        waker: RefCell<Option<Waker>>,
    }

    impl Pending for Gate {
        fn started(&self, _: Waiter, _: super::super::WaitHandle) {}
        fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.set(self.polls.get() + 1);
            if self.go.get() {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
        unsafe fn push(&self, _: *mut crate::runtime::lua::lua_State) -> std::ffi::c_int {
            0
        }
    }

    #[test]
    fn an_object_wait_is_polled_at_once() {
        let waits = Waits::new();
        let gate = Rc::new(Gate {
            go: Cell::new(true),
            polls: Cell::new(0),
            waker: RefCell::new(None),
        });
        // Ready at once: over, its slot free, nothing queued.
        let (_, ready) = waits.start_polled(waiter(1), gate.clone());
        assert!(ready);
        assert_eq!((waits.live(), gate.polls.get()), (0, 1));
        waits.poll_ready(|_, _| panic!("nothing to poll"));
        // Not ready: waits in its slot, polled again once woken.
        gate.go.set(false);
        let (_, ready) = waits.start_polled(waiter(2), gate.clone());
        assert!(!ready);
        waits.poll_ready(|_, _| panic!("not woken"));
        assert_eq!((waits.live(), gate.polls.get()), (1, 2));
        gate.go.set(true);
        gate.waker.borrow().as_ref().unwrap().wake_by_ref();
        let mut woken = Vec::new();
        waits.poll_ready(|w, r| {
            assert!(matches!(r, Resume::Object(_)));
            woken.push(w.task)
        });
        assert_eq!((woken, waits.live(), gate.polls.get()), (vec![2], 0, 3));
    }
}
