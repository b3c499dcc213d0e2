//! A dictionary in a region (`shared.dict`'s objects; the Lua side is in
//! `mod.rs`): a header, a hash index of bucket heads, and a buddy heap
//! ([`super::heap`]) of entries and list nodes, all linked by offsets.
//! Entries are also on one LRU list (most recent first), which eviction
//! takes from the tail.
//!
//! Every operation runs under the region's lock and marks the
//! header dirty before it changes anything. A process killed while it
//! held the lock leaves it to the next taker ([`region::Lock`]);
//! if the dictionary was dirty, what it was changing may be half done,
//! so the taker empties the dictionary (and says so on stderr) rather
//! than follow broken links. A process killed while reading, or between
//! operations, loses nothing.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::OwnedFd;

use super::heap::{order_for, Block, Heap};
use super::region::{self, Locked, Region};

/// "lem.dic3": the third layout (foldhash, the hot line first, lem's own
/// lock in place of a pthread mutex).
const MAGIC: u64 = 0x6c65_6d2e_6469_6333;

/// The smallest dictionary.
pub const MIN_SIZE: usize = 8 << 10;
/// Offsets are 32-bit.
pub const MAX_SIZE: usize = (4 << 30) - 4096;
/// The longest key.
pub const MAX_KEY: usize = 65535;

/// What every operation writes, in one cache line of its own, so two
/// workers taking turns pass one line back and forth, not two.
#[repr(C, align(64))]
struct Hot {
    lock: region::Lock,
    /// An operation is changing the dictionary.
    dirty: u32,
    lru_head: u32,
    lru_tail: u32,
    count: u32,
}

#[repr(C)]
struct Header {
    hot: Hot,
    magic: u64,
    size: u64,
    seed: [u64; 2],
    nbuckets: u32,
    /// Offset of the bucket heads (`nbuckets` u32s).
    buckets: u32,
    heap: Heap,
}

const _: () = assert!(std::mem::size_of::<Hot>() == 64);

const KIND_STR: u8 = 1;
const KIND_INT: u8 = 2;
const KIND_NUM: u8 = 3;
const KIND_BOOL: u8 = 4;
const KIND_LIST: u8 = 5;

/// An entry's block: this, the key, then the value.
#[repr(C)]
struct Entry {
    order: u8,
    used: u8,
    kind: u8,
    _pad: u8,
    hash: u32,
    /// Next in the bucket.
    next: u32,
    lru_prev: u32,
    lru_next: u32,
    flags: u32,
    key_len: u32,
    val_len: u32,
    /// `now_ms()` at which it expires; 0: never.
    expires: u64,
}

/// A list's value: its nodes, first to last.
#[repr(C)]
struct List {
    head: u32,
    tail: u32,
    len: u32,
}

/// A list item's block: this, then the bytes.
#[repr(C)]
struct Node {
    order: u8,
    used: u8,
    kind: u8,
    _pad: u8,
    prev: u32,
    next: u32,
    len: u32,
}

/// A value going in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Str(&'a [u8]),
    Int(i64),
    Num(f64),
    Bool(bool),
}

/// A value coming out; a string's bytes are in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Got {
    Str,
    Int(i64),
    Num(f64),
    Bool(bool),
    /// `get` of a list.
    List,
}

/// Why an operation did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Exists,
    NotFound,
    NoMemory,
    NotANumber,
    NotAList,
}

impl Error {
    /// Every error, in the order of their codes in `super::jit`.
    #[cfg(feature = "luajit")]
    pub const ALL: [Error; 5] = [
        Error::Exists,
        Error::NotFound,
        Error::NoMemory,
        Error::NotANumber,
        Error::NotAList,
    ];

    pub fn text(self) -> &'static str {
        match self {
            Error::Exists => "exists",
            Error::NotFound => "not found",
            Error::NoMemory => "no memory",
            Error::NotANumber => "not a number",
            Error::NotAList => "value not a list",
        }
    }
}

/// `set`, `add` or `replace`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Set,
    Add,
    Replace,
}

/// A dictionary: its mapping.
pub struct Dict {
    region: Region,
    /// Test hook (`LEM_SHARED_TEST_HOLD=dirty:KEY,clean:KEY2`): an
    /// operation on KEY holds the lock until the process is killed, with
    /// the dictionary marked dirty (KEY2: not).
    hold: Vec<(bool, Vec<u8>)>,
    name: String,
}

