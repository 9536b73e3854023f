//! Rust types for Avro logical types and the conversions generated code calls.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

use crate::Error;

fn out_of_range(what: &'static str, detail: impl fmt::Display) -> Error {
    Error::OutOfRange {
        what,
        detail: detail.to_string(),
    }
}

/// Days between 0001-01-01 (day 1 of the common era) and 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// `date`: days since 1970-01-01 → date.
pub fn date_from_days(days: i32) -> Result<NaiveDate, Error> {
    days.checked_add(EPOCH_DAYS_FROM_CE)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .ok_or_else(|| out_of_range("date", format!("{days} days from the epoch")))
}

/// date → days since 1970-01-01.
pub fn days_from_date(date: &NaiveDate) -> i32 {
    date.signed_duration_since(NaiveDate::default()).num_days() as i32
}

fn time_from_nanos(what: &'static str, nanos: i64) -> Result<NaiveTime, Error> {
    if !(0..86_400_000_000_000).contains(&nanos) {
        return Err(out_of_range(
            what,
            format!("{nanos} ns is not within one day"),
        ));
    }
    NaiveTime::from_num_seconds_from_midnight_opt(
        (nanos / 1_000_000_000) as u32,
        (nanos % 1_000_000_000) as u32,
    )
    .ok_or_else(|| out_of_range(what, nanos))
}

fn nanos_of_day(what: &'static str, t: &NaiveTime) -> Result<i64, Error> {
    if t.nanosecond() >= 1_000_000_000 {
        return Err(out_of_range(what, "leap seconds cannot be represented"));
    }
    Ok(i64::from(t.num_seconds_from_midnight()) * 1_000_000_000 + i64::from(t.nanosecond()))
}

/// `time-millis` → time of day.
pub fn time_from_millis(ms: i32) -> Result<NaiveTime, Error> {
    time_from_nanos("time-millis", i64::from(ms) * 1_000_000)
}

/// time of day → `time-millis` (sub-millisecond digits are truncated).
pub fn millis_from_time(t: &NaiveTime) -> Result<i32, Error> {
    Ok((nanos_of_day("time-millis", t)? / 1_000_000) as i32)
}

/// `time-micros` → time of day.
pub fn time_from_micros(us: i64) -> Result<NaiveTime, Error> {
    let nanos = us
        .checked_mul(1_000)
        .ok_or_else(|| out_of_range("time-micros", us))?;
    time_from_nanos("time-micros", nanos)
}

/// time of day → `time-micros` (sub-microsecond digits are truncated).
pub fn micros_from_time(t: &NaiveTime) -> Result<i64, Error> {
    Ok(nanos_of_day("time-micros", t)? / 1_000)
}

/// `timestamp-millis` → UTC instant.
pub fn timestamp_from_millis(ms: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| out_of_range("timestamp-millis", ms))
}

/// `timestamp-micros` → UTC instant.
pub fn timestamp_from_micros(us: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| out_of_range("timestamp-micros", us))
}

/// `timestamp-nanos` → UTC instant (every i64 is representable).
pub fn timestamp_from_nanos(ns: i64) -> Result<DateTime<Utc>, Error> {
    Ok(DateTime::from_timestamp_nanos(ns))
}

