//! `lem.parsers.core`: the read formats, over an input buffer ([`Input`]).
//! The Lua half is `lua/lem/parsers.lua` (`parsers.newreader`); the readers
//! are `stream:read`/`file:read` in `src/io/`.
//!
//! A format is looked at in two steps, so that the wait for more input can
//! run on the loop without a Lua state: [`Format::scan`] says whether the
//! buffered bytes hold a complete value (pure Rust, run after every fill),
//! then [`Format::push`] pushes it onto the reading coroutine. Built-in
//! formats (`read()`, `read(n)`, `'*l'`, `'*a'`) are variants of [`Fmt`];
//! native modules add their own with [`register`] (the HTTP module's
//! `'HTTPRequest'`), which puts them in `parsers.lookup`.
//!
//! # Example: a format for native modules
//!
//! ```no_run
//! use lem::parsers::{self, Format, Scan};
//! use lem::lua::{self, lua_State};
//!
//! /// `read('word')`: bytes up to the next space.
//! struct Word;
//! impl Format for Word {
//!     fn scan(&self, input: &[u8], _eof: bool) -> Scan {
//!         match input.iter().position(|&b| b == b' ') {
//!             Some(i) => Scan::Ready { consume: i + 1, mark: i },
//!             None => Scan::Need,
//!         }
//!     }
//!     unsafe fn push(&self, l: *mut lua_State, input: &[u8], mark: usize) -> i32 {
//!         lua::push_bytes(l, &input[..mark]);
//!         1
//!     }
//! }
//! static WORD: Word = Word;
//! // In a module's opener, or anywhere with the Lua state:
//! # fn f(lua: &mlua::Lua) {
//! parsers::register_mlua(lua, "word", &WORD).unwrap();
//! # }
//! ```

use std::ffi::{c_int, c_void, CStr};

use crate::runtime::lua::{self, ffi, lua_State, Reg};

/// Default bound on input buffered while a format looks for its end
/// (`stream:setlimit` changes it per object): 1 MiB.
pub const DEFAULT_LIMIT: usize = 1 << 20;

/// Bytes asked of the kernel per read: 16 KiB at least, more for bulk.
const CHUNK: usize = 64 << 10;

/// What [`Format::scan`] found in the buffered input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// Not complete yet: more input is needed.
    Need,
    /// A value is complete: it uses the first `consume` bytes; `mark` is
    /// handed to [`Format::push`] (the end of a line, say).
    Ready { consume: usize, mark: usize },
    /// The input can never make a value: `read` returns `nil, msg`.
    Invalid(&'static str),
}

/// A read format. Implementations must be cheap to `scan` repeatedly: it is
/// called again after every fill of the buffer.
pub trait Format: Sync {
    /// Look at all buffered input; `eof` when no more will ever come.
    fn scan(&self, input: &[u8], eof: bool) -> Scan;
    /// Push the value that `scan` found onto `l`; returns the number of
    /// values pushed. `input` is what the read consumes afterwards (the
    /// first `consume` bytes of what `scan` saw) and `mark` the one of
    /// [`Scan::Ready`].
    ///
    /// # Safety
    /// `l` is the reading coroutine, with room for a few values.
    unsafe fn push(&self, l: *mut lua_State, input: &[u8], mark: usize) -> c_int;
    /// [`scan`](Self::scan) told the stream's limit (`usize::MAX` for none):
    /// a format whose head declares its size (a WebSocket frame) refuses a
    /// value past the limit from the head, before its bytes arrive.
    fn scan_within(&self, input: &[u8], eof: bool, _limit: usize) -> Scan {
        self.scan(input, eof)
    }
    /// What `read` returns when the buffer is full and `scan` still says
    /// [`Scan::Need`].
    fn limit_error(&self) -> &'static str {
        "line too long"
    }
}

/// A format with its arguments, as one `read` call asked for it.
#[derive(Clone, Copy)]
pub enum Fmt {
    /// `read()`: whatever is buffered, at least one byte.
    Available,
    /// `read(n)`: exactly `n` bytes.
    Count(usize),
    /// `read('*l' [, stop])`: up to the stop byte, without it.
    Line(u8),
    /// `read('*a')`: everything until the end.
    All,
    /// A registered format.
    Custom(&'static dyn Format),
}

impl Fmt {
    /// Look at the buffer: `Some(scan)` when a read can finish now (a
    /// value, a format error, the end of input, or the buffer at its
    /// `limit`), to be handed to [`finish`](Self::finish); `None` to wait
    /// for more input.
    pub fn look(&self, input: &Input, eof: bool, limit: usize) -> Option<Scan> {
        let bounded = self.bounded();
        let full = (bounded && input.len() >= limit) || budget::cut(input.len());
        // A delimited format sees no more than its limit, however the
        // input came: a value that ends past it is refused whether it
        // arrived in one piece or in many.
        match self.scan(input, eof, if bounded { limit } else { usize::MAX }) {
            Scan::Need if !eof && !full => None,
            scan => Some(scan),
        }
    }