/// Make a dictionary of `size` bytes: the memfd to hand out.
pub fn create(size: usize) -> io::Result<OwnedFd> {
    let fd = Region::create(size)?;
    let r = Region::map(&fd)?;
    // SAFETY: a new region, all ours, big enough for the header.
    unsafe {
        let h = r.base() as *mut Header;
        (*h).magic = MAGIC;
        (*h).size = size as u64;
        (*h).seed = [region::random_u64(), region::random_u64()];
        (*h).hot.lock.init();
        // About one bucket per 128 bytes.
        let nbuckets = ((size / 128).next_power_of_two() / 2).max(16) as u32;
        (*h).nbuckets = nbuckets;
        (*h).buckets = align(std::mem::size_of::<Header>() as u32, 64);
        reset(r.base());
    }
    Ok(fd)
}

fn align(n: u32, to: u32) -> u32 {
    (n + to - 1) & !(to - 1)
}

/// Empty the dictionary: no entry, all the heap free.
///
/// # Safety
/// `base` is a dictionary's region, under its lock (or new).
unsafe fn reset(base: *mut u8) {
    // SAFETY: the callers keep the contract in this function's `# Safety`
    // section, which is all the calls below rely on.
    unsafe {
        let h = base as *mut Header;
        let buckets = (*h).buckets;
        let nbuckets = (*h).nbuckets;
        std::ptr::write_bytes(base.add(buckets as usize) as *mut u32, 0, nbuckets as usize);
        (*h).hot.lru_head = 0;
        (*h).hot.lru_tail = 0;
        (*h).hot.count = 0;
        let start = align(buckets + 4 * nbuckets, 64);
        let len = ((*h).size as u32).saturating_sub(start);
        (*h).heap.init(base, start, len);
        (*h).hot.dirty = 0;
    }
}

