//! Decoding an Avro datum into a generic, schema-agnostic JSON value, for sinks that write JSON (a JSON-lines
//! file, a document store) rather than generated types.
//!
//! The walk follows the writer schema with the bounded [`Reader`], so depth and item limits apply and malformed
//! input is an [`Error`], never a panic. Exactly one datum is read: trailing bytes are an error.
//!
//! # Representation
//!
//! | Avro | JSON |
//! |---|---|
//! | `null`, `boolean`, `string` | `null`, `true`/`false`, a string |
//! | `int`, `long` | a number (exact: `serde_json` keeps 64-bit integers) |
//! | `float`, `double` | a number; a `float` is written as the shortest decimal that reads back as the same `f32` (`0.93`, not `0.9300000071525574`); NaN and ±infinity, which JSON lacks, as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | `bytes`, `fixed` | a standard-alphabet, padded base64 string (lossless, compact, and what Kafka Connect's `JsonConverter` writes; Avro's own JSON encoding, one `\u00XX` code point per byte, is lossless too but twice as long and easily mistaken for text) |
//! | record | an object, fields in schema order |
//! | enum | the symbol |
//! | array, map | an array, an object (keys in wire order; a repeated key keeps its last value) |
//! | union | the value of the branch written, unwrapped (`null` for the null branch): the branch is not recorded |
//! | `uuid` | the UUID text (a `fixed(16)` is formatted lowercase and hyphenated) |
//! | `date` | `"YYYY-MM-DD"` |
//! | `time-millis`, `time-micros` | `"HH:MM:SS.fff"`, `"HH:MM:SS.ffffff"` |
//! | `timestamp-millis`/`-micros`/`-nanos` | RFC 3339 in UTC with the unit's digits: `"2025-10-09T08:53:20.123Z"`, `….123456Z`, `….123456789Z` |
//! | `local-timestamp-millis`/`-micros`/`-nanos` | `"YYYY-MM-DDTHH:MM:SS.fff"` (3, 6 or 9 digits), no zone |
//! | `decimal` | the exact decimal text, e.g. `"-123.45"` (a string: a JSON number would be read as a double) |
//! | `duration` | `{"months": m, "days": d, "millis": ms}` |
//!
//! A value its logical type cannot represent falls back to the underlying value instead of failing: a date,
//! time or timestamp out of range (or with a year outside 0000–9999, which RFC 3339 cannot write) becomes the
//! plain number, and a decimal with more significant bytes than its precision allows becomes base64.

mod base64;
mod decode;
mod logical;
mod plan;
mod skip;
mod wanted;
mod write;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use base64::encode_base64;
pub use plan::JsonPlan;
pub use skip::{collection, skip, skip_text_unchecked};
pub use wanted::{Part, Parts, Wanted, decode_parts};
pub use write::{JsonKeys, append_from, plain_run};

use crate::Error;
use crate::binary::{Limits, Reader};
use crate::resolve::Resolver;
use crate::schema::{Schema, SchemaSet};

/// Decodes exactly one datum written with `root` (a schema of `set`) into JSON, with the default [`Limits`].
pub fn decode_json(set: &SchemaSet, root: &Schema, datum: &[u8]) -> Result<Value, Error> {
    decode_json_with_limits(set, root, datum, Limits::default())
}

/// Appends the JSON text of exactly one datum written with `root` to `out`: the same text as serializing
/// [`decode_json`]'s value (compact), written straight from the datum without building the value. On an
/// error `out` is left as it was.
///
/// Makes the set's [`JsonKeys`] on every call: to write many datums, make them once and use
/// [`write_json_with_keys`].
pub fn write_json(
    set: &SchemaSet,
    root: &Schema,
    datum: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    write_json_planned(set, &JsonPlan::new(set, root), datum, out)
}

/// [`write_json`] by the program of the root made once ([`JsonPlan::new`] with `set` and that root): the
/// fastest way to write many datums of one writer schema.
pub fn write_json_planned(
    set: &SchemaSet,
    plan: &JsonPlan,
    datum: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let start = out.len();
    let mut r = Reader::with_limits(datum, Limits::default());
    let written = plan.write(set, &mut r, out).and_then(|()| Ok(r.finish()?));
    settle(set, plan.root(), datum, start, written, out)
}

/// [`write_json`] with the keys of `set` made once ([`JsonKeys::new`]).
pub fn write_json_with_keys(
    set: &SchemaSet,
    keys: &JsonKeys,
    root: &Schema,
    datum: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let start = out.len();
    let mut r = Reader::with_limits(datum, Limits::default());
    let walked = write::value(set, keys, root, &mut r, out).and_then(|()| Ok(r.finish()?));
    settle(set, root, datum, start, walked, out)
}

/// What a write that began at `start` of `out` comes to: on a malformed datum `out` as it was and the error;
/// on a map with a repeated key, which only the tree writes as the tree does, the tree's text instead.
fn settle(
    set: &SchemaSet,
    root: &Schema,
    datum: &[u8],
    start: usize,
    written: Result<(), write::Stop>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    match written {
        Ok(()) => Ok(()),
        Err(write::Stop::Avro(e)) => {
            out.truncate(start);
            Err(e)
        }
        Err(write::Stop::RepeatedKey) => {
            out.truncate(start);
            let v = decode_json(set, root, datum)?;
            // Writing into a `Vec` cannot fail.
            let _ = serde_json::to_writer(&mut *out, &v);
            Ok(())
        }
    }
}

/// Appends `s` as a JSON string, escaped as [`write_json`] escapes strings.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    write::string(out, s);
}

/// Appends what is between the quotes of [`write_json_str`]'s string: `s` escaped, unquoted (a character
/// that a JSON text escaped, written again as `serde_json` writes it).
pub fn write_json_str_content(out: &mut Vec<u8>, s: &str) {
    write::escape_into(out, s.as_bytes());
}

/// [`decode_json`] with explicit depth and item limits.
pub fn decode_json_with_limits(
    set: &SchemaSet,
    root: &Schema,
    datum: &[u8],
    limits: Limits,
) -> Result<Value, Error> {
    let mut r = Reader::with_limits(datum, limits);
    let v = decode::value(set, root, &mut r)?;
    r.finish()?;
    Ok(v)
}

/// Decodes a datum written with `writer_root` as the reader schema `reader_root` sees it (Avro schema
/// resolution: defaults filled in, promotions applied, writer-only fields dropped). Compiles the plan on every
/// call: to decode many datums, build a [`Resolver`] once and use [`decode_json_with_resolver`].
pub fn decode_json_resolved(
    writer_set: &SchemaSet,
    writer_root: &Schema,
    reader_set: &SchemaSet,
    reader_root: &Schema,
    datum: &[u8],
) -> Result<Value, Error> {
    let resolver = Resolver::new(writer_set, writer_root, reader_set, reader_root)?;
    decode_json_with_resolver(&resolver, reader_set, reader_root, datum)
}

/// Decodes a writer datum through `resolver` (built for the reader schema `reader_root` of `reader_set`).
pub fn decode_json_with_resolver(
    resolver: &Resolver,
    reader_set: &SchemaSet,
    reader_root: &Schema,
    datum: &[u8],
) -> Result<Value, Error> {
    if resolver.is_identity() {
        return decode_json(reader_set, reader_root, datum);
    }
    let mut buf = Vec::with_capacity(datum.len() + 16);
    resolver.transcode(datum, &mut buf)?;
    decode_json(reader_set, reader_root, &buf)
}
