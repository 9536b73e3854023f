//! Avro's own JSON encoding (the specification's "JSON Encoding", what Java's `JsonEncoder`, fastavro's
//! `json_writer` and apache-avro write), to and from the binary encoding of a schema.
//!
//! Unlike the [`crate::value`] module's JSON (made for sinks that write documents), this encoding is
//! reversible and schema-directed:
//!
//! | Avro | JSON |
//! |---|---|
//! | `null`, `boolean`, `string` | `null`, `true`/`false`, a string |
//! | `int`, `long`, `float`, `double` | a number; NaN and ±infinity as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` (read back from either form) |
//! | `bytes`, `fixed` | a string of one code point per byte (`\u0000`–`\u00ff`) |
//! | record, map | an object (a record's fields in schema order; a missing field reads as its default) |
//! | enum | the symbol |
//! | array | an array |
//! | union | `null` for the null branch, else `{"<branch>": value}`: the branch's full name for a named type, else its type (`"string"`, `"array"`, `"map"`, …) |
//!
//! Logical types are written as their underlying type (a `timestamp-millis` is the number of milliseconds, a
//! `decimal` its two's-complement bytes), as the specification says. Generated types use this through
//! [`crate::AvroRecord::to_avro_json`] and [`crate::AvroRecord::from_avro_json`].

use serde_json::{Map, Number, Value};

use crate::binary::{Reader, reservation};
use crate::schema::{NamedKind, Schema, SchemaKind, SchemaSet, latin1_bytes};
use crate::{Error, encode};

/// Deepest nesting accepted when reading JSON (the binary reader has its own limit).
const MAX_DEPTH: u32 = 128;

fn bad(path: &str, what: impl std::fmt::Display) -> Error {
    Error::Json(if path.is_empty() {
        what.to_string()
    } else {
        format!("at {path}: {what}")
    })
}

/// The Avro JSON of one binary datum of `schema` (a node of `set`); the input must be exactly one datum.
pub fn encode_datum(set: &SchemaSet, schema: &Schema, datum: &[u8]) -> Result<Value, Error> {
    let mut r = Reader::new(datum);
    let v = to_json(set, schema, &mut r)?;
    r.finish()?;
    Ok(v)
}

/// The binary encoding of `json` (Avro JSON) as `schema` (a node of `set`), appended to `out`.
pub fn decode_datum(
    set: &SchemaSet,
    schema: &Schema,
    json: &Value,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    from_json(set, schema, json, out, "", 0)
}

/// Parses Avro JSON text. Besides standard JSON it reads the bare `NaN`, `Infinity` and `-Infinity` that
/// Python's `json` (and so fastavro's `json_writer`) writes for non-finite floats, as the strings this
/// encoding writes for them.
pub fn parse(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).or_else(|first| {
        let quoted = quote_non_finite(text);
        if quoted == text {
            return Err(Error::Json(first.to_string()));
        }
        serde_json::from_str(&quoted).map_err(|_| Error::Json(first.to_string()))
    })
}

