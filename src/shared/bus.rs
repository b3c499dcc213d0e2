//! `shared.publish` and `shared.subscribe`: messages between workers
//! through one ring in a region (the `bus`), under its lock ([`region::Lock`]).
//!
//! A publisher appends a record (channel, message) at the ring's head,
//! dropping the oldest records when it is full, then bumps a doorbell
//! word and wakes its futex. In each process that subscribes, a thread
//! sleeps on that futex and, when it rings, notifies the loop, where a
//! task copies the records it has not seen for the channels it has
//! subscribers for into their queues. One ring means one order: messages
//! of one publisher arrive in the order it sent them. A process that
//! fell so far behind that the ring dropped records it had not read
//! counts them as dropped by each of its subscriptions; a subscription's
//! full queue drops the new message and counts it.
//!
//! A graceful stop closes every subscription ([`drain`]): a receive
//! waiting on one is a wait that keeps the process alive, and an old
//! worker's subscriber would otherwise keep it for the whole grace.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::ffi::{c_int, CStr};
use std::io;
use std::os::fd::OwnedFd;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::region::{self, Locked, Region};
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::scheduler::{self, Commit, Resume};

const MAGIC: u64 = 0x6c65_6d2e_6275_7332; // "lem.bus2": lem's own lock

/// The ring's size.
pub const SIZE: usize = 4 << 20;
/// The longest message: a quarter of the ring.
pub const MAX_MESSAGE: usize = SIZE / 4;
/// A subscription's queue unless told.
const DEFAULT_QUEUE: usize = 1000;

#[repr(C)]
struct Header {
    magic: u64,
    /// Offset of the ring, and its size.
    ring: u64,
    cap: u64,
    lock: region::Lock,
    dirty: u32,
    /// Bumped after every publish; its futex wakes the subscribers.
    doorbell: AtomicU32,
    /// Bytes written ever, and the position of the oldest record kept.
    head: u64,
    tail: u64,
    /// Messages written ever, and the number of the oldest kept.
    seq_head: u64,
    seq_tail: u64,
}

/// A record: this, the channel, the message, padded to 8.
#[repr(C)]
struct Record {
    len: u32,
    /// [`SKIP`]: padding up to the ring's end.
    chan_len: u32,
}

const SKIP: u32 = u32::MAX;
const RECORD: u64 = std::mem::size_of::<Record>() as u64;

/// Make a bus of `size` bytes: the memfd to hand out.
pub fn create(size: usize) -> io::Result<OwnedFd> {
    let fd = Region::create(size)?;
    let r = Region::map(&fd)?;
    // SAFETY: a new region, all ours, bigger than the header.
    unsafe {
        let h = r.base() as *mut Header;
        (*h).magic = MAGIC;
        (*h).ring = 4096;
        (*h).cap = (size as u64 - 4096) & !7;
        (*h).lock.init();
    }
    Ok(fd)
}

/// This process's mapping of the bus.
struct Bus {
    region: Region,
}

impl Bus {
    fn h(&self) -> *mut Header {
        self.region.base() as *mut Header
    }

    /// Run `f` under the lock; a dead holder's half-written ring is
    /// emptied.
    fn with<R>(&self, f: impl FnOnce(*mut Header, *mut u8) -> R) -> R {
        let h = self.h();
        // SAFETY: the header was made by `create`.
        unsafe {
            if (*h).lock.lock() == Locked::OwnerDied && (*h).dirty != 0 {
                (*h).tail = (*h).head;
                (*h).seq_tail = (*h).seq_head;
                (*h).dirty = 0;
            }
            let ring = self.region.base().add((*h).ring as usize);
            let r = f(h, ring);
            (*h).lock.unlock();
            r
        }
    }

    fn doorbell(&self) -> &AtomicU32 {
        // SAFETY: the header lives as long as the mapping.
        unsafe { &(*self.h()).doorbell }
    }

