//! Runs the Lua test scripts under `tests/lua/` through the real `lem` binary.
//!
//! Each script is its own `#[test]`, listed in [`lua_tests!`] below (as
//! deno_core's `testing/lib.rs` lists its scripts); `all_scripts_listed` fails
//! when a script on disk is missing from the list, or the list names a file
//! that is not there.
//!
//! A script runs as `lem <path>` with `tests/lua/` as working directory (so
//! `dofile('support.lua')` works), stdin closed, `LEM_TEST_TMP` set to a fresh
//! empty directory, and `LUA_PATH`/`LUA_CPATH`/`LUA_INIT` removed from the
//! environment. It passes when:
//!
//! * it exits with status 0, or N if its first line is `-- exit: N`;
//! * stdout equals `<script>.out` exactly, if that file exists;
//! * stderr contains every non-empty line of `<script>.err`, if that exists;
//! * it ends within the deadline: 60 s, or `LEM_TEST_TIMEOUT` seconds.
//!
//! Not scripts: `tests/lua/support.lua`, the `.out`/`.err` files, and anything
//! under a directory named `data` (fixtures and helper modules).

#![cfg(unix)]

mod support;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::{drain, kill_group, lem, wait_until};

/// `name => "dir/script.lua",` per script, one line each, sorted. The name is
/// the path without `.lua`, with `/` and `-` turned into `_`
/// (`all_scripts_listed` checks this and prints the lines to add).
macro_rules! lua_tests {
    ($($name:ident => $path:literal,)*) => {
        $(
            #[test]
            fn $name() {
                run_script($path);
            }
        )*

        /// Every listed script, relative to `tests/lua/`.
        const SCRIPTS: &[(&str, &str)] = &[$((stringify!($name), $path)),*];
    };
}

