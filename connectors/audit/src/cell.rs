//! Column types and values in PostgreSQL's binary format: what the binary COPY writes, and what `verify` and the
//! tests read back (the same encoding both ways, so a value round-trips exactly).
//!
//! PostgreSQL's binary formats (`src/backend/utils/adt/*.c`, `*_send`/`*_recv`): integers and floats big-endian;
//! `date` as days and `time` as microseconds since midnight; `timestamp`/`timestamptz` as microseconds since
//! 2000-01-01 00:00 UTC; `interval` as microseconds, days, months; `uuid` as 16 bytes; `jsonb` as a version byte
//! (1) and the text; `numeric` as digit count, weight, sign and display scale, then base-10000 digits.

use std::error::Error as StdError;
use std::fmt;

use bytes::{BufMut, BytesMut};
use serde_json::Value;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
pub const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Days from the Unix epoch to PostgreSQL's.
pub const PG_EPOCH_DAYS: i32 = 10_957;

/// The earliest `timestamp` PostgreSQL stores (4714-11-24 BC 00:00), in microseconds since its epoch.
pub const PG_MIN_TIMESTAMP: i64 = -211_813_488_000_000_000;

/// One past the latest `timestamp` PostgreSQL stores (294277-01-01 00:00), in microseconds since its epoch.
pub const PG_END_TIMESTAMP: i64 = 9_223_371_331_200_000_000;

/// The earliest `date` (4714-11-24 BC), in days since PostgreSQL's epoch.
pub const PG_MIN_DATE: i32 = -2_451_545;

/// One past the latest `date` (5874898-01-01), in days since PostgreSQL's epoch.
pub const PG_END_DATE: i32 = 2_145_031_949;

/// The widest `numeric(p, s)` PostgreSQL accepts; wider decimals get an unconstrained `numeric`.
pub const PG_MAX_NUMERIC_PRECISION: u32 = 1000;

/// The type of a typed column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PgType {
    /// `boolean`
    Boolean,
    /// `integer`
    Integer,
    /// `bigint`
    Bigint,
    /// `real`
    Real,
    /// `double precision`
    Double,
    /// `text`
    Text,
    /// `bytea`
    Bytea,
    /// `uuid`
    Uuid,
    /// `date`
    Date,
    /// `time` (without time zone)
    Time,
    /// `timestamptz`
    Timestamptz,
    /// `timestamp` (without time zone)
    Timestamp,
    /// `numeric(precision, scale)`, or plain `numeric` past [`PG_MAX_NUMERIC_PRECISION`].
    Numeric {
        /// Total digits.
        precision: u32,
        /// Digits after the point.
        scale: u32,
    },
    /// `interval`
    Interval,
    /// `jsonb`
    Jsonb,
}

impl PgType {
    /// The type as PostgreSQL's `format_type()` prints it (also valid in DDL), so a column found in the
    /// catalog compares equal to the one a schema maps to.
    pub fn sql(&self) -> String {
        match self {
            PgType::Boolean => "boolean".into(),
            PgType::Integer => "integer".into(),
            PgType::Bigint => "bigint".into(),
            PgType::Real => "real".into(),
            PgType::Double => "double precision".into(),
            PgType::Text => "text".into(),
            PgType::Bytea => "bytea".into(),
            PgType::Uuid => "uuid".into(),
            PgType::Date => "date".into(),
            PgType::Time => "time without time zone".into(),
            PgType::Timestamptz => "timestamp with time zone".into(),
            PgType::Timestamp => "timestamp without time zone".into(),
            PgType::Numeric { precision, scale } if *precision <= PG_MAX_NUMERIC_PRECISION => {
                format!("numeric({precision},{scale})")
            }
            PgType::Numeric { .. } => "numeric".into(),
            PgType::Interval => "interval".into(),
            PgType::Jsonb => "jsonb".into(),
        }
    }

