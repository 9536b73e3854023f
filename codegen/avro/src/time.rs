//! The Rust types of Avro's `date`, `time-*`, `timestamp-*` and `local-timestamp-*` logical types: they hold
//! whatever the wire holds, as Java does, and convert to chrono where chrono can.
//!
//! Java reads every `timestamp-*` long (an `Instant` spans ±1,000,000,000 years) and every `date` int; chrono's
//! types span ±262,143 years, and a `NaiveTime` one day. So generated fields are not chrono types, which
//! would make one out-of-range value (an "end of time" sentinel like `i64::MAX`, a duration stored as a
//! `time-millis`) fail the whole record: they are these, lossless for any wire value (decoding and
//! re-encoding gives the same bytes), with `to_chrono()`-style accessors that are `None` where chrono has no
//! value, and `From` chrono values (so builders and `.into()` take them).
//!
//! | logical type | type | holds | chrono |
//! |---|---|---|---|
//! | `date` | [`Date`] | days since 1970-01-01 (`i32`) | [`Date::to_naive`] |
//! | `time-millis`, `time-micros` | [`TimeOfDay`] | microseconds since midnight (`i64`, any value: more than a day, or negative) | [`TimeOfDay::to_naive`] |
//! | `timestamp-millis`/`-micros`/`-nanos` | [`Timestamp`] | nanoseconds since the epoch (`i128`) | [`Timestamp::to_utc`] |
//! | `local-timestamp-millis`/`-micros`/`-nanos` | [`LocalTimestamp`] | nanoseconds since 1970-01-01T00:00 (`i128`) | [`LocalTimestamp::to_naive`] |
//!
//! Encoding a value into a field of a coarser unit truncates toward negative infinity (as the chrono
//! conversions did); a value beyond what the field's type holds (`i32` milliseconds of a `time-millis`, `i64`
//! nanoseconds of a `timestamp-nanos`) is an [`Error::OutOfRange`] on encoding, never a silent wrap.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use crate::Error;
use crate::logical;

fn out_of_range(what: &'static str, detail: impl fmt::Display) -> Error {
    Error::OutOfRange {
        what,
        detail: detail.to_string(),
    }
}

const NANOS_PER_MILLI: i128 = 1_000_000;
const NANOS_PER_MICRO: i128 = 1_000;

/// A `date`: days since 1970-01-01, any `i32`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Date(i32);

impl Date {
    /// The date `days` days after 1970-01-01 (before it when negative).
    pub const fn from_days(days: i32) -> Date {
        Date(days)
    }

    /// Days since 1970-01-01.
    pub const fn days(self) -> i32 {
        self.0
    }

    /// As a chrono date; `None` beyond chrono's range (±262,143 years).
    pub fn to_naive(self) -> Option<NaiveDate> {
        logical::date_from_days(self.0).ok()
    }
}

impl From<NaiveDate> for Date {
    fn from(d: NaiveDate) -> Date {
        Date(logical::days_from_date(&d))
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_naive() {
            Some(d) => write!(f, "{d:?}"),
            None => write!(f, "Date({} days)", self.0),
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_naive() {
            Some(d) => write!(f, "{d}"),
            None => write!(f, "{} days from 1970-01-01", self.0),
        }
    }
}

/// A `time-millis` or `time-micros`: microseconds since midnight. Any value the wire holds, including more
/// than a day or a negative one (Avro does not forbid them; chrono's time of day cannot hold them).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TimeOfDay(i64);

impl TimeOfDay {
    /// From a `time-millis` value.
    pub const fn from_millis(ms: i32) -> TimeOfDay {
        TimeOfDay(ms as i64 * 1000)
    }

    /// From a `time-micros` value.
    pub const fn from_micros(us: i64) -> TimeOfDay {
        TimeOfDay(us)
    }

    /// Microseconds since midnight.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// As a `time-millis` value (sub-millisecond digits truncated toward negative infinity); an error beyond
    /// an `i32` of milliseconds.
    pub fn millis(self) -> Result<i32, Error> {
        i32::try_from(self.0.div_euclid(1000))
            .map_err(|_| out_of_range("time-millis", format!("{} µs", self.0)))
    }

    /// As a chrono time of day; `None` unless within one day (0 to 24 h).
    pub fn to_naive(self) -> Option<NaiveTime> {
        logical::time_from_micros(self.0).ok()
    }
}

impl From<NaiveTime> for TimeOfDay {
    fn from(t: NaiveTime) -> TimeOfDay {
        // A leap second (which no Avro time can hold) counts as the second before it ends.
        TimeOfDay(logical::micros_from_time(&t).unwrap_or(86_399_999_999))
    }
}

impl fmt::Debug for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_naive() {
            Some(t) => write!(f, "{t:?}"),
            None => write!(f, "TimeOfDay({} µs)", self.0),
        }
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_naive() {
            Some(t) => write!(f, "{t}"),
            None => write!(f, "{} µs from midnight", self.0),
        }
    }
}

/// Nanoseconds as the unit's count, truncated toward negative infinity; an error beyond an `i64`.
fn in_unit(nanos: i128, per: i128, what: &'static str) -> Result<i64, Error> {
    i64::try_from(nanos.div_euclid(per)).map_err(|_| out_of_range(what, format!("{nanos} ns")))
}

