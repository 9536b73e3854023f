//! Writers of the Avro binary encoding, appending to a `Vec<u8>`.

use indexmap::IndexMap;

use crate::Error;

/// A zig-zag varint `long`.
#[inline]
pub fn long(buf: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// A zig-zag varint `int`.
#[inline]
pub fn int(buf: &mut Vec<u8>, v: i32) {
    long(buf, i64::from(v));
}

/// A `boolean`.
#[inline]
pub fn boolean(buf: &mut Vec<u8>, v: bool) {
    buf.push(u8::from(v));
}

/// A `float`.
#[inline]
pub fn float(buf: &mut Vec<u8>, v: f32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A `double`.
#[inline]
pub fn double(buf: &mut Vec<u8>, v: f64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// `bytes`: length then content.
#[inline]
pub fn bytes(buf: &mut Vec<u8>, v: &[u8]) {
    long(buf, v.len() as i64);
    buf.extend_from_slice(v);
}

/// A `string`: length then UTF-8.
#[inline]
pub fn string(buf: &mut Vec<u8>, v: &str) {
    bytes(buf, v.as_bytes());
}

/// A `uuid` on string: the lowercase hyphenated text, without allocating.
#[inline]
pub fn uuid(buf: &mut Vec<u8>, v: &uuid::Uuid) {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = v.hyphenated().encode_lower(&mut text);
    string(buf, s);
}

/// A `fixed`: the bytes alone.
#[inline]
pub fn fixed(buf: &mut Vec<u8>, v: &[u8]) {
    buf.extend_from_slice(v);
}

/// An array as one block followed by the end marker (an empty array is just the end marker).
#[inline]
pub fn array<T>(
    buf: &mut Vec<u8>,
    items: &[T],
    mut item: impl FnMut(&mut Vec<u8>, &T) -> Result<(), Error>,
) -> Result<(), Error> {
    if !items.is_empty() {
        long(buf, items.len() as i64);
        for x in items {
            item(buf, x)?;
        }
    }
    buf.push(0);
    Ok(())
}

/// A map as one block in iteration order followed by the end marker.
#[inline]
pub fn map<T>(
    buf: &mut Vec<u8>,
    entries: &IndexMap<String, T>,
    mut value: impl FnMut(&mut Vec<u8>, &T) -> Result<(), Error>,
) -> Result<(), Error> {
    if !entries.is_empty() {
        long(buf, entries.len() as i64);
        for (k, v) in entries {
            string(buf, k);
            value(buf, v)?;
        }
    }
    buf.push(0);
    Ok(())
}

/// A union branch index.
#[inline]
pub fn union_index(buf: &mut Vec<u8>, index: usize) {
    long(buf, index as i64);
}

/// An enum ordinal.
#[inline]
pub fn enum_index(buf: &mut Vec<u8>, index: usize) {
    long(buf, index as i64);
}
