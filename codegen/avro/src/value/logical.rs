//! Readable JSON for logical types, falling back to the underlying value when it is out of range.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::base64::encode_base64;
use crate::logical::{self, Decimal, Duration, bytes_for_precision};
use crate::schema::LogicalType;

/// Unscaled decimal values longer than this (after stripping sign extension) are never rendered as text,
/// whatever the (writer's) schema's precision says: the conversion is quadratic in the length.
const MAX_DECIMAL_BYTES: usize = 512;

/// RFC 3339 and ISO 8601 without extensions have four-digit years.
fn plain_year(year: i32) -> bool {
    (0..=9999).contains(&year)
}

/// An `int` with a logical type.
pub(super) fn int(logical: Option<LogicalType>, v: i32) -> Value {
    let text = match logical {
        Some(LogicalType::Date) => logical::date_from_days(v).ok().and_then(date),
        Some(LogicalType::TimeMillis) => logical::time_from_millis(v)
            .ok()
            .map(|t| time(&t, "%H:%M:%S%.3f")),
        _ => None,
    };
    text.map_or_else(|| Value::from(v), Value::String)
}

/// A `long` with a logical type.
pub(super) fn long(logical: Option<LogicalType>, v: i64) -> Value {
    use LogicalType as L;
    let text = match logical {
        Some(L::TimeMicros) => logical::time_from_micros(v)
            .ok()
            .map(|t| time(&t, "%H:%M:%S%.6f")),
        Some(L::TimestampMillis) => logical::timestamp_from_millis(v)
            .ok()
            .and_then(|t| instant(&t, SecondsFormat::Millis)),
        Some(L::TimestampMicros) => logical::timestamp_from_micros(v)
            .ok()
            .and_then(|t| instant(&t, SecondsFormat::Micros)),
        Some(L::TimestampNanos) => logical::timestamp_from_nanos(v)
            .ok()
            .and_then(|t| instant(&t, SecondsFormat::Nanos)),
        Some(L::LocalTimestampMillis) => logical::local_from_millis(v)
            .ok()
            .and_then(|t| local(&t, "%Y-%m-%dT%H:%M:%S%.3f")),
        Some(L::LocalTimestampMicros) => logical::local_from_micros(v)
            .ok()
            .and_then(|t| local(&t, "%Y-%m-%dT%H:%M:%S%.6f")),
        Some(L::LocalTimestampNanos) => logical::local_from_nanos(v)
            .ok()
            .and_then(|t| local(&t, "%Y-%m-%dT%H:%M:%S%.9f")),
        _ => None,
    };
    text.map_or_else(|| Value::from(v), Value::String)
}

/// Appends a `long` with a logical type as JSON: what serializing [`long`]'s value gives. Timestamps in
/// milliseconds and microseconds (the common case in events) are written without allocating.
pub(super) fn write_long(out: &mut Vec<u8>, logical: Option<LogicalType>, v: i64) {
    let written = match logical {
        Some(LogicalType::TimestampMillis) => logical::timestamp_from_millis(v)
            .ok()
            .is_some_and(|t| write_instant(out, &t, 3)),
        Some(LogicalType::TimestampMicros) => logical::timestamp_from_micros(v)
            .ok()
            .is_some_and(|t| write_instant(out, &t, 6)),
        _ => false,
    };
    if !written {
        let _ = serde_json::to_writer(&mut *out, &long(logical, v));
    }
}

