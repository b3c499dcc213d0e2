//! How a native call suspends its coroutine: it yields the [`pending`]
//! marker ([`suspend`]), and a coroutine that was cancelled or ran past a
//! deadline is resumed with the [`doom_marker`], which makes the call
//! raise (on Lua 5.4 from the call's own continuation).

use std::ffi::{c_int, c_void};

use crate::runtime::lua::{self, ffi, lua_State};

static PENDING_TAG: u8 = 0;

/// The light userdata a suspending call yields. The scheduler, and the
/// `coroutine.resume`/`wrap` glue that passes it through user coroutines, are
/// the only ones who ever see it.
#[inline]
pub fn pending() -> *mut c_void {
    &PENDING_TAG as *const u8 as *mut c_void
}

/// Whether the value at `idx` is the [`pending`] marker.
///
/// # Safety
/// `l` must be a valid Lua state and `idx` an acceptable index.
#[inline]
pub unsafe fn is_pending(l: *mut lua_State, idx: c_int) -> bool {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { is_light(l, idx, pending()) }
}

/// Whether the value at `idx` is the light userdata `p` (a marker).
///
/// # Safety
/// As [`is_pending`].
#[inline]
unsafe fn is_light(l: *mut lua_State, idx: c_int, p: *mut c_void) -> bool {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { ffi::lua_type(l, idx) == ffi::LUA_TLIGHTUSERDATA && ffi::lua_touserdata(l, idx) == p }
}

/// Suspend the running coroutine after a call to
/// [`Scheduler::prepare`](super::Scheduler::prepare): yields the
/// pending marker; whatever wakes the coroutine supplies the return values.
///
/// Where Lua cannot yield, raises a clear error instead; the prepared
/// commit is then never applied.
///
/// # Safety
/// Must be the `return` expression of a `lua_CFunction` running on `l`.
#[inline]
pub unsafe fn suspend(l: *mut lua_State) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if !lua::is_yieldable(l) {
            // Lua's own words first, so scripts matching them keep working.
            ffi::luaL_error(
            l,
            c"attempt to yield across a C-call boundary (a suspending call inside a function called from C, such as a table.sort comparator or a string.gsub callback)".as_ptr(),
        );
        }
        #[cfg(feature = "luajit")]
        super::note_suspender(l);
        let below = ffi::lua_gettop(l);
        ffi::lua_pushlightuserdata(l, pending());
        #[cfg(not(feature = "luajit"))]
        {
            ffi::lua_yieldk(l, 1, below as ffi::lua_KContext, Some(resumed))
        }
        #[cfg(feature = "luajit")]
        {
            let _ = below;
            ffi::lua_yield(l, 1)
        }
    }
}

/// A different value from [`PENDING_TAG`]'s, so the two statics can never
/// share an address.
static DOOM_TAG: u8 = 1;

/// The light userdata a cancelled or timed-out coroutine is resumed with:
/// the suspending call raises instead of returning
/// ([`Resume::Doom`](super::Resume::Doom)).
#[inline]
pub fn doom_marker() -> *mut c_void {
    &DOOM_TAG as *const u8 as *mut c_void
}

/// Whether the value at `idx` is the [`doom_marker`].
///
/// # Safety
/// `l` must be a valid Lua state and `idx` an acceptable index.
#[inline]
pub unsafe fn is_doom(l: *mut lua_State, idx: c_int) -> bool {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe { is_light(l, idx, doom_marker()) }
}

/// The continuation of every suspending call (Lua 5.4): the values the
/// coroutine was resumed with are the call's results, unless it was
/// cancelled or ran past a deadline, in which case the call raises.
#[cfg(not(feature = "luajit"))]
unsafe extern "C-unwind" fn resumed(
    l: *mut lua_State,
    _: c_int,
    below: ffi::lua_KContext,
) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let top = ffi::lua_gettop(l);
        if top > below as c_int && is_doom(l, top) {
            ffi::lua_settop(l, below as c_int);
            super::raise_doom(l);
        }
        top - below as c_int
    }
}
