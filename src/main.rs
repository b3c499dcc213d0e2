//! The `lem` command: `lua`'s command line, with every chunk run as a
//! coroutine on the event loop.
//!
//! `lem [options] [script [args]]` accepts the options of the Lua 5.4
//! standalone interpreter (and `--help`) and runs them in `lua`'s order: `LUA_INIT`, then
//! `-e`/`-l`/`-W` as given, then the script, then the REPL for `-i` (or when
//! there is no script and standard input is a terminal; from a pipe,
//! standard input is run as a script). Each step runs as a coroutine until it
//! ends; coroutines it spawned keep running through the later steps, and the
//! process ends when nothing is left to run or wait for.

use std::ffi::CString;
use std::io::IsTerminal;
use std::process::ExitCode;

use lem::lua::ffi;
use lem::{Options, Outcome, Runtime};

/// `lua`'s usage text, named as the program was invoked; `lem --help`
/// prints it, an option error prints it after the message.
fn usage() -> String {
    format!(
        "usage: {} [options] [script [args]]
Available options are:
  -e stat   execute string 'stat'
  -i        enter interactive mode after executing 'script'
  -l mod    require library 'mod' into global 'mod'
  -l g=mod  require library 'mod' into global 'g'
  -v        show version information
  -E        ignore environment variables
  -W        turn warnings on
  -w n      run 'script' in n worker processes ('auto': one per core)
  --grace s the graceful stop's grace in seconds (default 10)
  --stall ms       report a coroutine that holds the loop over ms milliseconds
  --stall-kill ms  the same, and raise 'timeout' in it
  --max-memory n   cap the Lua heap at n bytes ('512m', '2g')
  --        stop handling options
  -         stop handling options and execute stdin
  --help    show this help and exit",
        lem::progname()
    )
}

/// One thing to run before the script, in command-line order.
enum Step {
    Exec(String),
    Require { global: String, module: String },
    Warnings,
}

/// The parsed command line.
struct Cli {
    steps: Vec<Step>,
    interactive: bool,
    version: bool,
    /// `--help`: print the usage and do nothing else.
    help: bool,
    ignore_env: bool,
    has_exec: bool,
    /// Index in argv of the script (`-` for stdin), if any.
    script: Option<usize>,
    /// `-w N` / `--workers N`.
    workers: Option<u32>,
    /// `--grace S`.
    grace: Option<f64>,
    /// `--stall MS` / `--stall-kill MS`.
    stall: Option<lem::scheduler::Stall>,
    /// `--max-memory SIZE`, in bytes.
    max_memory: Option<usize>,
    /// Indices in argv of `-w`, `--grace` and their values, which the
    /// workers' command line leaves out.
    supervisor_args: Vec<usize>,
}

/// Most workers `-w` takes.
const MAX_WORKERS: u32 = 1024;

/// `-w`'s value: a count from 1 to [`MAX_WORKERS`], or `auto`.
fn parse_workers(v: &str) -> Result<u32, String> {
    if v == "auto" {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    }
    match v.parse::<u32>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
        _ => Err(format!(
            "bad worker count '{v}' (a number from 1 to {MAX_WORKERS}, or 'auto')"
        )),
    }
}

/// `--stall`'s and `--stall-kill`'s value: milliseconds, more than 0.
fn parse_stall(v: &str, kill: bool) -> Result<lem::scheduler::Stall, String> {
    match v.parse::<f64>() {
        Ok(ms) if ms > 0.0 && ms.is_finite() => Ok(lem::scheduler::Stall {
            after: std::time::Duration::from_secs_f64(ms / 1000.0),
            kill,
        }),
        _ => Err(format!("bad stall limit '{v}' (milliseconds, more than 0)")),
    }
}

/// `--max-memory`'s value.
fn parse_memory(v: &str) -> Result<usize, String> {
    match lem::runtime::parse_size(v) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "bad memory size '{v}' (bytes, or a number with k, m or g)"
        )),
    }
}

fn parse_grace(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(g) if g.is_finite() && g >= 0.0 => Ok(g),
        _ => Err(format!("bad grace '{v}' (a number of seconds, 0 or more)")),
    }
}