    /// [`look`](Self::look) then [`finish`](Self::finish), for a read
    /// that resumes after its wait: `nil, 'busy'` if the input still holds
    /// no value (a descriptor that never waits).
    ///
    /// # Safety
    /// As for [`finish`](Self::finish).
    pub unsafe fn finish_now(
        &self,
        l: *mut lua_State,
        input: &mut Input,
        eof: bool,
        limit: usize,
        at_end: &str,
    ) -> c_int {
        match self.look(input, eof, limit) {
            Some(scan) => self.finish(l, input, scan, eof, limit, at_end),
            None => lua::fail(l, "busy"),
        }
    }

    /// Whether a read can finish now (see [`look`](Self::look)).
    pub fn ready(&self, input: &Input, eof: bool, limit: usize) -> bool {
        self.look(input, eof, limit).is_some()
    }

    /// `read(n)` and `read('*a')` ask for their size themselves; the others
    /// buffer until a delimiter and are held to the limit.
    fn bounded(&self) -> bool {
        !matches!(self, Fmt::Count(_) | Fmt::All)
    }

    /// Scan the first `window` bytes of the input (`eof` holds only if
    /// that is all of it).
    fn scan(&self, input: &Input, eof: bool, window: usize) -> Scan {
        let all = input.bytes();
        let bytes = &all[..all.len().min(window)];
        let eof = eof && bytes.len() == all.len();
        match *self {
            Fmt::Available if !bytes.is_empty() => Scan::Ready {
                consume: bytes.len(),
                mark: bytes.len(),
            },
            Fmt::Count(n) if bytes.len() >= n => Scan::Ready {
                consume: n,
                mark: n,
            },
            Fmt::Line(stop) => {
                // Lines can arrive in many chunks: search only the new part.
                let from = input.scanned.get().min(bytes.len());
                match memchr::memchr(stop, &bytes[from..]) {
                    Some(i) => Scan::Ready {
                        consume: from + i + 1,
                        mark: from + i,
                    },
                    None => {
                        input.scanned.set(bytes.len());
                        Scan::Need
                    }
                }
            }
            Fmt::All if eof => Scan::Ready {
                consume: bytes.len(),
                mark: bytes.len(),
            },
            Fmt::Custom(f) => f.scan_within(bytes, eof, window),
            _ => Scan::Need,
        }
    }

    /// Finish a read with what [`look`](Self::look) found on the same
    /// input: push the value (or `nil, err`) onto `l` and consume its bytes.
    /// `at_end` is the error for input that ended first (`'closed'` for
    /// streams, `'eof'` for files).
    ///
    /// # Safety
    /// `l` must have room for two values.
    pub unsafe fn finish(
        &self,
        l: *mut lua_State,
        input: &mut Input,
        scan: Scan,
        eof: bool,
        limit: usize,
        at_end: &str,
    ) -> c_int {
        match scan {
            Scan::Ready { consume, mark } => {
                let n = match *self {
                    Fmt::Custom(f) => f.push(l, &input.bytes()[..consume], mark),
                    _ => {
                        lua::push_bytes(l, &input.bytes()[..mark]);
                        1
                    }
                };
                input.consume(consume);
                n
            }
            Scan::Invalid(msg) => lua::fail(l, msg),
            // The end of input before the limit.
            Scan::Need if eof && !(self.bounded() && input.len() >= limit) => lua::fail(l, at_end),
            // Else `look` stopped at the limit or the budget (which may
            // have room again by now: the cut stands).
            Scan::Need => {
                let msg = match *self {
                    Fmt::Custom(f) => f.limit_error(),
                    _ if self.bounded() => "line too long",
                    _ => budget::OVER,
                };
                lua::fail(l, msg)
            }
        }
    }
}

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
    scanned: std::cell::Cell<usize>,
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

/// The budget for input buffered by all the streams and files of this
/// thread's loop (one per process): `io.setbudget`. Past it, the inputs
/// that hold more than their share (the budget over the number of inputs
/// holding anything) get no more: their reads fail as at their limit
/// (bounded formats: the format's limit error, `read(n)` and `'*a'`:
/// [`budget::OVER`]), so the biggest offenders are cut first and the others go on.
#[doc(hidden)]
pub mod fuzz;

pub mod budget {
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
}

/// Registry key of the `parsers.lookup` table.
const LOOKUP: &CStr = c"lem.parsers.lookup";

/// What a `parsers.lookup` value points at (a light userdata).
enum Entry {
    Available,
    Count,
    Line,
    All,
    Custom(&'static dyn Format),
}

static AVAILABLE: Entry = Entry::Available;
static COUNT: Entry = Entry::Count;
static LINE: Entry = Entry::Line;
static ALL: Entry = Entry::All;

/// Push `parsers.lookup`, creating it with the built-in formats first.
///
/// # Safety
/// `l` must be a valid Lua state.
pub unsafe fn push_lookup(l: *mut lua_State) {
    if ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, LOOKUP.as_ptr()) == ffi::LUA_TTABLE {
        return;
    }
    ffi::lua_pop(l, 1);
    ffi::lua_createtable(l, 0, 8);
    for (name, e) in [
        (c"*l", &LINE),
        (c"l", &LINE),
        (c"*a", &ALL),
        (c"a", &ALL),
        (c"available", &AVAILABLE),
        (c"count", &COUNT),
    ] {
        ffi::lua_pushlightuserdata(l, e as *const Entry as *mut c_void);
        ffi::lua_setfield(l, -2, name.as_ptr());
    }
    ffi::lua_pushvalue(l, -1);
    ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, LOOKUP.as_ptr());
}

