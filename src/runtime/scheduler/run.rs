//! The loop: running tasks in FIFO passes, parking the ones that
//! suspend (applying their commits), firing timers and deadlines, and
//! deciding when the process ends.

use super::*;

impl Scheduler {
    pub(super) fn park(&'static self, id: TaskId, pending: bool) {
        let commit = self.commit.borrow_mut().take();
        let (seq, commit) = match commit {
            Some((seq, c)) if pending => (seq, c),
            // A bare `coroutine.yield()` parks like `utils.suspend()`.
            _ => (self.next_seq(), Commit::Suspend),
        };
        let doomed = {
            let mut tasks = self.tasks.borrow_mut();
            let t = &mut tasks[id as usize];
            t.native = pending;
            if t.doom != 0 {
                // A cancelled coroutine cannot keep suspending: the commit
                // is dropped unapplied and the call raises at once.
                t.state = State::Runnable;
                t.seq = 0;
                true
            } else {
                t.state = State::Parked;
                t.seq = seq;
                t.suspended = matches!(commit, Commit::Suspend);
                false
            }
        };
        if doomed {
            #[cfg(feature = "luajit")]
            self.note_nested(id);
            drop(commit);
            self.runq.borrow_mut().push(id, Resume::Doom);
            return;
        }
        #[cfg(feature = "luajit")]
        self.note_nested(id);
        let w = Waiter { task: id, seq };
        match commit {
            Commit::Suspend => {}
            Commit::Yield => {
                self.unpark(w);
                self.runq.borrow_mut().push(id, Resume::Staged(0));
            }
            Commit::Sleep(None) => {}
            // A deadline already passed (`sleep(0)`, `t <= 0`) yields
            // once and times out: the back of the run queue, as a yield.
            Commit::Sleep(Some(deadline)) if deadline <= Instant::now() => {
                self.unpark(w);
                self.runq.borrow_mut().push(id, Resume::Timeout);
            }
            Commit::Sleep(Some(deadline)) => {
                self.tasks.borrow_mut()[id as usize].timed = true;
                self.live_timers.set(self.live_timers.get() + 1);
                let deadline = deadline.saturating_duration_since(self.epoch);
                self.timers.borrow_mut().push(std::cmp::Reverse(Timer {
                    deadline: deadline.as_nanos().min(u64::MAX as u128) as u64,
                    seq,
                    task: id,
                }));
            }
            Commit::Future(fut) => {
                self.spawn_wait(w, fut);
            }
            Commit::Custom(f) => f(w),
            Commit::Wait(o) => {
                let (h, ready) = self.waits.start_polled(w, o.clone());
                o.started(w, h);
                if ready {
                    self.wake(w, Resume::Object(o));
                } else {
                    self.note_slot(w, h);
                }
            }
        }
    }

    pub(super) fn finish(&self, id: TaskId) {
        if let Some(v) = self.deadlines.borrow_mut().remove(&id) {
            let live = v.iter().filter(|d| !d.passed).count();
            self.live_deadlines.set(self.live_deadlines.get() - live);
        }
        #[cfg(feature = "luajit")]
        self.nested.borrow_mut().remove(&id);
        let t = {
            let mut tasks = self.tasks.borrow_mut();
            std::mem::replace(&mut tasks[id as usize], FREE).thread
        };
        self.set_task_of(t, NO_TASK);
        self.count.set(self.count.get() - 1);
        // SAFETY: main is valid for the scheduler's life; the table ref is ours.
        unsafe {
            ffi::lua_settop(t, 0);
            ffi::lua_rawgeti(self.main, ffi::LUA_REGISTRYINDEX, self.threads_ref as _);
            ffi::luaL_unref(self.main, -1, id);
            ffi::lua_pop(self.main, 1);
        }
    }

    /// Run one task until it suspends, yields or ends. Returns `true` if it
    /// ended.
    pub(super) fn run_one(&'static self, id: TaskId, resume: Resume) -> bool {
        let (t, resume, guarded) = {
            let mut tasks = self.tasks.borrow_mut();
            let task = &mut tasks[id as usize];
            debug_assert_eq!(task.state, State::Runnable);
            task.state = State::Running;
            // Doomed after it was woken (a deadline passed while it was in
            // the run queue): a yield or a sleep's timeout, which hand it
            // nothing that would be lost, raise now; results (a read's
            // data, a queued value) are delivered, and the next suspension
            // raises.
            let resume = match resume {
                Resume::Staged(0) | Resume::Timeout if task.doom != 0 && task.seq != 0 => {
                    Resume::Doom
                }
                r => r,
            };
            let guarded = self.wants_guard(id, task.doom);
            (task.thread, resume, guarded)
        };
        self.current.set(id);
        self.commit.borrow_mut().take();
        // SAFETY: t is anchored in the threads table while the task lives.
        let (status, nres) = unsafe {
            if guarded {
                self.guard_start(t);
            }
            let mut armed = false;
            let nargs = match resume {
                Resume::Push(f) => f(t),
                Resume::Object(o) => o.push(t),
                Resume::Timeout => lua::fail(t, "timeout"),
                Resume::Staged(n) => n,
                Resume::Doom => {
                    ffi::lua_pushlightuserdata(t, crate::runtime::scheduler::doom_marker());
                    armed = self.arm_doom(id, t);
                    1
                }
            };
            let mut nres: c_int = 0;
            let status = ffi::lua_resume(t, self.main, nargs, &mut nres);
            if armed {
                hook::disarm();
            }
            if self.guard.on.get() {
                self.guard_end(t);
            }
            (status, nres)
        };
        self.current.set(NO_TASK);
        match status {
            ffi::LUA_OK => {
                self.finish(id);
                true
            }
            ffi::LUA_YIELD => {
                // SAFETY: the yielded values are the top `nres` of t.
                let pending = unsafe {
                    let p = nres > 0 && crate::runtime::scheduler::is_pending(t, -1);
                    ffi::lua_pop(t, nres);
                    p
                };
                self.park(id, pending);
                false
            }
            _ => {
                // SAFETY: the error value is on top of the dead thread.
                let report = unsafe { error_report(self.main, t) };
                eprintln!("{}: {}", crate::runtime::progname(), report);
                self.finish(id);
                self.request_exit(1);
                true
            }
        }
    }

