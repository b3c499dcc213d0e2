//! The Rust API for native modules (`lem::native`), used as a module author
//! would: register functions, suspend on futures and pool work, spawn.

use lem::{native, Options, Outcome, Runtime};

/// Run `script` as the main coroutine of a runtime where `setup` has
/// registered its modules; returns the loop's outcome.
fn run(setup: impl FnOnce(&mlua::Lua), script: &str) -> (Runtime, Outcome) {
    let mut rt = Runtime::new(Options::default()).expect("runtime");
    setup(rt.lua());
    let main = rt
        .lua()
        .load(script)
        .into_function()
        .expect("script compiles");
    rt.spawn(main, ()).expect("spawn");
    let outcome = rt.run();
    (rt, outcome)
}

fn global<T: mlua::FromLua>(rt: &Runtime, name: &str) -> T {
    rt.lua().globals().get(name).expect(name)
}

#[test]
fn async_function_suspends_only_its_caller() {
    let (rt, outcome) = run(
        |lua| {
            let f = native::async_function(lua, |_, ms: u64| async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok(("slept", ms))
            })
            .unwrap();
            native::register_module(lua, "nap", f).unwrap();
        },
        r#"
            local utils = require 'lem.utils'
            local nap = require 'nap'
            local ticks = 0
            utils.spawn(function() while not done do ticks = ticks + 1; utils.yield() end end)
            a, b = nap(20)
            done = true
            ticked = ticks
        "#,
    );
    assert_eq!(outcome, Outcome::Idle);
    assert_eq!(global::<String>(&rt, "a"), "slept");
    assert_eq!(global::<u64>(&rt, "b"), 20);
    assert!(global::<u64>(&rt, "ticked") > 0, "other coroutines ran");
}

#[test]
fn failures_are_values_and_misuse_raises_strings() {
    let (rt, outcome) = run(
        |lua| {
            let m = lua.create_table().unwrap();
            let fails = native::async_function(lua, |_, ()| async move {
                Err::<(), _>(mlua::Error::runtime("disk on fire"))
            })
            .unwrap();
            m.set("fails", fails).unwrap();
            let raises = lua
                .create_function(|_, ()| -> mlua::Result<()> {
                    Err(mlua::Error::runtime(
                        "bad argument #1 to 'raises' (number expected)",
                    ))
                })
                .unwrap();
            m.set("raises", native::wrap_suspending(lua, raises).unwrap())
                .unwrap();
            let typed = lua.create_function(|_, n: i64| Ok(n + 1)).unwrap();
            m.set("typed", native::wrap_suspending(lua, typed).unwrap())
                .unwrap();
            native::register_module(lua, "m", m).unwrap();
        },
        r#"
            local m = require 'm'
            r1, r2 = m.fails()
            ok, err = pcall(m.raises)
            errtype = type(err)
            assert(m.typed(1) == 2)
            local ok2, err2 = pcall(m.typed, 'x')
            typed_err = err2
        "#,
    );
    assert_eq!(outcome, Outcome::Idle);
    assert_eq!(global::<mlua::Value>(&rt, "r1"), mlua::Value::Nil);
    assert_eq!(global::<String>(&rt, "r2"), "disk on fire");
    assert!(!global::<bool>(&rt, "ok"));
    assert_eq!(global::<String>(&rt, "errtype"), "string");
    assert_eq!(
        global::<String>(&rt, "err"),
        "bad argument #1 to 'raises' (number expected)"
    );
    let typed: String = global(&rt, "typed_err");
    assert!(typed.starts_with("bad argument #1 to '"), "{typed}");
    assert!(typed.ends_with("expected, got string)"), "{typed}");
}

#[test]
fn blocking_work_runs_on_the_pool() {
    let (rt, outcome) = run(
        |lua| {
            let f = native::async_function(lua, |_, ()| async move {
                let main = std::thread::current().id();
                let pool = native::blocking(|| std::thread::current().id()).await;
                Ok(main != pool)
            })
            .unwrap();
            native::register_module(lua, "where", f).unwrap();
        },
        "elsewhere = require('where')()",
    );
    assert_eq!(outcome, Outcome::Idle);
    assert!(global::<bool>(&rt, "elsewhere"));
}

#[test]
fn spawn_from_rust_and_exit_code() {
    let (rt, outcome) = run(
        |lua| {
            let f = lua
                .create_function(|lua, f: mlua::Function| {
                    native::spawn(lua, f, ("from rust",))?;
                    Ok(())
                })
                .unwrap();
            native::register_module(lua, "spawner", f).unwrap();
        },
        r#"
            local utils = require 'lem.utils'
            require('spawner')(function(s) got = s; utils.exit(5) end)
            utils.yield()
            never = true
        "#,
    );
    assert_eq!(outcome, Outcome::Exit(5));
    assert_eq!(global::<String>(&rt, "got"), "from rust");
    assert_eq!(global::<mlua::Value>(&rt, "never"), mlua::Value::Nil);
}

#[test]
fn suspending_outside_a_coroutine_is_an_error() {
    let rt = Runtime::new(Options::default()).unwrap();
    let lua = rt.lua();
    let f = native::async_function(lua, |_, ()| async move { Ok(()) }).unwrap();
    let err = f.call::<()>(()).unwrap_err().to_string();
    assert!(err.contains("outside a lem coroutine"), "{err}");
}
