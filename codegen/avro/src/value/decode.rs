//! The walk: reads one value of a writer schema from a bounded [`Reader`] and builds its JSON.

use serde_json::{Map, Number, Value};

use super::logical;
use crate::Error;
use crate::binary::{Reader, reservation};
use crate::schema::{NamedKind, Schema, SchemaKind, SchemaSet};

/// Reads one value of `schema` (a node of `set`).
pub(super) fn value(set: &SchemaSet, schema: &Schema, r: &mut Reader<'_>) -> Result<Value, Error> {
    Ok(match &schema.kind {
        SchemaKind::Null => Value::Null,
        SchemaKind::Boolean => Value::Bool(r.boolean()?),
        SchemaKind::Int => logical::int(schema.logical, r.int()?),
        SchemaKind::Long => logical::long(schema.logical, r.long()?),
        SchemaKind::Float => float(r.float()?),
        SchemaKind::Double => double(r.double()?),
        SchemaKind::Bytes => logical::bytes(schema.logical, r.bytes()?, false),
        SchemaKind::String => Value::String(r.str()?.to_owned()),
        SchemaKind::Array(items) => array(set, items, r)?,
        SchemaKind::Map(values) => map(set, values, r)?,
        SchemaKind::Union(branches) => {
            let i = r.union_index(branches.len())?;
            value(set, &branches[i], r)?
        }
        SchemaKind::Named(id) => {
            let t = set.named(*id);
            match &t.kind {
                NamedKind::Record { fields } => {
                    r.enter()?;
                    let mut m = Map::with_capacity(fields.len());
                    for f in fields {
                        m.insert(f.name.clone(), value(set, &f.schema, r)?);
                    }
                    r.leave();
                    Value::Object(m)
                }
                NamedKind::Enum { symbols, .. } => {
                    Value::String(symbols[r.enum_index(symbols.len())?].clone())
                }
                NamedKind::Fixed { size } => logical::bytes(t.logical, r.take(*size)?, true),
            }
        }
    })
}

fn array(set: &SchemaSet, items: &Schema, r: &mut Reader<'_>) -> Result<Value, Error> {
    r.enter()?;
    let mut out = Vec::new();
    loop {
        let block = r.position();
        let n = r.block_count(out.len())?;
        if n == 0 {
            break;
        }
        // Never reserve more bytes than the input has left.
        out.reserve(reservation(n, r.remaining(), size_of::<Value>()));
        let start = r.position();
        out.push(value(set, items, r)?);
        r.block_items(block, start, n)?;
        for _ in 1..n {
            out.push(value(set, items, r)?);
        }
    }
    r.leave();
    Ok(Value::Array(out))
}

/// A map, keys in wire order; a repeated key keeps its last value (as Avro's Java reader does).
fn map(set: &SchemaSet, values: &Schema, r: &mut Reader<'_>) -> Result<Value, Error> {
    r.enter()?;
    let mut out = Map::new();
    let mut seen = 0usize;
    loop {
        let n = r.block_count(seen)?;
        if n == 0 {
            break;
        }
        seen += n;
        for _ in 0..n {
            let k = r.string()?;
            let v = value(set, values, r)?;
            out.insert(k, v);
        }
    }
    r.leave();
    Ok(Value::Object(out))
}

/// NaN and the infinities have no JSON number: they are written as strings.
fn non_finite(v: f64) -> Value {
    Value::String(
        if v.is_nan() {
            "NaN"
        } else if v > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .to_owned(),
    )
}

pub(super) fn double(v: f64) -> Value {
    Number::from_f64(v).map_or_else(|| non_finite(v), Value::Number)
}

/// A `float` as the shortest decimal that reads back as the same `f32` (`0.1`, not `0.10000000149011612`).
pub(super) fn float(v: f32) -> Value {
    if !v.is_finite() {
        return non_finite(f64::from(v));
    }
    double(widen(v))
}

/// The `f64` of a finite `float`'s shortest decimal (`0.1f32` gives `0.1`): the decimal `Display` writes
/// (which reads back as the same `f32`), read as an `f64`. Written on the stack: no allocation.
pub(super) fn widen(v: f32) -> f64 {
    use std::fmt::Write as _;
    let mut text = StackText::default();
    if write!(text, "{v}").is_ok()
        && let Some(parsed) = std::str::from_utf8(&text.bytes[..text.len])
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
    {
        return parsed;
    }
    v.to_string().parse::<f64>().unwrap_or(f64::from(v))
}

/// A small text buffer on the stack (`Display` of a float is at most 48 bytes).
struct StackText {
    bytes: [u8; 64],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    proptest! {
        /// Written on the stack, the decimal is the one `to_string` gives (the definition it replaced).
        #[test]
        fn a_float_widens_through_its_shortest_decimal(bits in any::<u32>()) {
            let v = f32::from_bits(bits);
            prop_assume!(v.is_finite());
            let expected = v.to_string().parse::<f64>().unwrap();
            prop_assert_eq!(super::widen(v).to_bits(), expected.to_bits());
        }
    }
}