    /// Append a message, dropping the oldest to make room.
    fn publish(&self, chan: &[u8], msg: &[u8]) {
        let need = (RECORD + chan.len() as u64 + msg.len() as u64).next_multiple_of(8);
        self.with(|h, ring| unsafe {
            // SAFETY: under the lock; positions modulo cap lie in the ring.
            let h = &mut *h;
            h.dirty = 1;
            let cap = h.cap;
            let pos = h.head % cap;
            let pad = if cap - pos < need { cap - pos } else { 0 };
            while h.head + pad + need - h.tail > cap {
                let r = &*(ring.add((h.tail % cap) as usize) as *const Record);
                if r.chan_len != SKIP {
                    h.seq_tail += 1;
                }
                h.tail += r.len as u64;
            }
            if pad != 0 {
                let r = &mut *(ring.add(pos as usize) as *mut Record);
                r.len = pad as u32;
                r.chan_len = SKIP;
                h.head += pad;
            }
            let at = ring.add((h.head % cap) as usize);
            let r = &mut *(at as *mut Record);
            r.len = need as u32;
            r.chan_len = chan.len() as u32;
            let data = at.add(RECORD as usize);
            std::ptr::copy_nonoverlapping(chan.as_ptr(), data, chan.len());
            std::ptr::copy_nonoverlapping(msg.as_ptr(), data.add(chan.len()), msg.len());
            h.head += need;
            h.seq_head += 1;
            h.dirty = 0;
        });
        self.doorbell().fetch_add(1, Ordering::Release);
        // SAFETY: a futex wake on a word of shared memory.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.doorbell().as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
            );
        }
    }

    /// Where a new reader starts: after everything written so far.
    fn cursor(&self) -> Cursor {
        // SAFETY: under the lock.
        self.with(|h, _| unsafe {
            Cursor {
                pos: (*h).head,
                seq: (*h).seq_head,
            }
        })
    }

    /// The records after `cur` whose channel `wanted` accepts, and how
    /// many the ring dropped before they were read.
    fn read(&self, cur: &mut Cursor, wanted: impl Fn(&[u8]) -> bool) -> (Vec<Message>, u64) {
        self.with(|h, ring| unsafe {
            // SAFETY: under the lock; records between tail and head are whole.
            let h = &*h;
            let mut lost = 0;
            if cur.seq < h.seq_tail || cur.pos < h.tail || cur.pos > h.head {
                lost = h.seq_tail.saturating_sub(cur.seq);
                cur.pos = h.tail;
                cur.seq = h.seq_tail;
            }
            let mut got = Vec::new();
            while cur.pos < h.head {
                let at = ring.add((cur.pos % h.cap) as usize);
                let r = &*(at as *const Record);
                cur.pos += r.len as u64;
                if r.chan_len == SKIP {
                    continue;
                }
                cur.seq += 1;
                let data = std::slice::from_raw_parts(
                    at.add(RECORD as usize),
                    r.len as usize - RECORD as usize,
                );
                let chan = &data[..r.chan_len as usize];
                if wanted(chan) {
                    // Padding included: the message says its length
                    // ([`frame`]).
                    got.push((chan.to_vec(), data[r.chan_len as usize..].to_vec()));
                }
            }
            (got, lost)
        })
    }
}

/// A channel and a message.
type Message = (Vec<u8>, Vec<u8>);

/// A reader's place in the ring.
#[derive(Clone, Copy)]
struct Cursor {
    pos: u64,
    seq: u64,
}

/// The process's bus, mapped on first use.
fn bus() -> Result<&'static Bus, String> {
    static BUS: OnceLock<Bus> = OnceLock::new();
    if let Some(b) = BUS.get() {
        return Ok(b);
    }
    let fd = super::memory("bus", "messages", SIZE)?;
    let region = Region::map(&fd).map_err(|e| e.to_string())?;
    // SAFETY: the region is at least a header long (SIZE).
    if region.len() < SIZE || unsafe { (*(region.base() as *const Header)).magic } != MAGIC {
        return Err("the shared message bus is malformed".into());
    }
    Ok(BUS.get_or_init(|| Bus { region }))
}

