//! The loop's precise timer: how the scheduler waits for the first deadline
//! of its timer heap.
//!
//! tokio's timer wheel counts whole milliseconds and rounds a deadline up
//! to the next one, so a `sleep(0.001)` taken in the middle of a
//! millisecond waited about 2 ms (LEM's libev waited ~1.15 ms). The loop
//! instead arms one `timerfd` (CLOCK_MONOTONIC, nanoseconds, the clock of
//! `Instant`) for the heap's first deadline and waits for it to become
//! readable, alongside its other wake-ups: the kernel's high-resolution
//! timer wakes the loop's `epoll_wait` at the deadline. It is re-armed
//! only when the first deadline changes, so a loop whose timers do not
//! move makes no extra system call per turn. Where there is no timerfd
//! (not Linux, or it cannot be created), the loop falls back to tokio's
//! timer.

use std::cell::Cell;
use std::time::Instant;

#[cfg(target_os = "linux")]
mod imp {
    use std::cell::Cell;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    use tokio::io::unix::AsyncFd;

    pub(super) struct Fd(AsyncFd<OwnedFd>);

    impl Fd {
        pub(super) fn new() -> Option<Fd> {
            // SAFETY: plain system call; the descriptor is owned at once.
            let fd = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if fd < 0 {
                return None;
            }
            // SAFETY: fd is a new descriptor nobody else owns.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: the OwnedFd owns the descriptor for the AsyncFd's life.
            unsafe { AsyncFd::register(owned) }.ok().map(Fd)
        }

        /// Expire at `deadline` (relative to now: `Instant` is
        /// CLOCK_MONOTONIC but gives no timespec). A deadline already
        /// passed expires at once (a zero value would disarm it).
        pub(super) fn arm(&self, deadline: Instant) -> bool {
            let d = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_nanos(1));
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
                    tv_nsec: d.subsec_nanos() as libc::c_long,
                },
            };
            // SAFETY: a valid descriptor and itimerspec.
            unsafe {
                libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) == 0
            }
        }

        /// Wait until it has expired (and consume the expiry).
        pub(super) async fn wait(&self, armed: &Cell<Option<Instant>>) {
            loop {
                let Ok(mut guard) = self.0.readable().await else {
                    return;
                };
                let mut n: u64 = 0;
                // SAFETY: reads 8 bytes into a u64.
                let r = unsafe {
                    libc::read(
                        self.0.as_raw_fd(),
                        &mut n as *mut u64 as *mut libc::c_void,
                        8,
                    )
                };
                guard.clear_ready();
                if r == 8 {
                    armed.set(None);
                    return;
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::cell::Cell;
    use std::time::Instant;

    pub(super) struct Fd(std::convert::Infallible);

    impl Fd {
        pub(super) fn new() -> Option<Fd> {
            None
        }
        pub(super) fn arm(&self, _: Instant) -> bool {
            match self.0 {}
        }
        pub(super) async fn wait(&self, _: &Cell<Option<Instant>>) {
            match self.0 {}
        }
    }
}

/// The precise timer of one run of the loop.
pub(super) struct Precise {
    fd: Option<imp::Fd>,
    /// The deadline it is armed for, until it expires.
    armed: Cell<Option<Instant>>,
}

impl Precise {
    /// Made inside the runtime (the descriptor joins tokio's reactor).
    pub(super) fn new() -> Precise {
        Precise {
            fd: imp::Fd::new(),
            armed: Cell::new(None),
        }
    }

    /// Wait until `deadline`, precisely when there is a timerfd, else with
    /// tokio's millisecond timer.
    pub(super) async fn sleep_until(&self, deadline: Instant) {
        if let Some(fd) = &self.fd {
            if self.armed.get() == Some(deadline) || fd.arm(deadline) {
                self.armed.set(Some(deadline));
                return fd.wait(&self.armed).await;
            }
        }
        tokio::time::sleep_until(deadline.into()).await
    }
}
