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
        Some(LogicalType::TimestampMillis) => write_instant(out, v, 1_000, 3),
        Some(LogicalType::TimestampMicros) => write_instant(out, v, 1_000_000, 6),
        _ => false,
    };
    if !written {
        let _ = serde_json::to_writer(&mut *out, &long(logical, v));
    }
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `v` units (`per_second` to a second) since the epoch as `"YYYY-MM-DDTHH:MM:SS.fffZ"` with `digits`
/// fractional digits, as `to_rfc3339_opts` writes it; false (nothing written) for a year RFC 3339 cannot
/// write.
fn write_instant(out: &mut Vec<u8>, v: i64, per_second: i64, digits: usize) -> bool {
    let secs = v.div_euclid(per_second);
    let frac = v.rem_euclid(per_second) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        return false;
    }
    let of_day = secs.rem_euclid(86_400) as u32;
    let (h, mi, sec) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    let y = y as u32;
    // The whole text in one fixed-size buffer, two digits at a time from a table, appended at once.
    let mut text = [0u8; 32];
    text[0] = b'"';
    text[1..3].copy_from_slice(&two_digits(y / 100));
    text[3..5].copy_from_slice(&two_digits(y % 100));
    text[5] = b'-';
    text[6..8].copy_from_slice(&two_digits(mo));
    text[8] = b'-';
    text[9..11].copy_from_slice(&two_digits(d));
    text[11] = b'T';
    text[12..14].copy_from_slice(&two_digits(h));
    text[14] = b':';
    text[15..17].copy_from_slice(&two_digits(mi));
    text[17] = b':';
    text[18..20].copy_from_slice(&two_digits(sec));
    text[20] = b'.';
    // The fraction, `digits` (3 or 6) wide with leading zeros.
    let end = 21 + digits;
    let (hi, lo) = if digits == 6 {
        (frac / 1000, frac % 1000)
    } else {
        (frac, 0)
    };
    text[21] = b'0' + (hi / 100) as u8;
    text[22..24].copy_from_slice(&two_digits(hi % 100));
    text[24] = b'0' + (lo / 100) as u8;
    text[25..27].copy_from_slice(&two_digits(lo % 100));
    text[end] = b'Z';
    text[end + 1] = b'"';
    super::write::append_from(out, end + 2, &text);
    true
}

/// The two decimal digits of `v` (below 100), from a table.
#[inline]
fn two_digits(v: u32) -> [u8; 2] {
    const PAIRS: [[u8; 2]; 100] = {
        let mut t = [[0u8; 2]; 100];
        let mut i = 0;
        while i < 100 {
            t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
            i += 1;
        }
        t
    };
    PAIRS[(v % 100) as usize]
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