    pub(super) fn fire_timers(&self) {
        self.fire_deadlines();
        let mut timers = self.timers.borrow_mut();
        if timers.is_empty() {
            return;
        }
        let now = self.epoch.elapsed().as_nanos() as u64;
        while let Some(std::cmp::Reverse(top)) = timers.peek() {
            if top.deadline > now {
                break;
            }
            let Some(std::cmp::Reverse(t)) = timers.pop() else {
                break;
            };
            let w = Waiter {
                task: t.task,
                seq: t.seq,
            };
            if self.unpark(w) {
                self.runq.borrow_mut().push(w.task, Resume::Timeout);
            }
        }
        // Drop entries of parkings that ended early once they dominate.
        if timers.len() > 1024 && timers.len() > 4 * self.live_timers.get() {
            let tasks = self.tasks.borrow();
            timers.retain(|std::cmp::Reverse(t)| {
                tasks
                    .get(t.task as usize)
                    .is_some_and(|k| k.state == State::Parked && k.seq == t.seq)
            });
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let top = |h: &BinaryHeap<std::cmp::Reverse<Timer>>| {
            h.peek().map(|std::cmp::Reverse(t)| t.deadline)
        };
        let a = top(&self.timers.borrow());
        let b = top(&self.deadline_heap.borrow());
        let t = match (a, b) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(self.epoch + Duration::from_nanos(t))
    }

    pub(super) fn alive(&self) -> bool {
        !self.runq.borrow().is_empty()
            || self.live_timers.get() > 0
            || self.live_deadlines.get() > 0
            || self.holds.get() > 0
            || self.waits.live() > 0
    }

    pub(super) fn task_done(&self, id: TaskId, thread: *mut lua_State) -> bool {
        self.tasks
            .borrow()
            .get(id as usize)
            .is_none_or(|t| t.thread != thread || t.state == State::Free)
    }

    /// The loop's wait for work: ready once signalled or a wait's waker
    /// was called.
    pub(super) fn idle(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.signalled.take() || !self.waits.idle(cx.waker()) {
            return std::task::Poll::Ready(());
        }
        self.idling.set(true);
        std::task::Poll::Pending
    }

    /// Run the loop until nothing is left to run or wait for, until `utils.exit`
    /// or an uncaught error, or (with `until`) until that task has ended.
    pub async fn run(&'static self, until: Option<TaskId>) -> Outcome {
        let until = until.map(|id| (id, self.tasks.borrow()[id as usize].thread));
        let mut polled_io = self.now();
        let precise = timer::Precise::new();
        loop {
            self.update_now();
            // Whatever signalled the loop is looked at in this turn.
            self.signalled.set(false);
            self.fire_timers();
            self.waits.poll_ready(|w, resume| {
                self.wake(w, resume);
            });
            let n = self.runq.borrow().len();
            for _ in 0..n {
                let Some((id, resume)) = self.runq.borrow_mut().pop() else {
                    break;
                };
                self.run_one(id, resume);
                if let Some(code) = self.exit.get() {
                    return Outcome::Exit(code);
                }
            }
            if let Some((id, thread)) = until {
                if self.task_done(id, thread) {
                    return Outcome::Done;
                }
            }
            if !self.runq.borrow().is_empty() {
                // Let I/O and other loop tasks progress now and then while
                // coroutines keep yielding to each other.
                if (self.now() - polled_io).abs() >= IO_POLL_INTERVAL {
                    tokio::task::yield_now().await;
                    polled_io = self.now();
                }
                continue;
            }
            if !self.alive() {
                // Last call: let loop tasks whose input is already there
                // (native code's own) run and take a hold.
                tokio::task::yield_now().await;
                if !self.alive() {
                    return Outcome::Idle;
                }
                continue;
            }
            let idle = std::future::poll_fn(|cx| self.idle(cx));
            match self.next_deadline() {
                Some(deadline) => {
                    tokio::select! {
                        _ = idle => {}
                        _ = precise.sleep_until(deadline) => {}
                    }
                }
                None => idle.await,
            }
            self.idling.set(false);
            self.waits.busy();
            if let Some(code) = self.exit.get() {
                return Outcome::Exit(code);
            }
        }
    }
}