    /// The client library's type (for binary COPY).
    pub fn pg(&self) -> Type {
        match self {
            PgType::Boolean => Type::BOOL,
            PgType::Integer => Type::INT4,
            PgType::Bigint => Type::INT8,
            PgType::Real => Type::FLOAT4,
            PgType::Double => Type::FLOAT8,
            PgType::Text => Type::TEXT,
            PgType::Bytea => Type::BYTEA,
            PgType::Uuid => Type::UUID,
            PgType::Date => Type::DATE,
            PgType::Time => Type::TIME,
            PgType::Timestamptz => Type::TIMESTAMPTZ,
            PgType::Timestamp => Type::TIMESTAMP,
            PgType::Numeric { .. } => Type::NUMERIC,
            PgType::Interval => Type::INTERVAL,
            PgType::Jsonb => Type::JSONB,
        }
    }
}

impl fmt::Display for PgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql())
    }
}

/// A value of a column, in the representation PostgreSQL's binary format uses.
#[derive(Debug, Clone)]
pub enum Cell {
    /// SQL `NULL`.
    Null,
    /// `boolean`
    Bool(bool),
    /// `integer`
    I32(i32),
    /// `bigint`
    I64(i64),
    /// `real`
    F32(f32),
    /// `double precision`
    F64(f64),
    /// `text`
    Text(String),
    /// `bytea`
    Bytes(Vec<u8>),
    /// `uuid`
    Uuid([u8; 16]),
    /// `date`: days since 2000-01-01.
    Date(i32),
    /// `time`: microseconds since midnight.
    Time(i64),
    /// `timestamp` or `timestamptz`: microseconds since 2000-01-01 00:00 (UTC for `timestamptz`).
    Timestamp(i64),
    /// `numeric`: the exact decimal text (`-12.50`, `NaN`).
    Numeric(String),
    /// `interval`
    Interval {
        /// Microseconds.
        micros: i64,
        /// Days.
        days: i32,
        /// Months.
        months: i32,
    },
    /// `jsonb`
    Json(Value),
}

impl PartialEq for Cell {
    /// Floats compare by bits (so NaN equals NaN: a value read back is the value written).
    fn eq(&self, other: &Self) -> bool {
        use Cell as C;
        match (self, other) {
            (C::Null, C::Null) => true,
            (C::Bool(a), C::Bool(b)) => a == b,
            (C::I32(a), C::I32(b)) => a == b,
            (C::I64(a), C::I64(b)) => a == b,
            (C::F32(a), C::F32(b)) => a.to_bits() == b.to_bits(),
            (C::F64(a), C::F64(b)) => a.to_bits() == b.to_bits(),
            (C::Text(a), C::Text(b)) => a == b,
            (C::Bytes(a), C::Bytes(b)) => a == b,
            (C::Uuid(a), C::Uuid(b)) => a == b,
            (C::Date(a), C::Date(b)) => a == b,
            (C::Time(a), C::Time(b)) => a == b,
            (C::Timestamp(a), C::Timestamp(b)) => a == b,
            (C::Numeric(a), C::Numeric(b)) => a == b,
            (
                C::Interval {
                    micros: a,
                    days: b,
                    months: c,
                },
                C::Interval {
                    micros: x,
                    days: y,
                    months: z,
                },
            ) => (a, b, c) == (x, y, z),
            (C::Json(a), C::Json(b)) => a == b,
            _ => false,
        }
    }
}

impl Cell {
    /// A `timestamptz` from milliseconds since the Unix epoch (`None` outside PostgreSQL's range).
    pub fn timestamp_from_unix_millis(ms: i64) -> Option<Cell> {
        ms.checked_mul(1000)
            .and_then(Cell::timestamp_from_unix_micros)
    }

    /// A `timestamp`/`timestamptz` from microseconds since the Unix epoch (`None` outside PostgreSQL's range).
    pub fn timestamp_from_unix_micros(us: i64) -> Option<Cell> {
        let pg = us.checked_sub(PG_EPOCH_MICROS)?;
        (PG_MIN_TIMESTAMP..PG_END_TIMESTAMP)
            .contains(&pg)
            .then_some(Cell::Timestamp(pg))
    }

