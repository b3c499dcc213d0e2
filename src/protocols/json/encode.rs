//! Lua values to JSON text: the writers of strings and numbers (shared with
//! the tests' and the fuzz target's tree) and the walk over Lua values.
//!
//! A table is an array or an object by its keys (docs/json.md says the
//! rules): its marker from `json.array`/`json.object` if it has one, else
//! positive integer keys (plus an integer `n` giving the length, as
//! `table.pack` and lem's database rows have it) make an array, string
//! keys an object, and anything else is an error. Tables are walked with
//! raw access (no metamethods run), recursively up to [`MAX_DEPTH`] levels;
//! the tables being walked are kept to refuse cycles.

use std::ffi::{c_int, c_void};

use crate::runtime::lua::{self, ffi, lua_State};

/// Deepest nesting encoded (the decoder's default `max_depth` too).
pub(crate) const MAX_DEPTH: usize = 1000;

/// An array may have holes (encoded as `null`) while it is at most this
/// long or at least half full: a hostile `{[2^40] = 1}` is refused rather
/// than written as a terabyte of nulls.
const SPARSE_OK: u64 = 1000;

/// `s` as a JSON string, quotes included; `Err(offset)` of the first byte
/// that is not UTF-8.
pub(crate) fn write_string(out: &mut Vec<u8>, s: &[u8]) -> Result<(), usize> {
    if let Err(e) = std::str::from_utf8(s) {
        return Err(e.valid_up_to());
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(&s[run..i]);
        run = i + 1;
        if esc == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', esc]);
        }
    }
    out.extend_from_slice(&s[run..]);
    out.push(b'"');
    Ok(())
}

/// For each byte: 0 when it goes out as it is, else the letter after the
/// backslash (`u` for `\u00XX`).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[8] = b'b';
    t[9] = b't';
    t[10] = b'n';
    t[12] = b'f';
    t[13] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// An integer in decimal.
#[inline]
pub(crate) fn write_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A finite float, shortest text that reads back the same, always with a
/// `.` or an exponent (`2.0`, `1e+300` as `1e300`) so it decodes as a float
/// again; `false` for NaN and infinities.
#[inline]
pub(crate) fn write_float(out: &mut Vec<u8>, f: f64) -> bool {
    if !f.is_finite() {
        return false;
    }
    out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    true
}