lua_tests! {
    cli_hello => "cli/hello.lua",
    cli_lua_compat => "cli/lua_compat.lua",
    cli_options => "cli/options.lua",
    cli_warnings => "cli/warnings.lua",
    cmod_cjson => "cmod/cjson.lua",
    cmod_lpeg => "cmod/lpeg.lua",
    core_arg_errors => "core/arg_errors.lua",
    core_classes => "core/classes.lua",
    core_error_object => "core/error_object.lua",
    core_not_yieldable => "core/not_yieldable.lua",
    core_require_builtin => "core/require_builtin.lua",
    core_require_message => "core/require_message.lua",
    core_search_paths => "core/search_paths.lua",
    core_suspend_anywhere => "core/suspend_anywhere.lua",
    core_uncaught_error => "core/uncaught_error.lua",
    core_user_coroutines => "core/user_coroutines.lua",
    core_wrap_close => "core/wrap_close.lua",
    docs_guide => "docs/guide.lua",
    docs_manual => "docs/manual.lua",
    hathaway_chromium => "hathaway/chromium.lua",
    hathaway_debug => "hathaway/debug.lua",
    hathaway_middleware => "hathaway/middleware.lua",
    hathaway_routes => "hathaway/routes.lua",
    hathaway_static => "hathaway/static.lua",
    hathaway_static_cache => "hathaway/static_cache.lua",
    http_access_log => "http/access_log.lua",
    http_bad_response => "http/bad_response.lua",
    http_body_budget => "http/body_budget.lua",
    http_browser_upload => "http/browser_upload.lua",
    http_client => "http/client.lua",
    http_client_grown => "http/client_grown.lua",
    http_client_nginx => "http/client_nginx.lua",
    http_client_restart => "http/client_restart.lua",
    http_handler_timeout => "http/handler_timeout.lua",
    http_h2_chromium => "http/h2_chromium.lua",
    http_h2_client => "http/h2_client.lua",
    http_h2_client_hypercorn => "http/h2_client_hypercorn.lua",
    http_h2_client_peer => "http/h2_client_peer.lua",
    http_h2_conformance => "http/h2_conformance.lua",
    http_h2_drain => "http/h2_drain.lua",
    http_h2_hostile => "http/h2_hostile.lua",
    http_h2_server => "http/h2_server.lua",
    http_h2_toolkit => "http/h2_toolkit.lua",
    http_h2_upgrade => "http/h2_upgrade.lua",
    http_cookie => "http/cookie.lua",
    http_form => "http/form.lua",
    http_head => "http/head.lua",
    http_keepalive => "http/keepalive.lua",
    http_multipart => "http/multipart.lua",
    http_parse => "http/parse.lua",
    http_python_client => "http/python_client.lua",
    http_raw => "http/raw.lua",
    http_request => "http/request.lua",
    http_server_curl => "http/server_curl.lua",
    http_smuggling => "http/smuggling.lua",
    http_tls => "http/tls.lua",
    http_wrk => "http/wrk.lua",
    io_accept_emfile => "io/accept_emfile.lua",
    io_budget => "io/budget.lua",
    io_bulk => "io/bulk.lua",
    io_chat => "io/chat.lua",
    io_dns => "io/dns.lua",
    io_eof_closes => "io/eof_closes.lua",
    io_file => "io/file.lua",
    io_pipes => "io/pipes.lua",
    io_pool => "io/pool.lua",
    io_ports => "io/ports.lua",
    io_queue => "io/queue.lua",
    io_queue_args => "io/queue_args.lua",
    io_queue_class => "io/queue_class.lua",
    io_read_memlimit => "io/read_memlimit.lua",
    io_read_sizes => "io/read_sizes.lua",
    io_read_stop => "io/read_stop.lua",
    io_settimeout_args => "io/settimeout_args.lua",
    io_stdout_mix => "io/stdout_mix.lua",
    io_stream_read => "io/stream_read.lua",
    io_tcp => "io/tcp.lua",
    io_tls_fds => "io/tls_fds.lua",
    io_tls_stream => "io/tls_stream.lua",
    io_udp => "io/udp.lua",
    io_udp_many => "io/udp_many.lua",
    io_unix => "io/unix.lua",
    json_decode => "json/decode.lua",
    json_encode => "json/encode.lua",
    json_hostile => "json/hostile.lua",
    lfs_attributes => "lfs/attributes.lua",
    lfs_concurrent => "lfs/concurrent.lua",
    lfs_dir => "lfs/dir.lua",
    lfs_file_lock => "lfs/file_lock.lua",
    lfs_lock => "lfs/lock.lua",
    lfs_lock_args => "lfs/lock_args.lua",
    lfs_paths => "lfs/paths.lua",
    parsers_newreader => "parsers/newreader.lua",
    postgres_cache => "postgres/cache.lua",
    postgres_client => "postgres/client.lua",
    postgres_hostile => "postgres/hostile.lua",
    postgres_pool => "postgres/pool.lua",
    postgres_tls => "postgres/tls.lua",
    process_io => "process/io.lua",
    process_popen => "process/popen.lua",
    process_spawn => "process/spawn.lua",
    process_wait => "process/wait.lua",
    queue_queue => "queue/queue.lua",
    redis_client => "redis/client.lua",
    redis_hostile => "redis/hostile.lua",
    redis_pool => "redis/pool.lua",
    repl_console_lua => "repl/console_lua.lua",
    repl_pipe => "repl/pipe.lua",
    repl_tty => "repl/tty.lua",
    shared_bus => "shared/bus.lua",
    shared_bus_workers => "shared/bus_workers.lua",
    shared_dict => "shared/dict.lua",
    shared_drain => "shared/drain.lua",
    shared_workers => "shared/workers.lua",
    signal_delivery => "signal/delivery.lua",
    signal_lookup => "signal/lookup.lua",
    signal_not_alive => "signal/not_alive.lua",
    signal_sigchld => "signal/sigchld.lua",
    signal_term_stops => "signal/term_stops.lua",
    signal_unregister_default => "signal/unregister_default.lua",
    sqlite3_api => "sqlite3/api.lua",
    sqlite3_busy => "sqlite3/busy.lua",
    sqlite3_data => "sqlite3/data.lua",
    sqlite3_modes => "sqlite3/modes.lua",
    sqlite3_queued => "sqlite3/queued.lua",
    tls_options => "tls/options.lua",
    utils_busy => "utils/busy.lua",
    utils_exit => "utils/exit.lua",
    utils_exit_nested => "utils/exit_nested.lua",
    utils_now_exit_pool => "utils/now_exit_pool.lua",
    utils_ondrain => "utils/ondrain.lua",
    utils_poolconfig_args => "utils/poolconfig_args.lua",
    utils_sleep_zero => "utils/sleep_zero.lua",
    utils_sleeper => "utils/sleeper.lua",
    utils_spawn_yield => "utils/spawn_yield.lua",
    utils_stall => "utils/stall.lua",
    utils_suspend_resume => "utils/suspend_resume.lua",
    utils_task => "utils/task.lua",
    utils_task_points => "utils/task_points.lua",
    utils_task_unjoined => "utils/task_unjoined.lua",
    utils_timeout => "utils/timeout.lua",
    utils_turn => "utils/turn.lua",
    websocket_chromium => "websocket/chromium.lua",
    websocket_hostile => "websocket/hostile.lua",
    websocket_python => "websocket/python.lua",
    websocket_tls => "websocket/tls.lua",
    websocket_writers => "websocket/writers.lua",
    workers_cli => "workers/cli.lua",
    workers_drain => "workers/drain.lua",
    workers_failing => "workers/failing.lua",
    workers_output => "workers/output.lua",
    workers_reload => "workers/reload.lua",
    workers_shutdown => "workers/shutdown.lua",
    workers_supervise => "workers/supervise.lua",
    workers_tls_udp => "workers/tls_udp.lua",
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// `tests/lua/`: the scripts' home and working directory.
fn script_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("lua")
}

/// What a script must do to pass, from the files beside it.
struct Expect {
    status: i32,
    stdout: Option<Vec<u8>>,
    stderr_lines: Vec<String>,
}

