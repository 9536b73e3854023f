//! Typed columns from an Avro value schema, and their values from a datum.
//!
//! | Avro | column |
//! |---|---|
//! | `boolean` | `boolean` |
//! | `int`, `long` | `integer`, `bigint` |
//! | `float`, `double` | `real`, `double precision` |
//! | `string`, `enum` | `text` (U+0000, which PostgreSQL text cannot hold, becomes U+FFFD) |
//! | `bytes`, `fixed` | `bytea` |
//! | `uuid` (string or fixed 16) | `uuid` (a string that is not a UUID is `NULL`) |
//! | `date` | `date` |
//! | `time-millis`, `time-micros` | `time` |
//! | `timestamp-millis`, `timestamp-micros` | `timestamptz` |
//! | `local-timestamp-millis`, `local-timestamp-micros` | `timestamp` |
//! | `timestamp-nanos`, `local-timestamp-nanos` | `bigint` (nanoseconds: PostgreSQL keeps microseconds) |
//! | `decimal(p, s)` | `numeric(p, s)` (`numeric` past p = 1000) |
//! | `duration` | `interval` |
//! | record | flattened: one column per leaf field, named by its path joined with `__` (`child__child_id`) |
//! | `["null", T]` (either order) | T's columns, `NULL` when the value is null |
//! | array, map, a union of two or more non-null types, a record inside itself | `jsonb` |
//!
//! Why nested records are flattened: audit queries filter and index on nested fields (`child.child_id`,
//! `metadata.event_time`, `actor.kind`), and flattening gives them real types, b-tree indexes and constraints
//! without JSON path expressions; a record's field set is fixed by its schema, so its columns are too. Arrays and
//! maps have no fixed set of elements (columns per element would need child tables and joins); as `jsonb` they
//! stay queryable (`@>`, `jsonb_path_query`) and GIN-indexable. The whole value is also kept as `jsonb`.
//!
//! A value its column type cannot hold (a date or timestamp beyond PostgreSQL's range, a decimal with more digits
//! than its precision, a duration over 2^31 months or days, a time past 24:00) is `NULL` in its typed column; the
//! stored value bytes and the value `jsonb` keep it.
//!
//! Column names longer than PostgreSQL's 63 bytes are cut to 54 and suffixed with `_` and 8 hex digits of the
//! SHA-256 of the full name; a name equal to a base column's (`kafka_offset`, …) is prefixed with `value__`.

use ring::digest;
use serde_json::Value;
use ursa_avro::binary::Reader;
use ursa_avro::schema::{LogicalType, NamedId, NamedKind, Schema, SchemaKind, SchemaSet};
use ursa_avro::{Decimal, Duration, Error as AvroError};

use crate::cell::{Cell, PgType};
use crate::datum::skip_text_unchecked;
use crate::ddl::BASE_COLUMNS;

/// PostgreSQL's longest identifier, in bytes.
pub const MAX_IDENT: usize = 63;

/// The most typed columns a mapping may have (PostgreSQL allows 1600 per table, base columns included).
pub const MAX_COLUMNS: usize = 1500;

/// A typed column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// Its type.
    pub pg: PgType,
    /// The field path it comes from, dotted (`child.child_id`), or `value` for a non-record root.
    pub path: String,
}

/// Why a schema cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// Two fields map to one column name.
    #[error("fields `{first}` and `{second}` both map to column `{column}`")]
    Collision {
        /// The column.
        column: String,
        /// The first field path.
        first: String,
        /// The second field path.
        second: String,
    },
    /// Too many columns.
    #[error("the schema maps to {0} columns, more than the {MAX_COLUMNS} allowed")]
    TooManyColumns(usize),
}

/// How one leaf value becomes a cell.
#[derive(Debug, Clone)]
enum Conv {
    Bool,
    Int,
    Long,
    Float,
    Double,
    Text,
    Bytes,
    Fixed(usize),
    Enum(Vec<String>),
    UuidString,
    UuidFixed,
    Date,
    TimeMillis,
    TimeMicros,
    TimestampMillis,
    TimestampMicros,
    DecimalBytes {
        precision: u32,
        scale: u32,
    },
    DecimalFixed {
        size: usize,
        precision: u32,
        scale: u32,
    },
    Duration,
}

