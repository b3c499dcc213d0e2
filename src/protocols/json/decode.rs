//! JSON text to values: a single pass over the bytes that hands each value
//! to a [`Sink`] as soon as it is read (lem.json's sink pushes it straight
//! onto the Lua stack; the tests' and the fuzz target's build a Rust tree).
//!
//! Not recursive: the open arrays and objects are a stack of [`Frame`]s in
//! a vector the caller owns, so nesting is bounded by `max_depth` and by
//! the sink (the Lua stack), never by the C stack. The grammar is RFC
//! 8259's, strictly: no comments, trailing commas, `NaN`, leading zeros or
//! BOM; strings must be valid UTF-8 and `\u` escapes may not leave a
//! surrogate alone. Every error carries the offset of the byte at fault.

/// Where values go as they are read.
pub(crate) trait Sink {
    fn null(&mut self);
    fn boolean(&mut self, b: bool);
    fn integer(&mut self, n: i64);
    fn float(&mut self, f: f64);
    fn string(&mut self, s: &[u8]);
    /// Open an array or object; `false` when there is no room for it.
    fn begin(&mut self, array: bool) -> bool;
    /// The value just read becomes element `index` (1-based) of the open
    /// array.
    fn element(&mut self, index: usize);
    /// The key and the value just read become a member of the open object.
    fn member(&mut self);
    /// The open array or object is complete: it is now the value just read
    /// (`empty` when it had no elements or members).
    fn end(&mut self, array: bool, empty: bool);
}

/// A decoding error: what went wrong, at which byte (0-based offset).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Error {
    pub offset: usize,
    pub what: Fault,
}

/// What went wrong.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Fault {
    /// `expected` (a value, `':'`, ...) was not there.
    Expected(&'static str),
    /// A byte 0x00-0x1f inside a string.
    Control,
    /// A backslash not followed by one of `"\/bfnrtu`.
    Escape,
    /// `\u` not followed by four hex digits.
    Hex,
    /// A `\u` escape of a surrogate without its other half.
    Surrogate,
    /// Bytes that are not UTF-8 inside a string.
    Utf8,
    /// A number too large for a float.
    Range,
    /// Deeper than `max_depth`.
    Depth(usize),
    /// The sink had no room (the Lua stack is full).
    Room,
}

/// Format the error as lem.json returns it: 1-based position (as
/// `string.sub` counts), and what was found there.
pub(crate) fn message(e: &Error, text: &[u8]) -> String {
    let at = e.offset + 1;
    let found = match text.get(e.offset) {
        None => "the end".to_owned(),
        Some(&b) if b.is_ascii_graphic() => format!("'{}'", b as char),
        Some(&b) => format!("byte 0x{b:02x}"),
    };
    match e.what {
        Fault::Expected(what) => format!("expected {what} at byte {at}, found {found}"),
        Fault::Control => format!("control character {found} in a string at byte {at}"),
        Fault::Escape => format!("invalid escape at byte {at}"),
        Fault::Hex => format!("invalid \\u escape at byte {at}"),
        Fault::Surrogate => format!("lone surrogate in a \\u escape at byte {at}"),
        Fault::Utf8 => format!("invalid UTF-8 at byte {at}"),
        Fault::Range => format!("number out of range at byte {at}"),
        Fault::Depth(max) => format!("nested deeper than max_depth ({max}) at byte {at}"),
        Fault::Room => format!("nested too deeply for the Lua stack at byte {at}"),
    }
}

/// An open array (`Some(count so far)`) or object (`None`).
type Frame = Option<usize>;

/// Bytes that end the plain run of a string: `"`, `\`, controls, and
/// anything not ASCII (which must be checked as UTF-8).
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i < 0x20 || i == b'"' as usize || i == b'\\' as usize || i >= 0x80;
        i += 1;
    }
    t
};

struct Parser<'a, S> {
    s: &'a [u8],
    pos: usize,
    sink: &'a mut S,
    scratch: &'a mut Vec<u8>,
}