/// Why a value cannot be encoded.
#[derive(Debug)]
pub(crate) enum Fail {
    Cycle,
    Type(&'static str),
    NotFinite(f64),
    Mixed,
    KeyType(&'static str),
    NumberKey,
    Sparse(u64, u64),
    Deep,
    Utf8(usize),
    Room,
}

/// One step of the path to the value at fault.
#[derive(Debug)]
pub(crate) enum Step {
    Index(u64),
    Key(Vec<u8>),
}

/// What went wrong, and where (the path from the value encoded, innermost
/// step first).
#[derive(Debug)]
pub(crate) struct Error {
    pub fail: Fail,
    pub path: Vec<Step>,
}

impl From<Fail> for Error {
    fn from(fail: Fail) -> Error {
        Error {
            fail,
            path: Vec::new(),
        }
    }
}

/// The message lem.json returns: what, then where (`at .a[2]`).
pub(crate) fn message(e: &Error) -> String {
    let mut m = match e.fail {
        Fail::Cycle => "cannot encode a cycle (a table inside itself)".to_owned(),
        Fail::Type(t) => format!("cannot encode a {t}"),
        Fail::NotFinite(f) => format!("cannot encode {f}"),
        Fail::Mixed => {
            "cannot encode a table that is neither an array nor an object (integer and string keys)"
                .to_owned()
        }
        Fail::KeyType(t) => format!("cannot encode a table with a {t} key"),
        Fail::NumberKey => {
            "cannot encode a table that is neither an array nor an object (a number key that is not an array index)"
                .to_owned()
        }
        Fail::Sparse(len, n) => {
            format!("cannot encode a sparse array (length {len}, {n} elements)")
        }
        Fail::Deep => format!("cannot encode tables nested deeper than {MAX_DEPTH}"),
        Fail::Utf8(at) => format!("cannot encode a string that is not UTF-8 (byte {})", at + 1),
        Fail::Room => "cannot encode: the Lua stack is full".to_owned(),
    };
    if !e.path.is_empty() {
        m.push_str(" at ");
        for step in e.path.iter().rev() {
            match step {
                Step::Index(i) => m.push_str(&format!("[{i}]")),
                Step::Key(k) => {
                    let name = k
                        .first()
                        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
                        && k.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
                    if name {
                        m.push('.');
                        m.push_str(&String::from_utf8_lossy(k));
                    } else {
                        m.push_str(&format!("[{:?}]", String::from_utf8_lossy(k)));
                    }
                }
            }
        }
    }
    m
}

/// Which shape a table's metatable asks for.
#[derive(Clone, Copy, PartialEq)]
enum Mark {
    None,
    Array,
    Object,
}

/// The walk over Lua values, writing into `out`.
pub(super) struct Encoder<'a> {
    pub l: *mut lua_State,
    pub out: &'a mut Vec<u8>,
    /// The text of one level of indentation, or `None` for compact output.
    pub indent: Option<&'a [u8]>,
    pub sort_keys: bool,
    /// Stack (pseudo-)indices of the array and object markers.
    pub array_mt: c_int,
    pub object_mt: c_int,
    /// The tables being walked, outermost first.
    pub seen: &'a mut Vec<*const c_void>,
    /// For sorted keys: (offset in `arena`, length, index in the holder).
    pub keys: &'a mut Vec<(usize, usize, i64)>,
    pub arena: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    /// Write the value at the absolute index `idx`.
    ///
    /// # Safety
    /// `idx` is a valid index of `self.l` (see runtime/lua.rs's contract).
    pub unsafe fn value(&mut self, idx: c_int) -> Result<(), Error> {
        // SAFETY: `self.l` is a live thread of lem's state, the contract of
        // every function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let l = self.l;
            match ffi::lua_type(l, idx) {
                ffi::LUA_TNIL => self.out.extend_from_slice(b"null"),
                ffi::LUA_TBOOLEAN => {
                    let t: &[u8] = if ffi::lua_toboolean(l, idx) != 0 {
                        b"true"
                    } else {
                        b"false"
                    };
                    self.out.extend_from_slice(t);
                }
                ffi::LUA_TNUMBER => self.number(idx)?,
                ffi::LUA_TSTRING => {
                    let s = lua::to_bytes(l, idx).unwrap_or_default();
                    write_string(self.out, s).map_err(Fail::Utf8)?;
                }
                ffi::LUA_TTABLE => self.table(idx)?,
                ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(l, idx) == lua::null() => {
                    self.out.extend_from_slice(b"null")
                }
                ffi::LUA_TLIGHTUSERDATA => return Err(Fail::Type("light userdata").into()),
                ffi::LUA_TFUNCTION => return Err(Fail::Type("function").into()),
                ffi::LUA_TTHREAD => return Err(Fail::Type("thread").into()),
                _ => return Err(Fail::Type("userdata").into()),
            }
            Ok(())
        }
    }

    unsafe fn number(&mut self, idx: c_int) -> Result<(), Fail> {
        // SAFETY: `self.l` is a live thread of lem's state, the contract of
        // every function that takes one (see the module doc of runtime/lua.rs).
        unsafe { write_number(self.l, idx, self.out) }
    }

    fn newline(&mut self, depth: usize) {
        if let Some(ind) = self.indent {
            self.out.push(b'\n');
            for _ in 0..depth {
                self.out.extend_from_slice(ind);
            }
        }
    }

