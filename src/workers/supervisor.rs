//! The supervisor of `lem -w N script.lua`: it runs no Lua, only the
//! workers (see `workers/mod.rs` for their side and docs/workers.md).
//!
//! - It starts N workers, each the same `lem` command without `-w`, with
//!   `LEM_WORKER` (`workers::ENV`) telling it its number and its control socket.
//!   Workers run in their own process group (a terminal's Ctrl-C reaches
//!   the supervisor only, which stops them in order) and get SIGTERM if
//!   the supervisor dies.
//! - It makes the workers' listening sockets when they ask and keeps
//!   them: a TCP socket per worker number with `SO_REUSEPORT`, a Unix
//!   socket shared by all. A worker's replacement, or its successor after
//!   a reload, asks again and gets the same socket, with whatever
//!   connections wait in its queue.
//! - Workers' output comes through pipes and goes out a whole line at a
//!   time, so lines of different workers never mix (up to [`MAX_LINE`]
//!   bytes a line).
//! - A worker that ends is replaced: at once if it had served, else after
//!   a back-off that doubles (0.1 s, 0.2 s...). After [`MAX_FAILS`] starts
//!   in a row that never served, the supervisor gives up and exits with
//!   status 1.
//! - SIGTERM or SIGINT: every worker gets SIGTERM (its graceful stop),
//!   the sockets close, and the supervisor exits with status 0 when all
//!   have ended. A worker still running one second after its grace is
//!   killed; a second SIGTERM or SIGINT kills them all at once.
//! - It makes `lem.shared`'s memory when a worker first asks and keeps
//!   it, so the dictionaries and the message bus outlive every worker.
//! - SIGHUP: a new set of workers starts from the script on disk; once
//!   every one of them serves (or has run for a second without serving),
//!   the old set gets SIGTERM. A new worker that ends before it serves
//!   cancels the reload, and the old set goes on.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{IoSlice, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::rc::Rc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use crate::workers::{ENV, MAX_MESSAGE};

/// Starts in a row that end before serving, after which the supervisor
/// gives up.
pub const MAX_FAILS: u32 = 5;

/// A new worker counts as serving after this long even if it never
/// accepts (a script that serves nothing).
const SETTLE: Duration = Duration::from_secs(1);

/// The first back-off after a failed start; it doubles up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A line longer than this goes out in pieces (which another worker's
/// lines may come between).
pub const MAX_LINE: usize = 1 << 20;

/// What `lem -w` was asked to run.
pub struct Config {
    pub workers: u32,
    /// The graceful stop's grace period, given to the workers too.
    pub grace: Duration,
    /// The command workers run: the lem binary, named as it was invoked,
    /// with the command line's other options and the script.
    pub exe: PathBuf,
    pub argv0: OsString,
    pub args: Vec<OsString>,
}

/// Run the workers until a stop; returns the exit status.
pub fn supervise(cfg: Config) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log(&format!("cannot start the worker supervisor: {e}"));
            return 1;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, Supervisor::new(cfg).run())
}

fn log(msg: &str) {
    eprintln!("{}: {msg}", crate::runtime::progname());
}

/// Where a worker asked to listen.
#[derive(PartialEq, Eq, Hash, Clone, Debug)]
enum Key {
    Tcp {
        host: String,
        port: String,
        family: i32,
    },
    Unix(PathBuf),
}

/// The sockets made for a key: per worker number for TCP (0: the shared
/// Unix socket), and the port chosen for the first when port 0 was asked.
#[derive(Default)]
struct Entry {
    port: Option<String>,
    by_slot: HashMap<u32, Vec<OwnedFd>>,
    /// The newest generation of workers that asked for it.
    gen: u64,
}

#[derive(Default)]
struct Sockets {
    map: HashMap<Key, Entry>,
}