impl Expect {
    fn for_script(path: &Path) -> Expect {
        let source = fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let status = match source
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("-- exit:"))
        {
            Some(n) => n
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{}: bad `-- exit: N` line", path.display())),
            None => 0,
        };
        let stdout = fs::read(with_suffix(path, ".out")).ok();
        let stderr_lines = fs::read_to_string(with_suffix(path, ".err"))
            .map(|s| {
                s.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Expect {
            status,
            stdout,
            stderr_lines,
        }
    }
}

/// `a/b.lua` + `.out` -> `a/b.lua.out`.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A fresh, empty scratch directory for one test, under Cargo's per-target
/// temporary directory; the pid keeps two concurrent `cargo test` apart.
fn scratch_dir(script: &str) -> PathBuf {
    let name = format!("{}-{}", script.replace(['/', '.'], "_"), std::process::id());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("lua")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

fn timeout() -> Duration {
    match std::env::var("LEM_TEST_TIMEOUT") {
        Ok(s) => Duration::from_secs(s.parse().expect("LEM_TEST_TIMEOUT: seconds")),
        Err(_) => DEFAULT_TIMEOUT,
    }
}

fn describe(status: Option<ExitStatus>) -> String {
    match status {
        None => "killed at the deadline".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => format!("{s}"),
        },
    }
}

/// Runs one script and panics with everything we know if it fails.
fn run_script(script: &str) {
    let root = script_root();
    let path = root.join(script);
    assert!(path.is_file(), "{} does not exist", path.display());
    let expect = Expect::for_script(&path);
    let tmp = scratch_dir(script);
    let limit = timeout();

    let mut child = lem()
        .arg(script)
        .current_dir(&root)
        .env("LEM_TEST_TMP", &tmp)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", env!("CARGO_BIN_EXE_lem")));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());

    let status = wait_until(&mut child, Instant::now() + limit);
    // Leftover grandchildren die with the test, and release the pipes.
    kill_group(&child);
    if status.is_none() {
        let _ = child.wait();
    }
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");

    let mut failures = Vec::new();
    match status {
        None => failures.push(format!("timed out after {} s", limit.as_secs())),
        Some(s) if s.code() != Some(expect.status) => failures.push(format!(
            "expected exit status {}, got {}",
            expect.status,
            describe(status)
        )),
        Some(_) => {}
    }
    if let Some(want) = &expect.stdout {
        if *want != stdout {
            failures.push(format!(
                "stdout differs from {script}.out; expected:\n{}",
                String::from_utf8_lossy(want)
            ));
        }
    }
    let stderr_text = String::from_utf8_lossy(&stderr);
    for line in &expect.stderr_lines {
        if !stderr_text.contains(line.as_str()) {
            failures.push(format!("stderr lacks {line:?} (from {script}.err)"));
        }
    }

    if failures.is_empty() {
        let _ = fs::remove_dir_all(&tmp);
        return;
    }
    panic!(
        "tests/lua/{script} failed ({}):\n  - {}\n\
         --- stdout ---\n{}\n--- stderr ---\n{}\n--- scratch dir (kept): {}",
        describe(status),
        failures.join("\n  - "),
        String::from_utf8_lossy(&stdout),
        stderr_text,
        tmp.display()
    );
}

/// Every `.lua` under `dir` that is a test script, relative to `root`.
fn scripts_on_disk(root: &Path, dir: &Path, found: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("readdir").path();
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "data") {
                scripts_on_disk(root, &path, found);
            }
        } else if rel.ends_with(".lua") && rel != "support.lua" {
            found.push(rel);
        }
    }
}

/// The test name for a script path: `cli/hello.lua` -> `cli_hello`.
fn test_name(script: &str) -> String {
    script
        .trim_end_matches(".lua")
        .replace(['/', '-', '.'], "_")
}

#[test]
fn all_scripts_listed() {
    let root = script_root();
    let mut on_disk = Vec::new();
    scripts_on_disk(&root, &root, &mut on_disk);
    on_disk.sort();

    let listed: Vec<&str> = SCRIPTS.iter().map(|(_, path)| *path).collect();
    let unlisted: Vec<String> = on_disk
        .iter()
        .filter(|s| !listed.contains(&s.as_str()))
        .map(|s| format!("    {} => \"{s}\",", test_name(s)))
        .collect();
    let missing: Vec<&str> = listed
        .iter()
        .copied()
        .filter(|s| !on_disk.iter().any(|d| d == s))
        .collect();
    let misnamed: Vec<String> = SCRIPTS
        .iter()
        .filter(|(name, path)| *name != test_name(path))
        .map(|(name, path)| format!("    {name} => \"{path}\" (should be {})", test_name(path)))
        .collect();

    let mut problems = String::new();
    if !unlisted.is_empty() {
        problems += &format!(
            "scripts not listed in lua_tests! (tests/lua.rs); add:\n{}\n",
            unlisted.join("\n")
        );
    }
    if !missing.is_empty() {
        problems += &format!("listed but not on disk: {missing:?}\n");
    }
    if !misnamed.is_empty() {
        problems += &format!(
            "test names must follow the path:\n{}\n",
            misnamed.join("\n")
        );
    }
    assert!(problems.is_empty(), "{problems}");
}