/// Decode `s` whole into `sink`: Ok when one value (and only white space
/// around it) was read.
pub(crate) fn decode<S: Sink>(
    s: &[u8],
    sink: &mut S,
    max_depth: usize,
    frames: &mut Vec<Frame>,
    scratch: &mut Vec<u8>,
) -> Result<(), Error> {
    frames.clear();
    let mut p = Parser {
        s,
        pos: 0,
        sink,
        scratch,
    };
    'value: loop {
        // A value.
        p.ws();
        let Some(&b) = p.s.get(p.pos) else {
            return Err(p.err(Fault::Expected("a value")));
        };
        match b {
            b'"' => p.string(false)?,
            b'{' | b'[' => {
                let array = b == b'[';
                if frames.len() >= max_depth {
                    return Err(p.err(Fault::Depth(max_depth)));
                }
                if !p.sink.begin(array) {
                    return Err(p.err(Fault::Room));
                }
                p.pos += 1;
                p.ws();
                let close = if array { b']' } else { b'}' };
                if p.s.get(p.pos) == Some(&close) {
                    p.pos += 1;
                    p.sink.end(array, true);
                } else if array {
                    frames.push(Some(0));
                    continue 'value;
                } else {
                    frames.push(None);
                    p.key()?;
                    continue 'value;
                }
            }
            b't' => p.literal(b"true", |k| k.boolean(true))?,
            b'f' => p.literal(b"false", |k| k.boolean(false))?,
            b'n' => p.literal(b"null", |k| k.null())?,
            b'-' | b'0'..=b'9' => p.number()?,
            _ => return Err(p.err(Fault::Expected("a value"))),
        }
        // A value was read: it goes into the open array or object, which
        // may be complete then, and so on up.
        loop {
            let Some(top) = frames.last_mut() else {
                p.ws();
                if p.pos < p.s.len() {
                    return Err(p.err(Fault::Expected("the end")));
                }
                return Ok(());
            };
            match top {
                Some(n) => {
                    *n += 1;
                    p.sink.element(*n);
                    p.ws();
                    match p.s.get(p.pos) {
                        Some(b',') => {
                            p.pos += 1;
                            continue 'value;
                        }
                        Some(b']') => {
                            p.pos += 1;
                            frames.pop();
                            p.sink.end(true, false);
                        }
                        _ => return Err(p.err(Fault::Expected("',' or ']'"))),
                    }
                }
                None => {
                    p.sink.member();
                    p.ws();
                    match p.s.get(p.pos) {
                        Some(b',') => {
                            p.pos += 1;
                            p.key()?;
                            continue 'value;
                        }
                        Some(b'}') => {
                            p.pos += 1;
                            frames.pop();
                            p.sink.end(false, false);
                        }
                        _ => return Err(p.err(Fault::Expected("',' or '}'"))),
                    }
                }
            }
        }
    }
}

