//! Memory every process of one `lem -w` maps: a memfd, made once by
//! whoever hands it out (the worker supervisor, or the process itself
//! without `-w`), and a robust, process-shared mutex that lives in it.
//!
//! Everything inside a region refers to the rest by offsets from its
//! start: each process maps it at its own address.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A mapping of a memfd, unmapped when dropped.
pub struct Region {
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access to what it
// holds goes through the region's mutex (or atomics).
unsafe impl Send for Region {}
// SAFETY: as for Send: shared access is what the mutex is for.
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

/// Make `m` a robust, process-shared mutex.
///
/// # Safety
/// `m` points into a region, and no process uses it yet.
pub unsafe fn init_mutex(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: the callers keep the contract in this function's `# Safety`
    // section, which is all the calls below rely on.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        let check = |r: libc::c_int| match r {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        };
        check(libc::pthread_mutexattr_init(&mut attr))?;
        let r = check(libc::pthread_mutexattr_setpshared(
            &mut attr,
            libc::PTHREAD_PROCESS_SHARED,
        ))
        .and_then(|_| {
            check(libc::pthread_mutexattr_setrobust(
                &mut attr,
                libc::PTHREAD_MUTEX_ROBUST,
            ))
        })
        .and_then(|_| check(libc::pthread_mutex_init(m, &attr)));
        libc::pthread_mutexattr_destroy(&mut attr);
        r
    }
}

/// How a lock was taken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Locked {
    Clean,
    /// Its last holder died holding it: what it protects may be half
    /// changed. The mutex is usable again.
    OwnerDied,
}

/// How many times [`lock`] tries the mutex before it sleeps on it.
const SPINS: u32 = 100;

/// Take the mutex; a dead holder's lock is taken over (the caller
/// repairs what it protects).
///
/// A holder keeps it for a microsecond or less, so a worker that finds it
/// taken tries again a few times before it sleeps in the kernel: two
/// workers hammering one dictionary otherwise spent most of their time in
/// futex calls (bench/README.md, "Shared dictionaries").
///
/// # Safety
/// `m` was made by [`init_mutex`]; the calling thread does not hold it.
pub unsafe fn lock(m: *mut libc::pthread_mutex_t) -> Locked {
    // SAFETY: the callers keep the contract in this function's `# Safety`
    // section, which is all the calls below rely on.
    unsafe {
        for _ in 0..SPINS {
            match libc::pthread_mutex_trylock(m) {
                0 => return Locked::Clean,
                libc::EOWNERDEAD => {
                    libc::pthread_mutex_consistent(m);
                    return Locked::OwnerDied;
                }
                _ => {
                    for _ in 0..16 {
                        std::hint::spin_loop();
                    }
                }
            }
        }
        match libc::pthread_mutex_lock(m) {
            libc::EOWNERDEAD => {
                libc::pthread_mutex_consistent(m);
                Locked::OwnerDied
            }
            // Other errors (ENOTRECOVERABLE) cannot happen: every holder that
            // takes over a dead one's lock makes it consistent at once.
            _ => Locked::Clean,
        }
    }
}

/// # Safety
/// The calling thread holds `m`.
pub unsafe fn unlock(m: *mut libc::pthread_mutex_t) {
    // SAFETY: the callers keep the contract in this function's `# Safety`
    // section, which is all the calls below rely on.
    unsafe {
        libc::pthread_mutex_unlock(m);
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