#[derive(Debug, Clone)]
enum Plan {
    /// A value that takes no bytes (`null`).
    Nothing,
    Leaf {
        col: usize,
        conv: Conv,
    },
    Json {
        col: usize,
        schema: Box<Schema>,
    },
    Record(Vec<Plan>),
    /// A union with at most one non-null branch: `None` for null.
    Union(Vec<Option<Plan>>),
}

/// The typed columns of one writer schema, and how to fill them from its datums.
#[derive(Debug, Clone)]
pub struct Mapping {
    columns: Vec<Column>,
    plan: Plan,
}

impl Mapping {
    /// Maps the schema `root` of `set`.
    pub fn new(set: &SchemaSet, root: &Schema) -> Result<Mapping, MapError> {
        let mut b = Builder {
            set,
            columns: Vec::new(),
            stack: Vec::new(),
        };
        let plan = match &root.kind {
            SchemaKind::Named(id) if matches!(set.named(*id).kind, NamedKind::Record { .. }) => {
                b.build(root, &mut Vec::new())?
            }
            _ => b.build(root, &mut vec!["value".to_owned()])?,
        };
        if b.columns.len() > MAX_COLUMNS {
            return Err(MapError::TooManyColumns(b.columns.len()));
        }
        Ok(Mapping {
            columns: b.columns,
            plan,
        })
    }

    /// The columns, in schema order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The cells of a datum (without the Confluent header), one per column.
    pub fn cells(&self, set: &SchemaSet, datum: &[u8]) -> Result<Vec<Cell>, AvroError> {
        let mut out = vec![Cell::Null; self.columns.len()];
        let mut r = Reader::new(datum);
        read(&self.plan, set, datum, &mut r, &mut out)?;
        r.finish()?;
        Ok(out)
    }
}

struct Builder<'s> {
    set: &'s SchemaSet,
    columns: Vec<Column>,
    stack: Vec<NamedId>,
}