impl Sockets {
    /// Answer a worker's listen request: the sockets, made now if this
    /// worker number has none yet.
    fn listen(&mut self, slot: u32, gen: u64, msg: &[u8]) -> Result<&[OwnedFd], String> {
        let fields: Vec<&[u8]> = msg.split(|&b| b == 0).collect();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let number = |b: &[u8]| -> Result<i32, String> {
            text(b)
                .parse()
                .map_err(|_| format!("malformed listen request: {:?}", text(b)))
        };
        let (key, slot) = match fields.as_slice() {
            [b"tcp", host, port, backlog, family] => {
                let key = Key::Tcp {
                    host: text(host),
                    port: text(port),
                    family: number(family)?,
                };
                let backlog = number(backlog)?;
                let entry = self.map.entry(key.clone()).or_default();
                if !entry.by_slot.contains_key(&slot) {
                    let Key::Tcp { host, port, family } = &key else {
                        unreachable!()
                    };
                    let p = entry.port.clone().unwrap_or_else(|| port.clone());
                    let fds = crate::io::tcp::bind_listeners(host, &p, backlog, *family, true)?;
                    if entry.port.is_none() {
                        entry.port = fds
                            .first()
                            .and_then(|fd| socket2::SockRef::from(fd).local_addr().ok())
                            .and_then(|a| a.as_socket())
                            .map(|a| a.port().to_string());
                    }
                    entry.by_slot.insert(slot, fds);
                }
                (key, slot)
            }
            [b"unix", path, perm, backlog] => {
                use std::os::unix::ffi::OsStrExt;
                let path = PathBuf::from(std::ffi::OsStr::from_bytes(path));
                let key = Key::Unix(path.clone());
                let entry = self.map.entry(key.clone()).or_default();
                if let std::collections::hash_map::Entry::Vacant(slot) = entry.by_slot.entry(0) {
                    let perm = if perm.is_empty() {
                        None
                    } else {
                        Some(number(perm)? as u32)
                    };
                    let fd = crate::io::unix::bind_listener(&path, perm, number(backlog)?)
                        .map_err(|e| crate::io::fd::os_error_text(&e))?;
                    slot.insert(vec![fd]);
                }
                (key, 0)
            }
            _ => {
                return Err(format!(
                    "unknown request to the supervisor: {:?}",
                    text(msg)
                ))
            }
        };
        let entry = self.map.get_mut(&key).expect("made above");
        entry.gen = entry.gen.max(gen);
        Ok(&entry.by_slot[&slot])
    }

    /// Close the sockets no worker of generation `gen` or later asked for.
    fn prune(&mut self, gen: u64) {
        self.map.retain(|key, e| {
            let keep = e.gen >= gen;
            if !keep {
                if let Key::Unix(path) = key {
                    let _ = std::fs::remove_file(path);
                }
            }
            keep
        });
    }
}

enum Event {
    Exited(u64, ExitStatus),
    Serving(u64),
}

enum Timer {
    Start { slot: u32, gen: u64 },
    Settle(u64),
    Kill,
}

struct Child {
    slot: u32,
    gen: u64,
    pid: i32,
    serving: bool,
    /// Sent SIGTERM by us: its end is expected.
    stopping: bool,
}

struct Supervisor {
    cfg: Config,
    sockets: Rc<RefCell<Sockets>>,
    memory: Rc<RefCell<crate::shared::Memory>>,
    children: HashMap<u64, Child>,
    next_uid: u64,
    /// The generation that serves, and the one a reload is starting.
    current: u64,
    next: Option<u64>,
    /// Failed starts in a row, per generation and worker number.
    fails: HashMap<(u64, u32), u32>,
    timers: Vec<(Instant, Timer)>,
    stopping: bool,
    status: u8,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
}

impl Supervisor {
    fn new(cfg: Config) -> Supervisor {
        let (tx, rx) = mpsc::unbounded_channel();
        Supervisor {
            cfg,
            sockets: Rc::default(),
            memory: Rc::default(),
            children: HashMap::new(),
            next_uid: 1,
            current: 1,
            next: None,
            fails: HashMap::new(),
            timers: Vec::new(),
            stopping: false,
            status: 0,
            tx,
            rx,
        }
    }

