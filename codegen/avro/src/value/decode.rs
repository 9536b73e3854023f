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
    let shortest = v.to_string().parse::<f64>().unwrap_or(f64::from(v));
    double(shortest)
}
