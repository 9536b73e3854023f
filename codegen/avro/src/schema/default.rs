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

/// A union branch for messages: its type name, or a named type's full name.
fn branch_name(set: &SchemaSet, s: &Schema) -> String {
    match &s.kind {
        SchemaKind::Named(id) => set.named(*id).name.fullname(),
        other => other.primitive_name().unwrap_or("?").to_owned(),
    }
}

/// How a default is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// As Avro Java's parser (`Schema.isValidDefault`): a `bytes`, `fixed` or enum default need only be a
    /// string. What fails this is a parse error.
    Java,
    /// A valid value: `bytes` and `fixed` defaults are strings of code points up to U+00FF, a `fixed` one of
    /// its size, an enum one of its symbols. What passes [`Check::Java`] but fails this is a suspicious
    /// default ([`super::SuspiciousDefault`]).
    Value,
}

/// Checks `value` against `schema`; the error says what was expected and found.
pub(crate) fn check_default(
    set: &SchemaSet,
    schema: &Schema,
    value: &Value,
    check: Check,
) -> Result<(), String> {
    let mismatch = |expected: &str| Err(format!("expected {expected}, found {}", describe(value)));
    let java = check == Check::Java;
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
            Value::String(_) if java => Ok(()),
            Value::String(s) if latin1_bytes(s).is_some() => Ok(()),
            _ => mismatch("a string of bytes (characters \\u0000 to \\u00ff)"),
        },
        SchemaKind::Array(items) => match value {
            Value::Array(values) => values.iter().enumerate().try_for_each(|(i, v)| {
                check_default(set, items, v, check).map_err(|e| format!("item {i}: {e}"))
            }),
            _ => mismatch("an array"),
        },
        SchemaKind::Map(values) => match value {
            Value::Object(members) => members.iter().try_for_each(|(k, v)| {
                check_default(set, values, v, check).map_err(|e| format!("key \"{k}\": {e}"))
            }),
            _ => mismatch("an object (map)"),
        },
        // Avro 1.12 (AVRO-3649): a union default may be a value of any branch, not only the first.
        SchemaKind::Union(branches) => {
            if branches
                .iter()
                .any(|b| check_default(set, b, value, check).is_ok())
            {
                return Ok(());
            }
            let names = branches
                .iter()
                .map(|b| branch_name(set, b))
                .collect::<Vec<_>>()
                .join(", ");
            Err(format!(
                "no branch of the union [{names}] takes {}",
                describe(value)
            ))
        }
        SchemaKind::Named(id) => {
            let t = set.named(*id);
            match &t.kind {
                NamedKind::Fixed { size } => match value {
                    Value::String(_) if java => Ok(()),
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
                    Value::String(_) if java => Ok(()),
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
                                Some(v) => check_default(set, &f.schema, v, check)
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
