//! The walk without a tree: reads one value of a writer schema from a bounded [`Reader`] and writes its JSON
//! text straight into a buffer. The text is exactly what serializing [`super::decode`]'s value gives (the same
//! reads in the same order, so the same errors too), without allocating the tree.
//!
//! The one case a stream cannot write is a map with a repeated key, whose tree keeps the last value at the
//! first key's place: the walk stops with [`Stop::RepeatedKey`] and the caller writes the tree instead.

use std::collections::HashSet;

use serde_json::Value;

use super::base64::write_base64;
use super::logical;
use crate::Error;
use crate::binary::Reader;
use crate::schema::{NamedKind, Schema, SchemaKind, SchemaSet};

/// Why the walk stopped before the end of the value.
#[derive(Debug)]
pub(super) enum Stop {
    /// The datum is malformed (the error the tree walk gives too).
    Avro(Error),
    /// A map repeats a key: only the tree walk writes it as the tree does.
    RepeatedKey,
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Avro(e)
    }
}

/// A map's keys are checked for repeats by a linear scan up to this many, then by a hash set.
const LINEAR_KEYS: usize = 16;

/// Appends `s` as a JSON string (quoted, escaped exactly as `serde_json` escapes).
#[inline]
pub(super) fn string(out: &mut Vec<u8>, s: &str) {
    let _ = escaped(out, s.as_bytes(), true);
}

