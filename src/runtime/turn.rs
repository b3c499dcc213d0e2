//! [`Turn`]: one holder at a time, the others waiting their turn, first
//! come first served. It is lem's one "wait your turn": a queued SQLite
//! connection's calls and statements (src/protocols/sqlite3/) take it in
//! Rust; Lua gets it as `utils.newturn()`, for a queued stream's writers
//! (`lua/lem/io/queue.lua`), a WebSocket's writers (`lua/lem/websocket.lua`)
//! and a queued PostgreSQL connection's callers
//! (`lua/lem/postgres/queued.lua`). See docs/utils.md.
//!
//! A waiter that goes away (cancelled, timed out: its wait's future is
//! dropped) leaves the line at once, so a turn given back never goes to a
//! coroutine that no longer waits. The turn is a one-permit tokio
//! semaphore: fair, and a permit given back goes straight to the first
//! waiter, so nobody who comes later takes it first.

use std::cell::RefCell;
use std::ffi::{c_int, CStr};
use std::future::Future;
use std::rc::Rc;
use std::sync::{Arc, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::scheduler::{self, Commit, Resume};

/// A turn; its clones are the same turn.
#[derive(Clone)]
pub struct Turn(Arc<Semaphore>);

/// A turn taken: dropping it gives the turn to the first waiter.
pub struct Held {
    _permit: OwnedSemaphorePermit,
}

/// A turn that does not keep it alive (to close it if it still exists).
pub struct WeakTurn(Weak<Semaphore>);

impl Turn {
    /// A turn nobody holds.
    pub fn new() -> Turn {
        Turn(Arc::new(Semaphore::new(1)))
    }

    /// The turn, if nobody holds it or waits for it.
    pub fn try_take(&self) -> Option<Held> {
        let p = self.0.clone().try_acquire_owned().ok()?;
        Some(Held { _permit: p })
    }

    /// Wait for the turn after those who came first; `None` once the turn
    /// is closed. Dropping the future leaves the line.
    pub fn take(&self) -> impl Future<Output = Option<Held>> + 'static {
        let sem = self.0.clone();
        async move {
            let p = sem.acquire_owned().await.ok()?;
            Some(Held { _permit: p })
        }
    }

    /// Whether someone holds the turn.
    pub fn is_held(&self) -> bool {
        self.0.available_permits() == 0
    }

    /// Close: those waiting and every later `take` get `None`. A holder
    /// keeps the turn until it drops it.
    pub fn close(&self) {
        self.0.close();
    }

    /// A handle that does not keep the turn alive.
    pub fn downgrade(&self) -> WeakTurn {
        WeakTurn(Arc::downgrade(&self.0))
    }
}

impl Default for Turn {
    fn default() -> Turn {
        Turn::new()
    }
}

impl WeakTurn {
    /// The turn, unless every [`Turn`] of it was dropped.
    pub fn upgrade(&self) -> Option<Turn> {
        self.0.upgrade().map(Turn)
    }

    /// Whether every [`Turn`] of it was dropped.
    pub fn is_gone(&self) -> bool {
        self.0.strong_count() == 0
    }
}

pub(crate) static TURN: &CStr = c"lem.Turn";

/// The Lua object: a turn, and the hold of whoever took it.
pub(crate) struct TurnObject {
    turn: Turn,
    /// Shared with a `take` that waits, which puts the turn here when its
    /// coroutine resumes.
    held: Rc<RefCell<Option<Held>>>,
}

impl TurnObject {
    /// Whether nobody holds the turn or waits for it (then
    /// [`take_now`](Self::take_now) takes it).
    pub(crate) fn is_free(&self) -> bool {
        !self.turn.is_held()
    }

    /// Take the turn as `turn:take()` would when nobody holds it or waits
    /// for it (for `turn:give()` to give back); `false`, and nothing
    /// taken, otherwise. For a native caller that needs the turn only once
    /// its work has to wait (src/protocols/websocket/stream.rs).
    pub(crate) fn take_now(&self) -> bool {
        match self.turn.try_take() {
            Some(h) => {
                *self.held.borrow_mut() = Some(h);
                true
            }
            None => false,
        }
    }
}

/// utils.newturn() -> turn
pub(crate) unsafe extern "C-unwind" fn newturn(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::push_object(
            l,
            TURN,
            TurnObject {
                turn: Turn::new(),
                held: Rc::default(),
            },
        );
        1
    }
}

/// turn:take() -> true: at once when nobody holds the turn or waits for
/// it, else once those who came first have given it back.
unsafe extern "C-unwind" fn turn_take(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let t: &TurnObject = lua::check_object(l, 1, TURN);
        if let Some(h) = t.turn.try_take() {
            *t.held.borrow_mut() = Some(h);
            ffi::lua_pushboolean(l, 1);
            return 1;
        }
        let take = t.turn.take();
        let held = t.held.clone();
        let fut = async move {
            // Lua's turns are never closed: `take` ends with the turn. Were the
            // coroutine cancelled before it resumes, the closure is dropped
            // with the turn in it, which passes the turn on.
            let h = take.await;
            Resume::Push(Box::new(move |co| {
                *held.borrow_mut() = h;
                // SAFETY: `co` is the resumed coroutine, with room for a value.
                ffi::lua_pushboolean(co, 1);
                1
            }))
        };
        scheduler::prepare_or_raise(l, Commit::Future(Box::pin(fut)));
        scheduler::suspend(l)
    }
}

/// turn:give() -> true | nil, 'not taken': the turn goes to the first
/// coroutine waiting for it, if any.
unsafe extern "C-unwind" fn turn_give(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let t: &TurnObject = lua::check_object(l, 1, TURN);
        let h = t.held.borrow_mut().take();
        if h.is_none() {
            return lua::fail(l, "not taken");
        }
        drop(h);
        ffi::lua_pushboolean(l, 1);
        1
    }
}

pub(crate) const METHODS: &[Reg] = &[(c"take", turn_take), (c"give", turn_give)];

/// Make the class `lem.Turn` (`utils.newturn()`'s objects).
///
/// # Safety
/// `l` must be a valid Lua state with room for a few values.
pub(crate) unsafe fn register(l: *mut lua_State) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        lua::new_class(l, TURN, METHODS, Some(lua::gc::<TurnObject>));
        ffi::lua_pop(l, 1);
    }
}