/// One subscription.
struct Sub {
    channel: Vec<u8>,
    queue: RefCell<VecDeque<Vec<u8>>>,
    cap: usize,
    dropped: Cell<u64>,
    closed: Cell<bool>,
    receiving: Cell<bool>,
    notify: tokio::sync::Notify,
}

/// The loop's side: where this process has read to, and its
/// subscriptions by channel.
struct Local {
    cursor: Cursor,
    subs: HashMap<Vec<u8>, Vec<Weak<Sub>>>,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// Copy what the ring holds for this process's subscriptions into their
/// queues.
fn pump() {
    let Ok(bus) = bus() else { return };
    let (got, lost, subs) = LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        let Some(local) = local.as_mut() else {
            return (Vec::new(), 0, Vec::new());
        };
        local.subs.retain(|_, v| {
            v.retain(|w| w.strong_count() > 0);
            !v.is_empty()
        });
        let subs = &local.subs;
        let (got, lost) = bus.read(&mut local.cursor, |c| subs.contains_key(c));
        let mut deliver = Vec::with_capacity(got.len());
        for (chan, msg) in got {
            let to: Vec<Rc<Sub>> = subs[&chan].iter().filter_map(Weak::upgrade).collect();
            deliver.push((to, msg));
        }
        let all: Vec<Rc<Sub>> = if lost > 0 {
            subs.values().flatten().filter_map(Weak::upgrade).collect()
        } else {
            Vec::new()
        };
        (deliver, lost, all)
    });
    for s in subs {
        s.dropped.set(s.dropped.get() + lost);
    }
    for (to, msg) in got {
        for s in to {
            if s.closed.get() {
                continue;
            }
            let mut q = s.queue.borrow_mut();
            if q.len() >= s.cap {
                s.dropped.set(s.dropped.get() + 1);
            } else {
                q.push_back(msg.clone());
                s.notify.notify_one();
            }
        }
    }
}

/// Trim a record's message of its padding: records are padded to 8, so
/// the message is sent with its length in front.
fn frame(msg: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + msg.len());
    v.extend_from_slice(&(msg.len() as u32).to_ne_bytes());
    v.extend_from_slice(msg);
    v
}

fn unframe(mut v: Vec<u8>) -> Vec<u8> {
    let n = v.get(..4).map_or(0, |b| {
        u32::from_ne_bytes(b.try_into().unwrap_or_default()) as usize
    });
    v.drain(..4.min(v.len()));
    v.truncate(n);
    v
}

/// Start the doorbell thread and the loop's pump, once per process.
fn listen(bus: &'static Bus) -> io::Result<()> {
    let notify = Arc::new(tokio::sync::Notify::new());
    let n = notify.clone();
    // The doorbell as it is now, read here and not in the thread: a
    // publish made before the thread first ran would otherwise count as
    // seen, and its message wait for the next one. What was published
    // since the first subscription looked at the ring is pumped once at
    // the start (the permit `notify_one` leaves).
    let word = bus.doorbell();
    let mut seen = word.load(Ordering::Acquire);
    notify.notify_one();
    std::thread::Builder::new()
        .name("lem-shared-bus".into())
        .spawn(move || {
            loop {
                // SAFETY: a futex wait on a word of shared memory.
                unsafe {
                    libc::syscall(
                        libc::SYS_futex,
                        word.as_ptr(),
                        libc::FUTEX_WAIT,
                        seen,
                        std::ptr::null::<libc::timespec>(),
                    );
                }
                let now = word.load(Ordering::Acquire);
                if now != seen {
                    seen = now;
                    n.notify_one();
                }
            }
        })?;
    tokio::task::spawn_local(async move {
        loop {
            notify.notified().await;
            pump();
        }
    });
    Ok(())
}

const SUBSCRIPTION: &CStr = c"lem.shared.Subscription";

unsafe fn raise(l: *mut lua_State, e: String) -> ! {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::push_str(l, &e);
        drop(e);
        ffi::lua_error(l)
    }
}