/// Bytes of each lane of a word.
const LANES: u64 = 0x0101_0101_0101_0101;
/// The high bit of each lane.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `w` is a control character, `"` or `\` (the bytes JSON escapes). Exact: the usual
/// "has a byte less than n" and "has a zero byte" tests, on the word and on it xor'ed with the quote and
/// the backslash.
#[inline]
fn needs_escape(w: u64) -> bool {
    let control = w.wrapping_sub(LANES * 0x20) & !w & HIGH;
    let q = w ^ (LANES * u64::from(b'"'));
    let quote = q.wrapping_sub(LANES) & !q & HIGH;
    let b = w ^ (LANES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(LANES) & !b & HIGH;
    control | quote | backslash != 0
}

/// The bytes JSON escapes: control characters, `"` and `\\`.
const ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Appends `b` as a quoted, escaped JSON string, eight bytes at a time where nothing needs escaping.
/// Unless `valid` says the bytes are UTF-8 already, they are checked (only if a byte is not ASCII, so an
/// ASCII string costs no separate pass); `Err` when they are not UTF-8, with `out` partly written.
fn escaped(out: &mut Vec<u8>, b: &[u8], mut valid: bool) -> Result<(), std::str::Utf8Error> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        {
            // Eight bytes at a time; the last few padded with spaces, which need no escaping.
            let step = (b.len() - i).min(8);
            let mut lanes = [b' '; 8];
            match b.get(i..i + 8) {
                // A constant-length copy: one load, not a call to `memcpy`.
                Some(word) => lanes.copy_from_slice(word),
                None => lanes[..step].copy_from_slice(&b[i..]),
            }
            let w = u64::from_le_bytes(lanes);
            if !valid && w & HIGH != 0 {
                std::str::from_utf8(b)?;
                valid = true;
            }
            if !needs_escape(w) {
                i += step;
                continue;
            }
        }
        let c = b[i];
        if c >= 0x80 && !valid {
            std::str::from_utf8(b)?;
            valid = true;
        }
        if !ESCAPED[usize::from(c)] {
            i += 1;
            continue;
        }
        let short: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&b[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(c >> 4)]);
            out.push(HEX[usize::from(c & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
    Ok(())
}

/// Appends a JSON value (for the rare nodes built as values: logical types, repeated-key maps).
fn tree(out: &mut Vec<u8>, v: &Value) {
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Appends `bytes` as a quoted base64 string.
fn base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    write_base64(out, bytes);
    out.push(b'"');
}

fn int(out: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// What writing JSON needs of a schema set, as text made once: per named type, each record field's key with
/// its punctuation (`{"a":`, then `,"b":`) or each enum symbol as a JSON string.
#[derive(Debug, Clone)]
pub struct JsonKeys {
    by_named: Vec<Vec<Box<[u8]>>>,
}

impl JsonKeys {
    /// The keys and symbols of every named type of `set`.
    pub fn new(set: &SchemaSet) -> JsonKeys {
        let by_named = set
            .named_types()
            .map(|(_, t)| match &t.kind {
                NamedKind::Record { fields } => fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let mut key = vec![if i == 0 { b'{' } else { b',' }];
                        string(&mut key, &f.name);
                        key.push(b':');
                        key.into_boxed_slice()
                    })
                    .collect(),
                NamedKind::Enum { symbols, .. } => symbols
                    .iter()
                    .map(|s| {
                        let mut text = Vec::new();
                        string(&mut text, s);
                        text.into_boxed_slice()
                    })
                    .collect(),
                NamedKind::Fixed { .. } => Vec::new(),
            })
            .collect();
        JsonKeys { by_named }
    }

    fn of(&self, id: crate::schema::NamedId) -> &[Box<[u8]>] {
        self.by_named.get(id.index()).map_or(&[], Vec::as_slice)
    }
}

/// Writes one value of `schema` (a node of `set`, whose `keys` these are).
pub(super) fn value(
    set: &SchemaSet,
    keys: &JsonKeys,
    schema: &Schema,
    r: &mut Reader<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Stop> {
    match &schema.kind {
        SchemaKind::Null => out.extend_from_slice(b"null"),
        SchemaKind::Boolean => out.extend_from_slice(if r.boolean()? { b"true" } else { b"false" }),
        SchemaKind::Int => {
            let v = r.int()?;
            match schema.logical {
                None => int(out, i64::from(v)),
                logical => tree(out, &logical::int(logical, v)),
            }
        }
        SchemaKind::Long => {
            let v = r.long()?;
            match schema.logical {
                None => int(out, v),
                logical => logical::write_long(out, logical, v),
            }
        }
        SchemaKind::Float => tree(out, &super::decode::float(r.float()?)),
        SchemaKind::Double => tree(out, &super::decode::double(r.double()?)),
        SchemaKind::Bytes => {
            let b = r.bytes()?;
            match schema.logical {
                None => base64(out, b),
                logical => tree(out, &logical::bytes(logical, b, false)),
            }
        }
        SchemaKind::String => {
            let bytes = r.bytes()?;
            if escaped(out, bytes, false).is_err() {
                // Where the string's bytes begin, as the tree walk's reader reports it.
                return Err(Stop::Avro(Error::InvalidUtf8 {
                    offset: r.position() - bytes.len(),
                }));
            }
        }
        SchemaKind::Array(items) => array(set, keys, items, r, out)?,
        SchemaKind::Map(values) => map(set, keys, values, r, out)?,
        SchemaKind::Union(branches) => {
            let i = r.union_index(branches.len())?;
            value(set, keys, &branches[i], r, out)?;
        }
        SchemaKind::Named(id) => {
            let t = set.named(*id);
            match &t.kind {
                NamedKind::Record { fields } => {
                    r.enter()?;
                    let names = keys.of(*id);
                    if fields.is_empty() || names.len() != fields.len() {
                        // No keys made for this set (or none needed): punctuation and names one by one.
                        out.push(b'{');
                        for (i, f) in fields.iter().enumerate() {
                            if i > 0 {
                                out.push(b',');
                            }
                            string(out, &f.name);
                            out.push(b':');
                            value(set, keys, &f.schema, r, out)?;
                        }
                    } else {
                        for (f, key) in fields.iter().zip(names) {
                            out.extend_from_slice(key);
                            value(set, keys, &f.schema, r, out)?;
                        }
                    }
                    out.push(b'}');
                    r.leave();
                }
                NamedKind::Enum { symbols, .. } => {
                    let i = r.enum_index(symbols.len())?;
                    match keys.of(*id).get(i) {
                        Some(text) if keys.of(*id).len() == symbols.len() => {
                            out.extend_from_slice(text)
                        }
                        _ => string(out, &symbols[i]),
                    }
                }
                NamedKind::Fixed { size } => {
                    let b = r.take(*size)?;
                    match t.logical {
                        None => base64(out, b),
                        logical => tree(out, &logical::bytes(logical, b, true)),
                    }
                }
            }
        }
    }
    Ok(())
}

fn array(
    set: &SchemaSet,
    keys: &JsonKeys,
    items: &Schema,
    r: &mut Reader<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Stop> {
    out.push(b'[');
    let mut first = true;
    super::skip::collection(r, |r| {
        if !first {
            out.push(b',');
        }
        first = false;
        value(set, keys, items, r, out)
    })?;
    out.push(b']');
    Ok(())
}

/// A map, keys in wire order; a repeated key stops the walk (see the module docs).
fn map(
    set: &SchemaSet,
    keys: &JsonKeys,
    values: &Schema,
    r: &mut Reader<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Stop> {
    r.enter()?;
    out.push(b'{');
    let mut names: Vec<&str> = Vec::new();
    let mut hashed: HashSet<&str> = HashSet::new();
    let mut seen = 0usize;
    loop {
        let n = r.block_count(seen)?;
        if n == 0 {
            break;
        }
        seen += n;
        for _ in 0..n {
            let k = r.str()?;
            let repeated = if hashed.is_empty() && names.len() < LINEAR_KEYS {
                let found = names.contains(&k);
                names.push(k);
                found
            } else {
                if hashed.is_empty() {
                    hashed.extend(names.drain(..));
                }
                !hashed.insert(k)
            };
            if repeated {
                return Err(Stop::RepeatedKey);
            }
            if names.len() + hashed.len() > 1 {
                out.push(b',');
            }
            string(out, k);
            out.push(b':');
            value(set, keys, values, r, out)?;
        }
    }
    out.push(b'}');
    r.leave();
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    fn escaped_text(s: &str) -> String {
        let mut out = Vec::new();
        super::string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_byte_that_json_escapes() {
        for c in (0u8..0x80).map(char::from) {
            for s in [
                c.to_string(),
                format!("abcdefg{c}hijklmnop"),
                format!("{c}{c}{c}{c}{c}{c}{c}{c}{c}"),
            ] {
                assert_eq!(
                    escaped_text(&s),
                    serde_json::to_string(&s).unwrap(),
                    "{s:?}"
                );
            }
        }
    }

    #[test]
    fn invalid_utf8_is_refused_wherever_it_is() {
        for bad in [
            &b"\xff"[..],
            b"abcdefgh\xc3",
            b"\xe2\x82abcdefghij",
            b"0123456789abcde\x80",
        ] {
            assert!(
                super::escaped(&mut Vec::new(), bad, false).is_err(),
                "{bad:?}"
            );
        }
        assert!(super::escaped(&mut Vec::new(), "héllo wörld, ünïcode".as_bytes(), false).is_ok());
    }

    proptest! {
        #[test]
        fn strings_escape_as_serde_json_escapes(s in "(\\PC|[\\x00-\\x1f\"\\\\\\x7f])*") {
            prop_assert_eq!(escaped_text(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn bytes_are_refused_exactly_when_they_are_not_utf8(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut out = Vec::new();
            let ours = super::escaped(&mut out, &b, false);
            match std::str::from_utf8(&b) {
                Ok(s) => {
                    prop_assert!(ours.is_ok());
                    prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap());
                }
                Err(_) => prop_assert!(ours.is_err()),
            }
        }
    }
}