impl<S: Sink> Parser<'_, S> {
    fn err(&self, what: Fault) -> Error {
        Error {
            offset: self.pos,
            what,
        }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    /// An object's key and its colon.
    fn key(&mut self) -> Result<(), Error> {
        self.ws();
        if self.s.get(self.pos) != Some(&b'"') {
            return Err(self.err(Fault::Expected("a string key")));
        }
        self.string(true)?;
        self.ws();
        if self.s.get(self.pos) != Some(&b':') {
            return Err(self.err(Fault::Expected("':'")));
        }
        self.pos += 1;
        Ok(())
    }

    fn literal(&mut self, word: &[u8], f: impl FnOnce(&mut S)) -> Result<(), Error> {
        if self.s[self.pos..].starts_with(word) {
            self.pos += word.len();
            f(self.sink);
            Ok(())
        } else {
            // Point at the first byte that differs.
            let same = self.s[self.pos..]
                .iter()
                .zip(word)
                .take_while(|(a, b)| a == b)
                .count();
            let e = if same == 0 { "a value" } else { "a literal" };
            self.pos += same;
            Err(self.err(Fault::Expected(e)))
        }
    }

    /// A string starting at the quote under `pos`, pushed to the sink.
    fn string(&mut self, _key: bool) -> Result<(), Error> {
        let start = self.pos + 1;
        let mut i = start;
        let mut ascii = true;
        let s = self.s;
        // The plain run: no escapes, pushed from the input itself.
        loop {
            // Eight bytes at a time while none of them is special.
            while let Some(chunk) = s.get(i..i + 8) {
                let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
                if has_special(w) {
                    break;
                }
                i += 8;
            }
            match s.get(i) {
                None => {
                    self.pos = i;
                    return Err(self.err(Fault::Expected("'\"'")));
                }
                Some(&b) if !SPECIAL[b as usize] => i += 1,
                Some(b'"') => {
                    if !ascii {
                        self.utf8(start, i)?;
                    }
                    self.sink.string(&s[start..i]);
                    self.pos = i + 1;
                    return Ok(());
                }
                Some(b'\\') => break,
                Some(&b) if b >= 0x80 => {
                    ascii = false;
                    i += 1;
                }
                Some(_) => {
                    self.pos = i;
                    return Err(self.err(Fault::Control));
                }
            }
        }
        // Escapes: the string is built in the scratch buffer.
        let mut buf = std::mem::take(self.scratch);
        buf.clear();
        buf.extend_from_slice(&s[start..i]);
        let r = self.escaped(start, i, ascii, &mut buf);
        // Back in the caller's buffer before the sink may raise (a Lua
        // memory error), so nothing the frame owns is lost.
        *self.scratch = buf;
        if r.is_ok() {
            self.sink.string(self.scratch);
        }
        r
    }

    /// The rest of a string from the backslash at `i`, into `buf`.
    fn escaped(
        &mut self,
        start: usize,
        mut i: usize,
        mut ascii: bool,
        buf: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let s = self.s;
        let mut run = i;
        loop {
            match s.get(i) {
                None => {
                    self.pos = i;
                    return Err(self.err(Fault::Expected("'\"'")));
                }
                Some(&b) if !SPECIAL[b as usize] => i += 1,
                Some(b'"') => {
                    buf.extend_from_slice(&s[run..i]);
                    if !ascii {
                        self.utf8(start, i)?;
                    }
                    self.pos = i + 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    buf.extend_from_slice(&s[run..i]);
                    let c = match s.get(i + 1) {
                        Some(b'"') => b'"',
                        Some(b'\\') => b'\\',
                        Some(b'/') => b'/',
                        Some(b'b') => 8,
                        Some(b'f') => 12,
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b't') => b'\t',
                        Some(b'u') => {
                            i = self.unicode(i, buf)?;
                            run = i;
                            continue;
                        }
                        _ => {
                            self.pos = i;
                            return Err(self.err(Fault::Escape));
                        }
                    };
                    buf.push(c);
                    i += 2;
                    run = i;
                }
                Some(&b) if b >= 0x80 => {
                    ascii = false;
                    i += 1;
                }
                Some(_) => {
                    self.pos = i;
                    return Err(self.err(Fault::Control));
                }
            }
        }
    }

    /// The `\uXXXX` escape (and its low surrogate) at `i`, as UTF-8 into
    /// `buf`; the offset after it.
    fn unicode(&mut self, i: usize, buf: &mut Vec<u8>) -> Result<usize, Error> {
        let hi = self.hex(i)?;
        let (c, next) = match hi {
            0xd800..=0xdbff => {
                if self.s.get(i + 6) != Some(&b'\\') || self.s.get(i + 7) != Some(&b'u') {
                    self.pos = i;
                    return Err(self.err(Fault::Surrogate));
                }
                let lo = self.hex(i + 6)?;
                if !(0xdc00..=0xdfff).contains(&lo) {
                    self.pos = i;
                    return Err(self.err(Fault::Surrogate));
                }
                (0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00), i + 12)
            }
            0xdc00..=0xdfff => {
                self.pos = i;
                return Err(self.err(Fault::Surrogate));
            }
            c => (c, i + 6),
        };
        // Not a surrogate, at most 0x10ffff: a char.
        let c = char::from_u32(c).unwrap_or('\u{fffd}');
        let mut tmp = [0u8; 4];
        buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        Ok(next)
    }

    /// The four hex digits after the `\u` at `i`.
    fn hex(&mut self, i: usize) -> Result<u32, Error> {
        let mut v = 0u32;
        for k in 0..4 {
            let d = match self.s.get(i + 2 + k) {
                Some(&b) => (b as char).to_digit(16),
                None => None,
            };
            match d {
                Some(d) => v = v << 4 | d,
                None => {
                    self.pos = i;
                    return Err(self.err(Fault::Hex));
                }
            }
        }
        Ok(v)
    }

    /// Check `s[start..end]` is UTF-8.
    fn utf8(&mut self, start: usize, end: usize) -> Result<(), Error> {
        match std::str::from_utf8(&self.s[start..end]) {
            Ok(_) => Ok(()),
            Err(e) => {
                self.pos = start + e.valid_up_to();
                Err(self.err(Fault::Utf8))
            }
        }
    }

    /// Past the digits (one at least) from `i`, else the fault at `i`.
    fn digits(&mut self, mut i: usize) -> Result<usize, Error> {
        if !matches!(self.s.get(i), Some(b'0'..=b'9')) {
            self.pos = i;
            return Err(self.err(Fault::Expected("a digit")));
        }
        while let Some(b'0'..=b'9') = self.s.get(i) {
            i += 1;
        }
        Ok(i)
    }

    /// A number: an integer when it has neither fraction nor exponent and
    /// fits in 64 bits (Lua 5.4's rule for numerals), else a float.
    fn number(&mut self) -> Result<(), Error> {
        let s = self.s;
        let start = self.pos;
        let mut i = start;
        let neg = s[i] == b'-';
        if neg {
            i += 1;
        }
        let digits = i;
        match s.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = s.get(i) {
                    i += 1;
                }
            }
            _ => {
                self.pos = i;
                return Err(self.err(Fault::Expected("a digit")));
            }
        }
        let int_end = i;
        let mut float = false;
        if s.get(i) == Some(&b'.') {
            i += 1;
            i = self.digits(i)?;
            float = true;
        }
        if let Some(b'e' | b'E') = s.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = s.get(i) {
                i += 1;
            }
            i = self.digits(i)?;
            float = true;
        }
        self.pos = i;
        if !float && int_end - digits <= 19 {
            // At most 19 digits: fits in u64; then the sign's range.
            let mut v: u64 = 0;
            for &d in &s[digits..int_end] {
                v = v * 10 + (d - b'0') as u64;
            }
            let n = if neg {
                (v <= 1 << 63).then(|| (v as i64).wrapping_neg())
            } else {
                i64::try_from(v).ok()
            };
            if let Some(n) = n {
                self.sink.integer(n);
                return Ok(());
            }
        }
        // The numeral is ASCII; Rust's parser rounds correctly.
        let text = std::str::from_utf8(&s[start..i]).unwrap_or("0");
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => {
                self.sink.float(f);
                Ok(())
            }
            _ => {
                self.pos = start;
                Err(self.err(Fault::Range))
            }
        }
    }
}

