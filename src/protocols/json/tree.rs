//! JSON as a Rust tree, for the unit tests and the fuzz target: the
//! decoder with a sink that builds [`Value`]s, and a writer that uses the
//! encoder's string and number writers, so a decoded text can be written
//! and decoded again.

use super::decode::{self, Sink};
use super::encode::{write_float, write_int, write_string};

/// A decoded value (objects keep their members in order, duplicates too).
#[derive(Debug, PartialEq, Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Vec<u8>),
    Array(Vec<Value>),
    Object(Vec<(Vec<u8>, Value)>),
}

/// A sink that builds the tree: a stack of values as the Lua stack is.
#[derive(Default)]
pub(crate) struct Tree {
    stack: Vec<Value>,
}

impl Sink for Tree {
    fn null(&mut self) {
        self.stack.push(Value::Null);
    }
    fn boolean(&mut self, b: bool) {
        self.stack.push(Value::Bool(b));
    }
    fn integer(&mut self, n: i64) {
        self.stack.push(Value::Int(n));
    }
    fn float(&mut self, f: f64) {
        self.stack.push(Value::Float(f));
    }
    fn string(&mut self, s: &[u8]) {
        self.stack.push(Value::Str(s.to_vec()));
    }
    fn begin(&mut self, array: bool) -> bool {
        self.stack.push(if array {
            Value::Array(Vec::new())
        } else {
            Value::Object(Vec::new())
        });
        true
    }
    fn element(&mut self, index: usize) {
        let v = self.stack.pop();
        if let (Some(Value::Array(a)), Some(v)) = (self.stack.last_mut(), v) {
            a.push(v);
            assert_eq!(a.len(), index);
        }
    }
    fn member(&mut self) {
        let v = self.stack.pop();
        let k = self.stack.pop();
        if let (Some(Value::Object(o)), Some(Value::Str(k)), Some(v)) =
            (self.stack.last_mut(), k, v)
        {
            o.push((k, v));
        }
    }
    fn end(&mut self, _array: bool, _empty: bool) {}
}

/// Decode `s` into a tree.
pub(crate) fn parse(s: &[u8], max_depth: usize) -> Result<Value, decode::Error> {
    let mut tree = Tree::default();
    decode::decode(s, &mut tree, max_depth, &mut Vec::new(), &mut Vec::new())?;
    assert_eq!(tree.stack.len(), 1);
    Ok(tree.stack.pop().unwrap_or(Value::Null))
}

/// Write `v` compactly.
pub(crate) fn write(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(n) => write_int(out, *n),
        Value::Float(f) => assert!(write_float(out, *f), "decoded a float that is not finite"),
        Value::Str(s) => write_string(out, s).expect("decoded a string that is not UTF-8"),
        Value::Array(a) => {
            out.push(b'[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, v);
            }
            out.push(b']');
        }
        Value::Object(o) => {
            out.push(b'{');
            for (i, (k, v)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, k).expect("decoded a key that is not UTF-8");
                out.push(b':');
                write(out, v);
            }
            out.push(b'}');
        }
    }
}

/// The fuzz entry point: decoding any bytes must not panic; an error's
/// offset lies within the input (or just past it); a text that decodes,
/// written again, decodes to the same tree.
pub fn fuzz_decode(data: &[u8]) {
    // A small depth limit too, from the first byte, so its error is reached.
    let max_depth = match data.first() {
        Some(b) if b & 1 == 1 => (*b as usize >> 1) + 1,
        _ => 1000,
    };
    match parse(data, max_depth) {
        Err(e) => {
            assert!(
                e.offset <= data.len(),
                "offset {} of {}",
                e.offset,
                data.len()
            );
            let _ = decode::message(&e, data);
        }
        Ok(v) => {
            let mut out = Vec::new();
            write(&mut out, &v);
            let again = parse(&out, max_depth).expect("written text decodes");
            // NaN cannot come out of the decoder, so == is exact.
            assert_eq!(
                again,
                v,
                "round trip of {:?}",
                String::from_utf8_lossy(&out)
            );
        }
    }
}