/// Make `read(name)` use `format`, on every stream and file of this state.
///
/// # Safety
/// `l` must be a valid Lua state.
pub unsafe fn register(l: *mut lua_State, name: &CStr, format: &'static dyn Format) {
    // A light userdata is a thin pointer: box the fat one, once per
    // registration (formats are registered once, at module load).
    let entry: &'static Entry = Box::leak(Box::new(Entry::Custom(format)));
    push_lookup(l);
    ffi::lua_pushlightuserdata(l, entry as *const Entry as *mut c_void);
    ffi::lua_setfield(l, -2, name.as_ptr());
    ffi::lua_pop(l, 1);
}

/// [`register`] for code holding an [`mlua::Lua`].
pub fn register_mlua(lua: &mlua::Lua, name: &str, format: &'static dyn Format) -> mlua::Result<()> {
    let name = std::ffi::CString::new(name).map_err(mlua::Error::external)?;
    // SAFETY: exec_raw gives a valid stack; register keeps it balanced.
    unsafe { lua.exec_raw::<()>((), |l| register(l, &name, format)) }
}

/// The format a `read(fmt, ...)` call asks for, from arguments `arg` and
/// `arg + 1`: nil/none, a count, a name in `parsers.lookup` (with a stop
/// byte for lines), or a lookup value itself (`readp`). Raises
/// `invalid format` otherwise.
///
/// # Safety
/// May raise: call before creating owned values.
pub unsafe fn check_format(l: *mut lua_State, arg: c_int) -> Fmt {
    let entry: *const Entry = match ffi::lua_type(l, arg) {
        ffi::LUA_TNONE | ffi::LUA_TNIL => return Fmt::Available,
        ffi::LUA_TNUMBER => {
            let n = lua::check_integer(l, arg);
            if n < 0 {
                lua::arg_error(l, arg, c"invalid format");
            }
            return Fmt::Count(n as usize);
        }
        ffi::LUA_TSTRING => {
            push_lookup(l);
            ffi::lua_pushvalue(l, arg);
            ffi::lua_rawget(l, -2);
            let p = ffi::lua_touserdata(l, -1) as *const Entry;
            ffi::lua_pop(l, 2);
            p
        }
        ffi::LUA_TLIGHTUSERDATA => ffi::lua_touserdata(l, arg) as *const Entry,
        _ => std::ptr::null(),
    };
    // Only pointers that came out of `parsers.lookup` are Entries; a stray
    // light userdata from elsewhere must not be trusted.
    if entry.is_null() || (ffi::lua_type(l, arg) == ffi::LUA_TLIGHTUSERDATA && !in_lookup(l, entry))
    {
        lua::arg_error(l, arg, c"invalid format");
    }
    match &*entry {
        Entry::Available => Fmt::Available,
        Entry::Count => {
            let n = lua::check_integer(l, arg + 1);
            if n < 0 {
                lua::arg_error(l, arg + 1, c"invalid count");
            }
            Fmt::Count(n as usize)
        }
        Entry::Line => {
            if lua::is_none_or_nil(l, arg + 1) {
                Fmt::Line(b'\n')
            } else {
                let mut len = 0;
                let p = lua::check_lstring(l, arg + 1, &mut len);
                // LEM: a longer string stops at its first byte.
                if len == 0 {
                    lua::arg_error(l, arg + 1, c"stop byte expected, got an empty string");
                }
                Fmt::Line(*p as u8)
            }
        }
        Entry::All => Fmt::All,
        Entry::Custom(f) => Fmt::Custom(*f),
    }
}