impl Dict {
    /// Map a dictionary's memfd.
    pub fn open(fd: &OwnedFd, name: &str) -> io::Result<Dict> {
        let region = Region::map(fd)?;
        // SAFETY: the region is at least a header long once its magic is
        // checked (sizes are refused below MIN_SIZE).
        let ok = region.len() >= MIN_SIZE
            && unsafe { (*(region.base() as *const Header)).magic } == MAGIC;
        if !ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a dictionary",
            ));
        }
        let hold = std::env::var_os("LEM_SHARED_TEST_HOLD")
            .map(|v| {
                use std::os::unix::ffi::OsStrExt;
                v.as_bytes()
                    .split(|&b| b == b',')
                    .filter_map(|item| {
                        match (item.strip_prefix(b"dirty:"), item.strip_prefix(b"clean:")) {
                            (Some(k), _) => Some((true, k.to_vec())),
                            (_, Some(k)) => Some((false, k.to_vec())),
                            _ => None,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Dict {
            region,
            hold,
            name: name.to_owned(),
        })
    }

    pub fn capacity(&self) -> usize {
        self.region.len()
    }

    /// Run `f` on the table under the lock.
    fn with<R>(&self, key: &[u8], f: impl FnOnce(&mut Table) -> R) -> R {
        let base = self.region.base();
        let h = base as *mut Header;
        // SAFETY: the header was made by `create`; a dead holder's lock is
        // taken over.
        unsafe {
            if (*h).hot.lock.lock() == Locked::OwnerDied && (*h).hot.dirty != 0 {
                reset(base);
                // Not `eprintln!`, which panics when stderr is gone: this also
                // runs in the functions LuaJIT's ffi calls, where a panic
                // would abort the process.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "{}: shared dictionary '{}' emptied: a process died while changing it",
                    crate::runtime::progname(),
                    self.name
                );
            }
        }
        let mut t = Table {
            base,
            h,
            now: Cell::new(0),
        };
        let _unlock = Unlock(h);
        if let Some((dirty, _)) = self.hold.iter().find(|(_, k)| k == key) {
            t.hold(*dirty);
        }
        f(&mut t)
    }

    /// `get` / `get_stale`: the value (a string's bytes in `out`), its
    /// flags, and whether it has expired (only with `stale`).
    pub fn get(&self, key: &[u8], stale: bool, out: &mut Vec<u8>) -> Option<(Got, u32, bool)> {
        self.with(key, |t| t.get(key, stale, out))
    }

    /// `get` into a buffer of the caller's (the ffi's, `super::jit`): the
    /// value, a string's length (its bytes are in `buf` only if they fit)
    /// and the flags.
    #[cfg(feature = "luajit")]
    pub fn get_into(&self, key: &[u8], buf: &mut [u8]) -> Option<(Got, usize, u32)> {
        self.with(key, |t| {
            let e = t.find(key)?;
            if t.expired(e) {
                return None;
            }
            t.touch(e);
            let flags = t.entry(e).flags;
            if t.entry(e).kind == KIND_STR {
                let v = t.val(e);
                if let Some(to) = buf.get_mut(..v.len()) {
                    to.copy_from_slice(v);
                }
                return Some((Got::Str, v.len(), flags));
            }
            Some((t.read(e, &mut Vec::new()), 0, flags))
        })
    }

    /// `set`, `add`, `replace`; `value` None deletes. `Ok(forcible)`.
    pub fn set(
        &self,
        mode: Mode,
        key: &[u8],
        value: Option<Value>,
        ttl_ms: u64,
        flags: u32,
    ) -> Result<bool, Error> {
        self.with(key, |t| t.set(mode, key, value, ttl_ms, flags))
    }

    /// `incr`: the new value.
    pub fn incr(
        &self,
        key: &[u8],
        by: Value,
        init: Option<Value>,
        ttl_ms: u64,
    ) -> Result<(Value<'static>, bool), Error> {
        self.with(key, |t| t.incr(key, by, init, ttl_ms))
    }

    /// Remaining milliseconds (0: never expires).
    pub fn ttl(&self, key: &[u8]) -> Result<u64, Error> {
        self.with(key, |t| match t.find_live(key) {
            Some(e) => match t.entry(e).expires {
                0 => Ok(0),
                x => Ok(x.saturating_sub(t.now())),
            },
            None => Err(Error::NotFound),
        })
    }

    pub fn expire(&self, key: &[u8], ttl_ms: u64) -> Result<(), Error> {
        self.with(key, |t| match t.find_live(key) {
            Some(e) => {
                t.dirty();
                t.entry(e).expires = t.deadline(ttl_ms);
                Ok(())
            }
            None => Err(Error::NotFound),
        })
    }

    /// `lpush` / `rpush`: the list's new length.
    pub fn push(&self, key: &[u8], v: Value, left: bool) -> Result<u32, Error> {
        self.with(key, |t| t.push(key, v, left))
    }

    /// `lpop` / `rpop`.
    pub fn pop(&self, key: &[u8], left: bool, out: &mut Vec<u8>) -> Result<Option<Got>, Error> {
        self.with(key, |t| t.pop(key, left, out))
    }

    pub fn llen(&self, key: &[u8]) -> Result<u32, Error> {
        self.with(key, |t| match t.find_live(key) {
            None => Ok(0),
            Some(e) if t.entry(e).kind == KIND_LIST => Ok(t.list(e).len),
            Some(_) => Err(Error::NotAList),
        })
    }

    /// Up to `max` keys of live entries (0: all), most recent first.
    pub fn keys(&self, max: usize) -> Vec<Vec<u8>> {
        self.with(b"", |t| {
            let mut keys = Vec::new();
            let mut e = t.h().hot.lru_head;
            while e != 0 && (max == 0 || keys.len() < max) {
                if !t.expired(e) {
                    keys.push(t.key(e).to_vec());
                }
                e = t.entry(e).lru_next;
            }
            keys
        })
    }

    /// Mark every entry expired (their memory goes when needed, or with
    /// `flush_expired`), as ngx's does.
    pub fn flush_all(&self) {
        self.with(b"", |t| {
            t.dirty();
            let mut e = t.h().hot.lru_head;
            while e != 0 {
                t.entry(e).expires = 1;
                e = t.entry(e).lru_next;
            }
        })
    }

    /// Free up to `max` expired entries (0: all): how many.
    pub fn flush_expired(&self, max: usize) -> usize {
        self.with(b"", |t| {
            let mut n = 0;
            let mut e = t.h().hot.lru_tail;
            while e != 0 && (max == 0 || n < max) {
                let prev = t.entry(e).lru_prev;
                if t.expired(e) {
                    t.remove(e);
                    n += 1;
                }
                e = prev;
            }
            n
        })
    }

    pub fn free_space(&self) -> usize {
        self.with(b"", |t| t.h().heap.free_bytes as usize)
    }
}

/// Gives the lock back, also when unwinding.
struct Unlock(*mut Header);

impl Drop for Unlock {
    fn drop(&mut self) {
        // SAFETY: made by `Dict::with` after taking the lock.
        unsafe {
            (*self.0).hot.dirty = 0;
            (*self.0).hot.lock.unlock();
        }
    }
}

/// The dictionary while its lock is held. Every offset it follows was
/// written under the lock by this code, so it lies inside the region.
struct Table {
    base: *mut u8,
    h: *mut Header,
    /// The clock, read at the first need in this operation (0: not yet):
    /// an operation that meets no entry with a TTL and sets none never
    /// reads it.
    now: Cell<u64>,
}

#[allow(clippy::mut_from_ref)]
impl Table {
    fn h(&self) -> &mut Header {
        // SAFETY: see the type's comment.
        unsafe { &mut *self.h }
    }

    fn entry(&self, off: u32) -> &mut Entry {
        // SAFETY: see the type's comment.
        unsafe { &mut *(self.base.add(off as usize) as *mut Entry) }
    }

    fn node(&self, off: u32) -> &mut Node {
        // SAFETY: see the type's comment.
        unsafe { &mut *(self.base.add(off as usize) as *mut Node) }
    }

    fn bytes(&self, off: u32, len: u32) -> &mut [u8] {
        // SAFETY: see the type's comment.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(off as usize), len as usize) }
    }

    fn key(&self, e: u32) -> &[u8] {
        let k = self.entry(e).key_len;
        self.bytes(e + ENTRY, k)
    }

    fn val(&self, e: u32) -> &mut [u8] {
        let en = self.entry(e);
        self.bytes(e + ENTRY + en.key_len.next_multiple_of(4), en.val_len)
    }

    fn list(&self, e: u32) -> &mut List {
        let at = e + ENTRY + self.entry(e).key_len.next_multiple_of(4);
        // SAFETY: a list entry's value is a List, 4-aligned (keys are
        // padded: see `entry_size`).
        unsafe { &mut *(self.base.add(at as usize) as *mut List) }
    }

    fn bucket(&self, hash: u32) -> &mut u32 {
        let h = self.h();
        let i = hash & (h.nbuckets - 1);
        // SAFETY: the bucket array has nbuckets entries.
        unsafe { &mut *((self.base.add(h.buckets as usize) as *mut u32).add(i as usize)) }
    }

    fn dirty(&mut self) {
        self.h().hot.dirty = 1;
    }

    /// The test hook: keep the lock (and the dictionary dirty) until killed.
    fn hold(&mut self, dirty: bool) {
        if dirty {
            self.dirty();
        }
        eprintln!("lem.shared: holding the lock (LEM_SHARED_TEST_HOLD)");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }

    /// [`region::now_ms`], read once per operation and only when needed.
    fn now(&self) -> u64 {
        match self.now.get() {
            0 => {
                let now = region::now_ms().max(1);
                self.now.set(now);
                now
            }
            now => now,
        }
    }

    /// The dictionary's keyed hash of `key`: foldhash, seeded with the
    /// random seed the dictionary was made with, so every process of the
    /// machine hashes alike and a script cannot choose keys that collide
    /// without knowing the seed.
    fn hash(&self, key: &[u8]) -> u32 {
        let mut s = foldhash::fast::FixedState::with_seed(self.h().seed[0]).build_hasher();
        s.write(key);
        s.finish() as u32
    }

    fn expired(&self, e: u32) -> bool {
        let x = self.entry(e).expires;
        x != 0 && x <= self.now()
    }

    fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hash(key);
        let mut e = *self.bucket(hash);
        while e != 0 {
            let en = self.entry(e);
            if en.hash == hash && self.key(e) == key {
                return Some(e);
            }
            e = en.next;
        }
        None
    }

    fn find_live(&self, key: &[u8]) -> Option<u32> {
        self.find(key).filter(|&e| !self.expired(e))
    }

    /// When an entry given `ttl_ms` now expires (0: never).
    fn deadline(&self, ttl_ms: u64) -> u64 {
        if ttl_ms == 0 {
            0
        } else {
            self.now().saturating_add(ttl_ms)
        }
    }

    fn lru_unlink(&mut self, e: u32) {
        let (prev, next) = (self.entry(e).lru_prev, self.entry(e).lru_next);
        if prev != 0 {
            self.entry(prev).lru_next = next;
        } else {
            self.h().hot.lru_head = next;
        }
        if next != 0 {
            self.entry(next).lru_prev = prev;
        } else {
            self.h().hot.lru_tail = prev;
        }
    }

    fn lru_front(&mut self, e: u32) {
        let head = self.h().hot.lru_head;
        let en = self.entry(e);
        en.lru_prev = 0;
        en.lru_next = head;
        if head != 0 {
            self.entry(head).lru_prev = e;
        } else {
            self.h().hot.lru_tail = e;
        }
        self.h().hot.lru_head = e;
    }

    fn touch(&mut self, e: u32) {
        if self.h().hot.lru_head != e {
            self.dirty();
            self.lru_unlink(e);
            self.lru_front(e);
        }
    }

    /// Unlink entry `e` and free it with its list nodes.
    fn remove(&mut self, e: u32) {
        self.dirty();
        let hash = self.entry(e).hash;
        let mut at: *mut u32 = self.bucket(hash);
        // SAFETY: `at` points at a bucket head or an entry's `next`.
        unsafe {
            while *at != 0 && *at != e {
                at = &mut self.entry(*at).next;
            }
            if *at == e {
                *at = self.entry(e).next;
            }
        }
        self.lru_unlink(e);
        if self.entry(e).kind == KIND_LIST {
            let mut n = self.list(e).head;
            while n != 0 {
                let next = self.node(n).next;
                // SAFETY: a node of this list, allocated by `push`.
                unsafe { self.h().heap.free(self.base, n) };
                n = next;
            }
        }
        self.h().hot.count -= 1;
        // SAFETY: allocated by `insert`.
        unsafe { self.h().heap.free(self.base, e) };
    }

    /// A block of `order`, evicting from the LRU tail (never `keep`) to
    /// make room: `(offset, whether a live entry went)`.
    fn alloc(&mut self, order: u32, keep: u32) -> Result<(u32, bool), Error> {
        if order > self.h().heap.max_order() {
            return Err(Error::NoMemory);
        }
        self.dirty();
        let mut forcible = false;
        loop {
            // SAFETY: under the lock.
            if let Some(off) = unsafe { self.h().heap.alloc(self.base, order) } {
                return Ok((off, forcible));
            }
            let mut victim = self.h().hot.lru_tail;
            if victim == keep && victim != 0 {
                victim = self.entry(victim).lru_prev;
            }
            if victim == 0 {
                return Err(Error::NoMemory);
            }
            forcible |= !self.expired(victim);
            self.remove(victim);
        }
    }

    /// A new entry for `key` (absent) with room for `val_len` bytes,
    /// linked in at the front.
    fn insert(&mut self, key: &[u8], kind: u8, val_len: u32) -> Result<(u32, bool), Error> {
        let order = order_for(entry_size(key.len(), val_len)).ok_or(Error::NoMemory)?;
        let (e, forcible) = self.alloc(order, 0)?;
        let hash = self.hash(key);
        let next = *self.bucket(hash);
        let en = self.entry(e);
        en.kind = kind;
        en.hash = hash;
        en.next = next;
        en.flags = 0;
        en.key_len = key.len() as u32;
        en.val_len = val_len;
        en.expires = 0;
        self.bytes(e + ENTRY, key.len() as u32).copy_from_slice(key);
        *self.bucket(hash) = e;
        self.lru_front(e);
        self.h().hot.count += 1;
        Ok((e, forcible))
    }

    /// Write `v` into entry `e`'s value (of the right length).
    fn write(&mut self, e: u32, v: Value) {
        let (kind, bytes) = encode(&v);
        self.entry(e).kind = kind;
        self.val(e).copy_from_slice(bytes.as_ref());
    }

    fn get(&mut self, key: &[u8], stale: bool, out: &mut Vec<u8>) -> Option<(Got, u32, bool)> {
        let e = self.find(key)?;
        let expired = self.expired(e);
        if expired && !stale {
            return None;
        }
        if !stale {
            self.touch(e);
        }
        let got = self.read(e, out);
        Some((got, self.entry(e).flags, expired))
    }

    fn read(&self, e: u32, out: &mut Vec<u8>) -> Got {
        let v = self.val(e);
        match self.entry(e).kind {
            KIND_STR => {
                out.clear();
                out.extend_from_slice(v);
                Got::Str
            }
            KIND_INT => Got::Int(i64::from_ne_bytes(v[..8].try_into().unwrap_or_default())),
            KIND_NUM => Got::Num(f64::from_ne_bytes(v[..8].try_into().unwrap_or_default())),
            KIND_BOOL => Got::Bool(v[0] != 0),
            _ => Got::List,
        }
    }

    fn set(
        &mut self,
        mode: Mode,
        key: &[u8],
        value: Option<Value>,
        ttl_ms: u64,
        flags: u32,
    ) -> Result<bool, Error> {
        let old = self.find(key);
        let live = old.filter(|&e| !self.expired(e));
        match (mode, live) {
            (Mode::Add, Some(_)) => return Err(Error::Exists),
            (Mode::Replace, None) => return Err(Error::NotFound),
            _ => {}
        }
        let Some(v) = value else {
            if let Some(e) = old {
                self.remove(e);
            }
            return Ok(false);
        };
        let (kind, bytes) = encode(&v);
        let len = bytes.as_ref().len() as u32;
        let order = order_for(entry_size(key.len(), len)).ok_or(Error::NoMemory)?;
        let (e, forcible) = match old {
            Some(e) if self.entry(e).order as u32 == order && self.entry(e).kind != KIND_LIST => {
                self.dirty();
                self.entry(e).val_len = len;
                self.touch(e);
                (e, false)
            }
            _ => {
                if let Some(e) = old {
                    self.remove(e);
                }
                self.insert(key, kind, len)?
            }
        };
        self.write(e, v);
        let en = self.entry(e);
        en.flags = flags;
        en.expires = self.deadline(ttl_ms);
        Ok(forcible)
    }

    fn incr(
        &mut self,
        key: &[u8],
        by: Value,
        init: Option<Value>,
        ttl_ms: u64,
    ) -> Result<(Value<'static>, bool), Error> {
        let Some(e) = self.find_live(key) else {
            let Some(init) = init else {
                return Err(Error::NotFound);
            };
            let v = add(init, by).ok_or(Error::NotANumber)?;
            let forcible = self.set(Mode::Set, key, Some(v), ttl_ms, 0)?;
            return Ok((v, forcible));
        };
        let mut scratch = Vec::new();
        let cur = match self.read(e, &mut scratch) {
            Got::Int(i) => Value::Int(i),
            Got::Num(n) => Value::Num(n),
            _ => return Err(Error::NotANumber),
        };
        let v = add(cur, by).ok_or(Error::NotANumber)?;
        self.dirty();
        self.write(e, v);
        self.touch(e);
        Ok((v, false))
    }

    fn push(&mut self, key: &[u8], v: Value, left: bool) -> Result<u32, Error> {
        let e = match self.find(key) {
            Some(e) if self.expired(e) => {
                self.remove(e);
                None
            }
            Some(e) if self.entry(e).kind != KIND_LIST => return Err(Error::NotAList),
            found => found,
        };
        let (kind, bytes) = encode(&v);
        let bytes = bytes.as_ref();
        let order = order_for(NODE as usize + bytes.len()).ok_or(Error::NoMemory)?;
        let e = match e {
            Some(e) => e,
            None => {
                let (e, _) = self.insert(key, KIND_LIST, LIST)?;
                *self.list(e) = List {
                    head: 0,
                    tail: 0,
                    len: 0,
                };
                e
            }
        };
        let n = match self.alloc(order, e) {
            Ok((n, _)) => n,
            Err(err) => {
                if self.list(e).len == 0 {
                    self.remove(e);
                }
                return Err(err);
            }
        };
        self.touch(e);
        let node = self.node(n);
        node.kind = kind;
        node.len = bytes.len() as u32;
        self.bytes(n + NODE, bytes.len() as u32)
            .copy_from_slice(bytes);
        let list = self.list(e);
        if left {
            node.prev = 0;
            node.next = list.head;
            if list.head != 0 {
                self.node(list.head).prev = n;
            } else {
                list.tail = n;
            }
            list.head = n;
        } else {
            node.next = 0;
            node.prev = list.tail;
            if list.tail != 0 {
                self.node(list.tail).next = n;
            } else {
                list.head = n;
            }
            list.tail = n;
        }
        list.len += 1;
        Ok(list.len)
    }

    fn pop(&mut self, key: &[u8], left: bool, out: &mut Vec<u8>) -> Result<Option<Got>, Error> {
        let Some(e) = self.find_live(key) else {
            return Ok(None);
        };
        if self.entry(e).kind != KIND_LIST {
            return Err(Error::NotAList);
        }
        self.dirty();
        let list = self.list(e);
        let n = if left { list.head } else { list.tail };
        if n == 0 {
            return Ok(None);
        }
        let node = self.node(n);
        let (prev, next) = (node.prev, node.next);
        if left {
            list.head = next;
            if next != 0 {
                self.node(next).prev = 0;
            } else {
                list.tail = 0;
            }
        } else {
            list.tail = prev;
            if prev != 0 {
                self.node(prev).next = 0;
            } else {
                list.head = 0;
            }
        }
        list.len -= 1;
        let data = self.bytes(n + NODE, node.len);
        let got = match node.kind {
            KIND_INT => Got::Int(i64::from_ne_bytes(data[..8].try_into().unwrap_or_default())),
            KIND_NUM => Got::Num(f64::from_ne_bytes(data[..8].try_into().unwrap_or_default())),
            _ => {
                out.clear();
                out.extend_from_slice(data);
                Got::Str
            }
        };
        // SAFETY: allocated by `push`, unlinked above.
        unsafe { self.h().heap.free(self.base, n) };
        if list.len == 0 {
            self.remove(e);
        } else {
            self.touch(e);
        }
        Ok(Some(got))
    }
}