impl Builder<'_> {
    fn column(&mut self, path: &[String], pg: PgType) -> Result<usize, MapError> {
        let name = column_name(path);
        let dotted = path.join(".");
        if let Some(c) = self.columns.iter().find(|c| c.name == name) {
            return Err(MapError::Collision {
                column: name,
                first: c.path.clone(),
                second: dotted,
            });
        }
        self.columns.push(Column {
            name,
            pg,
            path: dotted,
        });
        Ok(self.columns.len() - 1)
    }

    fn leaf(&mut self, path: &[String], pg: PgType, conv: Conv) -> Result<Plan, MapError> {
        let col = self.column(path, pg)?;
        Ok(Plan::Leaf { col, conv })
    }

    fn json(&mut self, path: &[String], schema: &Schema) -> Result<Plan, MapError> {
        let col = self.column(path, PgType::Jsonb)?;
        Ok(Plan::Json {
            col,
            schema: Box::new(schema.clone()),
        })
    }

    fn build(&mut self, schema: &Schema, path: &mut Vec<String>) -> Result<Plan, MapError> {
        use LogicalType as L;
        Ok(match &schema.kind {
            SchemaKind::Null => Plan::Nothing,
            SchemaKind::Boolean => self.leaf(path, PgType::Boolean, Conv::Bool)?,
            SchemaKind::Int => match schema.logical {
                Some(L::Date) => self.leaf(path, PgType::Date, Conv::Date)?,
                Some(L::TimeMillis) => self.leaf(path, PgType::Time, Conv::TimeMillis)?,
                _ => self.leaf(path, PgType::Integer, Conv::Int)?,
            },
            SchemaKind::Long => match schema.logical {
                Some(L::TimeMicros) => self.leaf(path, PgType::Time, Conv::TimeMicros)?,
                Some(L::TimestampMillis) => {
                    self.leaf(path, PgType::Timestamptz, Conv::TimestampMillis)?
                }
                Some(L::TimestampMicros) => {
                    self.leaf(path, PgType::Timestamptz, Conv::TimestampMicros)?
                }
                Some(L::LocalTimestampMillis) => {
                    self.leaf(path, PgType::Timestamp, Conv::TimestampMillis)?
                }
                Some(L::LocalTimestampMicros) => {
                    self.leaf(path, PgType::Timestamp, Conv::TimestampMicros)?
                }
                _ => self.leaf(path, PgType::Bigint, Conv::Long)?,
            },
            SchemaKind::Float => self.leaf(path, PgType::Real, Conv::Float)?,
            SchemaKind::Double => self.leaf(path, PgType::Double, Conv::Double)?,
            SchemaKind::Bytes => match schema.logical {
                Some(L::Decimal { precision, scale }) => self.leaf(
                    path,
                    PgType::Numeric { precision, scale },
                    Conv::DecimalBytes { precision, scale },
                )?,
                _ => self.leaf(path, PgType::Bytea, Conv::Bytes)?,
            },
            SchemaKind::String => match schema.logical {
                Some(L::Uuid) => self.leaf(path, PgType::Uuid, Conv::UuidString)?,
                _ => self.leaf(path, PgType::Text, Conv::Text)?,
            },
            SchemaKind::Array(_) | SchemaKind::Map(_) => self.json(path, schema)?,
            SchemaKind::Union(branches) => {
                let non_null = branches
                    .iter()
                    .filter(|b| !matches!(b.kind, SchemaKind::Null))
                    .count();
                if non_null > 1 {
                    self.json(path, schema)?
                } else {
                    let mut plans = Vec::with_capacity(branches.len());
                    for b in branches {
                        plans.push(match b.kind {
                            SchemaKind::Null => None,
                            _ => Some(self.build(b, path)?),
                        });
                    }
                    Plan::Union(plans)
                }
            }
            SchemaKind::Named(id) => {
                let t = self.set.named(*id);
                match &t.kind {
                    NamedKind::Record { fields } => {
                        if self.stack.contains(id) {
                            return self.json(path, schema);
                        }
                        self.stack.push(*id);
                        let mut plans = Vec::with_capacity(fields.len());
                        for f in fields {
                            path.push(f.name.clone());
                            let p = self.build(&f.schema, path);
                            path.pop();
                            plans.push(p?);
                        }
                        self.stack.pop();
                        Plan::Record(plans)
                    }
                    NamedKind::Enum { symbols, .. } => {
                        self.leaf(path, PgType::Text, Conv::Enum(symbols.clone()))?
                    }
                    NamedKind::Fixed { size } => match t.logical {
                        Some(L::Decimal { precision, scale }) => self.leaf(
                            path,
                            PgType::Numeric { precision, scale },
                            Conv::DecimalFixed {
                                size: *size,
                                precision,
                                scale,
                            },
                        )?,
                        Some(L::Duration) if *size == 12 => {
                            self.leaf(path, PgType::Interval, Conv::Duration)?
                        }
                        Some(L::Uuid) if *size == 16 => {
                            self.leaf(path, PgType::Uuid, Conv::UuidFixed)?
                        }
                        _ => self.leaf(path, PgType::Bytea, Conv::Fixed(*size))?,
                    },
                }
            }
        })
    }
}

/// The column name of a field path (see the module docs).
pub fn column_name(path: &[String]) -> String {
    let mut name = path.join("__");
    if BASE_COLUMNS.iter().any(|(base, _)| *base == name) {
        name = format!("value__{name}");
    }
    if name.len() > MAX_IDENT {
        let hash = digest::digest(&digest::SHA256, name.as_bytes());
        let suffix: String = hash.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut cut = MAX_IDENT - 9;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name = format!("{}_{suffix}", &name[..cut]);
    }
    name
}

/// Text PostgreSQL can store: U+0000 becomes U+FFFD.
pub fn pg_text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_owned()
    }
}