    async fn run(mut self) -> u8 {
        let kinds = [
            SignalKind::terminate(),
            SignalKind::interrupt(),
            SignalKind::hangup(),
        ];
        let mut sigs = Vec::new();
        for k in kinds {
            match signal(k) {
                Ok(s) => sigs.push(s),
                Err(e) => {
                    log(&format!("cannot watch signals: {e}"));
                    return 1;
                }
            }
        }
        let [term, int, hup] = &mut sigs[..] else {
            unreachable!()
        };
        for slot in 1..=self.cfg.workers {
            self.start(slot, 1);
        }
        loop {
            if self.stopping && self.children.is_empty() {
                return self.status;
            }
            let next = self.timers.iter().map(|t| t.0).min();
            let alarm = async move {
                match next {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = term.recv() => self.stop(0),
                _ = int.recv() => self.stop(0),
                _ = hup.recv() => self.reload(),
                Some(ev) = self.rx.recv() => self.event(ev),
                _ = alarm => self.fire_timers(),
            }
        }
    }

    /// Start worker `slot` of generation `gen`.
    fn start(&mut self, slot: u32, gen: u64) {
        match self.spawn(slot, gen) {
            Ok(()) => {}
            Err(e) => {
                log(&format!("cannot start worker {slot}: {e}"));
                self.failed(slot, gen);
            }
        }
    }

    fn spawn(&mut self, slot: u32, gen: u64) -> std::io::Result<()> {
        let (ours, theirs) =
            socket2::Socket::pair(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None)?;
        let fd = theirs.as_raw_fd();
        let grace = self.cfg.grace.as_secs_f64();
        let mut cmd = std::process::Command::new(&self.cfg.exe);
        cmd.arg0(&self.cfg.argv0)
            .args(&self.cfg.args)
            .env(ENV, format!("{slot} {} {grace} {fd}", self.cfg.workers))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the closure runs between fork and exec and calls only
        // async-signal-safe functions (fcntl, prctl, getppid, kill).
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0
                    || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    // The supervisor died before the line above.
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let mut child = tokio::process::Command::from(cmd).spawn()?;
        drop(theirs);
        let uid = self.next_uid;
        self.next_uid += 1;
        let pid = child.id().map_or(-1, |p| p as i32);
        if let Some(out) = child.stdout.take() {
            tokio::task::spawn_local(pump(out, std::io::stdout()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::task::spawn_local(pump(err, std::io::stderr()));
        }
        let tx = self.tx.clone();
        tokio::task::spawn_local(async move {
            let status = match child.wait().await {
                Ok(s) => s,
                Err(_) => ExitStatus::from_raw(1 << 8),
            };
            let _ = tx.send(Event::Exited(uid, status));
        });
        let control = Control {
            uid,
            slot,
            gen,
            tx: self.tx.clone(),
            sockets: self.sockets.clone(),
            memory: self.memory.clone(),
        };
        tokio::task::spawn_local(control.run(ours.into()));
        self.children.insert(
            uid,
            Child {
                slot,
                gen,
                pid,
                serving: false,
                stopping: false,
            },
        );
        self.timers
            .push((Instant::now() + SETTLE, Timer::Settle(uid)));
        Ok(())
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Exited(uid, status) => self.exited(uid, status),
            Event::Serving(uid) => self.serving(uid),
        }
    }

    fn exited(&mut self, uid: u64, status: ExitStatus) {
        let Some(c) = self.children.remove(&uid) else {
            return;
        };
        let how = describe(status);
        if self.stopping || c.stopping {
            if !status.success() {
                log(&format!("worker {} (pid {}) {how}", c.slot, c.pid));
            }
            self.prune();
            return;
        }
        if Some(c.gen) == self.next && !c.serving {
            log(&format!(
                "reload cancelled: new worker {} (pid {}) {how} before it served; the running workers go on",
                c.slot, c.pid
            ));
            self.cancel_reload();
            return;
        }
        log(&format!("worker {} (pid {}) {how}", c.slot, c.pid));
        if c.serving {
            self.fails.remove(&(c.gen, c.slot));
            self.start(c.slot, c.gen);
        } else {
            self.failed(c.slot, c.gen);
        }
    }

    /// A start of `slot` that never served: try again after a back-off, or
    /// give up.
    fn failed(&mut self, slot: u32, gen: u64) {
        if self.stopping {
            return;
        }
        if Some(gen) == self.next {
            log("reload cancelled: a new worker could not start; the running workers go on");
            self.cancel_reload();
            return;
        }
        let fails = self.fails.entry((gen, slot)).or_insert(0);
        *fails += 1;
        let fails = *fails;
        if fails >= MAX_FAILS {
            log(&format!(
                "worker {slot} ended {fails} times in a row before it served; giving up"
            ));
            self.stop(1);
            return;
        }
        let delay = BACKOFF
            .saturating_mul(1 << (fails - 1).min(16))
            .min(MAX_BACKOFF);
        log(&format!(
            "starting worker {slot} again in {} s",
            delay.as_secs_f64()
        ));
        self.timers
            .push((Instant::now() + delay, Timer::Start { slot, gen }));
    }

    fn serving(&mut self, uid: u64) {
        let Some(c) = self.children.get_mut(&uid) else {
            return;
        };
        if c.serving {
            return;
        }
        c.serving = true;
        let (gen, slot) = (c.gen, c.slot);
        self.fails.remove(&(gen, slot));
        let Some(next) = self.next.filter(|&n| n == gen) else {
            return;
        };
        let ready = (1..=self.cfg.workers).all(|s| {
            self.children
                .values()
                .any(|c| c.gen == next && c.slot == s && c.serving)
        });
        if !ready {
            return;
        }
        // The new set serves: the old one stops gracefully.
        for c in self.children.values_mut() {
            if c.gen < next && !c.stopping {
                c.stopping = true;
                // SAFETY: a plain system call on our child.
                unsafe { libc::kill(c.pid, libc::SIGTERM) };
            }
        }
        self.current = next;
        self.next = None;
        self.fails.retain(|&(g, _), _| g >= next);
        log(&format!(
            "reloaded: {} new workers serve, the old ones finish their work",
            self.cfg.workers
        ));
    }

    fn cancel_reload(&mut self) {
        let Some(next) = self.next.take() else { return };
        for c in self.children.values_mut() {
            if c.gen == next && !c.stopping {
                c.stopping = true;
                // SAFETY: as above.
                unsafe { libc::kill(c.pid, libc::SIGTERM) };
            }
        }
        self.timers
            .retain(|(_, t)| !matches!(t, Timer::Start { gen, .. } if *gen == next));
        self.fails.retain(|&(g, _), _| g != next);
    }

    /// Close the sockets of generations that have ended.
    fn prune(&mut self) {
        let oldest = self.children.values().map(|c| c.gen).min();
        let live_from = oldest.unwrap_or(self.current).min(self.current);
        self.sockets.borrow_mut().prune(live_from);
    }

    fn reload(&mut self) {
        if self.stopping {
            return;
        }
        if self.next.is_some() {
            log("SIGHUP: a reload is under way already");
            return;
        }
        let gen = self
            .current
            .max(self.children.values().map(|c| c.gen).max().unwrap_or(0))
            + 1;
        self.next = Some(gen);
        log(&format!(
            "SIGHUP: starting {} new workers from the script on disk",
            self.cfg.workers
        ));
        for slot in 1..=self.cfg.workers {
            self.start(slot, gen);
            if self.next.is_none() {
                break;
            }
        }
    }

    /// Stop: SIGTERM to every worker, then wait; a second stop kills.
    fn stop(&mut self, status: u8) {
        if self.stopping {
            self.kill_all();
            return;
        }
        self.stopping = true;
        self.status = status;
        self.next = None;
        for c in self.children.values_mut() {
            c.stopping = true;
            // SAFETY: as above.
            unsafe { libc::kill(c.pid, libc::SIGTERM) };
        }
        self.sockets.borrow_mut().prune(u64::MAX);
        self.timers.clear();
        let at = Instant::now() + self.cfg.grace + Duration::from_secs(1);
        self.timers.push((at, Timer::Kill));
    }

    fn kill_all(&mut self) {
        if self.children.is_empty() {
            return;
        }
        log(&format!("killing {} workers", self.children.len()));
        for c in self.children.values() {
            // SAFETY: as above.
            unsafe { libc::kill(c.pid, libc::SIGKILL) };
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.timers)
            .into_iter()
            .partition(|(t, _)| *t <= now);
        self.timers = rest;
        for (_, timer) in due {
            match timer {
                Timer::Start { slot, gen } => {
                    if !self.stopping && (gen == self.current || Some(gen) == self.next) {
                        self.start(slot, gen);
                    }
                }
                Timer::Settle(uid) => self.serving(uid),
                Timer::Kill => self.kill_all(),
            }
        }
    }
}

/// `exited with status 1`, `was killed by SIGKILL`.
fn describe(s: ExitStatus) -> String {
    if let Some(code) = s.code() {
        return format!("exited with status {code}");
    }
    match s.signal() {
        Some(sig) => match crate::system::signal::name(sig) {
            Some(name) => format!("was killed by SIG{name}"),
            None => format!("was killed by signal {sig}"),
        },
        None => "ended".into(),
    }
}

/// Copy a worker's output to ours, whole lines at a time.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl Write) {
    let mut held = Vec::new();
    let mut chunk = vec![0u8; 16 << 10];
    loop {
        let n = from.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            if !held.is_empty() {
                held.push(b'\n');
                let _ = to.write_all(&held).and_then(|_| to.flush());
            }
            return;
        }
        held.extend_from_slice(&chunk[..n]);
        let cut = match memchr::memrchr(b'\n', &held) {
            Some(i) => i + 1,
            None if held.len() >= MAX_LINE => held.len(),
            None => continue,
        };
        let _ = to.write_all(&held[..cut]).and_then(|_| to.flush());
        held.drain(..cut);
    }
}