/// An entry's header size; a list node's; a list's value.
const ENTRY: u32 = std::mem::size_of::<Entry>() as u32;
const NODE: u32 = std::mem::size_of::<Node>() as u32;
const LIST: u32 = std::mem::size_of::<List>() as u32;

/// Bytes of an entry with this key and value (the key padded to 4 so a
/// list's value is aligned).
fn entry_size(key: usize, val: u32) -> usize {
    ENTRY as usize + key.next_multiple_of(4) + val as usize
}

/// A value's kind and bytes.
fn encode<'a>(v: &Value<'a>) -> (u8, Bytes<'a>) {
    match *v {
        Value::Str(s) => (KIND_STR, Bytes::Slice(s)),
        Value::Int(i) => (KIND_INT, Bytes::Word(i.to_ne_bytes())),
        Value::Num(n) => (KIND_NUM, Bytes::Word(n.to_ne_bytes())),
        Value::Bool(b) => (KIND_BOOL, Bytes::Byte([b as u8])),
    }
}

enum Bytes<'a> {
    Slice(&'a [u8]),
    Word([u8; 8]),
    Byte([u8; 1]),
}

impl AsRef<[u8]> for Bytes<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Bytes::Slice(s) => s,
            Bytes::Word(w) => w,
            Bytes::Byte(b) => b,
        }
    }
}