/// Parse argv as `lua.c`'s `collectargs` does.
fn parse(argv: &[String]) -> Result<Cli, String> {
    let mut cli = Cli {
        steps: Vec::new(),
        interactive: false,
        version: false,
        help: false,
        ignore_env: false,
        has_exec: false,
        script: None,
        workers: None,
        grace: None,
        stall: None,
        max_memory: None,
        supervisor_args: Vec::new(),
    };
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].as_str();
        if !a.starts_with('-') {
            cli.script = Some(i);
            break;
        }
        match a {
            "--" => {
                cli.script = (i + 1 < argv.len()).then_some(i + 1);
                break;
            }
            "-" => {
                cli.script = Some(i);
                break;
            }
            "--help" => cli.help = true,
            "-E" => cli.ignore_env = true,
            "-W" => cli.steps.push(Step::Warnings),
            "-i" => {
                cli.interactive = true;
                cli.version = true;
            }
            "-v" => cli.version = true,
            _ if a.starts_with("--stall") || a.starts_with("--max-memory") => {
                let (name, inline) = match a.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (a, None),
                };
                if !matches!(name, "--stall" | "--stall-kill" | "--max-memory") {
                    return Err(format!("unrecognized option '{a}'"));
                }
                let value = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        match argv.get(i) {
                            Some(v) if !v.starts_with('-') => v.clone(),
                            _ => return Err(format!("'{name}' needs argument")),
                        }
                    }
                };
                match name {
                    "--max-memory" => cli.max_memory = Some(parse_memory(&value)?),
                    _ => cli.stall = Some(parse_stall(&value, name == "--stall-kill")?),
                }
            }
            _ if a.starts_with("-w") || a.starts_with("--workers") || a.starts_with("--grace") => {
                let (name, inline) = match a.split_once('=') {
                    Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
                    _ if a.starts_with("-w") && a.len() > 2 => ("-w", Some(a[2..].to_owned())),
                    _ => (a, None),
                };
                if !matches!(name, "-w" | "--workers" | "--grace") {
                    return Err(format!("unrecognized option '{a}'"));
                }
                cli.supervisor_args.push(i);
                let value = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        cli.supervisor_args.push(i);
                        match argv.get(i) {
                            Some(v) if !v.starts_with('-') => v.clone(),
                            _ => return Err(format!("'{name}' needs argument")),
                        }
                    }
                };
                if name == "--grace" {
                    cli.grace = Some(parse_grace(&value)?);
                } else {
                    cli.workers = Some(parse_workers(&value)?);
                }
            }
            _ if a.starts_with("-e") || a.starts_with("-l") => {
                let value = if a.len() > 2 {
                    a[2..].to_owned()
                } else {
                    i += 1;
                    match argv.get(i) {
                        Some(v) if !v.starts_with('-') => v.clone(),
                        _ => return Err(format!("'{}' needs argument", &a[..2])),
                    }
                };
                if a.starts_with("-e") {
                    cli.has_exec = true;
                    cli.steps.push(Step::Exec(value));
                } else {
                    let (global, module) = match value.split_once('=') {
                        Some((g, m)) => (g.to_owned(), m.to_owned()),
                        None => (value.clone(), value),
                    };
                    cli.steps.push(Step::Require { global, module });
                }
            }
            _ => return Err(format!("unrecognized option '{a}'")),
        }
        i += 1;
    }
    Ok(cli)
}

/// `lem: msg` on stderr, as `lua.c`'s `l_message` (named by `argv[0]`).
fn message(msg: &str) {
    eprintln!("{}: {msg}", lem::progname());
}

/// Build the global `arg`: the script at 0, its arguments after it, the
/// interpreter and options at negative indices.
fn create_arg_table(lua: &mlua::Lua, argv: &[String], script: Option<usize>) -> mlua::Result<()> {
    let script = script.unwrap_or(0) as i64;
    let arg = lua.create_table()?;
    for (i, a) in argv.iter().enumerate() {
        arg.raw_set(i as i64 - script, a.as_str())?;
    }
    lua.globals().set("arg", arg)
}

/// The script's arguments as `lua.c` takes them: `arg[1..#arg]` of the
/// global `arg` as it is after `LUA_INIT`, `-e` and `-l` ran.
fn script_args(lua: &mlua::Lua) -> Result<mlua::MultiValue, String> {
    let mlua::Value::Table(arg) = lua.globals().get("arg").map_err(|e| e.to_string())? else {
        return Err("'arg' is not a table".into());
    };
    let n = arg.len().map_err(|e| e.to_string())?;
    (1..=n)
        .map(|i| arg.raw_get::<mlua::Value>(i))
        .collect::<mlua::Result<mlua::MultiValue>>()
        .map_err(|e| e.to_string())
}

