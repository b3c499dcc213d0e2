//! Lua 5.4.6's own test suite under the real `lem` binary.
//!
//! The suite is not part of the project (it is Lua's, MIT): [`suite_dir`]
//! finds an unpacked copy of lua.org's `lua-5.4.6-tests.tar.gz`, and when
//! there is none the test says so in one line and passes without running
//! (with `LEM_REQUIRE_LUA_TESTS=1`, as `.ci/run` sets, it fails instead).
//! The test copies the suite into a scratch directory,
//! applies the cuts in [`DEVIATIONS`] to the copy (each a documented way in
//! which lem differs from `lua` on purpose or by its Lua; see
//! ARCHITECTURE.md, "Lua's test suite"), and runs every file of `all.lua`'s
//! list in a `lem` of its own, as `all.lua` runs it (`dofile`, then the
//! check `all.lua` makes of the file's value), from `lem -e`, with a pipe
//! as standard input, the scratch copy as working directory and no `LUA_*`
//! variables. `_soft` skips the long and memory-hungry parts; the C
//! test library (`T`) is absent, and the files skip its parts themselves.
//! Any file that fails, and any cut that no longer matches its file, fails
//! the test; the report lists every file with its time.
//!
//! On LuaJIT the test is ignored: the suite is Lua 5.4's (integers, `//`,
//! `utf8`, `<close>`, `goto` everywhere, `warn`, 5.4's error messages), and
//! `all.lua` itself refuses any other `_VERSION`; LuaJIT is Lua 5.1.

#![cfg(unix)]

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{drain, kill_group, lem, wait_until};

/// `all.lua`'s files, in its order: the `_port` each runs with, and the
/// check `all.lua` makes of the value the file returns (`r`), if any.
/// `_port = true` skips a file's non-portable parts; only `attrib.lua`
/// needs it: its non-portable part loads the C libraries of `libs/`, which
/// the suite ships as sources to be built against Lua's headers.
const FILES: &[(&str, bool, Option<&str>)] = &[
    ("main.lua", false, None),
    ("gc.lua", false, None),
    ("db.lua", false, None),
    ("calls.lua", false, Some("r == deep and deep")),
    ("strings.lua", false, None),
    ("literals.lua", false, None),
    ("tpack.lua", false, None),
    ("attrib.lua", true, Some("r == 27")),
    ("gengc.lua", false, None),
    ("locals.lua", false, Some("r == 5")),
    ("constructs.lua", false, None),
    ("code.lua", false, None),
    ("big.lua", false, Some("r == 'a'")),
    ("cstack.lua", false, None),
    ("nextvar.lua", false, None),
    ("pm.lua", false, None),
    ("utf8.lua", false, None),
    ("api.lua", false, None),
    ("events.lua", false, Some("r == 12")),
    ("vararg.lua", false, None),
    ("closure.lua", false, None),
    ("coroutine.lua", false, None),
    ("goto.lua", false, None),
    ("errors.lua", false, None),
    ("math.lua", false, None),
    ("sort.lua", false, None),
    ("bitwise.lua", false, None),
    ("verybig.lua", false, Some("r == 10")),
    ("files.lua", false, None),
];

/// What the runner prints once a file has run to its end: a file that
/// stops early without an error (a coroutine.yield() that parks the main
/// chunk) fails for want of it.
const DONE: &str = "<<lem suite: file done>>";

/// A cut applied to the scratch copy: in `file`, the text `cut` (which
/// must occur exactly once) becomes `with`, because of `why`.
struct Deviation {
    file: &'static str,
    cut: &'static str,
    with: &'static str,
    why: &'static str,
}