/// `text` with bare `NaN`, `Infinity` and `-Infinity` tokens (outside strings) quoted.
fn quote_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if let Some(token) = ["NaN", "Infinity", "-Infinity"]
            .into_iter()
            .find(|t| rest.starts_with(t))
        {
            out.push('"');
            out.push_str(token);
            out.push('"');
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The name a union branch is tagged with.
fn branch_name(set: &SchemaSet, schema: &Schema) -> String {
    match &schema.kind {
        SchemaKind::Null => "null".into(),
        SchemaKind::Boolean => "boolean".into(),
        SchemaKind::Int => "int".into(),
        SchemaKind::Long => "long".into(),
        SchemaKind::Float => "float".into(),
        SchemaKind::Double => "double".into(),
        SchemaKind::Bytes => "bytes".into(),
        SchemaKind::String => "string".into(),
        SchemaKind::Array(_) => "array".into(),
        SchemaKind::Map(_) => "map".into(),
        SchemaKind::Union(_) => "union".into(),
        SchemaKind::Named(id) => set.named(*id).name.fullname(),
    }
}

fn latin1(bytes: &[u8]) -> Value {
    Value::String(bytes.iter().map(|&b| char::from(b)).collect())
}

fn number(x: f64) -> Value {
    if x.is_nan() {
        Value::String("NaN".into())
    } else if x.is_infinite() {
        Value::String(if x > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

fn to_json(set: &SchemaSet, schema: &Schema, r: &mut Reader<'_>) -> Result<Value, Error> {
    Ok(match &schema.kind {
        SchemaKind::Null => Value::Null,
        SchemaKind::Boolean => Value::Bool(r.boolean()?),
        SchemaKind::Int => Value::from(r.int()?),
        SchemaKind::Long => Value::from(r.long()?),
        // The shortest decimal that reads back as the same f32.
        SchemaKind::Float => {
            let x = r.float()?;
            if x.is_finite() {
                x.to_string().parse::<f64>().map_or(Value::Null, number)
            } else {
                number(f64::from(x))
            }
        }
        SchemaKind::Double => number(r.double()?),
        SchemaKind::Bytes => latin1(r.bytes()?),
        SchemaKind::String => Value::String(r.str()?.to_owned()),
        SchemaKind::Array(items) => {
            r.enter()?;
            let mut out = Vec::new();
            loop {
                let n = r.block_count(out.len())?;
                if n == 0 {
                    break;
                }
                out.reserve(reservation(n, r.remaining(), size_of::<Value>()));
                for _ in 0..n {
                    out.push(to_json(set, items, r)?);
                }
            }
            r.leave();
            Value::Array(out)
        }
        SchemaKind::Map(values) => {
            r.enter()?;
            let mut out = Map::new();
            let mut seen = 0;
            loop {
                let n = r.block_count(seen)?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    let k = r.str()?.to_owned();
                    out.insert(k, to_json(set, values, r)?);
                    seen += 1;
                }
            }
            r.leave();
            Value::Object(out)
        }
        SchemaKind::Union(branches) => {
            let b = &branches[r.union_index(branches.len())?];
            if matches!(b.kind, SchemaKind::Null) {
                Value::Null
            } else {
                let v = to_json(set, b, r)?;
                Value::Object(Map::from_iter([(branch_name(set, b), v)]))
            }
        }
        SchemaKind::Named(id) => {
            let t = set.named(*id);
            match &t.kind {
                NamedKind::Record { fields } => {
                    r.enter()?;
                    let mut m = Map::with_capacity(fields.len());
                    for f in fields {
                        m.insert(f.name.clone(), to_json(set, &f.schema, r)?);
                    }
                    r.leave();
                    Value::Object(m)
                }
                NamedKind::Enum { symbols, .. } => {
                    Value::String(symbols[r.enum_index(symbols.len())?].clone())
                }
                NamedKind::Fixed { size } => latin1(r.take(*size)?),
            }
        }
    })
}

fn float_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn from_json(
    set: &SchemaSet,
    schema: &Schema,
    json: &Value,
    out: &mut Vec<u8>,
    path: &str,
    depth: u32,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(bad(path, format!("nested deeper than {MAX_DEPTH} levels")));
    }
    let expected = |what: &str| bad(path, format!("expected {what}, found {json}"));
    match &schema.kind {
        SchemaKind::Null => json
            .is_null()
            .then_some(())
            .ok_or_else(|| expected("null"))?,
        SchemaKind::Boolean => {
            encode::boolean(out, json.as_bool().ok_or_else(|| expected("a boolean"))?)
        }
        SchemaKind::Int => encode::int(
            out,
            json.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| expected("an int"))?,
        ),
        SchemaKind::Long => encode::long(out, json.as_i64().ok_or_else(|| expected("a long"))?),
        SchemaKind::Float => {
            encode::float(
                out,
                float_of(json).ok_or_else(|| expected("a float"))? as f32,
            );
        }
        SchemaKind::Double => {
            encode::double(out, float_of(json).ok_or_else(|| expected("a double"))?)
        }
        SchemaKind::Bytes => {
            let b = json
                .as_str()
                .and_then(latin1_bytes)
                .ok_or_else(|| expected("a string of bytes (\\u0000 to \\u00ff)"))?;
            encode::bytes(out, &b);
        }
        SchemaKind::String => {
            encode::string(out, json.as_str().ok_or_else(|| expected("a string"))?)
        }
        SchemaKind::Array(items) => {
            let values = json.as_array().ok_or_else(|| expected("an array"))?;
            if !values.is_empty() {
                encode::long(out, i64::try_from(values.len()).unwrap_or(i64::MAX));
                for (i, v) in values.iter().enumerate() {
                    from_json(set, items, v, out, &format!("{path}[{i}]"), depth + 1)?;
                }
            }
            out.push(0);
        }
        SchemaKind::Map(values) => {
            let members = json
                .as_object()
                .ok_or_else(|| expected("an object (map)"))?;
            if !members.is_empty() {
                encode::long(out, i64::try_from(members.len()).unwrap_or(i64::MAX));
                for (k, v) in members {
                    encode::string(out, k);
                    from_json(set, values, v, out, &format!("{path}.{k}"), depth + 1)?;
                }
            }
            out.push(0);
        }
        SchemaKind::Union(branches) => {
            let (index, value) = if json.is_null() {
                let i = branches
                    .iter()
                    .position(|b| matches!(b.kind, SchemaKind::Null))
                    .ok_or_else(|| expected("a value of a union without null"))?;
                (i, json)
            } else {
                let tagged = json
                    .as_object()
                    .filter(|m| m.len() == 1)
                    .and_then(|m| m.iter().next())
                    .ok_or_else(|| {
                        expected("a union value tagged with its branch, {\"<branch>\": value}")
                    })?;
                let i = branches
                    .iter()
                    .position(|b| branch_name(set, b) == *tagged.0)
                    .ok_or_else(|| bad(path, format!("the union has no branch `{}`", tagged.0)))?;
                (i, tagged.1)
            };
            encode::union_index(out, index);
            from_json(set, &branches[index], value, out, path, depth + 1)?;
        }
        SchemaKind::Named(id) => {
            let t = set.named(*id);
            match &t.kind {
                NamedKind::Record { fields } => {
                    let members = json
                        .as_object()
                        .ok_or_else(|| expected("an object (record)"))?;
                    for f in fields {
                        let at = if path.is_empty() {
                            f.name.clone()
                        } else {
                            format!("{path}.{}", f.name)
                        };
                        match members.get(&f.name) {
                            Some(v) => from_json(set, &f.schema, v, out, &at, depth + 1)?,
                            None => match &f.default {
                                Some(d) => out.extend(
                                    crate::resolve::encode_default(set, &f.schema, d)
                                        .map_err(|e| bad(&at, e))?,
                                ),
                                None => {
                                    return Err(bad(&at, "missing, and the field has no default"));
                                }
                            },
                        }
                    }
                }
                NamedKind::Enum { symbols, .. } => {
                    let s = json.as_str().ok_or_else(|| expected("an enum symbol"))?;
                    let i = symbols.iter().position(|x| x == s).ok_or_else(|| {
                        bad(
                            path,
                            format!("`{s}` is not a symbol of {}", t.name.fullname()),
                        )
                    })?;
                    encode::enum_index(out, i);
                }
                NamedKind::Fixed { size } => {
                    let b = json
                        .as_str()
                        .and_then(latin1_bytes)
                        .filter(|b| b.len() == *size)
                        .ok_or_else(|| expected(&format!("a string of {size} bytes")))?;
                    encode::fixed(out, &b);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{LogicalTypes, ParseOptions, SourceFile};

    fn set(text: &str) -> SchemaSet {
        SchemaSet::parse(
            vec![SourceFile::new("t.avsc", text.to_owned())],
            ParseOptions {
                logical_types: LogicalTypes::Strict,
            },
        )
        .unwrap()
    }

    const SCHEMA: &str = r#"{"type":"record","name":"a.R","fields":[
        {"name":"u","type":["null","string",{"type":"record","name":"S","fields":[{"name":"x","type":"int"}]},{"type":"array","items":"long"}]},
        {"name":"b","type":"bytes"},
        {"name":"f","type":{"type":"fixed","name":"F","size":2}},
        {"name":"d","type":"double"},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
        {"name":"m","type":{"type":"map","values":"float"}},
        {"name":"n","type":"int","default":7}]}"#;

    fn round_trip(json: &str) -> Value {
        let s = set(SCHEMA);
        let mut datum = Vec::new();
        decode_datum(&s, s.last_root(), &parse(json).unwrap(), &mut datum).unwrap();
        encode_datum(&s, s.last_root(), &datum).unwrap()
    }

    #[test]
    fn unions_are_tagged_bytes_are_code_points_and_defaults_fill_gaps() {
        let got = round_trip(
            r#"{"u":{"a.S":{"x":3}},"b":"\u00ff\u0000A","f":"\u0001\u0002","d":-Infinity,"e":"B","m":{"k":1.5}}"#,
        );
        assert_eq!(
            got.to_string(),
            r#"{"u":{"a.S":{"x":3}},"b":"ÿ\u0000A","f":"\u0001\u0002","d":"-Infinity","e":"B","m":{"k":1.5},"n":7}"#
        );
        let got =
            round_trip(r#"{"u":{"array":[1,2]},"b":"","f":"ab","d":"NaN","e":"A","m":{},"n":1}"#);
        assert_eq!(got["u"], serde_json::json!({"array": [1, 2]}));
        assert_eq!(got["d"], "NaN");
        assert_eq!(
            round_trip(r#"{"u":null,"b":"","f":"ab","d":0.5,"e":"A","m":{}}"#)["u"],
            Value::Null
        );
        // A bare token inside a string stays text.
        assert_eq!(
            round_trip(r#"{"u":{"string":"NaN Infinity"},"b":"","f":"ab","d":1,"e":"A","m":{}}"#)["u"]
                ["string"],
            "NaN Infinity"
        );
    }

    #[test]
    fn mismatches_name_where() {
        let s = set(SCHEMA);
        let err = |json: &str| {
            decode_datum(&s, s.last_root(), &parse(json).unwrap(), &mut Vec::new())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(r#"{"u":{"int":1},"b":"","f":"ab","d":1,"e":"A","m":{}}"#),
            "Avro JSON: at u: the union has no branch `int`"
        );
        assert_eq!(
            err(r#"{"u":{"a.S":{"x":"3"}},"b":"","f":"ab","d":1,"e":"A","m":{}}"#),
            "Avro JSON: at u.x: expected an int, found \"3\""
        );
        assert_eq!(
            err(r#"{"u":null,"b":"\u0100","f":"ab","d":1,"e":"A","m":{}}"#),
            "Avro JSON: at b: expected a string of bytes (\\u0000 to \\u00ff), found \"Ā\""
        );
        assert_eq!(
            err(r#"{"u":null,"b":"","f":"abc","d":1,"e":"C","m":{}}"#),
            "Avro JSON: at f: expected a string of 2 bytes, found \"abc\""
        );
        assert_eq!(
            err(r#"{"u":null,"b":"","f":"ab","e":"A","m":{}}"#),
            "Avro JSON: at d: missing, and the field has no default"
        );
    }
}