/// Compile a chunk like `luaL_loadbuffer`/`luaL_loadfile` (the latter skips a
/// `#!` line; `None` reads standard input). Errors are the load message.
fn load(lua: &mlua::Lua, source: Source<'_>) -> Result<mlua::Function, String> {
    let mut status = 0;
    // SAFETY: the closure pushes exactly one value: the chunk or the error.
    let value = unsafe {
        lua.exec_raw::<mlua::Value>((), |l| match &source {
            Source::File(path) => {
                let c = path.map(|p| CString::new(p.as_bytes()).unwrap_or_default());
                let p = c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
                #[cfg(feature = "luajit")]
                {
                    status = ffi::luaL_loadfile(l, p);
                }
                #[cfg(not(feature = "luajit"))]
                {
                    status = ffi::luaL_loadfilex(l, p, std::ptr::null());
                }
            }
            Source::String(code, name) => {
                status = ffi::luaL_loadbufferx(
                    l,
                    code.as_ptr() as *const _,
                    code.len(),
                    name.as_ptr(),
                    std::ptr::null(),
                );
            }
        })
    }
    .map_err(|e| e.to_string())?;
    match value {
        mlua::Value::Function(f) if status == ffi::LUA_OK => Ok(f),
        mlua::Value::String(s) => Err(s.to_string_lossy()),
        other => Err(format!("{other:?}")),
    }
}

enum Source<'a> {
    File(Option<&'a str>),
    String(&'a str, &'a std::ffi::CStr),
}

/// Run `f(args)` as a coroutine until it ends; `Err(code)` when the process
/// must end now.
fn run_step(rt: &mut Runtime, f: mlua::Function, args: mlua::MultiValue) -> Result<(), u8> {
    let id = rt.spawn(f, args).map_err(|e| {
        message(&e.to_string());
        1
    })?;
    match rt.run_until(id) {
        Outcome::Exit(code) => Err(code as u8),
        Outcome::Done | Outcome::Idle => Ok(()),
    }
}

/// Load and run a chunk as a step; a load error ends the process with 1.
fn do_chunk(rt: &mut Runtime, source: Source<'_>, args: mlua::MultiValue) -> Result<(), u8> {
    match load(rt.lua(), source) {
        Ok(f) => run_step(rt, f, args),
        Err(msg) => {
            message(&msg);
            Err(1)
        }
    }
}

fn lua_init(rt: &mut Runtime) -> Result<(), u8> {
    let names: &[&str] = if cfg!(feature = "luajit") {
        &["LUA_INIT"]
    } else {
        &["LUA_INIT_5_4", "LUA_INIT"]
    };
    let Some((_, init)) = names
        .iter()
        .find_map(|n| std::env::var(n).ok().map(|v| (*n, v)))
    else {
        return Ok(());
    };
    match init.strip_prefix('@') {
        Some(path) => do_chunk(rt, Source::File(Some(path)), mlua::MultiValue::new()),
        None => do_chunk(
            rt,
            Source::String(&init, c"=LUA_INIT"),
            mlua::MultiValue::new(),
        ),
    }
}

fn run_steps(rt: &mut Runtime, steps: &[Step]) -> Result<(), u8> {
    for step in steps {
        match step {
            Step::Exec(code) => do_chunk(
                rt,
                Source::String(code, c"=(command line)"),
                mlua::MultiValue::new(),
            )?,
            Step::Require { global, module } => {
                let code = "local g, m = ...; _G[g] = require(m)";
                let args = (global.as_str(), module.as_str());
                let args = mlua::IntoLuaMulti::into_lua_multi(args, rt.lua()).map_err(|_| 1u8)?;
                do_chunk(rt, Source::String(code, c"=(command line)"), args)?;
            }
            Step::Warnings => {
                if !cfg!(feature = "luajit") {
                    let args = mlua::MultiValue::new();
                    do_chunk(rt, Source::String("warn('@on')", c"=(command line)"), args)?;
                }
            }
        }
    }
    Ok(())
}

/// `lem -w N`: check the command line, then run the supervisor.
fn supervise(argv: &[String], cli: &Cli, workers: u32) -> Result<(), u8> {
    let refuse = |msg: &str| {
        message(msg);
        Err(1)
    };
    match cli.script {
        None => return refuse("'-w' needs a script to run"),
        Some(i) if argv[i] == "-" && argv[i - 1] != "--" => {
            return refuse("'-w' cannot run a script from standard input")
        }
        Some(_) if cli.interactive => return refuse("'-w' cannot be used with '-i'"),
        Some(_) => {}
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return refuse(&format!("cannot find the lem binary to run workers: {e}")),
    };
    let args = argv
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(i, _)| !cli.supervisor_args.contains(i))
        .map(|(_, a)| a.into())
        .collect();
    let grace = cli.grace.unwrap_or(10.0);
    let cfg = lem::workers::supervisor::Config {
        workers,
        grace: std::time::Duration::from_secs_f64(grace),
        exe,
        argv0: argv[0].clone().into(),
        args,
    };
    match lem::workers::supervisor::supervise(cfg) {
        0 => Ok(()),
        code => Err(code),
    }
}

