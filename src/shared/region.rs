//! Memory every process of one `lem -w` maps: a memfd, made once by
//! whoever hands it out (the worker supervisor, or the process itself
//! without `-w`), and the lock that lives in it ([`Lock`]).
//!
//! Everything inside a region refers to the rest by offsets from its
//! start: each process maps it at its own address.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A mapping of a memfd, unmapped when dropped.
pub struct Region {
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access to what it
// holds goes through the region's lock (or atomics).
unsafe impl Send for Region {}
// SAFETY: as for Send: shared access is what the lock is for.
unsafe impl Sync for Region {}

impl Region {
    /// A new zeroed memfd of `len` bytes.
    pub fn create(len: usize) -> io::Result<OwnedFd> {
        // SAFETY: a NUL-terminated name; the descriptor is ours.
        let fd = unsafe { libc::memfd_create(c"lem.shared".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just made, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a plain system call on our descriptor.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }

    /// Map the whole of `fd` (its size is the region's).
    pub fn map(fd: &OwnedFd) -> io::Result<Region> {
        // SAFETY: fstat into a zeroed struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid out-pointer; a bad fd is an error return.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let len = st.st_size as usize;
        if len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: a new shared mapping of the descriptor's length.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Region {
            base: p as *mut u8,
            len,
        })
    }

    pub fn base(&self) -> *mut u8 {
        self.base
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: our mapping, of its length.
        unsafe { libc::munmap(self.base as *mut _, self.len) };
    }
}

/// A lock in a region that every process mapping it takes in turn, and
/// that a holder killed while it held it (even by SIGKILL) does not keep.
///
/// It replaced a robust, process-shared `pthread_mutex_t`, whose taking
/// and giving back (glibc's robust-list bookkeeping on both sides) were a
/// tenth of a dictionary operation's instructions: taking this one is one
/// compare-and-swap, giving it back one swap. The holder's word says who
/// holds it: its pid and the low 32 bits of its start time (from
/// `/proc/self/stat`), so a pid used again by a new process is not taken
/// for the dead holder. A taker that finds it held spins a while, then
/// sleeps on a futex, waking every few milliseconds to look whether the
/// holder is still alive; one that is not (no such process, a zombie, or
/// one that started at another time) has its lock taken over.
#[repr(C)]
pub struct Lock {
    /// 0: free; else the holder's [`me`], with [`WAITING`] when a taker
    /// may be asleep.
    owner: AtomicU64,
    /// Bumped by an unlock that found [`WAITING`]; takers sleep on it.
    wake: AtomicU32,
    _pad: u32,
}

/// A taker may be asleep (pids are below 2^22).
const WAITING: u64 = 1 << 31;
const PID: u64 = (1 << 31) - 1;

/// This process's word for [`Lock::owner`]: 0 until first needed, and
/// again in the child of a fork.
static ME: AtomicU64 = AtomicU64::new(0);

extern "C" fn forked() {
    ME.store(0, Ordering::Relaxed);
}

/// The pid's start time (clock ticks since boot; field 22 of its
/// `/proc/PID/stat`) and whether it is a zombie, when its stat can be
/// read.
fn stat(pid: &str) -> Option<(u64, bool)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command (field 2) is in parentheses and may hold anything.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state == "Z" || state == "X"))
}

fn me() -> u64 {
    match ME.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: registers a plain function, run in a forked child.
            unsafe { libc::pthread_atfork(None, None, Some(forked)) };
            let pid = std::process::id() as u64;
            let start = stat("self").map_or(0, |(s, _)| s);
            let me = (start & 0xffff_ffff) << 32 | (pid & PID);
            ME.store(me, Ordering::Relaxed);
            me
        }
        me => me,
    }
}

/// Whether the holder `owner` is gone.
fn dead(owner: u64) -> bool {
    let pid = (owner & PID) as libc::pid_t;
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0
        && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    {
        return true;
    }
    match stat(&pid.to_string()) {
        Some((start, zombie)) => zombie || (start & 0xffff_ffff) != owner >> 32,
        // It exists (kill said so) but /proc does not say more.
        None => false,
    }
}

/// How a lock was taken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Locked {
    Clean,
    /// Its last holder died holding it: what it protects may be half
    /// changed.
    OwnerDied,
}

/// How many times [`lock`] looks at a held lock before it sleeps: a
/// holder keeps it for a microsecond or less, and two workers hammering
/// one dictionary that slept at once spent most of their time in futex
/// calls (bench/README.md, "Shared dictionaries").
const SPINS: u32 = 100;

/// How long a sleeping taker waits before it looks whether the holder
/// died: short, so that a taker that was waiting when the holder died
/// takes the lock over before a process started since (a replaced worker)
/// gets to it, as the kernel's robust futexes did. Only a lock held for
/// long (a holder stopped, or the tests' hold) has takers wake this
/// often, each reading the holder's `/proc/PID/stat`.
const NAP: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 2_000_000,
};

