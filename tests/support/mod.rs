//! What the integration tests that run the real `lem` share: the command
//! with a clean Lua environment, and waiting for it without getting stuck.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// `lem` with `LUA_INIT`/`LUA_PATH`/`LUA_CPATH` (and their `_5_4` forms)
/// removed, stdout and stderr piped, in a process group of its own (for
/// [`kill_group`]).
pub fn lem() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lem"));
    for var in ["LUA_INIT", "LUA_PATH", "LUA_CPATH"] {
        c.env_remove(var).env_remove(format!("{var}_5_4"));
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    c
}

/// Reads a child's pipe to the end on its own thread, so a chatty script
/// cannot fill the pipe and stall while we wait for it.
pub fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    let mut pipe = pipe.expect("piped");
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// SIGKILLs the child's process group: the child and anything it started
/// (curl, a server in the background) that could hold our pipes open.
pub fn kill_group(child: &Child) {
    // The child leads its own group (process_group(0) in `lem`).
    let pgid = child.id() as libc::pid_t;
    // SAFETY: kill has no memory effects.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Waits for the child until `deadline`; `None` if it is still running.
pub fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("waitpid") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}