/// Every way lem is allowed to differ from the suite. Keep ARCHITECTURE.md's
/// list ("Lua's test suite") the same.
const DEVIATIONS: &[Deviation] = &[
    Deviation {
        file: "coroutine.lua",
        cut: "assert(type(main) == \"thread\" and ismain)
assert(not coroutine.resume(main))
assert(not coroutine.isyieldable(main) and not coroutine.isyieldable())
assert(not pcall(coroutine.yield))
",
        with: "",
        why: "the main chunk runs in a coroutine (LEM's design): coroutine.running() \
              there is not the main thread, and it is yieldable",
    },
    Deviation {
        file: "errors.lua",
        cut: "checkmessage(\"coroutine.yield()\", \"outside a coroutine\")",
        with: "",
        why: "the main chunk runs in a coroutine (LEM's design): a bare \
              coroutine.yield() there is no error but parks it until \
              utils.resume, as utils.suspend()",
    },
    Deviation {
        file: "errors.lua",
        cut: "lineerror([[
a
(
23)
]], 1)
",
        with: "",
        why: "Lua 5.4.9 (lem's Lua) gives the error of a call the line of its '(' \
              (here 2; 5.4.6: 1, the called expression's); a plain C host on the \
              same Lua gives the same",
    },
    Deviation {
        file: "errors.lua",
        cut: "lineerror([[
local a = {x = 13}
a
.
x
(
23
)
]], 2)
",
        with: "",
        why: "as the one before: Lua 5.4.9 says line 5, the '(' (5.4.6: 2)",
    },
    Deviation {
        file: "main.lua",
        cut: "print('testing Ctrl C')",
        with: "do return print('OK') end\nprint('testing Ctrl C')",
        why: "SIGINT keeps its default action under lem (the process ends) unless \
              a script handles it with lem.signal; lua instead turns it into an \
              error in the running Lua code",
    },
    Deviation {
        file: "main.lua",
        cut: "RUN('lua -W %s > %s', prog, out)
checkout[[
creating 1
creating 2
2
creating 3
nil
1
]]",
        with: "RUN('lua -W %s > %s', prog, out)
getoutput()",
        why: "mlua runs a full collection before lua_close, so a finalizer that \
              runs then is not yet 'closing the state': an object it creates is \
              finalized too",
    },
    Deviation {
        file: "main.lua",
        cut: "assert(string.find(t, [[
1 --
2a = 2
3
]], 1, true))",
        with: "assert(string.find(t, \"123\", 1, true))",
        why: "the console does not echo lines read from a pipe (lua linked with \
              GNU readline does); the prompts are still each tostring(_PROMPT)",
    },
    Deviation {
        file: "main.lua",
        cut: "NoRun(progname .. \": 6\\n\", [[lua %s]], prog)",
        with: "NoRun(progname .. \": \", [[lua %s]], prog)",
        why: "an uncaught error is reported after its coroutine ended, with no \
              message handler at the error: __tostring of the error object runs \
              then, where debug.getinfo(4) is not the erring chunk",
    },
    Deviation {
        file: "main.lua",
        cut: "assert(string.find(t, \"PUC%-Rio\\nhello\"))",
        with: "assert(string.find(t, \"%)\\nhello\"))",
        why: "lem -v names lem and its Lua ('lem 0.1.0 (Lua 5.4)'), not PUC-Rio's \
              copyright line; still one line, with nothing after it",
    },
];

const TIMEOUT: Duration = Duration::from_secs(300);

/// Where Lua 5.4.6's suite is, the first of: the directory `LEM_LUA_TESTS`
/// names (it must hold the suite); `../shared/lua-5.4.6-tests` beside the
/// repository (where CI keeps a copy); `lua-5.4.6-tests` in the target
/// directory, where `scripts/deps` unpacks lua.org's tarball when it can
/// download it. `Err` tells where it looked.
fn suite_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("LEM_LUA_TESTS") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("all.lua").is_file(),
            "LEM_LUA_TESTS={} has no all.lua: not Lua 5.4.6's test suite",
            dir.display()
        );
        return Ok(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let beside = root.parent().unwrap_or(root).join("shared/lua-5.4.6-tests");
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let fetched = tmp.parent().unwrap_or(tmp).join("lua-5.4.6-tests");
    for dir in [&beside, &fetched] {
        if dir.join("all.lua").is_file() {
            return Ok(dir.clone());
        }
    }
    Err(format!(
        "LEM_LUA_TESTS is unset, and neither {} nor {} holds it",
        beside.display(),
        fetched.display()
    ))
}