    /// A `date` from days since the Unix epoch (`None` outside PostgreSQL's range).
    pub fn date_from_unix_days(days: i32) -> Option<Cell> {
        let pg = days.checked_sub(PG_EPOCH_DAYS)?;
        (PG_MIN_DATE..PG_END_DATE)
            .contains(&pg)
            .then_some(Cell::Date(pg))
    }

    /// A `time` from microseconds since midnight (`None` outside 00:00..=24:00).
    pub fn time_from_micros(us: i64) -> Option<Cell> {
        (0..=86_400_000_000).contains(&us).then_some(Cell::Time(us))
    }

    /// Whether this is SQL `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

fn mismatch(cell: &Cell, ty: &Type) -> BoxError {
    format!("cannot write {cell:?} as PostgreSQL type {ty}").into()
}

impl ToSql for Cell {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (self, ty.name()) {
            (Cell::Null, _) => return Ok(IsNull::Yes),
            (Cell::Bool(b), "bool") => out.put_u8(u8::from(*b)),
            (Cell::I32(v), "int4") => out.put_i32(*v),
            (Cell::I64(v), "int8") => out.put_i64(*v),
            (Cell::F32(v), "float4") => out.put_f32(*v),
            (Cell::F64(v), "float8") => out.put_f64(*v),
            (Cell::Text(s), "text" | "varchar") => out.put_slice(s.as_bytes()),
            (Cell::Bytes(b), "bytea") => out.put_slice(b),
            (Cell::Uuid(u), "uuid") => out.put_slice(u),
            (Cell::Date(d), "date") => out.put_i32(*d),
            (Cell::Time(t), "time") => out.put_i64(*t),
            (Cell::Timestamp(t), "timestamp" | "timestamptz") => out.put_i64(*t),
            (Cell::Numeric(text), "numeric") => numeric_to_binary(text, out)?,
            (
                Cell::Interval {
                    micros,
                    days,
                    months,
                },
                "interval",
            ) => {
                out.put_i64(*micros);
                out.put_i32(*days);
                out.put_i32(*months);
            }
            (Cell::Json(v), "jsonb") => {
                out.put_u8(1);
                serde_json::to_writer(out.writer(), v)?;
            }
            (Cell::Json(v), "json") => serde_json::to_writer(out.writer(), v)?,
            (cell, _) => return Err(mismatch(cell, ty)),
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        supported(ty)
    }

    to_sql_checked!();
}

fn supported(ty: &Type) -> bool {
    matches!(
        ty.name(),
        "bool"
            | "int4"
            | "int8"
            | "float4"
            | "float8"
            | "text"
            | "varchar"
            | "bytea"
            | "uuid"
            | "date"
            | "time"
            | "timestamp"
            | "timestamptz"
            | "numeric"
            | "interval"
            | "jsonb"
            | "json"
    )
}

fn take<const N: usize>(raw: &[u8], at: usize) -> Result<[u8; N], BoxError> {
    raw.get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| "truncated binary value".into())
}

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, BoxError> {
        Ok(match ty.name() {
            "bool" => Cell::Bool(take::<1>(raw, 0)?[0] != 0),
            "int4" => Cell::I32(i32::from_be_bytes(take(raw, 0)?)),
            "int8" => Cell::I64(i64::from_be_bytes(take(raw, 0)?)),
            "float4" => Cell::F32(f32::from_be_bytes(take(raw, 0)?)),
            "float8" => Cell::F64(f64::from_be_bytes(take(raw, 0)?)),
            "text" | "varchar" | "name" => Cell::Text(std::str::from_utf8(raw)?.to_owned()),
            "bytea" => Cell::Bytes(raw.to_vec()),
            "uuid" => Cell::Uuid(take(raw, 0)?),
            "date" => Cell::Date(i32::from_be_bytes(take(raw, 0)?)),
            "time" => Cell::Time(i64::from_be_bytes(take(raw, 0)?)),
            "timestamp" | "timestamptz" => Cell::Timestamp(i64::from_be_bytes(take(raw, 0)?)),
            "numeric" => Cell::Numeric(numeric_from_binary(raw)?),
            "interval" => Cell::Interval {
                micros: i64::from_be_bytes(take(raw, 0)?),
                days: i32::from_be_bytes(take(raw, 8)?),
                months: i32::from_be_bytes(take(raw, 12)?),
            },
            "jsonb" => match raw.split_first() {
                Some((1, text)) => Cell::Json(serde_json::from_slice(text)?),
                _ => return Err("unknown jsonb binary version".into()),
            },
            "json" => Cell::Json(serde_json::from_slice(raw)?),
            other => return Err(format!("unsupported PostgreSQL type {other}").into()),
        })
    }

    fn from_sql_null(_ty: &Type) -> Result<Cell, BoxError> {
        Ok(Cell::Null)
    }

    fn accepts(ty: &Type) -> bool {
        supported(ty)
    }
}

