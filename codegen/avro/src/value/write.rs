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

/// Non-zero when a byte of `w` is a control character, `"` or `\` (the bytes JSON escapes). Exact as to
/// whether one is: the usual "has a byte less than n" and "has a zero byte" tests, on the word and on it
/// xor'ed with the quote and the backslash.
#[inline]
fn escape_bits(w: u64) -> u64 {
    let control = w.wrapping_sub(LANES * 0x20) & !w & HIGH;
    let q = w ^ (LANES * u64::from(b'"'));
    let quote = q.wrapping_sub(LANES) & !q & HIGH;
    let b = w ^ (LANES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(LANES) & !b & HIGH;
    control | quote | backslash
}

/// The bytes JSON escapes: control characters, `"` and `\`.
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

/// `0xff` in each byte of a 16-byte block that JSON escapes (a control character, `"` or `\`), `0`
/// elsewhere: written lane by lane, which the compiler turns into a few vector compares.
#[inline(always)]
fn block_flags(block: &[u8; 16]) -> u128 {
    let mut flags = [0u8; 16];
    for (f, &c) in flags.iter_mut().zip(block) {
        *f = u8::from((c < 0x20) | (c == b'"') | (c == b'\\')).wrapping_neg();
    }
    u128::from_le_bytes(flags)
}

/// The length of the longest prefix of `b` with no byte that JSON escapes (a control character, `"` or `\`):
/// sixteen bytes at a time. For scanners of JSON text, where the run ends at the closing quote (always
/// inlined: a call per string cost more than the scan of most).
#[inline(always)]
pub fn plain_run(b: &[u8]) -> usize {
    let mut i = 0;
    while let Some(block) = b.get(i..).and_then(<[u8]>::first_chunk::<16>) {
        let flags = block_flags(block);
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 16;
    }
    if let Some(word) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let bits = escape_bits(u64::from_le_bytes(*word));
        if bits != 0 {
            // The lowest flagged byte is a true one: the tests' false positives lie only above a true one.
            return i + (bits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + b[i..]
        .iter()
        .take_while(|&&c| !ESCAPED[usize::from(c)])
        .count()
}

/// Whether `b` has a byte JSON escapes, and whether it has a byte that is not ASCII: eight bytes at a time,
/// the last word overlapping the one before it (so no byte is copied into a padded word). Eight, not
/// sixteen: most strings in events are short (ids, names), and the wider blocks cost more to set up than
/// they save on them.
#[inline]
fn scan(b: &[u8]) -> (bool, bool) {
    let Some(last) = b.last_chunk::<8>() else {
        let (mut escape, mut high) = (false, 0u8);
        for &c in b {
            escape |= ESCAPED[usize::from(c)];
            high |= c;
        }
        return (escape, high >= 0x80);
    };
    let (mut escape, mut high) = (0u64, 0u64);
    let words = b.chunks_exact(8);
    let ragged = !words.remainder().is_empty();
    for word in words {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(word);
        let w = u64::from_le_bytes(lanes);
        escape |= escape_bits(w);
        high |= w;
    }
    if ragged {
        let w = u64::from_le_bytes(*last);
        escape |= escape_bits(w);
        high |= w;
    }
    (escape != 0, high & HIGH != 0)
}

/// Appends `b` as a quoted, escaped JSON string. Unless `valid` says the bytes are UTF-8 already, they are
/// checked (only if a byte is not ASCII); `Err` when they are not UTF-8, with `out` untouched. One scan finds
/// whether anything needs escaping; most strings need nothing and are copied whole.
fn escaped(out: &mut Vec<u8>, b: &[u8], valid: bool) -> Result<(), std::str::Utf8Error> {
    escaped_in(out, b, b, valid)
}

/// [`escaped`] for bytes that begin `from` (the datum from the string on): a short string is copied as a
/// fixed-size chunk of `from` and the excess cut off again, which is cheaper than a call to `memcpy`.
#[inline]
fn escaped_in(
    out: &mut Vec<u8>,
    b: &[u8],
    from: &[u8],
    valid: bool,
) -> Result<(), std::str::Utf8Error> {
    let (escape, high) = scan(b);
    if high && !valid {
        std::str::from_utf8(b)?;
    }
    out.reserve(b.len() + 2);
    out.push(b'"');
    if escape {
        escape_into(out, b);
    } else {
        append_from(out, b.len(), from);
    }
    out.push(b'"');
    Ok(())
}

/// Appends the first `n` bytes of `from` (`n` at most its length): as one fixed-size copy of 16, 32 or 64
/// bytes when `from` has that many (then cut back to `n`), else by `memcpy`. For the short runs JSON writers
/// copy by the dozen per record, where a call to `memcpy` costs more than the copy (so always inlined).
#[inline(always)]
pub fn append_from(out: &mut Vec<u8>, n: usize, from: &[u8]) {
    let at = out.len();
    match n {
        0..=16 if from.len() >= 16 => {
            if let Some(chunk) = from.first_chunk::<16>() {
                out.extend_from_slice(chunk);
            }
        }
        17..=32 if from.len() >= 32 => {
            if let Some(chunk) = from.first_chunk::<32>() {
                out.extend_from_slice(chunk);
            }
        }
        33..=64 if from.len() >= 64 => {
            if let Some(chunk) = from.first_chunk::<64>() {
                out.extend_from_slice(chunk);
            }
        }
        _ => {
            out.extend_from_slice(&from[..n]);
            return;
        }
    }
    out.truncate(at + n);
}

/// Text appended often (a field's key with its punctuation, an enum symbol), kept padded to [`Piece::WIDTH`]
/// bytes when it fits, so that appending it is one fixed-size copy.
#[derive(Debug, Clone)]
pub(super) struct Piece {
    padded: Box<[u8]>,
    len: usize,
}

impl Piece {
    const WIDTH: usize = 64;

    pub(super) fn new(text: &[u8]) -> Piece {
        let mut padded = text.to_vec();
        padded.resize(text.len().max(Piece::WIDTH), b' ');
        Piece {
            padded: padded.into_boxed_slice(),
            len: text.len(),
        }
    }

    #[inline]
    pub(super) fn append(&self, out: &mut Vec<u8>) {
        append_from(out, self.len, &self.padded);
    }
}

/// Appends `b` (UTF-8) escaped as `serde_json` escapes, byte by byte: runs that need nothing are copied.
pub(super) fn escape_into(out: &mut Vec<u8>, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if !ESCAPED[usize::from(c)] {
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        let short: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => b"",
        };
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(c >> 4)]);
            out.push(HEX[usize::from(c & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

/// Appends a JSON value (for the rare nodes built as values: logical types, repeated-key maps).
fn tree(out: &mut Vec<u8>, v: &Value) {
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Appends `bytes` as a quoted base64 string.
pub(super) fn base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    write_base64(out, bytes);
    out.push(b'"');
}

/// A `string` read from `r`, checked and escaped.
#[inline]
pub(super) fn string_at(r: &mut Reader<'_>, out: &mut Vec<u8>) -> Result<(), Stop> {
    let (bytes, from) = r.bytes_and_rest()?;
    if escaped_in(out, bytes, from, false).is_err() {
        // Where the string's bytes begin, as the tree walk's reader reports it.
        return Err(Stop::Avro(Error::InvalidUtf8 {
            offset: r.position() - bytes.len(),
        }));
    }
    Ok(())
}

/// A `float` as the tree writes it (its shortest decimal, widened).
pub(super) fn float(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        finite(out, super::decode::widen(v));
    } else {
        tree(out, &super::decode::float(v));
    }
}

/// A `double` as the tree writes it.
pub(super) fn double(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        finite(out, v);
    } else {
        tree(out, &super::decode::double(v));
    }
}

/// A finite `f64` as `serde_json` writes it (shortest round-trip digits, by `zmij`, as `serde_json` does).
fn finite(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
}

pub(super) fn int(out: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// What writing JSON needs of a schema set, as text made once: per named type, each record field's key with
/// its punctuation (`{"a":`, then `,"b":`) or each enum symbol as a JSON string.
#[derive(Debug, Clone)]
pub struct JsonKeys {
    by_named: Vec<Vec<Piece>>,
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
                        Piece::new(&key)
                    })
                    .collect(),
                NamedKind::Enum { symbols, .. } => symbols
                    .iter()
                    .map(|s| {
                        let mut text = Vec::new();
                        string(&mut text, s);
                        Piece::new(&text)
                    })
                    .collect(),
                NamedKind::Fixed { .. } => Vec::new(),
            })
            .collect();
        JsonKeys { by_named }
    }

    fn of(&self, id: crate::schema::NamedId) -> &[Piece] {
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
        SchemaKind::Float => float(out, r.float()?),
        SchemaKind::Double => double(out, r.double()?),
        SchemaKind::Bytes => {
            let b = r.bytes()?;
            match schema.logical {
                None => base64(out, b),
                logical => tree(out, &logical::bytes(logical, b, false)),
            }
        }
        SchemaKind::String => string_at(r, out)?,
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
                            key.append(out);
                            value(set, keys, &f.schema, r, out)?;
                        }
                    }
                    out.push(b'}');
                    r.leave();
                }
                NamedKind::Enum { symbols, .. } => {
                    let i = r.enum_index(symbols.len())?;
                    match keys.of(*id).get(i) {
                        Some(text) if keys.of(*id).len() == symbols.len() => text.append(out),
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
        fn plain_runs_end_at_the_first_byte_json_escapes(b in proptest::collection::vec(prop_oneof![
            8 => 0x20u8..0x7f, 1 => any::<u8>()], 0..70)) {
            let expected = b.iter().position(|&c| c < 0x20 || c == b'"' || c == b'\\').unwrap_or(b.len());
            prop_assert_eq!(super::plain_run(&b), expected);
        }

        #[test]
        fn scans_find_every_byte_to_escape_and_every_high_byte(b in proptest::collection::vec(prop_oneof![
            8 => 0x20u8..0x7f, 1 => any::<u8>()], 0..70)) {
            let escape = b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
            let high = b.iter().any(|&c| c >= 0x80);
            prop_assert_eq!(super::scan(&b), (escape, high));
        }

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
