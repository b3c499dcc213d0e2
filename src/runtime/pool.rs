//! The blocking pool: threads that run work which would stall the loop
//! (file I/O, name lookups, filesystem calls), sized by `utils.poolconfig`.
//!
//! Threads start on demand up to `max`; a thread idle for `delay` exits while
//! more than `min` are alive. Results come back to the loop through a oneshot
//! channel, so a coroutine waiting on pool work is an ordinary suspension.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// Pool sizing, as `utils.poolconfig(delay, min, max)` sets it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// How long a thread above `min` stays idle before it exits.
    pub delay: Duration,
    /// Threads kept alive when idle.
    pub min: usize,
    /// Most threads running at once.
    pub max: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            delay: Duration::from_secs(10),
            min: 0,
            max: 16,
        }
    }
}

struct State {
    jobs: VecDeque<Job>,
    config: Config,
    threads: usize,
    idle: usize,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
}

/// A dynamically sized pool of worker threads.
#[derive(Clone)]
pub struct Pool(Arc<Shared>);

impl Pool {
    /// A pool with `config`, and no thread until work comes.
    pub fn new(config: Config) -> Pool {
        Pool(Arc::new(Shared {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                config,
                threads: 0,
                idle: 0,
            }),
            work: Condvar::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A job panicking never holds this lock, so poisoning cannot happen
        // with a broken state; take the guard either way.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Change the sizing; extra idle threads leave after `delay`.
    pub fn configure(&self, config: Config) {
        let mut st = self.lock();
        st.config = config;
        drop(st);
        self.0.work.notify_all();
    }

    /// The current sizing.
    pub fn config(&self) -> Config {
        self.lock().config
    }

    /// Number of live worker threads.
    pub fn threads(&self) -> usize {
        self.lock().threads
    }

    /// Queue `f` to run on a pool thread.
    pub fn execute(&self, f: impl FnOnce() + Send + 'static) {
        let mut st = self.lock();
        st.jobs.push_back(Box::new(f));
        // Each queued job needs a thread of its own: an idle thread already
        // woken for an earlier job (it counts as idle until it runs) must
        // not be counted twice, or a job that blocks (an open on a FIFO)
        // starves the next one while the pool is below `max`.
        if st.idle >= st.jobs.len() {
            drop(st);
            self.0.work.notify_one();
        } else if st.threads < st.config.max {
            st.threads += 1;
            drop(st);
            let pool = self.clone();
            let spawned = std::thread::Builder::new()
                .name("lem-pool".into())
                .spawn(move || pool.worker());
            if spawned.is_err() {
                // No thread could start: the job stays queued for a live one,
                // or for the next start.
                self.lock().threads -= 1;
            }
        }
    }

    /// Run `f` on the pool; the future resolves to its result.
    ///
    /// # Panics
    /// The future panics if `f` panicked.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.execute(move || {
            let _ = tx.send(f());
        });
        rx.await.expect("a blocking job panicked")
    }

    fn worker(self) {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                drop(st);
                job();
                st = self.lock();
                continue;
            }
            if st.threads > st.config.max {
                break;
            }
            st.idle += 1;
            let delay = st.config.delay;
            let (guard, timeout) = self
                .0
                .work
                .wait_timeout(st, delay)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            st.idle -= 1;
            if timeout.timed_out() && st.jobs.is_empty() && st.threads > st.config.min {
                break;
            }
        }
        st.threads -= 1;
    }
}

static GLOBAL: OnceLock<Pool> = OnceLock::new();

/// The process's pool, shared by every module.
pub fn global() -> &'static Pool {
    GLOBAL.get_or_init(|| Pool::new(Config::default()))
}

/// Run `f` on the process's pool.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    global().run(f).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_blocked_job_does_not_hold_up_the_next() {
        let pool = Pool::new(Config {
            delay: Duration::from_secs(10),
            min: 0,
            max: 4,
        });
        // One idle thread, then a job that blocks and one that must still
        // run while it does.
        let (tx, rx) = std::sync::mpsc::channel();
        let t = tx.clone();
        pool.execute(move || t.send(0).unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(0));
        while pool.lock().idle == 0 {
            std::thread::yield_now();
        }
        let (unblock, blocked) = std::sync::mpsc::channel::<()>();
        pool.execute(move || {
            let _ = blocked.recv();
        });
        let t = tx.clone();
        pool.execute(move || t.send(1).unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(1));
        drop(unblock);
    }

    #[test]
    fn runs_jobs_and_respects_max() {
        let pool = Pool::new(Config {
            delay: Duration::from_millis(20),
            min: 0,
            max: 2,
        });
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..10 {
            let done = done.clone();
            let tx = tx.clone();
            pool.execute(move || {
                std::thread::sleep(Duration::from_millis(5));
                done.fetch_add(1, Ordering::SeqCst);
                tx.send(()).unwrap();
            });
            assert!(pool.threads() <= 2);
        }
        for _ in 0..10 {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 10);
    }

    #[test]
    fn idle_threads_above_min_exit() {
        let pool = Pool::new(Config {
            delay: Duration::from_millis(10),
            min: 0,
            max: 4,
        });
        let (tx, rx) = std::sync::mpsc::channel();
        pool.execute(move || tx.send(()).unwrap());
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let t0 = std::time::Instant::now();
        while pool.threads() > 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "idle thread never left"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn run_returns_the_result() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let pool = Pool::new(Config::default());
        assert_eq!(rt.block_on(pool.run(|| 6 * 7)), 42);
    }
}
