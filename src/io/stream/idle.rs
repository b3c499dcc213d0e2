//! Idle reads: a server's connection waiting for its peer's next request
//! ([`read_idle`]) is listed, so that a graceful stop ([`drain_idle`]) can
//! close those that receive nothing for a moment.
//!
//! Closing them at once lost requests: a client that sent on its
//! keep-alive connection as the stop began got the connection closed
//! without an answer (or reset, when the request was in the kernel's
//! buffer already), and clients that do not retry (Python's http.client)
//! failed. So a stop leaves them open for a drain period, as Envoy does;
//! a request that comes meanwhile is answered with `Connection: close`
//! (the server sees `lifecycle::draining`), and only those still idle at
//! its end are closed.

use std::cell::RefCell;
use std::ffi::c_int;
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::read::read_any;
use super::{Inner, Stream};
use crate::runtime::lua::lua_State;
use crate::runtime::parsers::Fmt;

/// A stream's part in graceful stops: never read with [`read_idle`]
/// (not in [`IDLE`]), or listed, its last read an ordinary or an idle one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Idle {
    Unlisted,
    Busy,
    Waiting,
}

/// The streams that were read with [`read_idle`], for [`close_idle`];
/// dead entries are swept when the list has doubled since the last sweep.
struct IdleList {
    streams: Vec<Weak<Inner>>,
    swept_at: usize,
}

thread_local! {
    static IDLE: RefCell<IdleList> = const {
        RefCell::new(IdleList {
            streams: Vec::new(),
            swept_at: 0,
        })
    };
}

/// Read `fmt` as [`read`] does, as the wait of a server's connection for
/// its peer's next request (an HTTP keep-alive connection between
/// requests): a graceful stop ([`close_idle`]) closes the stream if the
/// read waits with nothing received.
pub(crate) unsafe fn read_idle(l: *mut lua_State, s: &Stream, fmt: Fmt) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let inner = &s.0;
        if inner.idle.get() == Idle::Unlisted {
            IDLE.with(|list| {
                let mut list = list.borrow_mut();
                if list.streams.len() >= 2 * list.swept_at.max(64) {
                    list.streams.retain(|w| w.strong_count() > 0);
                    list.swept_at = list.streams.len();
                }
                list.streams.push(Rc::downgrade(inner));
            });
        }
        inner.idle.set(Idle::Waiting);
        read_any(l, s, fmt)
    }
}

/// Close the streams idle between requests ([`close_idle`]) after
/// `period` (at once if it is zero).
pub(crate) fn drain_idle(period: Duration) {
    if period.is_zero() {
        close_idle();
        return;
    }
    // No hold: the idle reads keep the process alive until they are closed.
    tokio::task::spawn_local(async move {
        tokio::time::sleep(period).await;
        close_idle();
    });
}

/// Whether bytes wait in the kernel's buffer of the descriptor (a request
/// that came while the loop had not yet seen its readiness): closing with
/// them unread would reset the connection.
fn pending_in_kernel(fd: std::os::fd::RawFd) -> bool {
    // SAFETY: the descriptor is the stream's, open while it is borrowed here.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    rustix::io::ioctl_fionread(fd).is_ok_and(|n| n > 0)
}

/// Close every stream whose idle read ([`read_idle`]) waits with nothing
/// received yet. Returns how many closed.
pub(crate) fn close_idle() -> usize {
    let streams: Vec<Rc<Inner>> = IDLE.with(|list| {
        list.borrow()
            .streams
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    });
    let mut closed = 0;
    for inner in streams {
        let waiting = inner.idle.get() == Idle::Waiting
            && inner.reading.get().is_some()
            && inner.rd.is_active()
            && inner.input.borrow().is_empty()
            && inner
                .io()
                .is_some_and(|io| !io.holds_input() && !pending_in_kernel(io.raw()));
        if waiting && inner.close() {
            closed += 1;
        }
    }
    closed
}