    unsafe fn table(&mut self, idx: c_int) -> Result<(), Error> {
        // SAFETY: `self.l` is a live thread of lem's state, the contract of
        // every function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let l = self.l;
            if self.seen.len() >= MAX_DEPTH {
                return Err(Fail::Deep.into());
            }
            let p = ffi::lua_topointer(l, idx);
            if self.seen.contains(&p) {
                return Err(Fail::Cycle.into());
            }
            if ffi::lua_checkstack(l, 6) == 0 {
                return Err(Fail::Room.into());
            }
            let mut mark = Mark::None;
            if ffi::lua_getmetatable(l, idx) != 0 {
                if ffi::lua_rawequal(l, -1, self.array_mt) != 0 {
                    mark = Mark::Array;
                } else if ffi::lua_rawequal(l, -1, self.object_mt) != 0 {
                    mark = Mark::Object;
                }
                ffi::lua_pop(l, 1);
            }
            self.seen.push(p);
            let r = match mark {
                Mark::Object => self.object(idx, true),
                _ => self.array_or_object(idx, mark == Mark::Array),
            };
            self.seen.pop();
            r
        }
    }

    /// Classify the table by its keys (all of them: `{1, 2, x = 3}` is an
    /// error, not an array of two), then write it.
    unsafe fn array_or_object(&mut self, idx: c_int, marked: bool) -> Result<(), Error> {
        // SAFETY: `self.l` is a live thread of lem's state, the contract of
        // every function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let l = self.l;
            ffi::lua_pushnil(l);
            if ffi::lua_next(l, idx) == 0 {
                self.out
                    .extend_from_slice(if marked { b"[]" } else { b"{}" });
                return Ok(());
            }
            // A string key first (but `n`): an object, no counting needed.
            if !marked
                && ffi::lua_type(l, -2) == ffi::LUA_TSTRING
                && lua::to_bytes(l, -2) != Some(b"n")
            {
                ffi::lua_pop(l, 2);
                return self.object(idx, false);
            }
            let (mut count, mut max) = (0u64, 0u64);
            let mut n: Option<f64> = None;
            let mut strings = false;
            loop {
                match ffi::lua_type(l, -2) {
                    ffi::LUA_TNUMBER => match array_index(l, -2) {
                        Some(i) => {
                            count += 1;
                            max = max.max(i);
                        }
                        None => {
                            ffi::lua_pop(l, 2);
                            return Err(Fail::NumberKey.into());
                        }
                    },
                    ffi::LUA_TSTRING => {
                        if lua::to_bytes(l, -2) == Some(b"n")
                            && ffi::lua_type(l, -1) == ffi::LUA_TNUMBER
                        {
                            n = Some(ffi::lua_tonumber(l, -1) as f64);
                        } else {
                            strings = true;
                        }
                    }
                    t => {
                        ffi::lua_pop(l, 2);
                        return Err(Fail::KeyType(type_name(t)).into());
                    }
                }
                ffi::lua_pop(l, 1);
                if ffi::lua_next(l, idx) == 0 {
                    break;
                }
            }
            // `n` is the length when it is a whole number no smaller than
            // every index; otherwise it is a key like any other.
            let len = match n {
                Some(n) if n.fract() == 0.0 && n >= max as f64 && n < 2f64.powi(53) => n as u64,
                Some(_) => {
                    strings = true;
                    max
                }
                None => max,
            };
            if strings || (count == 0 && !marked) {
                if count == 0 && !marked {
                    return self.object(idx, false);
                }
                return Err(Fail::Mixed.into());
            }
            if len > SPARSE_OK && len / 2 > count {
                return Err(Fail::Sparse(len, count).into());
            }
            self.array(idx, len)
        }
    }

    unsafe fn array(&mut self, idx: c_int, len: u64) -> Result<(), Error> {
        // SAFETY: `self.l` is a live thread of lem's state, the contract of
        // every function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let l = self.l;
            let depth = self.seen.len();
            self.out.push(b'[');
            for i in 1..=len {
                if i > 1 {
                    self.out.push(b',');
                }
                self.newline(depth);
                lua::push_index(l, idx, i as ffi::lua_Integer);
                let top = ffi::lua_gettop(l);
                if let Err(mut e) = self.value(top) {
                    e.path.push(Step::Index(i));
                    return Err(e);
                }
                ffi::lua_pop(l, 1);
            }
            if len > 0 {
                self.newline(depth - 1);
            }
            self.out.push(b']');
            Ok(())
        }
    }

    /// Write the key at `-2` (a string, or in a marked object a number)
    /// and its colon.
    unsafe fn key(&mut self, marked: bool) -> Result<(), Error> {
        // SAFETY: `self.l` is a live thread of lem's state, the contract of
        // every function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let l = self.l;
            match ffi::lua_type(l, -2) {
                ffi::LUA_TSTRING => {
                    let k = lua::to_bytes(l, -2).unwrap_or_default();
                    if let Err(at) = write_string(self.out, k) {
                        return Err(Error {
                            fail: Fail::Utf8(at),
                            path: vec![Step::Key(k.to_vec())],
                        });
                    }
                }
                ffi::LUA_TNUMBER if marked => {
                    self.out.push(b'"');
                    self.number(-2)?;
                    self.out.push(b'"');
                }
                ffi::LUA_TNUMBER => {
                    return Err(if array_index(l, -2).is_some() {
                        Fail::Mixed
                    } else {
                        Fail::NumberKey
                    }
                    .into())
                }
                t => return Err(Fail::KeyType(type_name(t)).into()),
            }
            self.out.push(b':');
            if self.indent.is_some() {
                self.out.push(b' ');
            }
            Ok(())
        }
    }

    unsafe fn object(&mut self, idx: c_int, marked: bool) -> Result<(), Error> {
        // SAFETY: `self.l` is a live thread of lem's state, the contract of
        // every function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            if self.sort_keys {
                return self.sorted_object(idx, marked);
            }
            let l = self.l;
            let depth = self.seen.len();
            self.out.push(b'{');
            let mut first = true;
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, idx) != 0 {
                if !first {
                    self.out.push(b',');
                }
                first = false;
                self.newline(depth);
                self.key(marked)?;
                let top = ffi::lua_gettop(l);
                if let Err(mut e) = self.value(top) {
                    // What failed inside left its values above ours.
                    e.path.push(key_step(l, top - 1));
                    return Err(e);
                }
                ffi::lua_pop(l, 1);
            }
            if !first {
                self.newline(depth - 1);
            }
            self.out.push(b'}');
            Ok(())
        }
    }

    /// An object with its keys in byte order: the keys are gathered into a
    /// holder table (which keeps them alive) and their text into `arena`,
    /// sorted, then looked up one by one.
    unsafe fn sorted_object(&mut self, idx: c_int, marked: bool) -> Result<(), Error> {
        // SAFETY: `self.l` is a live thread of lem's state, the contract of
        // every function that takes one (see the module doc of runtime/lua.rs).
        unsafe {
            let l = self.l;
            let depth = self.seen.len();
            let (base, arena_base) = (self.keys.len(), self.arena.len());
            ffi::lua_createtable(l, 0, 0);
            let holder = ffi::lua_gettop(l);
            let mut n: i64 = 0;
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, idx) != 0 {
                ffi::lua_pop(l, 1);
                // The key's text as `key` would write it, unquoted.
                let start = self.arena.len();
                match ffi::lua_type(l, -1) {
                    ffi::LUA_TSTRING => {
                        let k = lua::to_bytes(l, -1).unwrap_or_default();
                        self.arena.extend_from_slice(k);
                    }
                    ffi::LUA_TNUMBER if marked => write_number(l, -1, self.arena)?,
                    ffi::LUA_TNUMBER => {
                        let f = if array_index(l, -1).is_some() {
                            Fail::Mixed
                        } else {
                            Fail::NumberKey
                        };
                        return Err(f.into());
                    }
                    t => return Err(Fail::KeyType(type_name(t)).into()),
                }
                n += 1;
                ffi::lua_pushvalue(l, -1);
                raw_seti(l, holder, n);
                self.keys.push((start, self.arena.len() - start, n));
            }
            let arena = &*self.arena;
            self.keys[base..]
                .sort_unstable_by(|a, b| arena[a.0..a.0 + a.1].cmp(&arena[b.0..b.0 + b.1]));
            self.out.push(b'{');
            for k in base..base + n as usize {
                let (off, len, i) = self.keys[k];
                if k > base {
                    self.out.push(b',');
                }
                self.newline(depth);
                if let Err(at) = write_string(self.out, &self.arena[off..off + len]) {
                    let key = self.arena[off..off + len].to_vec();
                    return Err(Error {
                        fail: Fail::Utf8(at),
                        path: vec![Step::Key(key)],
                    });
                }
                self.out.push(b':');
                if self.indent.is_some() {
                    self.out.push(b' ');
                }
                lua::push_index(l, holder, i as ffi::lua_Integer);
                ffi::lua_rawget(l, idx);
                let top = ffi::lua_gettop(l);
                if let Err(mut e) = self.value(top) {
                    e.path.push(Step::Key(self.arena[off..off + len].to_vec()));
                    return Err(e);
                }
                ffi::lua_pop(l, 1);
            }
            if n > 0 {
                self.newline(depth - 1);
            }
            self.out.push(b'}');
            ffi::lua_pop(l, 1);
            self.keys.truncate(base);
            self.arena.truncate(arena_base);
            Ok(())
        }
    }
}

