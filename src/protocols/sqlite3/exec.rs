//! Where a connection's calls run ([`Exec`]): on the loop thread itself
//! (`inline = true`: each call blocks the loop for its statement's length),
//! or on a thread of the connection's own that takes its jobs in order from
//! a channel.
//!
//! A trip to the blocking pool costs two full thread wake-ups (the pool's
//! condvar, then the loop's eventfd), tens of microseconds under load,
//! where SQLite's work for a row is one or two. So the connection's thread
//! stays awake for [`SPIN`] after each job, looking for the next; and the
//! loop, when no other coroutine is ready to run, waits for the reply awake
//! for as long ([`Reply::wait_briefly`]): a short statement's call then
//! returns to its coroutine without suspending it, and without any thread
//! going to sleep. A longer one suspends its coroutine as any wait does,
//! and its reply wakes the loop. So that the loop still looks at I/O and
//! timers while one coroutine makes short calls back to back, at least
//! every [`YIELD_EVERY`] a call takes the long way through the loop.

use std::cell::Cell;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::runtime::scheduler;

type Job = Box<dyn FnOnce() + Send>;

/// How long the connection's thread waits for its next job awake, and how
/// long the loop waits for a reply awake.
const SPIN: Duration = Duration::from_micros(50);

/// The first part of [`SPIN`], without giving the core away.
const BUSY_SPIN: Duration = Duration::from_micros(10);

/// The longest run of calls answered without going through the loop.
const YIELD_EVERY: Duration = Duration::from_micros(500);

thread_local! {
    /// When a call last went through the loop (suspended its coroutine).
    static THROUGH_LOOP: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Where the calls of one connection run.
pub(super) enum Exec {
    /// On the loop thread, at once.
    Inline,
    /// On the connection's thread; it ends when this sender is dropped,
    /// after the jobs sent before.
    Thread(mpsc::Sender<Job>),
}

impl Exec {
    /// A thread for one connection.
    pub(super) fn thread() -> Result<Exec, String> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("lem-sqlite3".into())
            .spawn(move || {
                while let Some(job) = next_job(&rx) {
                    job();
                }
            })
            .map_err(|e| format!("cannot start the connection's thread: {e}"))?;
        Ok(Exec::Thread(tx))
    }

    pub(super) fn is_inline(&self) -> bool {
        matches!(self, Exec::Inline)
    }

    /// Run `f` where the connection's calls run, without waiting for it
    /// (closing or finalizing when an object is collected).
    pub(super) fn detach(&self, f: impl FnOnce() + Send + 'static) {
        match self {
            Exec::Inline => f(),
            Exec::Thread(tx) => {
                // The thread lives as long as `tx`: a send cannot fail, but
                // a job is never lost either way.
                if let Err(mpsc::SendError(job)) = tx.send(Box::new(f)) {
                    job();
                }
            }
        }
    }

    /// Run `f` where the connection's calls run: inline, at once; on the
    /// thread, queued after the jobs sent before.
    pub(super) fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Reply<T> {
        match self {
            Exec::Inline => Reply::Ready(f()),
            Exec::Thread(tx) => {
                let (rtx, rrx) = tokio::sync::oneshot::channel();
                let job: Job = Box::new(move || {
                    let _ = rtx.send(f());
                });
                if let Err(mpsc::SendError(job)) = tx.send(job) {
                    job();
                }
                Reply::Waiting(rrx)
            }
        }
    }
}

/// `poll` until it gives a value, for at most [`SPIN`] from `t0`. After
/// [`BUSY_SPIN`] the thread yields its core between tries: on a loaded
/// machine the thread it waits for may need that core.
fn spin<T>(t0: Instant, mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(v) = poll() {
            return Some(v);
        }
        let waited = t0.elapsed();
        if waited >= SPIN {
            return None;
        }
        if waited < BUSY_SPIN {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// The next job, awake for [`SPIN`] and then asleep; `None` once the
/// sender is gone.
fn next_job(rx: &mpsc::Receiver<Job>) -> Option<Job> {
    let got = spin(Instant::now(), || match rx.try_recv() {
        Ok(job) => Some(Some(job)),
        Err(mpsc::TryRecvError::Disconnected) => Some(None),
        Err(mpsc::TryRecvError::Empty) => None,
    });
    match got {
        Some(job) => job,
        None => rx.recv().ok(),
    }
}

/// A job's result, to come.
pub(super) enum Reply<T> {
    Ready(T),
    Waiting(tokio::sync::oneshot::Receiver<T>),
}

impl<T> Reply<T> {
    /// The result if it comes within [`SPIN`], when nothing else wants the
    /// loop: no other coroutine is ready to run and the loop went through
    /// its turn (I/O, timers) less than [`YIELD_EVERY`] ago. Otherwise
    /// (also when this returns the reply back), the caller suspends and
    /// awaits [`Reply::wait`].
    pub(super) fn wait_briefly(self) -> Result<T, Reply<T>> {
        let mut rx = match self {
            Reply::Ready(v) => return Ok(v),
            Reply::Waiting(rx) => rx,
        };
        let now = Instant::now();
        let recent = THROUGH_LOOP.get().is_some_and(|t| now - t < YIELD_EVERY);
        if recent && !scheduler::get().has_runnable() {
            use tokio::sync::oneshot::error::TryRecvError;
            let got = spin(now, || match rx.try_recv() {
                Ok(v) => Some(Some(v)),
                Err(TryRecvError::Closed) => Some(None),
                Err(TryRecvError::Empty) => None,
            });
            if let Some(Some(v)) = got {
                return Ok(v);
            }
        }
        THROUGH_LOOP.set(Some(now));
        Err(Reply::Waiting(rx))
    }

    /// The result; `None` if the job was lost (it panicked).
    pub(super) async fn wait(self) -> Option<T> {
        match self {
            Reply::Ready(v) => Some(v),
            Reply::Waiting(rx) => rx.await.ok(),
        }
    }
}