/// shared.publish(channel, message) -> true
pub(super) unsafe extern "C-unwind" fn publish(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let chan = check_channel(l);
        let msg = lua::check_bytes(l, 2);
        if msg.len() > MAX_MESSAGE - 64 - chan.len() {
            lua::arg_error(l, 2, c"message longer than 1 MiB");
        }
        let bus = match bus() {
            Ok(b) => b,
            Err(e) => raise(l, e),
        };
        bus.publish(chan, &frame(msg));
        ffi::lua_pushboolean(l, 1);
        1
    }
}

unsafe fn check_channel<'a>(l: *mut lua_State) -> &'a [u8] {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let c = lua::check_bytes(l, 1);
        if c.is_empty() || c.len() > 255 {
            lua::arg_error(l, 1, c"channel must be 1 to 255 bytes");
        }
        c
    }
}

/// shared.subscribe(channel [, {queue = n}]) -> Subscription
pub(super) unsafe extern "C-unwind" fn subscribe(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let chan = check_channel(l).to_vec();
        let mut cap = DEFAULT_QUEUE;
        if !lua::is_none_or_nil(l, 2) {
            lua::check_type(l, 2, ffi::LUA_TTABLE);
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, 2) != 0 {
                let known = ffi::lua_type(l, -2) == ffi::LUA_TSTRING
                    && lua::to_bytes(l, -2) == Some(&b"queue"[..]);
                if !known {
                    let k = lua::display(l, -2);
                    ffi::lua_pop(l, 2);
                    lua::push_str(l, &format!("unknown option '{k}'"));
                    drop(k);
                    lua::arg_error_ptr(l, 2, ffi::lua_tostring(l, -1));
                }
                let n = if ffi::lua_type(l, -1) == ffi::LUA_TNUMBER {
                    ffi::lua_tonumber(l, -1)
                } else {
                    -1.0
                };
                if !(1.0..=1e9).contains(&n) {
                    lua::arg_error(l, 2, c"queue must be a number from 1");
                }
                cap = n as usize;
                ffi::lua_pop(l, 1);
            }
        }
        let bus = match bus() {
            Ok(b) => b,
            Err(e) => raise(l, e),
        };
        let draining = crate::runtime::lifecycle::draining();
        let first = LOCAL.with(|local| local.borrow().is_none());
        if draining {
            // Closed from the start (see `drain`).
        } else if first {
            crate::runtime::lifecycle::on_drain(drain);
            if let Err(e) = listen(bus) {
                raise(l, format!("cannot subscribe: {e}"));
            }
            let cursor = bus.cursor();
            LOCAL.with(|local| {
                *local.borrow_mut() = Some(Local {
                    cursor,
                    subs: HashMap::new(),
                })
            });
        } else {
            // Messages before this subscription are not its.
            pump();
        }
        let sub = Rc::new(Sub {
            channel: chan.clone(),
            queue: RefCell::default(),
            cap,
            dropped: Cell::new(0),
            closed: Cell::new(draining),
            receiving: Cell::new(false),
            notify: tokio::sync::Notify::new(),
        });
        LOCAL.with(|local| {
            if draining {
                return;
            }
            if let Some(local) = local.borrow_mut().as_mut() {
                local
                    .subs
                    .entry(chan)
                    .or_default()
                    .push(Rc::downgrade(&sub));
            }
        });
        lua::push_object(l, SUBSCRIPTION, sub);
        1
    }
}

unsafe fn check_sub<'a>(l: *mut lua_State) -> &'a Rc<Sub> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { lua::check_object::<Rc<Sub>>(l, 1, SUBSCRIPTION) }
}

/// Clears `receiving` however the wait ends.
struct Receiving(Rc<Sub>);

impl Drop for Receiving {
    fn drop(&mut self) {
        self.0.receiving.set(false);
    }
}