/// The number at `idx`: an integer as one, a float with a `.` or an
/// exponent.
unsafe fn write_number(l: *mut lua_State, idx: c_int, out: &mut Vec<u8>) -> Result<(), Fail> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        #[cfg(not(feature = "luajit"))]
        if ffi::lua_isinteger(l, idx) != 0 {
            write_int(out, ffi::lua_tointeger(l, idx) as i64);
            return Ok(());
        }
        let f = ffi::lua_tonumber(l, idx) as f64;
        // LuaJIT has only floats: a whole one is written as an integer.
        #[cfg(feature = "luajit")]
        if f.fract() == 0.0 && f.abs() < 9.223372036854776e18 {
            write_int(out, f as i64);
            return Ok(());
        }
        if write_float(out, f) {
            Ok(())
        } else {
            Err(Fail::NotFinite(f))
        }
    }
}

/// The key at `idx` as a path step.
unsafe fn key_step(l: *mut lua_State, idx: c_int) -> Step {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if ffi::lua_type(l, idx) == ffi::LUA_TSTRING {
            Step::Key(lua::to_bytes(l, idx).unwrap_or_default().to_vec())
        } else {
            let f = ffi::lua_tonumber(l, idx) as f64;
            Step::Key(format!("{f}").into_bytes())
        }
    }
}