/// UTC instant → `timestamp-millis` (truncated).
pub fn millis_from_timestamp(t: &DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// UTC instant → `timestamp-micros` (truncated).
pub fn micros_from_timestamp(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// UTC instant → `timestamp-nanos`; instants beyond ±292 years of 1970 do not fit.
pub fn nanos_from_timestamp(t: &DateTime<Utc>) -> Result<i64, Error> {
    t.timestamp_nanos_opt()
        .ok_or_else(|| out_of_range("timestamp-nanos", t))
}

/// `local-timestamp-millis` → local date-time.
pub fn local_from_millis(ms: i64) -> Result<NaiveDateTime, Error> {
    Ok(timestamp_from_millis(ms)
        .map_err(|_| out_of_range("local-timestamp-millis", ms))?
        .naive_utc())
}

/// `local-timestamp-micros` → local date-time.
pub fn local_from_micros(us: i64) -> Result<NaiveDateTime, Error> {
    Ok(timestamp_from_micros(us)
        .map_err(|_| out_of_range("local-timestamp-micros", us))?
        .naive_utc())
}

/// `local-timestamp-nanos` → local date-time.
pub fn local_from_nanos(ns: i64) -> Result<NaiveDateTime, Error> {
    Ok(DateTime::from_timestamp_nanos(ns).naive_utc())
}

/// local date-time → `local-timestamp-millis`.
pub fn millis_from_local(t: &NaiveDateTime) -> i64 {
    t.and_utc().timestamp_millis()
}

/// local date-time → `local-timestamp-micros`.
pub fn micros_from_local(t: &NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

/// local date-time → `local-timestamp-nanos`.
pub fn nanos_from_local(t: &NaiveDateTime) -> Result<i64, Error> {
    t.and_utc()
        .timestamp_nanos_opt()
        .ok_or_else(|| out_of_range("local-timestamp-nanos", t))
}

/// `uuid` on string → UUID.
pub fn uuid_from_str(s: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::try_parse(s).map_err(|e| out_of_range("uuid", format!("{s:?}: {e}")))
}

/// UUID → the lowercase hyphenated text of `uuid` on string.
pub fn uuid_to_string(u: &uuid::Uuid) -> String {
    u.hyphenated().to_string()
}

/// The Avro `duration`: months, days and milliseconds, each an unsigned 32-bit count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Duration {
    /// Months.
    pub months: u32,
    /// Days.
    pub days: u32,
    /// Milliseconds.
    pub millis: u32,
}

impl Duration {
    /// From the 12-byte fixed (three little-endian u32).
    pub fn from_bytes(b: [u8; 12]) -> Self {
        let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Duration {
            months: u(0),
            days: u(4),
            millis: u(8),
        }
    }

    /// To the 12-byte fixed.
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&self.months.to_le_bytes());
        b[4..8].copy_from_slice(&self.days.to_le_bytes());
        b[8..12].copy_from_slice(&self.millis.to_le_bytes());
        b
    }
}

/// An Avro `decimal`: an arbitrary-precision unscaled integer (big-endian two's complement, as on the
/// wire) and a scale. Equality compares numeric value and scale, not the byte spelling.
#[derive(Clone, Eq)]
pub struct Decimal {
    unscaled: Vec<u8>,
    scale: u32,
}

impl Decimal {
    /// The most digits [`str::parse`] accepts (leading zeros of the integer part aside): text conversion is
    /// quadratic in the length, so longer text is refused before any work, as CPython refuses integer text of
    /// more than 4300 digits.
    pub const MAX_TEXT_DIGITS: usize = 4300;

    /// From the wire bytes of the unscaled value (empty means zero) and the schema's scale.
    pub fn from_unscaled_bytes(unscaled: Vec<u8>, scale: u32) -> Self {
        Decimal { unscaled, scale }
    }

    /// A decoded `decimal(precision, scale)`, as generated decoders read it. Decoding refuses what encoding
    /// ([`Decimal::check`]) refuses, so every decoded value re-encodes: the unscaled bytes must not be longer
    /// (sign extension aside) than `precision` digits can need, which also bounds the cost of its text, and
    /// the value must have at most `precision` digits. (Avro Java reads such a value, but cannot write it back.)
    pub fn from_wire(unscaled: &[u8], precision: u32, scale: u32) -> Result<Self, Error> {
        let len = minimal(unscaled).len();
        let most = bytes_for_precision(precision);
        if len > most {
            return Err(out_of_range(
                "decimal",
                format!(
                    "the unscaled value has {len} significant bytes; precision {precision} needs at most {most}"
                ),
            ));
        }
        let d = Decimal {
            unscaled: unscaled.to_vec(),
            scale,
        };
        d.check_precision(precision)?;
        Ok(d)
    }

    /// From an unscaled integer: `Decimal::from_i128(12345, 2)` is 123.45.
    pub fn from_i128(unscaled: i128, scale: u32) -> Self {
        let bytes = unscaled.to_be_bytes();
        Decimal {
            unscaled: minimal(&bytes).to_vec(),
            scale,
        }
    }

