//! The walk without a tree: reads one value of a writer schema from a bounded [`Reader`] and writes its JSON
//! text straight into a buffer. The text is exactly what serializing [`super::decode`]'s value gives (the same
//! reads in the same order, so the same errors too), without allocating the tree.
//!
//! The one case a stream cannot write is a map with a repeated key, whose tree keeps the last value at the
//! first key's place: the walk stops with [`Stop::RepeatedKey`] and the caller writes the tree instead.

use std::collections::HashSet;

use serde_json::Value;

use super::base64::ALPHABET;
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

/// Appends `s` as a JSON string (quoted, escaped as `serde_json` escapes).
#[inline]
pub(super) fn string(out: &mut Vec<u8>, s: &str) {
    // Writing into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends a JSON value (for the rare nodes built as values: logical types, repeated-key maps).
fn tree(out: &mut Vec<u8>, v: &Value) {
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Appends `bytes` as a quoted base64 string.
fn base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len().div_ceil(3) * 4 + 2);
    out.push(b'"');
    let sym = |i: u32| ALPHABET[(i & 0x3f) as usize];
    for chunk in bytes.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { b'=' });
        out.push(if chunk.len() > 2 { sym(n) } else { b'=' });
    }
    out.push(b'"');
}

fn int(out: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// Writes one value of `schema` (a node of `set`).
pub(super) fn value(
    set: &SchemaSet,
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
        SchemaKind::String => string(out, r.str()?),
        SchemaKind::Array(items) => array(set, items, r, out)?,
        SchemaKind::Map(values) => map(set, values, r, out)?,
        SchemaKind::Union(branches) => {
            let i = r.union_index(branches.len())?;
            value(set, &branches[i], r, out)?;
        }
        SchemaKind::Named(id) => {
            let t = set.named(*id);
            match &t.kind {
                NamedKind::Record { fields } => {
                    r.enter()?;
                    out.push(b'{');
                    for (i, f) in fields.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        string(out, &f.name);
                        out.push(b':');
                        value(set, &f.schema, r, out)?;
                    }
                    out.push(b'}');
                    r.leave();
                }
                NamedKind::Enum { symbols, .. } => {
                    string(out, &symbols[r.enum_index(symbols.len())?]);
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
    items: &Schema,
    r: &mut Reader<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Stop> {
    r.enter()?;
    out.push(b'[');
    let mut seen = 0usize;
    loop {
        let block = r.position();
        let n = r.block_count(seen)?;
        if n == 0 {
            break;
        }
        let start = r.position();
        for i in 0..n {
            if seen > 0 {
                out.push(b',');
            }
            value(set, items, r, out)?;
            seen += 1;
            if i == 0 {
                r.block_items(block, start, n)?;
            }
        }
    }
    out.push(b']');
    r.leave();
    Ok(())
}

/// A map, keys in wire order; a repeated key stops the walk (see the module docs).
fn map(
    set: &SchemaSet,
    values: &Schema,
    r: &mut Reader<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Stop> {
    r.enter()?;
    out.push(b'{');
    let mut keys: Vec<&str> = Vec::new();
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
            let repeated = if hashed.is_empty() && keys.len() < LINEAR_KEYS {
                let found = keys.contains(&k);
                keys.push(k);
                found
            } else {
                if hashed.is_empty() {
                    hashed.extend(keys.drain(..));
                }
                !hashed.insert(k)
            };
            if repeated {
                return Err(Stop::RepeatedKey);
            }
            if keys.len() + hashed.len() > 1 {
                out.push(b',');
            }
            string(out, k);
            out.push(b':');
            value(set, values, r, out)?;
        }
    }
    out.push(b'}');
    r.leave();
    Ok(())
}