/// The number at `idx` as an array index: a whole number from 1 up.
unsafe fn array_index(l: *mut lua_State, idx: c_int) -> Option<u64> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        #[cfg(not(feature = "luajit"))]
        if ffi::lua_isinteger(l, idx) != 0 {
            let i = ffi::lua_tointeger(l, idx);
            return (i >= 1).then_some(i as u64);
        }
        let f = ffi::lua_tonumber(l, idx) as f64;
        // A float key with an integer value is stored as that integer on
        // Lua 5.4, so this is LuaJIT's case (and 5.4's 2^63 and up).
        (cfg!(feature = "luajit") && f.fract() == 0.0 && (1.0..9.007199254740992e15).contains(&f))
            .then_some(f as u64)
    }
}

/// `t[n] = top`, popping it.
unsafe fn raw_seti(l: *mut lua_State, t: c_int, n: i64) {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        #[cfg(feature = "luajit")]
        ffi::lua_rawseti_(l, t, n as c_int);
        #[cfg(not(feature = "luajit"))]
        ffi::lua_rawseti(l, t, n);
    }
}

fn type_name(t: c_int) -> &'static str {
    match t {
        ffi::LUA_TBOOLEAN => "boolean",
        ffi::LUA_TTABLE => "table",
        ffi::LUA_TFUNCTION => "function",
        ffi::LUA_TLIGHTUSERDATA => "light userdata",
        ffi::LUA_TTHREAD => "thread",
        _ => "userdata",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: &[u8]) -> String {
        let mut out = Vec::new();
        write_string(&mut out, b).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings() {
        assert_eq!(s(b"plain"), r#""plain""#);
        assert_eq!(
            s(b"a\"b\\c\n\t\r\x08\x0c\x01\x1f"),
            r#""a\"b\\c\n\t\r\b\f\u0001\u001f""#
        );
        assert_eq!(s("é😀/".as_bytes()), "\"é😀/\"");
        assert_eq!(write_string(&mut Vec::new(), b"ab\xffc"), Err(2));
        assert_eq!(write_string(&mut Vec::new(), b"\xed\xa0\x80"), Err(0));
    }

    #[test]
    fn numbers() {
        let f = |x: f64| {
            let mut out = Vec::new();
            assert!(write_float(&mut out, x));
            String::from_utf8(out).unwrap()
        };
        assert_eq!(f(2.0), "2.0");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(-0.0), "-0.0");
        assert_eq!(f(1e300), "1e300");
        assert_eq!(f(1.5e-7), "1.5e-7");
        assert!(!write_float(&mut Vec::new(), f64::NAN));
        assert!(!write_float(&mut Vec::new(), f64::INFINITY));
        let mut out = Vec::new();
        write_int(&mut out, i64::MIN);
        assert_eq!(out, b"-9223372036854775808");
    }
}