fn repl(rt: &mut Runtime) -> Result<(), u8> {
    let code = "require('lem.repl').console('stdin')";
    do_chunk(rt, Source::String(code, c"=stdin"), mlua::MultiValue::new())
}

fn run(argv: &[String]) -> Result<(), u8> {
    let cli = parse(argv).map_err(|msg| {
        message(&msg);
        eprintln!("{}", usage());
        1
    })?;
    if cli.help {
        println!("{}", usage());
        return Ok(());
    }
    if let Some(workers) = cli.workers {
        return supervise(argv, &cli, workers);
    }
    if cli.grace.is_some() {
        message("'--grace' goes with '-w'");
        return Err(1);
    }
    if cli.version {
        println!("{}", lem::version());
    }
    let mut rt = Runtime::new(Options {
        ignore_env: cli.ignore_env,
    })
    .map_err(|e| {
        message(&e.to_string());
        1
    })?;
    create_arg_table(rt.lua(), argv, cli.script).map_err(|_| 1u8)?;
    if cli.stall.is_some() {
        rt.scheduler().set_stall(cli.stall);
    }
    if let Some(bytes) = cli.max_memory {
        rt.set_memory_limit(bytes);
    }
    if !cli.ignore_env {
        lua_init(&mut rt)?;
    }
    if let Some(grace) = lem::runtime::lifecycle::grace() {
        // A worker stops gracefully on SIGTERM (from the supervisor) and
        // SIGINT.
        let code = "local grace = ...
            local signal, utils = require 'lem.signal', require 'lem.utils'
            local function stop() utils.shutdown(grace) end
            signal.register('SIGTERM', stop)
            signal.register('SIGINT', stop)";
        let args = mlua::IntoLuaMulti::into_lua_multi(grace, rt.lua()).map_err(|_| 1u8)?;
        do_chunk(&mut rt, Source::String(code, c"=(worker)"), args)?;
    }
    run_steps(&mut rt, &cli.steps)?;
    if let Some(i) = cli.script {
        let name = argv[i].as_str();
        let stdin = name == "-" && argv[i - 1] != "--";
        let file = if stdin { None } else { Some(name) };
        let f = load(rt.lua(), Source::File(file)).map_err(|msg| {
            message(&msg);
            1u8
        })?;
        let args = script_args(rt.lua()).map_err(|msg| {
            message(&msg);
            1u8
        })?;
        run_step(&mut rt, f, args)?;
    }
    if cli.interactive {
        repl(&mut rt)?;
    } else if cli.script.is_none() && !cli.has_exec && !cli.version {
        if std::io::stdin().is_terminal() {
            println!("{}", lem::version());
            repl(&mut rt)?;
        } else {
            do_chunk(&mut rt, Source::File(None), mlua::MultiValue::new())?;
        }
    }
    match rt.run() {
        Outcome::Exit(code) => Err(code as u8),
        Outcome::Done | Outcome::Idle => Ok(()),
    }
}

/// Keep freed memory for reuse instead of returning it to the system at
/// each shrink: coroutine-heavy programs free and reallocate in waves, and
/// glibc's default trimming turned that into page faults (measured: ~15% of
/// the time of 1,000,000 spawns).
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before threads.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}

/// A worker's `print` output goes out a line at a time (the supervisor
/// passes whole lines on), not when a block of it has filled.
fn line_buffer_stdout() {
    extern "C" {
        static mut stdout: *mut libc::FILE;
    }
    // SAFETY: called at startup, before any output; setvbuf on C's stdout.
    unsafe {
        libc::setvbuf(stdout, std::ptr::null_mut(), libc::_IOLBF, 0);
    }
}

fn main() -> ExitCode {
    tune_malloc();
    let worker = lem::workers::init_from_env();
    let argv: Vec<String> = std::env::args().collect();
    if let Some(name) = argv.first().filter(|n| !n.is_empty()) {
        match worker {
            Some((id, _)) => lem::set_progname(&format!("{name} worker {id}")),
            None => lem::set_progname(name),
        }
    }
    if worker.is_some() {
        line_buffer_stdout();
    }
    let result = run(&argv);
    lem::io::restore_stdio();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => ExitCode::from(code),
    }
}
