//! The process's life as every layer sees it: which worker this is, and
//! the graceful stop.
//!
//! `lem -w` makes workers (`crate::workers`, the top layer); it tells this
//! file the worker's identity at startup ([`set_identity`]). A graceful
//! stop ([`shutdown`]) is the runtime's: the layers above say what it
//! closes by registering drain hooks ([`on_drain`]; the root registers
//! io's servers and idle connections), so nothing here knows about them.

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;
use std::time::Duration;

/// A worker's number, the worker count and the grace of its stops.
struct Identity {
    id: u32,
    count: u32,
    grace: f64,
}

static IDENTITY: OnceLock<Identity> = OnceLock::new();

/// Called once by a worker at startup (before any thread): its number,
/// the worker count and the grace period of its graceful stop
/// (`--grace`). Later calls are ignored.
pub fn set_identity(id: u32, count: u32, grace: f64) {
    let _ = IDENTITY.set(Identity { id, count, grace });
}

/// `(id, count)`: this worker's number and how many there are; `(1, 1)`
/// outside `-w`.
pub fn identity() -> (u32, u32) {
    IDENTITY.get().map_or((1, 1), |w| (w.id, w.count))
}

/// The grace period of a worker's graceful stop (`--grace`); `None`
/// outside `-w`.
pub fn grace() -> Option<f64> {
    IDENTITY.get().map(|w| w.grace)
}

/// How long a graceful stop leaves a connection idle between requests
/// open ([`idle_drain`]): a client that sends on it meanwhile is answered
/// (with `Connection: close`) rather than cut off, as Envoy drains.
pub const IDLE_DRAIN: Duration = Duration::from_secs(1);

thread_local! {
    static DRAINING: Cell<bool> = const { Cell::new(false) };
    static HOOKS: RefCell<Vec<fn()>> = const { RefCell::new(Vec::new()) };
    /// The grace of the stop under way.
    static GRACE: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// Run `hook` when a graceful stop starts (once per function: a second
/// registration of the same one is ignored).
pub fn on_drain(hook: fn()) {
    HOOKS.with(|h| {
        let mut h = h.borrow_mut();
        if !h.iter().any(|f| std::ptr::fn_addr_eq(*f, hook)) {
            h.push(hook);
        }
    });
}

/// A graceful stop is under way: servers accept nothing more and
/// responses close their connections.
pub fn draining() -> bool {
    DRAINING.with(Cell::get)
}

/// How long the stop under way leaves idle connections open: [`IDLE_DRAIN`],
/// or its grace if that is shorter.
pub fn idle_drain() -> Duration {
    IDLE_DRAIN.min(GRACE.with(Cell::get))
}

/// Stop gracefully: run the drain hooks (close every listening server,
/// and every HTTP connection that stays idle between requests for
/// [`idle_drain`]; close lem.shared's subscriptions), and end the process with
/// status 0 after `grace` if its work has not ended it by then. Returns
/// false if a stop was under way already (the first grace stands).
pub fn shutdown(grace: Duration) -> bool {
    if DRAINING.with(|d| d.replace(true)) {
        return false;
    }
    GRACE.with(|g| g.set(grace));
    let hooks = HOOKS.with(|h| h.borrow().clone());
    for hook in hooks {
        hook();
    }
    tokio::task::spawn_local(async move {
        tokio::time::sleep(grace).await;
        eprintln!(
            "{}: graceful stop: work left after the grace of {} s is cut off",
            crate::runtime::progname(),
            grace.as_secs_f64()
        );
        crate::runtime::scheduler::get().request_exit(0);
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_is_registered_once() {
        fn hook() {}
        on_drain(hook);
        on_drain(hook);
        assert_eq!(HOOKS.with(|h| h.borrow().len()), 1);
    }

    #[test]
    fn outside_workers_the_identity_is_one_of_one() {
        assert_eq!(identity(), (1, 1));
        assert_eq!(grace(), None);
    }
}
