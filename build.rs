//! Build script: makes the `lem` executable export the Lua C API.
//!
//! Standard Lua C modules (`require 'lpeg'`, `require 'cjson'`) are shared
//! objects with undefined `lua_*`/`luaL_*` symbols and no `NEEDED` entry for a
//! Lua library: they expect the host executable to provide the API. The Lua
//! that mlua-sys vendors is a static library, so its symbols are in `lem` but
//! not in its dynamic symbol table. `-rdynamic` would export every global
//! symbol (~1150, Rust's too: +8% on a release binary, +27% debug); a dynamic
//! list exports only the Lua API (~155 symbols, +7 KB), and only from the
//! `lem` bin (not test, example or bench executables).
//!
//! One list serves both builds (`lua54` and `luajit`): see
//! `build/lua-api.dynlist`. Check with `nm -D target/debug/lem | grep ' T lua'`.

use std::env;

fn main() {
    let list = "build/lua-api.dynlist";
    println!("cargo:rerun-if-changed={list}");
    println!("cargo:rerun-if-changed=build.rs");

    if let Some(triplet) = multiarch() {
        println!("cargo:rustc-env=LEM_MULTIARCH={triplet}");
    }

    // --dynamic-list is a GNU ld / lld (ELF) option; macOS ld64 and link.exe
    // have their own mechanisms, which nobody has needed yet.
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let family = env::var("CARGO_CFG_TARGET_FAMILY").unwrap_or_default();
    let vendor = env::var("CARGO_CFG_TARGET_VENDOR").unwrap_or_default();
    if family != "unix" || vendor == "apple" {
        println!("cargo:warning=lem: Lua C API not exported on {os}; C modules will not load");
        return;
    }

    // The linker's working directory is Cargo's choice: pass an absolute path.
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-Wl,--dynamic-list={dir}/{list}");

    // Exported symbols are GC roots under --gc-sections, but the linker only
    // pulls an archive member (lapi.o, lauxlib.o, lstrlib.o, ...) out of the
    // static Lua library when something references it. luaL_openlibs (in
    // linit.o, present in Lua 5.4 and LuaJIT) references every luaopen_*,
    // which reference lapi.o and lauxlib.o: asking for it keeps the whole
    // public API in the binary even if mlua stops calling some of it.
    println!("cargo:rustc-link-arg-bins=-Wl,--undefined=luaL_openlibs");
}

/// The Debian/Ubuntu multiarch triplet of the target (`x86_64-linux-gnu`,
/// `aarch64-linux-gnu`, `arm-linux-gnueabihf`, `i386-linux-gnu`, ...): the
/// distribution's Lua packages put C modules in `/usr/lib/<triplet>/lua/`.
/// Derived from Cargo's target triple; `None` off Linux.
fn multiarch() -> Option<String> {
    let target = env::var("TARGET").ok()?;
    let parts: Vec<&str> = target.split('-').collect();
    if !parts.contains(&"linux") {
        return None;
    }
    let arch = match parts[0] {
        a if a.len() == 4 && a.starts_with('i') && a.ends_with("86") => "i386",
        a if a.starts_with("arm") || a.starts_with("thumb") => "arm",
        a if a.starts_with("riscv64") => "riscv64",
        a => a,
    };
    let abi = parts
        .last()
        .filter(|p| **p != "linux")
        .copied()
        .unwrap_or("gnu");
    Some(format!("{arch}-linux-{abi}"))
}