/// Compact JSON text written as `jsonb` or `json` (the binary COPY of the value's `jsonb`, written straight
/// from the datum).
#[derive(Debug, Clone, Copy)]
pub struct JsonText<'a>(pub &'a [u8]);

impl ToSql for JsonText<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match ty.name() {
            "jsonb" => {
                out.put_u8(1);
                out.extend_from_slice(self.0);
            }
            "json" => out.extend_from_slice(self.0),
            _ => return Err(format!("cannot write JSON as PostgreSQL type {ty}").into()),
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(ty.name(), "jsonb" | "json")
    }

    to_sql_checked!();
}

/// A borrowed JSON value written as `jsonb` (what the binary COPY of the value's `jsonb` uses, to spare a copy).
#[derive(Debug, Clone, Copy)]
pub struct JsonRef<'a>(pub &'a Value);

impl ToSql for JsonRef<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match ty.name() {
            "jsonb" => {
                out.put_u8(1);
                serde_json::to_writer(out.writer(), self.0)?;
            }
            "json" => serde_json::to_writer(out.writer(), self.0)?,
            _ => return Err(format!("cannot write JSON as PostgreSQL type {ty}").into()),
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(ty.name(), "jsonb" | "json")
    }

    to_sql_checked!();
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;

/// The base-10000 digits of a decimal text (`[-]digits[.digits]`), with PostgreSQL's weight and display scale.
struct NumericParts {
    negative: bool,
    weight: i16,
    dscale: u16,
    digits: Vec<i16>,
}

fn parse_numeric(text: &str) -> Result<NumericParts, BoxError> {
    let bad = || -> BoxError { format!("not a decimal: {text:?}").into() };
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let int = int.trim_start_matches('0');
    let dscale = u16::try_from(frac.len()).map_err(|_| bad())?;
    // Integer groups, aligned from the point leftwards; fraction groups from the point rightwards.
    let int_pad = (4 - int.len() % 4) % 4;
    let mut padded_int = "0".repeat(int_pad);
    padded_int.push_str(int);
    let mut padded_frac = frac.to_owned();
    padded_frac.push_str(&"0".repeat((4 - frac.len() % 4) % 4));
    let group = |s: &str| -> Result<i16, BoxError> { s.parse::<i16>().map_err(|_| bad()) };
    let mut digits = Vec::with_capacity((padded_int.len() + padded_frac.len()) / 4);
    for chunk in padded_int.as_bytes().chunks(4) {
        digits.push(group(std::str::from_utf8(chunk)?)?);
    }
    let int_groups = digits.len();
    for chunk in padded_frac.as_bytes().chunks(4) {
        digits.push(group(std::str::from_utf8(chunk)?)?);
    }
    let mut weight = i32::try_from(int_groups).map_err(|_| bad())? - 1;
    // Leading zero groups move the weight; trailing ones carry nothing.
    let lead = digits.iter().take_while(|d| **d == 0).count();
    digits.drain(..lead);
    weight -= i32::try_from(lead).map_err(|_| bad())?;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    Ok(NumericParts {
        negative: negative && !digits.is_empty(),
        weight: i16::try_from(weight).map_err(|_| bad())?,
        dscale,
        digits,
    })
}