/// Push what a receive gives: the next message, or why there is none.
unsafe fn push_received(l: *mut lua_State, sub: &Sub) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let m = sub.queue.borrow_mut().pop_front();
        match m {
            Some(m) => {
                let m = unframe(m);
                lua::push_bytes(l, &m);
                1
            }
            None if sub.closed.get() => lua::fail(l, "closed"),
            None => lua::fail(l, "timeout"),
        }
    }
}

/// sub:receive([timeout]) -> message | nil, 'timeout' | nil, 'closed'
unsafe extern "C-unwind" fn sub_receive(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let sub = check_sub(l);
        let timeout = if lua::is_none_or_nil(l, 2) {
            None
        } else {
            let t = lua::check_number(l, 2);
            if t.is_nan() || t < 0.0 {
                lua::arg_error(l, 2, c"timeout must not be negative");
            }
            Some(Duration::try_from_secs_f64(t).unwrap_or(Duration::from_secs(100 * 365 * 86400)))
        };
        if sub.receiving.get() {
            return lua::fail(l, "busy");
        }
        if sub.queue.borrow().is_empty() && !sub.closed.get() {
            pump();
        }
        if !sub.queue.borrow().is_empty() || sub.closed.get() || timeout == Some(Duration::ZERO) {
            return push_received(l, sub);
        }
        sub.receiving.set(true);
        let guard = Receiving(sub.clone());
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let fut = async move {
            let sub = guard.0.clone();
            loop {
                if !sub.queue.borrow().is_empty() || sub.closed.get() {
                    break;
                }
                let n = sub.notify.notified();
                match deadline {
                    Some(d) => {
                        if tokio::time::timeout_at(d, n).await.is_err() {
                            break;
                        }
                    }
                    None => n.await,
                }
            }
            drop(guard);
            Resume::Push(Box::new(move |co| {
                // SAFETY: `co` is the resumed coroutine, with room for two values.
                {
                    push_received(co, &sub)
                }
            }))
        };
        scheduler::prepare_or_raise(l, Commit::Future(Box::pin(fut)));
        scheduler::suspend(l)
    }
}

/// sub:dropped() -> count
unsafe extern "C-unwind" fn sub_dropped(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let sub = check_sub(l);
        ffi::lua_pushinteger(l, sub.dropped.get() as _);
        1
    }
}

fn close(sub: &Rc<Sub>) {
    if sub.closed.replace(true) {
        return;
    }
    sub.queue.borrow_mut().clear();
    sub.notify.notify_one();
    LOCAL.with(|local| {
        if let Some(local) = local.borrow_mut().as_mut() {
            if let Some(v) = local.subs.get_mut(&sub.channel) {
                v.retain(|w| !std::ptr::eq(w.as_ptr(), Rc::as_ptr(sub)));
            }
        }
    });
}

/// A graceful stop started: close every subscription, keeping what its
/// queue holds for the receives that follow (then `nil, 'closed'`).
fn drain() {
    let subs: Vec<Rc<Sub>> = LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        let Some(local) = local.as_mut() else {
            return Vec::new();
        };
        local
            .subs
            .drain()
            .flat_map(|(_, v)| v)
            .filter_map(|w| w.upgrade())
            .collect()
    });
    for s in subs {
        s.closed.set(true);
        s.notify.notify_one();
    }
}

/// sub:close() -> true
unsafe extern "C-unwind" fn sub_close(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        close(check_sub(l));
        ffi::lua_pushboolean(l, 1);
        1
    }
}

unsafe extern "C-unwind" fn sub_gc(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let p = ffi::lua_touserdata(l, 1) as *mut Rc<Sub>;
        if !p.is_null() {
            close(&*p);
            std::ptr::drop_in_place(p);
        }
        0
    }
}

const SUB_METHODS: &[Reg] = &[
    (c"receive", sub_receive),
    (c"dropped", sub_dropped),
    (c"close", sub_close),
];

/// Make the class `lem.shared.Subscription`.
///
/// # Safety
/// `l` is lem's state, with room for a few values.
pub(super) unsafe fn register(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::new_class(l, SUBSCRIPTION, SUB_METHODS, Some(sub_gc));
        ffi::lua_pop(l, 1);
    }
}