/// Whether any of the eight bytes of `w` is `"`, `\`, below 0x20 or above
/// 0x7f (the classic SWAR tests for a zero byte and a byte below n).
#[inline]
fn has_special(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = w ^ (ONES * b'"' as u64);
    let slash = w ^ (ONES * b'\\' as u64);
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (zero(quote) | zero(slash) | below | (w & HIGH)) != 0
}

#[cfg(test)]
mod tests {
    use super::super::tree::Value;
    use super::*;

    fn dec(s: impl AsRef<[u8]>) -> Result<Value, String> {
        let s = s.as_ref();
        super::super::tree::parse(s, 1000).map_err(|e| message(&e, s))
    }

    #[test]
    fn values() {
        use super::super::tree::Value::*;
        assert_eq!(dec("1"), Ok(Int(1)));
        assert_eq!(dec(" -0 "), Ok(Int(0)));
        assert_eq!(dec("9007199254740993"), Ok(Int(9007199254740993)));
        assert_eq!(dec("9223372036854775807"), Ok(Int(i64::MAX)));
        assert_eq!(dec("-9223372036854775808"), Ok(Int(i64::MIN)));
        assert_eq!(dec("9223372036854775808"), Ok(Float(9223372036854775808.0)));
        assert_eq!(
            dec("123456789012345678901234"),
            Ok(Float(1.2345678901234568e23))
        );
        assert_eq!(dec("2.0"), Ok(Float(2.0)));
        assert_eq!(dec("1e2"), Ok(Float(100.0)));
        assert_eq!(dec("-1.5E-3"), Ok(Float(-0.0015)));
        assert_eq!(dec("true"), Ok(Bool(true)));
        assert_eq!(dec("null"), Ok(Null));
        assert_eq!(dec(r#""a\u00e9\ud83d\ude00\n""#), Ok(Str("aé😀\n".into())));
        assert_eq!(dec("[]"), Ok(Array(vec![])));
        assert_eq!(
            dec(r#"{"a":[1,{"b":null}]}"#),
            Ok(Object(vec![(
                b"a".to_vec(),
                Array(vec![Int(1), Object(vec![(b"b".to_vec(), Null)])])
            )]))
        );
    }

    #[test]
    fn errors() {
        let e = |s: &str| dec(s).unwrap_err();
        assert_eq!(dec(b"\"ab\xff\"").unwrap_err(), "invalid UTF-8 at byte 4");
        assert_eq!(e(""), "expected a value at byte 1, found the end");
        assert_eq!(e("[1,]"), "expected a value at byte 4, found ']'");
        assert_eq!(e("{\"a\" 1}"), "expected ':' at byte 6, found '1'");
        assert_eq!(e("[1 2]"), "expected ',' or ']' at byte 4, found '2'");
        assert_eq!(e("01"), "expected the end at byte 2, found '1'");
        assert_eq!(e("1."), "expected a digit at byte 3, found the end");
        assert_eq!(e("tru"), "expected a literal at byte 4, found the end");
        assert_eq!(e("1e400"), "number out of range at byte 1");
        assert_eq!(e("\"\\ud800\""), "lone surrogate in a \\u escape at byte 2");
        assert_eq!(e("\"\\udc00\""), "lone surrogate in a \\u escape at byte 2");
        assert_eq!(e("\"\\x\""), "invalid escape at byte 2");
        assert_eq!(e("\"\\u12\""), "invalid \\u escape at byte 2");
        assert_eq!(
            e("\"a\tb\""),
            "control character byte 0x09 in a string at byte 3"
        );
        assert_eq!(e("\"abc"), "expected '\"' at byte 5, found the end");
        assert_eq!(e("{1:2}"), "expected a string key at byte 2, found '1'");
        assert_eq!(e("[1] x"), "expected the end at byte 5, found 'x'");
        let deep = "[".repeat(1001);
        assert_eq!(
            dec(&deep).unwrap_err(),
            "nested deeper than max_depth (1000) at byte 1001"
        );
    }

    #[test]
    fn swar() {
        for b in 0..=255u8 {
            let mut w = [b'a'; 8];
            w[5] = b;
            assert_eq!(
                has_special(u64::from_le_bytes(w)),
                SPECIAL[b as usize],
                "{b}"
            );
        }
    }
}