/// `"YYYY-MM-DDTHH:MM:SS.fffZ"` with `digits` (3 or 6) fractional digits, as `to_rfc3339_opts` writes it;
/// false (nothing written) for a year RFC 3339 cannot write or a leap second.
fn write_instant(out: &mut Vec<u8>, t: &DateTime<Utc>, digits: u32) -> bool {
    use chrono::Timelike;
    let nanos = t.nanosecond();
    if !plain_year(t.year()) || nanos >= 1_000_000_000 {
        return false;
    }
    let (y, mo, d) = (t.year() as u32, t.month(), t.day());
    let (h, mi, s) = (t.hour(), t.minute(), t.second());
    let frac = nanos / 10u32.pow(9 - digits);
    // Quote, date, `T`, time, fraction, `Z`, quote.
    let mut text = [0u8; 32];
    let mut n = 0;
    let mut put = |v: u32, width: u32| {
        for i in (0..width).rev() {
            text[n] = b'0' + ((v / 10u32.pow(i)) % 10) as u8;
            n += 1;
        }
    };
    put(y, 4);
    put(mo, 2);
    put(d, 2);
    put(h, 2);
    put(mi, 2);
    put(s, 2);
    put(frac, digits);
    let digits = digits as usize;
    out.push(b'"');
    out.extend_from_slice(&text[0..4]);
    out.push(b'-');
    out.extend_from_slice(&text[4..6]);
    out.push(b'-');
    out.extend_from_slice(&text[6..8]);
    out.push(b'T');
    out.extend_from_slice(&text[8..10]);
    out.push(b':');
    out.extend_from_slice(&text[10..12]);
    out.push(b':');
    out.extend_from_slice(&text[12..14]);
    out.push(b'.');
    out.extend_from_slice(&text[14..14 + digits]);
    out.extend_from_slice(b"Z\"");
    true
}

fn date(d: NaiveDate) -> Option<String> {
    plain_year(d.year()).then(|| d.format("%Y-%m-%d").to_string())
}

fn time(t: &NaiveTime, format: &str) -> String {
    t.format(format).to_string()
}

fn instant(t: &DateTime<Utc>, precision: SecondsFormat) -> Option<String> {
    plain_year(t.year()).then(|| t.to_rfc3339_opts(precision, true))
}

fn local(t: &NaiveDateTime, format: &str) -> Option<String> {
    plain_year(t.year()).then(|| t.format(format).to_string())
}

/// `bytes` or `fixed` bytes: a `decimal` as exact text, a `duration` as an object, a `uuid` (fixed 16) as
/// text; anything else, or a value its logical type cannot hold, as base64.
pub(super) fn bytes(logical: Option<LogicalType>, b: &[u8], fixed: bool) -> Value {
    match logical {
        Some(LogicalType::Decimal { precision, scale }) => decimal(b, precision, scale),
        Some(LogicalType::Duration) if fixed => match <[u8; 12]>::try_from(b) {
            Ok(a) => duration(Duration::from_bytes(a)),
            Err(_) => Value::String(encode_base64(b)),
        },
        Some(LogicalType::Uuid) if fixed => match <[u8; 16]>::try_from(b) {
            Ok(a) => Value::String(logical::uuid_to_string(&uuid::Uuid::from_bytes(a))),
            Err(_) => Value::String(encode_base64(b)),
        },
        _ => Value::String(encode_base64(b)),
    }
}

fn duration(d: Duration) -> Value {
    let mut m = Map::with_capacity(3);
    m.insert("months".into(), d.months.into());
    m.insert("days".into(), d.days.into());
    m.insert("millis".into(), d.millis.into());
    Value::Object(m)
}

/// Length of `b` without redundant sign-extension bytes.
fn significant_len(b: &[u8]) -> usize {
    let mut i = 0;
    while i + 1 < b.len() {
        let (x, next) = (b[i], b[i + 1]);
        if (x == 0 && next & 0x80 == 0) || (x == 0xff && next & 0x80 != 0) {
            i += 1;
        } else {
            break;
        }
    }
    b.len() - i
}

fn decimal(b: &[u8], precision: u32, scale: u32) -> Value {
    let len = significant_len(b);
    if len > bytes_for_precision(precision).min(MAX_DECIMAL_BYTES) {
        return Value::String(encode_base64(b));
    }
    Value::String(Decimal::from_unscaled_bytes(b.to_vec(), scale).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_bounds() {
        // 38 digits fit in 16 bytes (i128), 9 in 4 (i32), 2 in 1.
        assert_eq!(bytes_for_precision(38), 16);
        assert_eq!(bytes_for_precision(9), 4);
        assert_eq!(bytes_for_precision(2), 1);
        assert_eq!(significant_len(&[0, 0, 0x7f]), 1);
        assert_eq!(significant_len(&[0xff, 0xff, 0x80]), 1);
        assert_eq!(significant_len(&[0, 0x80]), 2);
        assert_eq!(significant_len(&[]), 0);
    }
}