macro_rules! instant {
    ($(#[$doc:meta])* $name:ident, $chrono:ty, $to:ident, $what:literal, $from_chrono:expr, $to_chrono:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(i128);

        impl $name {
            /// From a `*-millis` value.
            pub const fn from_millis(ms: i64) -> $name {
                $name(ms as i128 * NANOS_PER_MILLI)
            }

            /// From a `*-micros` value.
            pub const fn from_micros(us: i64) -> $name {
                $name(us as i128 * NANOS_PER_MICRO)
            }

            /// From a `*-nanos` value.
            pub const fn from_nanos(ns: i64) -> $name {
                $name(ns as i128)
            }

            /// Nanoseconds since the epoch.
            pub const fn nanos(self) -> i128 {
                self.0
            }

            /// From nanoseconds since the epoch.
            pub const fn from_nanos_i128(ns: i128) -> $name {
                $name(ns)
            }

            /// As a `*-millis` value (truncated toward negative infinity).
            pub fn millis(self) -> Result<i64, Error> {
                in_unit(self.0, NANOS_PER_MILLI, concat!($what, "-millis"))
            }

            /// As a `*-micros` value (truncated toward negative infinity).
            pub fn micros(self) -> Result<i64, Error> {
                in_unit(self.0, NANOS_PER_MICRO, concat!($what, "-micros"))
            }

            /// As a `*-nanos` value; an error beyond an `i64` of nanoseconds (years 1677 to 2262).
            pub fn nanos_i64(self) -> Result<i64, Error> {
                in_unit(self.0, 1, concat!($what, "-nanos"))
            }

            /// As chrono's; `None` beyond chrono's range (±262,143 years).
            pub fn $to(self) -> Option<$chrono> {
                let secs = i64::try_from(self.0.div_euclid(1_000_000_000)).ok()?;
                let nanos = u32::try_from(self.0.rem_euclid(1_000_000_000)).ok()?;
                ($to_chrono)(secs, nanos)
            }
        }

        impl From<$chrono> for $name {
            fn from(t: $chrono) -> $name {
                let (secs, nanos): (i64, u32) = ($from_chrono)(&t);
                $name(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.$to() {
                    Some(t) => write!(f, "{t:?}"),
                    None => write!(f, concat!(stringify!($name), "({} ns)"), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.$to() {
                    Some(t) => write!(f, "{t}"),
                    None => write!(f, "{} ns from the epoch", self.0),
                }
            }
        }
    };
}

instant!(
    /// A `timestamp-millis`, `-micros` or `-nanos`: an instant, as nanoseconds since 1970-01-01T00:00:00Z,
    /// any value the wire holds.
    Timestamp,
    DateTime<Utc>,
    to_utc,
    "timestamp",
    |t: &DateTime<Utc>| (t.timestamp(), t.timestamp_subsec_nanos()),
    |s: i64, n: u32| DateTime::<Utc>::from_timestamp(s, n)
);

instant!(
    /// A `local-timestamp-millis`, `-micros` or `-nanos`: a wall-clock date and time without a zone, as
    /// nanoseconds since 1970-01-01T00:00:00, any value the wire holds.
    LocalTimestamp,
    NaiveDateTime,
    to_naive,
    "local-timestamp",
    |t: &NaiveDateTime| {
        let u = t.and_utc();
        (u.timestamp(), u.timestamp_subsec_nanos())
    },
    |s: i64, n: u32| DateTime::<Utc>::from_timestamp(s, n).map(|t| t.naive_utc())
);

impl Timestamp {
    /// Now (the system clock).
    pub fn now() -> Timestamp {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        Timestamp(match since {
            Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
            Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wire_value_is_held_and_given_back() {
        for ms in [i64::MIN, -1, 0, 1, 1_700_000_000_123, i64::MAX] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(t.millis().unwrap(), ms);
            assert_eq!(LocalTimestamp::from_millis(ms).millis().unwrap(), ms);
        }
        for ns in [i64::MIN, -1, 0, i64::MAX] {
            assert_eq!(Timestamp::from_nanos(ns).nanos_i64().unwrap(), ns);
        }
        for ms in [i32::MIN, -1, 0, 86_400_000, 90_000_000, i32::MAX] {
            assert_eq!(TimeOfDay::from_millis(ms).millis().unwrap(), ms);
        }
        for d in [i32::MIN, 0, i32::MAX] {
            assert_eq!(Date::from_days(d).days(), d);
        }
    }

    #[test]
    fn chrono_where_chrono_can() {
        let t = Timestamp::from_millis(1_700_000_000_123);
        let utc = t.to_utc().unwrap();
        assert_eq!(utc.timestamp_millis(), 1_700_000_000_123);
        assert_eq!(Timestamp::from(utc), t);
        assert_eq!(format!("{t:?}"), format!("{utc:?}"));
        assert_eq!(Timestamp::from_millis(i64::MAX).to_utc(), None);
        assert_eq!(
            format!("{:?}", Timestamp::from_millis(i64::MAX)),
            "Timestamp(9223372036854775807000000 ns)"
        );
        // Before the epoch, with a fraction: floor semantics.
        let before = Timestamp::from_micros(-1);
        assert_eq!(before.millis().unwrap(), -1);
        assert_eq!(before.to_utc().unwrap().timestamp_micros(), -1);
        assert_eq!(TimeOfDay::from_millis(90_000_000).to_naive(), None);
        assert_eq!(
            TimeOfDay::from_millis(3_723_004)
                .to_naive()
                .unwrap()
                .to_string(),
            "01:02:03.004"
        );
        assert_eq!(Date::from_days(i32::MAX).to_naive(), None);
        assert_eq!(
            Date::from_days(19_000).to_naive().unwrap().to_string(),
            "2022-01-08"
        );
        // Too fine or too far for a field's unit is an error on encoding, never a wrap.
        assert!(Timestamp::from_millis(i64::MAX).nanos_i64().is_err());
        assert!(TimeOfDay::from_micros(i64::MAX).millis().is_err());
    }
}
