//! Encoding a reader field's JSON default in the reader schema's binary encoding (done once, at plan time).

use serde_json::Value;

use crate::encode;
use crate::schema::{NamedKind, Schema, SchemaKind, SchemaSet, latin1_bytes};

/// Deepest nesting of a default (a record default's missing members take their own field defaults, which a
/// recursive type could chain forever).
const MAX_DEPTH: u32 = 64;

/// The error of a too deep default, passed up unwrapped (not prefixed with each field it went through).
const TOO_DEEP: &str =
    "default nested deeper than 64 levels (does a record default refer to itself?)";

/// Appends the binary encoding of `value` as `schema` (of `set`) to `out`. A union takes the first branch the value is valid for;
/// `bytes` and `fixed` are latin-1 strings; a record's missing members take their field defaults.
pub(crate) fn encode_default(
    set: &SchemaSet,
    schema: &Schema,
    value: &Value,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    encode_at(set, schema, value, out, 0)
}

fn encode_at(
    set: &SchemaSet,
    schema: &Schema,
    value: &Value,
    out: &mut Vec<u8>,
    depth: u32,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(TOO_DEEP.to_owned());
    }
    let mismatch = |expected: &str| Err(format!("default {value} is not {expected}"));
    match &schema.kind {
        SchemaKind::Null => match value {
            Value::Null => Ok(()),
            _ => mismatch("null"),
        },
        SchemaKind::Boolean => match value {
            Value::Bool(b) => {
                encode::boolean(out, *b);
                Ok(())
            }
            _ => mismatch("a boolean"),
        },
        SchemaKind::Int => match value.as_i64().and_then(|n| i32::try_from(n).ok()) {
            Some(n) => {
                encode::int(out, n);
                Ok(())
            }
            None => mismatch("an int"),
        },
        SchemaKind::Long => match value.as_i64() {
            Some(n) => {
                encode::long(out, n);
                Ok(())
            }
            None => mismatch("a long"),
        },
        SchemaKind::Float => match value.as_f64() {
            Some(x) => {
                encode::float(out, x as f32);
                Ok(())
            }
            None => mismatch("a float"),
        },
        SchemaKind::Double => match value.as_f64() {
            Some(x) => {
                encode::double(out, x);
                Ok(())
            }
            None => mismatch("a double"),
        },
        SchemaKind::String => match value {
            Value::String(s) => {
                encode::string(out, s);
                Ok(())
            }
            _ => mismatch("a string"),
        },
        SchemaKind::Bytes => match value.as_str().and_then(latin1_bytes) {
            Some(b) => {
                encode::bytes(out, &b);
                Ok(())
            }
            None => mismatch("a string of bytes (\\u0000 to \\u00ff)"),
        },
        SchemaKind::Array(items) => match value {
            Value::Array(values) => {
                if !values.is_empty() {
                    encode::long(out, values.len() as i64);
                    for v in values {
                        encode_at(set, items, v, out, depth + 1)?;
                    }
                }
                out.push(0);
                Ok(())
            }
            _ => mismatch("an array"),
        },
        SchemaKind::Map(values) => match value {
            Value::Object(members) => {
                if !members.is_empty() {
                    encode::long(out, members.len() as i64);
                    for (k, v) in members {
                        encode::string(out, k);
                        encode_at(set, values, v, out, depth + 1)?;
                    }
                }
                out.push(0);
                Ok(())
            }
            _ => mismatch("an object (map)"),
        },
        // Avro 1.12: a union default may be a value of any branch; it is written as the first branch it is a
        // valid value of (so `["int","long"]` with 5000000000 is a long, where Java would truncate it to an int).
        SchemaKind::Union(branches) => {
            let start = out.len();
            let mut first_error = None;
            for (i, b) in branches.iter().enumerate() {
                encode::union_index(out, i);
                match encode_at(set, b, value, out, depth + 1) {
                    Ok(()) => return Ok(()),
                    Err(e) if e == TOO_DEEP => return Err(e),
                    Err(e) => {
                        out.truncate(start);
                        first_error.get_or_insert(e);
                    }
                }
            }
            Err(first_error.map_or_else(
                || format!("default {value} is not a value of an empty union"),
                |e| format!("default {value} is a value of no branch of the union ({e})"),
            ))
        }
        SchemaKind::Named(id) => {
            let t = set.named(*id);
            match &t.kind {
                NamedKind::Fixed { size } => match value.as_str().and_then(latin1_bytes) {
                    Some(b) if b.len() == *size => {
                        encode::fixed(out, &b);
                        Ok(())
                    }
                    _ => mismatch(&format!(
                        "a string of {size} bytes (fixed `{}`)",
                        t.name.fullname()
                    )),
                },
                NamedKind::Enum { symbols, .. } => match value
                    .as_str()
                    .and_then(|s| symbols.iter().position(|x| x == s))
                {
                    Some(i) => {
                        encode::enum_index(out, i);
                        Ok(())
                    }
                    None => mismatch(&format!("a symbol of enum `{}`", t.name.fullname())),
                },
                NamedKind::Record { fields } => match value {
                    Value::Object(members) => {
                        for f in fields {
                            let v = members.get(&f.name).or(f.default.as_ref()).ok_or_else(|| {
                                format!(
                                    "default of record `{}` lacks field `{}`, which has no default",
                                    t.name.fullname(),
                                    f.name
                                )
                            })?;
                            encode_at(set, &f.schema, v, out, depth + 1).map_err(|e| {
                                match e.as_str() {
                                    TOO_DEEP => e,
                                    _ => format!(
                                        "field `{}` of record `{}`: {e}",
                                        f.name,
                                        t.name.fullname()
                                    ),
                                }
                            })?;
                        }
                        Ok(())
                    }
                    _ => mismatch(&format!("an object (record `{}`)", t.name.fullname())),
                },
            }
        }
    }
}