/// The supervisor's end of a worker's control socket.
struct Control {
    uid: u64,
    slot: u32,
    gen: u64,
    tx: mpsc::UnboundedSender<Event>,
    sockets: Rc<RefCell<Sockets>>,
    /// `lem.shared`'s memory, kept for the supervisor's life.
    memory: Rc<RefCell<crate::shared::Memory>>,
}

impl Control {
    async fn run(self, sock: OwnedFd) {
        if crate::io::fd::set_nonblocking(sock.as_raw_fd(), true).is_err() {
            return;
        }
        // SAFETY: the OwnedFd owns the descriptor for the AsyncFd's life.
        let Ok(a) = (unsafe { AsyncFd::register(sock) }) else {
            return;
        };
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let Ok(mut guard) = a.readable().await else {
                return;
            };
            // SAFETY: recv into our buffer, of its length.
            let n = unsafe {
                libc::recv(
                    a.as_raw_fd(),
                    buf.as_mut_ptr() as *mut _,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    continue;
                }
                return;
            }
            if n == 0 {
                return;
            }
            let msg = &buf[..n as usize];
            if msg == b"serving" {
                let _ = self.tx.send(Event::Serving(self.uid));
                continue;
            }
            if msg.starts_with(b"shm\0") {
                let mut memory = self.memory.borrow_mut();
                let answer = memory.request(msg).map(std::slice::from_ref);
                let _ = answer_request(a.get_ref().as_fd(), answer);
                continue;
            }
            let mut sockets = self.sockets.borrow_mut();
            let answer = sockets.listen(self.slot, self.gen, msg);
            let _ = answer_request(a.get_ref().as_fd(), answer);
        }
    }
}