    /// The unscaled value, if it fits in an i128.
    pub fn to_i128(&self) -> Option<i128> {
        let b = minimal(&self.unscaled);
        if b.len() > 16 {
            return None;
        }
        let fill = if b.first().is_some_and(|x| x & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut a = [fill; 16];
        a[16 - b.len()..].copy_from_slice(b);
        Some(i128::from_be_bytes(a))
    }

    /// The unscaled value's bytes as given or decoded.
    pub fn unscaled_bytes(&self) -> &[u8] {
        &self.unscaled
    }

    /// The scale.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    fn is_negative(&self) -> bool {
        self.unscaled.first().is_some_and(|b| b & 0x80 != 0)
    }

    /// The unscaled value sign-extended to `size` bytes, for a `decimal` on `fixed`.
    pub fn to_fixed_bytes(&self, size: usize) -> Result<Vec<u8>, Error> {
        let b = minimal(&self.unscaled);
        if b.len() > size {
            return Err(out_of_range(
                "decimal",
                format!("{self} needs {} bytes, the fixed has {size}", b.len()),
            ));
        }
        let fill = if self.is_negative() { 0xff } else { 0 };
        let mut out = vec![fill; size - b.len()];
        out.extend_from_slice(b);
        Ok(out)
    }

    /// Checks the value against the schema's precision and scale before encoding.
    pub fn check(&self, precision: u32, scale: u32) -> Result<(), Error> {
        if self.scale != scale {
            return Err(out_of_range(
                "decimal",
                format!("{self} has scale {}, the schema says {scale}", self.scale),
            ));
        }
        self.check_precision(precision)
    }

    /// Checks that the value has at most `precision` digits.
    fn check_precision(&self, precision: u32) -> Result<(), Error> {
        let len = minimal(&self.unscaled).len();
        if len > bytes_for_precision(precision) {
            return Err(out_of_range(
                "decimal",
                format!(
                    "a value of {len} significant bytes has more than the {precision} digits the schema allows"
                ),
            ));
        }
        let digits = self.magnitude_digits();
        let significant = digits.trim_start_matches('0').len();
        if significant > precision as usize {
            return Err(out_of_range(
                "decimal",
                format!("{self} has {significant} digits, the schema allows {precision}"),
            ));
        }
        Ok(())
    }

    /// Decimal digits of |unscaled|: the magnitude in 32-bit limbs, divided by 10^9 per pass (nine digits at a
    /// time, skipping limbs that became zero). Still quadratic, but a 1 KiB value takes about 3,000 limb steps.
    fn magnitude_digits(&self) -> String {
        // Two's complement → magnitude.
        let mut mag: Vec<u8> = self.unscaled.clone();
        if self.is_negative() {
            for b in &mut mag {
                *b = !*b;
            }
            for b in mag.iter_mut().rev() {
                let (v, carry) = b.overflowing_add(1);
                *b = v;
                if !carry {
                    break;
                }
            }
        }
        // Big-endian bytes → big-endian u32 limbs.
        let pad = (4 - mag.len() % 4) % 4;
        let padded: Vec<u8> = std::iter::repeat_n(0, pad).chain(mag).collect();
        let mut limbs: Vec<u32> = padded
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        const CHUNK: u64 = 1_000_000_000;
        let mut chunks: Vec<u32> = Vec::new(); // base-10^9 digits, least significant first
        let mut start = 0;
        while start < limbs.len() {
            let mut rem = 0u64;
            for limb in &mut limbs[start..] {
                let cur = (rem << 32) | u64::from(*limb);
                *limb = (cur / CHUNK) as u32;
                rem = cur % CHUNK;
            }
            chunks.push(rem as u32);
            while start < limbs.len() && limbs[start] == 0 {
                start += 1;
            }
        }
        let mut out = String::with_capacity(chunks.len() * 9 + 1);
        match chunks.split_last() {
            None => out.push('0'),
            Some((top, rest)) => {
                out.push_str(&top.to_string());
                for c in rest.iter().rev() {
                    out.push_str(&format!("{c:09}"));
                }
            }
        }
        out
    }
}

/// The most bytes a two's-complement unscaled value of `precision` digits needs.
pub(crate) fn bytes_for_precision(precision: u32) -> usize {
    // log2(10) < 3.322; one more bit for the sign.
    let bits = (u64::from(precision) * 3322).div_ceil(1000) + 1;
    usize::try_from(bits.div_ceil(8)).unwrap_or(usize::MAX)
}