fn numeric_to_binary(text: &str, out: &mut BytesMut) -> Result<(), BoxError> {
    if text == "NaN" {
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(NUMERIC_NAN);
        out.put_u16(0);
        return Ok(());
    }
    let p = parse_numeric(text)?;
    out.put_i16(i16::try_from(p.digits.len())?);
    out.put_i16(p.weight);
    out.put_u16(if p.negative { NUMERIC_NEG } else { NUMERIC_POS });
    out.put_u16(p.dscale);
    for d in p.digits {
        out.put_i16(d);
    }
    Ok(())
}

fn numeric_from_binary(raw: &[u8]) -> Result<String, BoxError> {
    let ndigits = i16::from_be_bytes(take(raw, 0)?);
    let weight = i32::from(i16::from_be_bytes(take(raw, 2)?));
    let sign = u16::from_be_bytes(take(raw, 4)?);
    let dscale = usize::from(u16::from_be_bytes(take(raw, 6)?));
    if sign == NUMERIC_NAN {
        return Ok("NaN".into());
    }
    let n = usize::try_from(ndigits).map_err(|_| "negative numeric digit count")?;
    let mut digits = Vec::with_capacity(n);
    for i in 0..n {
        digits.push(i16::from_be_bytes(take(raw, 8 + 2 * i)?));
    }
    let digit = |i: i32| -> i16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == NUMERIC_NEG {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for g in 0..=weight {
            if g == 0 {
                out.push_str(&digit(g).to_string());
            } else {
                out.push_str(&format!("{:04}", digit(g)));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut g = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(g)));
            g += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn numeric_binary_round_trips() {
        for text in [
            "0",
            "0.00",
            "1",
            "-1",
            "12345.6789",
            "-0.0001",
            "10000",
            "99999999999999999999999999999999999999",
            "0.000000001",
            "-123.450",
            "100000000.00000001",
            "NaN",
        ] {
            let mut buf = BytesMut::new();
            numeric_to_binary(text, &mut buf).unwrap();
            assert_eq!(numeric_from_binary(&buf).unwrap(), text, "{text}");
        }
        // "-0" is zero.
        let mut buf = BytesMut::new();
        numeric_to_binary("-0.0", &mut buf).unwrap();
        assert_eq!(numeric_from_binary(&buf).unwrap(), "0.0");
        assert!(numeric_to_binary("1e5", &mut BytesMut::new()).is_err());
        assert!(numeric_to_binary(".", &mut BytesMut::new()).is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(
            Cell::timestamp_from_unix_millis(0),
            Some(Cell::Timestamp(-PG_EPOCH_MICROS))
        );
        assert_eq!(Cell::timestamp_from_unix_millis(i64::MAX), None);
        assert_eq!(
            Cell::date_from_unix_days(PG_EPOCH_DAYS),
            Some(Cell::Date(0))
        );
        assert_eq!(Cell::date_from_unix_days(i32::MAX), None);
        assert_eq!(Cell::time_from_micros(-1), None);
        assert_eq!(
            PgType::Numeric {
                precision: 10,
                scale: 2
            }
            .sql(),
            "numeric(10,2)"
        );
        assert_eq!(
            PgType::Numeric {
                precision: 2000,
                scale: 2
            }
            .sql(),
            "numeric"
        );
        assert_eq!(Cell::F64(f64::NAN), Cell::F64(f64::NAN));
    }
}