/// Send a listen request's answer: `ok` with the descriptors, or
/// `err\0text`.
fn answer_request(to: BorrowedFd<'_>, answer: Result<&[OwnedFd], String>) -> std::io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let text;
    let borrowed: Vec<BorrowedFd<'_>>;
    let body: &[u8] = match &answer {
        Ok(fds) => {
            borrowed = fds.iter().map(|f| f.as_fd()).collect();
            control.push(SendAncillaryMessage::ScmRights(&borrowed));
            b"ok"
        }
        Err(e) => {
            text = [&b"err\0"[..], e.as_bytes()].concat();
            &text[..text.len().min(MAX_MESSAGE)]
        }
    };
    rustix::net::sendmsg(to, &[IoSlice::new(body)], &mut control, SendFlags::NOSIGNAL)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_described() {
        assert_eq!(describe(ExitStatus::from_raw(0)), "exited with status 0");
        assert_eq!(
            describe(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(describe(ExitStatus::from_raw(9)), "was killed by SIGKILL");
    }

    #[test]
    fn sockets_are_per_worker_number_on_one_port() {
        let mut s = Sockets::default();
        let msg = b"tcp\x00127.0.0.1\x000\x0016\x000";
        let a = s.listen(1, 1, msg).unwrap()[0].as_raw_fd();
        let again = s.listen(1, 2, msg).unwrap()[0].as_raw_fd();
        assert_eq!(a, again, "a successor gets the same socket");
        let b = s.listen(2, 1, msg).unwrap()[0].as_raw_fd();
        assert_ne!(a, b);
        let port = |fd: i32| {
            // SAFETY: borrowed for the call.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            socket2::SockRef::from(&fd)
                .local_addr()
                .unwrap()
                .as_socket()
                .unwrap()
                .port()
        };
        assert_eq!(port(a), port(b), "port 0 is chosen once for all workers");
        s.prune(2);
        assert_eq!(s.map.len(), 1, "generation 2 asked for it");
        s.prune(3);
        assert!(s.map.is_empty());
    }

    #[test]
    fn bad_requests_are_refused() {
        let mut s = Sockets::default();
        for bad in [&b""[..], b"tcp", b"tcp\x00h\x000\x00x\x000", b"udp\x00h"] {
            assert!(s.listen(1, 1, bad).is_err(), "{bad:?}");
        }
        assert!(s.listen(1, 1, b"tcp\x00256.1.1.1\x000\x0016\x000").is_err());
        assert!(s.map.values().all(|e| e.by_slot.is_empty()));
    }
}