/// Strips redundant sign-extension bytes.
fn minimal(b: &[u8]) -> &[u8] {
    let mut i = 0;
    while i + 1 < b.len() {
        let (x, next) = (b[i], b[i + 1]);
        if (x == 0 && next & 0x80 == 0) || (x == 0xff && next & 0x80 != 0) {
            i += 1;
        } else {
            break;
        }
    }
    if b.len() == 1 && b[0] == 0 {
        &b[..0]
    } else {
        &b[i..]
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (minimal(&self.unscaled), minimal(&other.unscaled));
        let zero = |x: &[u8]| x.is_empty() || x == [0];
        self.scale == other.scale && (a == b || (zero(a) && zero(b)))
    }
}

impl std::hash::Hash for Decimal {
    /// Hashes the scale and the unscaled value without redundant sign extension (zero as no bytes), in linear
    /// time, so that values equal under `==` hash equal.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let b = minimal(&self.unscaled);
        let b = if b == [0] { &b[..0] } else { b };
        self.scale.hash(state);
        b.hash(state);
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.magnitude_digits();
        let scale = self.scale as usize;
        let sign = if self.is_negative() { "-" } else { "" };
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = if digits.len() <= scale {
            format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
        } else {
            digits
        };
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({self})")
    }
}

impl FromStr for Decimal {
    type Err = Error;