/// Whether `p` is a value of `parsers.lookup`.
unsafe fn in_lookup(l: *mut lua_State, p: *const Entry) -> bool {
    push_lookup(l);
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        let found = ffi::lua_touserdata(l, -1) as *const Entry == p;
        ffi::lua_pop(l, 1);
        if found {
            ffi::lua_pop(l, 2);
            return true;
        }
    }
    ffi::lua_pop(l, 1);
    false
}

const FUNCS: &[Reg] = &[];

/// luaopen for `lem.parsers.core`: `{ lookup = parsers.lookup }`.
///
/// # Safety
/// Called by `require`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    ffi::lua_createtable(l, 0, 1);
    lua::set_funcs(l, FUNCS);
    push_lookup(l);
    ffi::lua_setfield(l, -2, c"lookup".as_ptr());
    1
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
    fn limits_hold_however_input_arrives() {
        // A line that ends past the limit, arrived in one piece: refused
        // as it is when it arrives in two (the first reaching the limit).
        let f = Fmt::Line(b'\n');
        let whole = input(b"0123456789abcdef\n");
        assert_eq!(f.look(&whole, false, 8), Some(Scan::Need));
        let mut parts = input(b"01234567");
        assert_eq!(f.look(&parts, false, 8), Some(Scan::Need));
        parts.extend(b"89abcdef\n");
        assert_eq!(f.look(&parts, false, 8), Some(Scan::Need));
        // Within the limit it is read, with more input behind it.
        let ok = input(b"0123\n456789abcdef");
        assert_eq!(
            f.look(&ok, false, 8),
            Some(Scan::Ready {
                consume: 5,
                mark: 4
            })
        );
        // The end of input past the limit: still the limit's error, not
        // a value cut short.
        assert_eq!(f.look(&whole, true, 8), Some(Scan::Need));
    }

    #[test]
    fn line_scan_resumes_where_it_stopped() {
        let mut i = input(b"abc");
        let f = Fmt::Line(b'\n');
        assert!(!f.ready(&i, false, 100));
        assert_eq!(i.scanned.get(), 3);
        i.extend(b"d\r\nrest");
        assert_eq!(
            f.scan(&i, false, usize::MAX),
            Scan::Ready {
                consume: 6,
                mark: 5
            }
        );
        i.consume(6);
        assert_eq!(i.bytes(), b"rest");
        assert_eq!(i.scanned.get(), 0);
    }

    #[test]
    fn limits_apply_to_delimited_formats_only() {
        let i = input(b"0123456789");
        assert!(Fmt::Line(b'\n').ready(&i, false, 10));
        assert!(!Fmt::Line(b'\n').ready(&i, false, 11));
        assert!(!Fmt::Count(20).ready(&i, false, 10));
        assert!(!Fmt::All.ready(&i, false, 10));
        assert!(Fmt::All.ready(&i, true, 10));
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

    /// `read('word')`: up to a space; tests [`register`].
    struct Word;
    impl Format for Word {
        fn scan(&self, input: &[u8], _eof: bool) -> Scan {
            match input.iter().position(|&b| b == b' ') {
                Some(i) => Scan::Ready {
                    consume: i + 1,
                    mark: i,
                },
                None if input.len() > 8 => Scan::Invalid("word too long"),
                None => Scan::Need,
            }
        }
        unsafe fn push(&self, l: *mut lua_State, input: &[u8], mark: usize) -> c_int {
            // Only the bytes the read consumes: the word and its space.
            assert_eq!(input.len(), mark + 1);
            lua::push_bytes(l, &input[..mark]);
            1
        }
        fn limit_error(&self) -> &'static str {
            "out of buffer space"
        }
    }
    static WORD: Word = Word;

    #[test]
    fn registered_formats_read_from_files_and_streams() {
        let dir = std::env::temp_dir().join(format!("lem-parsers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("words");
        std::fs::write(&path, "alpha beta gammadeltaepsilon").unwrap();
        let mut rt = crate::Runtime::new(crate::Options::default()).unwrap();
        register_mlua(rt.lua(), "word", &WORD).unwrap();
        let main = rt
            .lua()
            .load(
                r#"
                local io = require 'lem.io'
                local f = assert(io.open(...))
                local a = f:read('word')
                local b = f:read('word')
                local c, err = f:read('word')
                assert(require('lem.parsers').lookup.word)
                result = table.concat({ a, b, tostring(c), err }, ',')
                "#,
            )
            .into_function()
            .unwrap();
        rt.spawn(main, path.to_str().unwrap()).unwrap();
        assert_eq!(rt.run(), crate::Outcome::Idle);
        let r: String = rt.lua().globals().get("result").unwrap();
        assert_eq!(r, "alpha,beta,nil,word too long");
        drop(rt);
        let _ = std::fs::remove_dir_all(&dir);
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
