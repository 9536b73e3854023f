//! Checking that a field default is a valid JSON encoding of the field's type.

use serde_json::Value;

use super::model::{NamedKind, Schema, SchemaKind, SchemaSet};

fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let text = v.to_string();
    if text.len() > 40 {
        kind.to_owned()
    } else {
        format!("{kind} ({text})")
    }
}

/// Whether a JSON string is a valid bytes/fixed default: every char in U+0000..=U+00FF.
pub(crate) fn latin1_bytes(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

/// Checks `value` against `schema`; the error says what was expected and found.
pub(crate) fn check_default(set: &SchemaSet, schema: &Schema, value: &Value) -> Result<(), String> {
    let mismatch = |expected: &str| Err(format!("expected {expected}, found {}", describe(value)));
    match &schema.kind {
        SchemaKind::Null => match value {
            Value::Null => Ok(()),
            _ => mismatch("null"),
        },
        SchemaKind::Boolean => match value {
            Value::Bool(_) => Ok(()),
            _ => mismatch("a boolean"),
        },
        SchemaKind::Int => match value.as_i64() {
            Some(n) if i32::try_from(n).is_ok() => Ok(()),
            _ => mismatch("an int (a 32-bit integer)"),
        },
        SchemaKind::Long => match value.as_i64() {
            Some(_) => Ok(()),
            _ => mismatch("a long (a 64-bit integer)"),
        },
        SchemaKind::Float | SchemaKind::Double => match value {
            Value::Number(_) => Ok(()),
            _ => mismatch("a number"),
        },
        SchemaKind::String => match value {
            Value::String(_) => Ok(()),
            _ => mismatch("a string"),
        },
        SchemaKind::Bytes => match value {
            Value::String(s) if latin1_bytes(s).is_some() => Ok(()),
            _ => mismatch("a string of bytes (characters \\u0000 to \\u00ff)"),
        },
        SchemaKind::Array(items) => match value {
            Value::Array(values) => values.iter().enumerate().try_for_each(|(i, v)| {
                check_default(set, items, v).map_err(|e| format!("item {i}: {e}"))
            }),
            _ => mismatch("an array"),
        },
        SchemaKind::Map(values) => match value {
            Value::Object(members) => members.iter().try_for_each(|(k, v)| {
                check_default(set, values, v).map_err(|e| format!("key \"{k}\": {e}"))
            }),
            _ => mismatch("an object (map)"),
        },
        SchemaKind::Union(branches) => match branches.first() {
            Some(first) => check_default(set, first, value)
                .map_err(|e| format!("a union default must match the union's first branch: {e}")),
            None => mismatch("nothing (empty union)"),
        },
        SchemaKind::Named(id) => {
            let t = set.named(*id);
            match &t.kind {
                NamedKind::Fixed { size } => match value {
                    Value::String(s) => match latin1_bytes(s) {
                        Some(b) if b.len() == *size => Ok(()),
                        Some(b) => Err(format!(
                            "fixed `{}` has size {size}, default has {} bytes",
                            t.name.fullname(),
                            b.len()
                        )),
                        None => mismatch("a string of bytes (characters \\u0000 to \\u00ff)"),
                    },
                    _ => mismatch("a string of bytes"),
                },
                NamedKind::Enum { symbols, .. } => match value {
                    Value::String(s) if symbols.contains(s) => Ok(()),
                    Value::String(s) => Err(format!(
                        "`{s}` is not a symbol of enum `{}`",
                        t.name.fullname()
                    )),
                    _ => mismatch("an enum symbol string"),
                },
                NamedKind::Record { fields } => match value {
                    Value::Object(members) => {
                        for f in fields {
                            match members.get(&f.name) {
                                Some(v) => check_default(set, &f.schema, v)
                                    .map_err(|e| format!("field `{}`: {e}", f.name))?,
                                None if f.default.is_some() => {}
                                None => {
                                    return Err(format!(
                                        "record default lacks field `{}`, which has no default",
                                        f.name
                                    ));
                                }
                            }
                        }
                        Ok(())
                    }
                    _ => mismatch(&format!("an object (record `{}`)", t.name.fullname())),
                },
            }
        }
    }
}