impl Lock {
    /// Make a lock free (in a new region, which no process uses yet).
    pub fn init(&mut self) {
        *self.owner.get_mut() = 0;
        *self.wake.get_mut() = 0;
    }

    /// Take the lock; a dead holder's is taken over (the caller repairs
    /// what it protects).
    #[inline]
    pub fn lock(&self) -> Locked {
        let me = me();
        match self
            .owner
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Locked::Clean,
            Err(_) => self.lock_slow(me),
        }
    }

    #[cold]
    fn lock_slow(&self, me: u64) -> Locked {
        let mut spins = 0;
        let mut napped = false;
        loop {
            let seq = self.wake.load(Ordering::SeqCst);
            let cur = self.owner.load(Ordering::SeqCst);
            if cur == 0 {
                // Taken with WAITING after a sleep: others may sleep too.
                let want = if napped { me | WAITING } else { me };
                if self
                    .owner
                    .compare_exchange(0, want, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    return Locked::Clean;
                }
                continue;
            }
            if spins < SPINS {
                spins += 1;
                for _ in 0..16 {
                    std::hint::spin_loop();
                }
                continue;
            }
            if napped && dead(cur) {
                if self
                    .owner
                    .compare_exchange(cur, me | WAITING, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    return Locked::OwnerDied;
                }
                continue;
            }
            if cur & WAITING == 0
                && self
                    .owner
                    .compare_exchange(cur, cur | WAITING, Ordering::SeqCst, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            // SAFETY: a futex wait on a word of shared memory, for at most
            // NAP; it returns at once if an unlock bumped the word since
            // `seq` was read.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.wake.as_ptr(),
                    libc::FUTEX_WAIT,
                    seq,
                    &NAP as *const libc::timespec,
                    std::ptr::null::<u32>(),
                    0,
                )
            };
            napped = true;
        }
    }

    /// Give the lock back.
    ///
    /// # Safety
    /// The calling process holds it.
    #[inline]
    pub unsafe fn unlock(&self) {
        if self.owner.swap(0, Ordering::SeqCst) & WAITING != 0 {
            self.wake.fetch_add(1, Ordering::SeqCst);
            // SAFETY: a futex wake on a word of shared memory.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.wake.as_ptr(),
                    libc::FUTEX_WAKE,
                    i32::MAX,
                    std::ptr::null::<libc::timespec>(),
                    std::ptr::null::<u32>(),
                    0,
                )
            };
        }
    }
}

/// `CLOCK_MONOTONIC` in milliseconds: the same clock in every process of
/// the machine, so expiry times in a region mean the same to all.
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the struct.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// A random 64-bit number (seeds a region's hash).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom into our buffer; on failure the clock stands in.
    let n = unsafe { libc::getrandom(b.as_mut_ptr() as *mut _, 8, 0) };
    if n != 8 {
        return now_ms() ^ (std::process::id() as u64) << 32;
    }
    u64::from_ne_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_dead_when_gone_or_its_pid_is_another_process() {
        let me = me();
        assert!(!dead(me), "this process");
        assert!(dead(me ^ (1 << 32)), "our pid, another start time");
        // A child that has exited and been reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as u64;
        child.wait().unwrap();
        assert!(dead(pid), "a reaped child");
    }

    #[test]
    fn takers_take_turns_and_a_dead_holder_is_taken_over() {
        let lock = Box::leak(Box::new(Lock {
            owner: AtomicU64::new(0),
            wake: AtomicU32::new(0),
            _pad: 0,
        }));
        let count = Box::leak(Box::new(std::cell::UnsafeCell::new(0u64)));
        let (lock_addr, count_addr) = (lock as *const Lock as usize, count.get() as usize);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    // SAFETY: both are leaked, so they outlive the threads.
                    let lock = unsafe { &*(lock_addr as *const Lock) };
                    for _ in 0..20_000 {
                        assert_eq!(lock.lock(), Locked::Clean);
                        // SAFETY: under the lock; it is the only access.
                        unsafe { *(count_addr as *mut u64) += 1 };
                        // SAFETY: this thread holds it.
                        unsafe { lock.unlock() };
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(unsafe_read(count_addr), 80_000);
        // Held by a process that is gone: taken over, after a nap.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as u64;
        child.wait().unwrap();
        lock.owner.store(pid, Ordering::SeqCst);
        assert_eq!(lock.lock(), Locked::OwnerDied);
        // SAFETY: this thread holds it.
        unsafe { lock.unlock() };
        assert_eq!(lock.lock(), Locked::Clean);
    }

    fn unsafe_read(addr: usize) -> u64 {
        // SAFETY: every thread that wrote it has been joined.
        unsafe { *(addr as *const u64) }
    }
}