    /// Parses `-123.45` (scale = digits after the point); at most [`Decimal::MAX_TEXT_DIGITS`] digits.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || out_of_range("decimal", format!("{s:?} is not a decimal number"));
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let int = int.trim_start_matches('0');
        if int.len() + frac.len() > Decimal::MAX_TEXT_DIGITS {
            return Err(out_of_range(
                "decimal",
                format!(
                    "text of {} digits: more than {} digits are not parsed",
                    int.len() + frac.len(),
                    Decimal::MAX_TEXT_DIGITS
                ),
            ));
        }
        // Magnitude as little-endian bytes: multiply by 10^k and add each chunk of up to 19 digits.
        let digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|d| d - b'0').collect();
        let mut mag: Vec<u8> = Vec::new();
        for chunk in digits.chunks(19) {
            let mul = 10u128.pow(chunk.len() as u32);
            let mut carry = chunk.iter().fold(0u128, |acc, d| acc * 10 + u128::from(*d));
            for b in &mut mag {
                let cur = u128::from(*b) * mul + carry;
                *b = cur as u8;
                carry = cur >> 8;
            }
            while carry > 0 {
                mag.push(carry as u8);
                carry >>= 8;
            }
        }
        mag.push(0); // room for the sign bit
        mag.reverse();
        if neg {
            for b in &mut mag {
                *b = !*b;
            }
            for b in mag.iter_mut().rev() {
                let (v, carry) = b.overflowing_add(1);
                *b = v;
                if !carry {
                    break;
                }
            }
        }
        let scale = u32::try_from(frac.len()).map_err(|_| bad())?;
        Ok(Decimal {
            unscaled: minimal(&mag).to_vec(),
            scale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_round_trip() {
        for (text, unscaled, scale) in [
            ("123.45", 12345i128, 2u32),
            ("-0.05", -5, 2),
            ("0", 0, 0),
            ("-128", -128, 0),
            ("170141183460469231731687303715884105727", i128::MAX, 0),
        ] {
            let d: Decimal = text.parse().unwrap();
            assert_eq!(d, Decimal::from_i128(unscaled, scale), "{text}");
            assert_eq!(d.to_i128(), Some(unscaled));
            assert_eq!(d.to_string(), text);
        }
        let big: Decimal = "-123456789012345678901234567890123456789012.5"
            .parse()
            .unwrap();
        assert_eq!(
            big.to_string(),
            "-123456789012345678901234567890123456789012.5"
        );
        assert_eq!(big.to_i128(), None);
    }

    /// Runs `f` on another thread and fails if it takes longer than `secs` (a quadratic conversion of the
    /// inputs below takes minutes).
    fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(secs))
            .unwrap_or_else(|_| panic!("took more than {secs} s"))
    }

    #[test]
    fn decimal_text_and_hash_cost_is_bounded() {
        // Parsing refuses more digits than `4300`, before doing any work.
        let err = within(5, || "1".repeat(1_000_000).parse::<Decimal>()).unwrap_err();
        assert!(err.to_string().contains("more than 4300 digits"), "{err}");
        let at_limit = "9".repeat(Decimal::MAX_TEXT_DIGITS);
        let d: Decimal = at_limit.parse().unwrap();
        assert_eq!(d.to_string(), at_limit);
        // Hashing does not go through the text (equal values hash equal whatever their byte spelling).
        let huge = Decimal::from_unscaled_bytes(vec![0x55; 1 << 20], 3);
        let hash = |d: &Decimal| {
            use std::hash::{BuildHasher, RandomState};
            let s = RandomState::new();
            (s.hash_one(d), s.hash_one(d.clone()))
        };
        let (a, b) = within(5, move || hash(&huge));
        assert_eq!(a, b);
        let state = std::hash::RandomState::new();
        use std::hash::BuildHasher;
        assert_eq!(
            state.hash_one(Decimal::from_unscaled_bytes(vec![0, 0, 5], 1)),
            state.hash_one(Decimal::from_i128(5, 1))
        );
        assert_eq!(
            state.hash_one(Decimal::from_unscaled_bytes(vec![0xff, 0xff], 0)),
            state.hash_one(Decimal::from_i128(-1, 0))
        );
        assert_eq!(
            state.hash_one(Decimal::from_unscaled_bytes(vec![], 2)),
            state.hash_one(Decimal::from_unscaled_bytes(vec![0, 0], 2))
        );
        // Text of a long value is exact, and takes well under a second (8 KiB: about 20,000 digits).
        let long = Decimal::from_unscaled_bytes([vec![0x7f], vec![0xff; 8191]].concat(), 0);
        let text = within(5, move || long.to_string());
        assert_eq!(text.len(), 19_729);
        assert!(text.starts_with("1001") && text.ends_with("8367"), "{text}");
    }

    proptest::proptest! {
        #[test]
        fn decimal_text_agrees_with_i128(v in proptest::prelude::any::<i128>(), pad in 0usize..4) {
            let d = Decimal::from_i128(v, 0);
            proptest::prop_assert_eq!(d.to_string(), v.to_string());
            let back: Decimal = d.to_string().parse().unwrap();
            proptest::prop_assert_eq!(&back, &d);
            // Sign extension does not change the value or its text.
            let fill = if v < 0 { 0xff } else { 0 };
            let padded = [vec![fill; pad], d.unscaled_bytes().to_vec()].concat();
            let e = Decimal::from_unscaled_bytes(padded, 0);
            proptest::prop_assert_eq!(e.to_string(), v.to_string());
        }
    }

    #[test]
    fn decimal_fixed_and_checks() {
        let d = Decimal::from_i128(-2, 1);
        assert_eq!(d.to_fixed_bytes(3).unwrap(), vec![0xff, 0xff, 0xfe]);
        assert!(Decimal::from_i128(70000, 0).to_fixed_bytes(2).is_err());
        assert!(Decimal::from_i128(12345, 2).check(5, 2).is_ok());
        assert!(Decimal::from_i128(123456, 2).check(5, 2).is_err());
        assert!(Decimal::from_i128(1, 3).check(5, 2).is_err());
        assert_eq!(
            Decimal::from_unscaled_bytes(vec![0, 0, 5], 0),
            Decimal::from_i128(5, 0)
        );
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date_from_days(0).unwrap().to_string(), "1970-01-01");
        assert_eq!(days_from_date(&date_from_days(-1234).unwrap()), -1234);
        assert!(date_from_days(i32::MAX).is_err());
        assert_eq!(
            millis_from_time(&time_from_millis(86_399_999).unwrap()).unwrap(),
            86_399_999
        );
        assert!(time_from_millis(86_400_000).is_err());
        assert!(time_from_micros(-1).is_err());
        assert_eq!(
            nanos_from_timestamp(&timestamp_from_nanos(i64::MIN).unwrap()).unwrap(),
            i64::MIN
        );
        assert!(timestamp_from_millis(i64::MAX).is_err());
        let d = Duration {
            months: 1,
            days: 2,
            millis: 3,
        };
        assert_eq!(Duration::from_bytes(d.to_bytes()), d);
    }
}