/// `a + b` as Lua 5.4 adds: integers wrap, else floats.
fn add(a: Value, b: Value) -> Option<Value<'static>> {
    Some(match (a, b) {
        (Value::Int(x), Value::Int(y)) => Value::Int(x.wrapping_add(y)),
        (Value::Int(x), Value::Num(y)) => Value::Num(x as f64 + y),
        (Value::Num(x), Value::Int(y)) => Value::Num(x + y as f64),
        (Value::Num(x), Value::Num(y)) => Value::Num(x + y),
        _ => return None,
    })
}

// The block header is the start of every used block.
const _: () = assert!(std::mem::size_of::<Block>() == 2);

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(size: usize) -> Dict {
        let fd = create(size).unwrap();
        Dict::open(&fd, "test").unwrap()
    }

    #[test]
    fn set_get_delete() {
        let d = dict(64 << 10);
        let mut out = Vec::new();
        assert_eq!(
            d.set(Mode::Set, b"a", Some(Value::Str(b"one")), 0, 7),
            Ok(false)
        );
        assert_eq!(d.get(b"a", false, &mut out), Some((Got::Str, 7, false)));
        assert_eq!(out, b"one");
        assert_eq!(d.set(Mode::Set, b"a", Some(Value::Int(5)), 0, 0), Ok(false));
        assert_eq!(d.get(b"a", false, &mut out), Some((Got::Int(5), 0, false)));
        assert_eq!(
            d.set(Mode::Add, b"a", Some(Value::Int(1)), 0, 0),
            Err(Error::Exists)
        );
        assert_eq!(
            d.set(Mode::Replace, b"b", Some(Value::Int(1)), 0, 0),
            Err(Error::NotFound)
        );
        assert_eq!(d.set(Mode::Set, b"a", None, 0, 0), Ok(false));
        assert_eq!(d.get(b"a", false, &mut out), None);
        assert_eq!(d.free_space(), d.with(b"", |t| t.h().heap.len as usize));
    }

    #[test]
    fn incr_and_lists() {
        let d = dict(64 << 10);
        let mut out = Vec::new();
        assert_eq!(d.incr(b"n", Value::Int(1), None, 0), Err(Error::NotFound));
        assert_eq!(
            d.incr(b"n", Value::Int(1), Some(Value::Int(10)), 0),
            Ok((Value::Int(11), false))
        );
        assert_eq!(
            d.incr(b"n", Value::Num(0.5), None, 0),
            Ok((Value::Num(11.5), false))
        );
        assert_eq!(d.push(b"l", Value::Str(b"x"), false), Ok(1));
        assert_eq!(d.push(b"l", Value::Int(2), true), Ok(2));
        assert_eq!(d.llen(b"l"), Ok(2));
        assert_eq!(d.push(b"n", Value::Int(2), true), Err(Error::NotAList));
        assert_eq!(d.pop(b"l", true, &mut out), Ok(Some(Got::Int(2))));
        assert_eq!(d.pop(b"l", true, &mut out), Ok(Some(Got::Str)));
        assert_eq!(out, b"x");
        assert_eq!(d.pop(b"l", true, &mut out), Ok(None));
        assert_eq!(d.llen(b"l"), Ok(0));
    }

    #[test]
    fn each_dictionary_has_its_own_hash_seed() {
        let (a, b) = (dict(64 << 10), dict(64 << 10));
        let hashes = |d: &Dict| -> Vec<u32> {
            d.with(b"", |t| {
                (0..8).map(|i| t.hash(format!("k{i}").as_bytes())).collect()
            })
        };
        assert_ne!(a.with(b"", |t| t.h().seed), b.with(b"", |t| t.h().seed));
        assert_ne!(hashes(&a), hashes(&b));
    }

    #[test]
    fn two_mappings_hash_and_expire_alike() {
        let fd = create(64 << 10).unwrap();
        let (a, b) = (
            Dict::open(&fd, "test").unwrap(),
            Dict::open(&fd, "test").unwrap(),
        );
        let mut out = Vec::new();
        assert_eq!(
            a.set(Mode::Set, b"plain", Some(Value::Int(1)), 0, 0),
            Ok(false)
        );
        assert_eq!(
            a.set(Mode::Set, b"brief", Some(Value::Int(2)), 1, 0),
            Ok(false)
        );
        assert_eq!(
            b.get(b"plain", false, &mut out),
            Some((Got::Int(1), 0, false))
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(b.get(b"brief", false, &mut out), None);
        assert_eq!(
            b.get(b"brief", true, &mut out),
            Some((Got::Int(2), 0, true))
        );
        assert_eq!(a.ttl(b"brief"), Err(Error::NotFound));
        assert_eq!(a.ttl(b"plain"), Ok(0));
        assert_eq!(
            b.get(b"plain", false, &mut out),
            Some((Got::Int(1), 0, false))
        );
    }

    #[test]
    fn full_dictionaries_evict_the_least_recent() {
        let d = dict(MIN_SIZE);
        let mut forced = false;
        let value = [b'v'; 100];
        for i in 0..200 {
            let key = format!("k{i}");
            forced |= d
                .set(Mode::Set, key.as_bytes(), Some(Value::Str(&value)), 0, 0)
                .unwrap();
        }
        assert!(forced);
        let mut out = Vec::new();
        assert!(d.get(b"k199", false, &mut out).is_some());
        assert!(d.get(b"k0", false, &mut out).is_none());
        let big = vec![0u8; MIN_SIZE];
        assert_eq!(
            d.set(Mode::Set, b"big", Some(Value::Str(&big)), 0, 0),
            Err(Error::NoMemory)
        );
    }
}