/// [`pg_json`] on JSON text: each `\u0000` escape in a string or key becomes U+FFFD (an escaped backslash
/// followed by `u0000` is left alone). The text is returned as it was when it holds none.
pub fn pg_json_text(text: Vec<u8>) -> Vec<u8> {
    const NUL: &[u8] = b"\\u0000";
    if !text.windows(NUL.len()).any(|w| w == NUL) {
        return text;
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' {
            if text[i..].starts_with(NUL) {
                out.extend_from_slice("\u{FFFD}".as_bytes());
                i += NUL.len();
            } else {
                // An escape of two bytes at least (`\\`, `\"`, `\n`, `\uXXXX`): its second byte is not a
                // backslash that starts another escape.
                out.extend_from_slice(&text[i..(i + 2).min(text.len())]);
                i += 2;
            }
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// JSON PostgreSQL's `jsonb` can store: U+0000 in strings and keys becomes U+FFFD.
pub fn pg_json(v: Value) -> Value {
    match v {
        Value::String(s) if s.contains('\0') => Value::String(pg_text(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(pg_json).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let k = if k.contains('\0') { pg_text(&k) } else { k };
                    (k, pg_json(v))
                })
                .collect(),
        ),
        other => other,
    }
}

fn read(
    plan: &Plan,
    set: &SchemaSet,
    datum: &[u8],
    r: &mut Reader<'_>,
    out: &mut [Cell],
) -> Result<(), AvroError> {
    match plan {
        Plan::Nothing => {}
        Plan::Leaf { col, conv } => out[*col] = leaf(conv, r)?,
        Plan::Json { col, schema } => {
            let start = r.position();
            // Decoding the span checks it.
            skip_text_unchecked(set, schema, r)?;
            let span = &datum[start..r.position()];
            out[*col] = Cell::Json(pg_json(ursa_avro::value::decode_json(set, schema, span)?));
        }
        Plan::Record(fields) => {
            for f in fields {
                read(f, set, datum, r, out)?;
            }
        }
        Plan::Union(branches) => {
            let i = r.union_index(branches.len())?;
            if let Some(p) = &branches[i] {
                read(p, set, datum, r, out)?;
            }
        }
    }
    Ok(())
}

fn decimal(unscaled: &[u8], precision: u32, scale: u32) -> Cell {
    // PostgreSQL keeps at most 16383 digits after the point.
    if scale > 16_383 {
        return Cell::Null;
    }
    // `from_wire` refuses more digits than the precision, which also bounds the cost of the text.
    match Decimal::from_wire(unscaled, precision, scale) {
        Ok(d) => Cell::Numeric(d.to_string()),
        Err(_) => Cell::Null,
    }
}

fn leaf(conv: &Conv, r: &mut Reader<'_>) -> Result<Cell, AvroError> {
    Ok(match conv {
        Conv::Bool => Cell::Bool(r.boolean()?),
        Conv::Int => Cell::I32(r.int()?),
        Conv::Long => Cell::I64(r.long()?),
        Conv::Float => Cell::F32(r.float()?),
        Conv::Double => Cell::F64(r.double()?),
        Conv::Text => Cell::Text(pg_text(r.str()?)),
        Conv::Bytes => Cell::Bytes(r.bytes()?.to_vec()),
        Conv::Fixed(n) => Cell::Bytes(r.take(*n)?.to_vec()),
        Conv::Enum(symbols) => Cell::Text(symbols[r.enum_index(symbols.len())?].clone()),
        Conv::UuidString => match ursa_avro::uuid::Uuid::try_parse(r.str()?) {
            Ok(u) => Cell::Uuid(*u.as_bytes()),
            Err(_) => Cell::Null,
        },
        Conv::UuidFixed => Cell::Uuid(r.fixed::<16>()?),
        Conv::Date => Cell::date_from_unix_days(r.int()?).unwrap_or(Cell::Null),
        Conv::TimeMillis => {
            Cell::time_from_micros(i64::from(r.int()?) * 1000).unwrap_or(Cell::Null)
        }
        Conv::TimeMicros => Cell::time_from_micros(r.long()?).unwrap_or(Cell::Null),
        Conv::TimestampMillis => Cell::timestamp_from_unix_millis(r.long()?).unwrap_or(Cell::Null),
        Conv::TimestampMicros => Cell::timestamp_from_unix_micros(r.long()?).unwrap_or(Cell::Null),
        Conv::DecimalBytes { precision, scale } => decimal(r.bytes()?, *precision, *scale),
        Conv::DecimalFixed {
            size,
            precision,
            scale,
        } => decimal(r.take(*size)?, *precision, *scale),
        Conv::Duration => {
            let d = Duration::from_bytes(r.fixed::<12>()?);
            match (i32::try_from(d.months), i32::try_from(d.days)) {
                (Ok(months), Ok(days)) => Cell::Interval {
                    micros: i64::from(d.millis) * 1000,
                    days,
                    months,
                },
                _ => Cell::Null,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn nul_escapes_in_json_text_become_what_pg_json_makes_of_the_tree() {
        let cases = [
            serde_json::json!({"a": "x\u{0}y", "b\u{0}": ["\u{0}", 1, {"c": "\u{0}\u{0}"}]}),
            serde_json::json!({"literal": "\\u0000", "both": "\\\u{0}", "quote": "\"\u{0}"}),
            serde_json::json!({"none": "plain \\ text", "n": 1.5}),
        ];
        for v in cases {
            let text = pg_json_text(serde_json::to_vec(&v).unwrap());
            let back: Value = serde_json::from_slice(&text).unwrap();
            assert_eq!(back, pg_json(v.clone()), "{v}");
        }
        let plain = br#"{"a":"\\u0000"}"#.to_vec();
        assert_eq!(
            pg_json_text(plain.clone()),
            plain,
            "an escaped backslash stays"
        );
    }

    #[test]
    fn names_are_flattened_cut_and_kept_off_base_columns() {
        let set = SchemaSet::parse_str(
            r#"{"type":"record","name":"R","fields":[
                {"name":"kafka_offset","type":"long"},
                {"name":"child","type":["null",{"type":"record","name":"C","fields":[
                    {"name":"child_id","type":"string"},
                    {"name":"next","type":["null","R"]}]}]},
                {"name":"tags","type":{"type":"array","items":"string"}},
                {"name":"either","type":["int","string"]},
                {"name":"a_very_long_field_name_that_goes_on_and_on_and_on_and_on_forever_more","type":"int"}
            ]}"#,
        )
        .unwrap();
        let m = Mapping::new(&set, set.last_root()).unwrap();
        let names: Vec<(&str, String)> = m
            .columns()
            .iter()
            .map(|c| (c.name.as_str(), c.pg.sql()))
            .collect();
        assert_eq!(names[0], ("value__kafka_offset", "bigint".into()));
        assert_eq!(names[1], ("child__child_id", "text".into()));
        // The record inside itself is jsonb.
        assert_eq!(names[2], ("child__next", "jsonb".into()));
        assert_eq!(names[3], ("tags", "jsonb".into()));
        assert_eq!(names[4], ("either", "jsonb".into()));
        assert_eq!(names[5].0.len(), MAX_IDENT);
        assert!(names[5].0.starts_with("a_very_long_field_name"));
    }

    #[test]
    fn collisions_are_reported() {
        let set = SchemaSet::parse_str(
            r#"{"type":"record","name":"R","fields":[
                {"name":"a__b","type":"long"},
                {"name":"a","type":{"type":"record","name":"A","fields":[{"name":"b","type":"int"}]}}
            ]}"#,
        )
        .unwrap();
        let e = Mapping::new(&set, set.last_root()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "fields `a__b` and `a.b` both map to column `a__b`"
        );
    }

    #[test]
    fn a_primitive_root_is_one_column() {
        let set = SchemaSet::parse_str(r#"{"type":"string","logicalType":"uuid"}"#).unwrap();
        let m = Mapping::new(&set, set.last_root()).unwrap();
        assert_eq!(m.columns()[0].name, "value");
        assert_eq!(m.columns()[0].pg, PgType::Uuid);
        let mut datum = Vec::new();
        ursa_avro::encode::string(&mut datum, "not a uuid");
        assert_eq!(m.cells(&set, &datum).unwrap(), vec![Cell::Null]);
    }
}
