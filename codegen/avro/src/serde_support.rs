//! serde support (feature `serde`): the JSON shape of [`Decimal`] and [`Duration`], and [`fixed`] for the
//! byte arrays of generated `fixed` types.
//!
//! A `Decimal` is a string of its exact value (`"-123.45"`, the scale being the digits after the point), so
//! no precision is lost to floating point; a `Duration` is `{"months": …, "days": …, "millis": …}`.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::{Decimal, Duration};

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number as a string, such as \"-123.45\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DurationRepr {
    months: u32,
    days: u32,
    millis: u32,
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DurationRepr {
            months: self.months,
            days: self.days,
            millis: self.millis,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = DurationRepr::deserialize(d)?;
        Ok(Duration {
            months: r.months,
            days: r.days,
            millis: r.millis,
        })
    }
}

/// `#[serde(with = "::ursa_avro::serde_support::fixed")]` for `[u8; N]` of any size (serde's own impls
/// stop at 32): written as bytes (an array of numbers in JSON), read from bytes or a sequence of exactly
/// `N` numbers.
pub mod fixed {
    use super::*;

    /// Writes the bytes.
    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    /// Reads exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        struct V<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for V<N> {
            type Value = [u8; N];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<[u8; N], E> {
                v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
                let mut out = [0u8; N];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(de::Error::invalid_length(N + 1, &self));
                }
                Ok(out)
            }
        }
        d.deserialize_bytes(V::<N>)
    }
}

/// Either chrono's form (in range) or the raw count (beyond what chrono holds), for dates, times and
/// timestamps: `"2024-05-01"`, `"12:00:00.123"`, `"2024-05-01T12:00:00.123Z"` (local timestamps without
/// `Z`), as chrono writes them, else `{"days": d}`, `{"micros": us}` or `{"nanos": "n"}` (a string: it may
/// not fit a JSON number).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum TimeRepr<T> {
    Chrono(T),
    Days { days: i32 },
    Micros { micros: i64 },
    Nanos { nanos: String },
}

macro_rules! time_serde {
    ($ty:ty, $chrono:ty, $to:ident, $raw:ident, $back:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self.$to() {
                    Some(t) => t.serialize(s),
                    None => $raw(self).serialize(s),
                }
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                match TimeRepr::<$chrono>::deserialize(d)? {
                    TimeRepr::Chrono(t) => Ok(<$ty>::from(t)),
                    other => ($back)(other)
                        .ok_or_else(|| de::Error::custom("not a value of this time type")),
                }
            }
        }
    };
}

fn date_raw(d: &crate::Date) -> TimeRepr<chrono::NaiveDate> {
    TimeRepr::Days { days: d.days() }
}

fn time_raw(t: &crate::TimeOfDay) -> TimeRepr<chrono::NaiveTime> {
    TimeRepr::Micros { micros: t.micros() }
}

fn timestamp_raw(t: &crate::Timestamp) -> TimeRepr<chrono::DateTime<chrono::Utc>> {
    TimeRepr::Nanos {
        nanos: t.nanos().to_string(),
    }
}

fn local_raw(t: &crate::LocalTimestamp) -> TimeRepr<chrono::NaiveDateTime> {
    TimeRepr::Nanos {
        nanos: t.nanos().to_string(),
    }
}

fn nanos_of<T>(r: TimeRepr<T>) -> Option<i128> {
    match r {
        TimeRepr::Nanos { nanos } => nanos.parse().ok(),
        _ => None,
    }
}

time_serde!(
    crate::Date,
    chrono::NaiveDate,
    to_naive,
    date_raw,
    |r| match r {
        TimeRepr::Days { days } => Some(crate::Date::from_days(days)),
        _ => None,
    }
);
time_serde!(
    crate::TimeOfDay,
    chrono::NaiveTime,
    to_naive,
    time_raw,
    |r| match r {
        TimeRepr::Micros { micros } => Some(crate::TimeOfDay::from_micros(micros)),
        _ => None,
    }
);
time_serde!(
    crate::Timestamp,
    chrono::DateTime<chrono::Utc>,
    to_utc,
    timestamp_raw,
    |r| nanos_of(r).map(crate::Timestamp::from_nanos_i128)
);
time_serde!(
    crate::LocalTimestamp,
    chrono::NaiveDateTime,
    to_naive,
    local_raw,
    |r| nanos_of(r).map(crate::LocalTimestamp::from_nanos_i128)
);

#[cfg(test)]
mod time_tests {
    use crate::{Date, LocalTimestamp, TimeOfDay, Timestamp};

    #[test]
    fn chrono_text_in_range_and_the_count_beyond() {
        let t = Timestamp::from_millis(1_700_000_000_123);
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(text, "\"2023-11-14T22:13:20.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&text).unwrap(), t);
        let far = Timestamp::from_millis(i64::MAX);
        let text = serde_json::to_string(&far).unwrap();
        assert_eq!(text, r#"{"nanos":"9223372036854775807000000"}"#);
        assert_eq!(serde_json::from_str::<Timestamp>(&text).unwrap(), far);
        let late = TimeOfDay::from_millis(90_000_000);
        let text = serde_json::to_string(&late).unwrap();
        assert_eq!(text, r#"{"micros":90000000000}"#);
        assert_eq!(serde_json::from_str::<TimeOfDay>(&text).unwrap(), late);
        let d = Date::from_days(i32::MIN);
        assert_eq!(
            serde_json::from_str::<Date>(&serde_json::to_string(&d).unwrap()).unwrap(),
            d
        );
        let l = LocalTimestamp::from_micros(1);
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            "\"1970-01-01T00:00:00.000001\""
        );
    }
}
