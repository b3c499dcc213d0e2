//! `lem.repl.core`: the console under the REPL (`lua/lem/repl.lua`).
//!
//! `readline(prompt)` reads one line from standard input on the blocking
//! pool, so coroutines spawned from the REPL keep running while it waits. On
//! a terminal it edits the line and keeps history (rustyline); otherwise it
//! writes the prompt and reads a plain line, as `lua` does.

use std::ffi::c_int;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use rustyline::error::ReadlineError;

use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::pool;
use crate::runtime::scheduler::{self, Commit, Resume};

/// What one read gave.
enum Line {
    Text(String),
    Eof,
    Interrupted,
    Failed(String),
}

type Editor = rustyline::DefaultEditor;

fn editor() -> Option<Arc<Mutex<Editor>>> {
    thread_local! {
        static EDITOR: Option<Arc<Mutex<Editor>>> =
            if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
                Editor::new().ok().map(|e| Arc::new(Mutex::new(e)))
            } else {
                None
            };
    }
    EDITOR.with(|e| e.clone())
}

fn read_line(editor: Option<Arc<Mutex<Editor>>>, prompt: String) -> Line {
    if let Some(ed) = editor {
        let mut ed = ed.lock().unwrap_or_else(|e| e.into_inner());
        return match ed.readline(&prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = ed.add_history_entry(line.as_str());
                }
                Line::Text(line)
            }
            Err(ReadlineError::Eof) => Line::Eof,
            Err(ReadlineError::Interrupted) => Line::Interrupted,
            Err(e) => Line::Failed(e.to_string()),
        };
    }
    let mut out = std::io::stdout();
    let _ = out.write_all(prompt.as_bytes()).and_then(|_| out.flush());
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) => Line::Eof,
        Ok(_) => {
            if line.ends_with('\n') {
                line.pop();
            }
            Line::Text(line)
        }
        Err(e) => Line::Failed(e.to_string()),
    }
}

/// readline(prompt) -> line | nil (end of input) | nil, 'interrupted' | nil, err
unsafe extern "C-unwind" fn readline(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let prompt = lua::to_bytes(l, 1).map(|b| String::from_utf8_lossy(b).into_owned());
        let prompt = prompt.unwrap_or_default();
        let ed = editor();
        let fut = Box::pin(async move {
            let line = pool::run(move || read_line(ed, prompt)).await;
            Resume::Push(Box::new(move |t| match line {
                Line::Text(s) => {
                    lua::push_str(t, &s);
                    1
                }
                Line::Eof => {
                    ffi::lua_pushnil(t);
                    1
                }
                Line::Interrupted => lua::fail(t, "interrupted"),
                Line::Failed(e) => lua::fail(t, &e),
            }))
        });
        scheduler::prepare_or_raise(l, Commit::Future(fut));
        crate::runtime::scheduler::suspend(l)
    }
}

/// isatty() -> whether stdin and stdout are a terminal
unsafe extern "C-unwind" fn isatty(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        ffi::lua_pushboolean(l, editor().is_some() as c_int);
        1
    }
}

const FUNCS: &[Reg] = &[(c"readline", readline), (c"isatty", isatty)];

/// luaopen for `lem.repl.core`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::new_lib(l, FUNCS);
        1
    }
}