/// Whether `LEM_REQUIRE_LUA_TESTS` is set (to anything but `0`): a missing
/// suite is then a failure, not a skip.
fn suite_required() -> bool {
    std::env::var_os("LEM_REQUIRE_LUA_TESTS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Copy `from` into `to` (files and directories), writable.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("readdir");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o644)).expect("chmod");
        }
    }
}

/// Apply every cut to the copy in `dir`; a cut that does not match exactly
/// once is an error (the suite or the list changed).
fn apply_deviations(dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for d in DEVIATIONS {
        let path = dir.join(d.file);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match text.matches(d.cut).count() {
            1 => fs::write(&path, text.replacen(d.cut, d.with, 1)).expect("write the cut copy"),
            n => problems.push(format!(
                "{}: the cut for \"{}\" matches {n} times, not once",
                d.file, d.why
            )),
        }
    }
    problems
}

struct Run {
    ok: bool,
    secs: f64,
    detail: String,
}

/// Run one file of the suite in `dir`.
fn run_file(dir: &Path, file: &str, port: bool, check: Option<&str>) -> Run {
    let start = Instant::now();
    // As all.lua: the file runs through dofile, its value is checked.
    let driver = format!(
        "_soft = true; _port = {port}; _G.ARG = arg
         local r = dofile('{file}')
         assert({}, 'unexpected value returned by {file}')
         io.stdout:write('\\n{DONE}\\n')",
        check.unwrap_or("true")
    );
    let mut child = lem()
        .args(["-e", &driver])
        .current_dir(dir)
        // A pipe: files.lua checks that seeking stdin fails.
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", env!("CARGO_BIN_EXE_lem")));
    drop(child.stdin.take());
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_until(&mut child, start + TIMEOUT);
    // The file's leftovers (main.lua's background scripts) die with it.
    kill_group(&child);
    if status.is_none() {
        let _ = child.wait();
    }
    let (stdout, stderr) = (out.join().expect("stdout"), err.join().expect("stderr"));
    let done = String::from_utf8_lossy(&stdout).contains(DONE);
    let ok = status.is_some_and(|s| s.success()) && done;
    let tail = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    Run {
        ok,
        secs: start.elapsed().as_secs_f64(),
        detail: format!(
            "{}\n--- stdout (end) ---\n{}\n--- stderr (end) ---\n{}",
            match status {
                None => format!("killed after {} s", TIMEOUT.as_secs()),
                Some(s) if !done => format!("{s}, but the file did not run to its end"),
                Some(s) => format!("{s}"),
            },
            tail(&stdout),
            tail(&stderr)
        ),
    }
}

#[test]
#[cfg_attr(
    feature = "luajit",
    ignore = "Lua 5.4.6's suite tests Lua 5.4 (all.lua refuses other versions); LuaJIT is Lua 5.1"
)]
fn lua_5_4_6_suite() {
    let suite = match suite_dir() {
        Ok(dir) => dir,
        Err(looked) => {
            let why = format!(
                "Lua 5.4.6's test suite is not here ({looked}; set LEM_LUA_TESTS to an \
                 unpacked lua-5.4.6-tests, or let scripts/deps download it)"
            );
            assert!(
                !suite_required(),
                "{why}, and LEM_REQUIRE_LUA_TESTS requires it"
            );
            // Past the test harness's capture, so that a passing run shows it.
            let _ = writeln!(std::io::stderr(), "lua_5_4_6_suite skipped: {why}");
            return;
        }
    };
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("lua-suite-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    copy_tree(&suite, &dir);
    let mut problems = apply_deviations(&dir);

    let mut report = String::new();
    for &(file, port, check) in FILES {
        let run = run_file(&dir, file, port, check);
        report += &format!(
            "  {:<15} {:>6.1} s  {}\n",
            file,
            run.secs,
            if run.ok { "ok" } else { "FAILED" }
        );
        if !run.ok {
            problems.push(format!("{file} failed: {}", run.detail));
        }
    }
    eprintln!("Lua 5.4.6 suite under lem:\n{report}");
    if problems.is_empty() {
        let _ = fs::remove_dir_all(&dir);
    }
    assert!(
        problems.is_empty(),
        "{report}\n{}\n(scratch copy kept: {})",
        problems.join("\n\n"),
        dir.display()
    );
}
