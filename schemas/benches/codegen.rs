//! Decode and encode of generated event types compared with apache-avro on the same bytes.
//!
//! Run through `cargo xtask bench codegen`, which also times the Python peer (fastavro) on the datum bytes
//! and schemas this bench writes to `$URSA_BENCH_DATA_DIR` and prints the ratios. Benchmarks per event
//! (`message_received`: small; `usage_stats`: large, with a map, an array of records and unions):
//!
//! - `generated`: `T::from_avro_datum` / `t.to_avro_datum()` ([`ursa_avro::AvroRecord`]);
//! - `apache_avro_value` (a): `from_avro_datum` to a `Value`, then `from_value` into a serde mirror struct;
//!   encode with `to_value` + `to_avro_datum`;
//! - `apache_avro_serde` (b): the closest apache-avro 0.21 has to a direct serde path. Decode: a
//!   `GenericSingleObjectReader` holds the pre-parsed, pre-resolved schema (0.21 has no bytes → serde
//!   deserializer, the datum still goes through `Value`; the input is the same datum behind the 10-byte
//!   single-object header). Encode: `write_avro_datum_ref`, apache-avro's schema-aware serde `Serializer`
//!   writing straight to bytes.
//!
//! The setup checks that every implementation reads and writes the same data before anything is timed.

use std::fmt::Debug;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use apache_avro::headers::{HeaderBuilder, RabinFingerprintHeader};
use apache_avro::{
    GenericSingleObjectReader, Schema, from_avro_datum, from_value, to_avro_datum, to_value,
    write_avro_datum_ref,
};
use criterion::{Criterion, Throughput};
use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use ursa_avro::AvroRecord;
use ursa_avro::logical::uuid_to_string;
use ursa_avro::uuid::Uuid;
use ursa_events::com::teddy::analytics::{DailyUsage, UsageStats};
use ursa_events::com::teddy::common::{ChildRef, DeviceRef, EventMetadata};
use ursa_events::com::teddy::conversation::{Emotion, InputModality, MessageReceived};

// ---------------------------------------------------------------------------------------------------------
// Serde mirrors of the events for apache-avro (logical types as their underlying primitive types).
// ---------------------------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct EventMetadataM {
    event_id: String,
    occurred_at: i64,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    producer: String,
    schema_version: i32,
    trace_parent: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ChildRefM {
    child_id: String,
    household_id: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct DeviceRefM {
    device_id: String,
    firmware_version: String,
}

/// Variants in symbol order: apache-avro's serde serializer writes the variant index as the enum ordinal.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum EmotionM {
    Unknown,
    Neutral,
    Joy,
    Excitement,
    Curiosity,
    Calm,
    Surprise,
    Sadness,
    Loneliness,
    Fear,
    Anger,
    Frustration,
    Disgust,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum InputModalityM {
    Unknown,
    Voice,
    Text,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct MessageReceivedM {
    metadata: EventMetadataM,
    message_id: String,
    conversation_id: String,
    child: ChildRefM,
    device: DeviceRefM,
    sequence_number: i32,
    text: String,
    modality: InputModalityM,
    detected_emotion: Option<EmotionM>,
    audio_duration_ms: Option<i32>,
    asr_confidence: Option<f32>,
    captured_at: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct DailyUsageM {
    day: i32,
    conversations: i32,
    talk_time_ms: i64,
    top_emotion: Option<EmotionM>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct UsageStatsM {
    metadata: EventMetadataM,
    child: ChildRefM,
    device: DeviceRefM,
    period_start: i64,
    period_end: i64,
    conversation_count: i32,
    message_count: i32,
    talk_time_ms: i64,
    feature_usage: IndexMap<String, i64>,
    daily: Vec<DailyUsageM>,
}

/// Builds the serde mirror of a generated event, field by field (the reference data for the byte checks).
trait Mirror<T>: Sized {
    fn mirror(event: &T) -> Result<Self>;
}

const EMOTIONS_M: [EmotionM; 13] = [
    EmotionM::Unknown,
    EmotionM::Neutral,
    EmotionM::Joy,
    EmotionM::Excitement,
    EmotionM::Curiosity,
    EmotionM::Calm,
    EmotionM::Surprise,
    EmotionM::Sadness,
    EmotionM::Loneliness,
    EmotionM::Fear,
    EmotionM::Anger,
    EmotionM::Frustration,
    EmotionM::Disgust,
];

impl Mirror<Emotion> for EmotionM {
    fn mirror(e: &Emotion) -> Result<Self> {
        let i = Emotion::SYMBOLS
            .iter()
            .position(|s| *s == e.as_str())
            .context("emotion symbol")?;
        EMOTIONS_M.get(i).copied().context("emotion mirror")
    }
}

impl Mirror<EventMetadata> for EventMetadataM {
    fn mirror(m: &EventMetadata) -> Result<Self> {
        Ok(Self {
            event_id: uuid_to_string(&m.event_id),
            occurred_at: m.occurred_at.millis().unwrap_or(0),
            correlation_id: m.correlation_id.as_ref().map(uuid_to_string),
            causation_id: m.causation_id.as_ref().map(uuid_to_string),
            producer: m.producer.clone(),
            schema_version: m.schema_version,
            trace_parent: m.trace_parent.clone(),
        })
    }
}

impl Mirror<ChildRef> for ChildRefM {
    fn mirror(c: &ChildRef) -> Result<Self> {
        Ok(Self {
            child_id: uuid_to_string(&c.child_id),
            household_id: uuid_to_string(&c.household_id),
        })
    }
}

impl Mirror<DeviceRef> for DeviceRefM {
    fn mirror(d: &DeviceRef) -> Result<Self> {
        Ok(Self {
            device_id: d.device_id.clone(),
            firmware_version: d.firmware_version.clone(),
        })
    }
}

impl Mirror<MessageReceived> for MessageReceivedM {
    fn mirror(m: &MessageReceived) -> Result<Self> {
        Ok(Self {
            metadata: EventMetadataM::mirror(&m.metadata)?,
            message_id: uuid_to_string(&m.message_id),
            conversation_id: uuid_to_string(&m.conversation_id),
            child: ChildRefM::mirror(&m.child)?,
            device: DeviceRefM::mirror(&m.device)?,
            sequence_number: m.sequence_number,
            text: m.text.clone(),
            modality: match m.modality {
                InputModality::Unknown => InputModalityM::Unknown,
                InputModality::Voice => InputModalityM::Voice,
                InputModality::Text => InputModalityM::Text,
            },
            detected_emotion: m
                .detected_emotion
                .as_ref()
                .map(EmotionM::mirror)
                .transpose()?,
            audio_duration_ms: m.audio_duration_ms,
            asr_confidence: m.asr_confidence,
            captured_at: m.captured_at.micros().unwrap_or(0),
        })
    }
}

impl Mirror<UsageStats> for UsageStatsM {
    fn mirror(u: &UsageStats) -> Result<Self> {
        Ok(Self {
            metadata: EventMetadataM::mirror(&u.metadata)?,
            child: ChildRefM::mirror(&u.child)?,
            device: DeviceRefM::mirror(&u.device)?,
            period_start: u.period_start.millis().unwrap_or(0),
            period_end: u.period_end.millis().unwrap_or(0),
            conversation_count: u.conversation_count,
            message_count: u.message_count,
            talk_time_ms: u.talk_time_ms,
            feature_usage: u
                .feature_usage
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            daily: u
                .daily
                .iter()
                .map(|d| {
                    Ok(DailyUsageM {
                        day: d.day.days(),
                        conversations: d.conversations,
                        talk_time_ms: d.talk_time_ms,
                        top_emotion: d.top_emotion.as_ref().map(EmotionM::mirror).transpose()?,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------------------
// The instances.
// ---------------------------------------------------------------------------------------------------------

/// A small deterministic PRNG (xorshift64*), so every run benchmarks the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn uuid(&mut self) -> Uuid {
        let hi = u128::from(self.next()) << 64;
        // Version 4, variant RFC 4122, like real event ids.
        let v = (hi | u128::from(self.next())) & !(0xf << 76) & !(0x3 << 62);
        Uuid::from_u128(v | (0x4 << 76) | (0x2 << 62))
    }

    fn emotion(&mut self) -> Result<Emotion> {
        let i = usize::try_from(self.below(Emotion::SYMBOLS.len() as u64))?;
        let symbol = Emotion::SYMBOLS.get(i).context("emotion symbol")?;
        Emotion::from_symbol(symbol).context("emotion from symbol")
    }
}

fn metadata(rng: &mut Rng, occurred_at_ms: i64, producer: &str) -> Result<EventMetadata> {
    let trace_id = rng.uuid().simple().to_string();
    let span_id = format!("{:016x}", rng.next());
    Ok(EventMetadata {
        event_id: rng.uuid(),
        occurred_at: ursa_avro::Timestamp::from_millis(occurred_at_ms),
        correlation_id: Some(rng.uuid()),
        causation_id: Some(rng.uuid()),
        producer: producer.to_owned(),
        schema_version: 3,
        trace_parent: Some(format!("00-{trace_id}-{span_id}-01")),
    })
}

/// `message.received`: one transcribed voice message, every optional field set.
fn message_received() -> Result<MessageReceived> {
    let mut rng = Rng(0x5eed_0000_0000_0001);
    let occurred_at_ms = 1_760_000_000_123;
    Ok(MessageReceived {
        metadata: metadata(&mut rng, occurred_at_ms, "conversation-engine")?,
        message_id: rng.uuid(),
        conversation_id: rng.uuid(),
        child: ChildRef {
            child_id: rng.uuid(),
            household_id: rng.uuid(),
        },
        device: DeviceRef {
            device_id: "TB2-0042-A7F3-19C8".to_owned(),
            firmware_version: "3.14.2".to_owned(),
        },
        sequence_number: 17,
        text: "Teddy, can you tell me a story about a dinosaur who is scared of the dark?"
            .to_owned(),
        modality: InputModality::Voice,
        detected_emotion: Some(Emotion::Curiosity),
        audio_duration_ms: Some(4_250),
        asr_confidence: Some(0.93),
        captured_at: ursa_avro::Timestamp::from_micros(occurred_at_ms * 1_000 - 4_312_517),
    })
}

const FEATURES: &[&str] = &[
    "story",
    "song",
    "quiz",
    "game",
    "joke",
    "riddle",
    "lullaby",
    "breathing",
    "counting",
    "alphabet",
];
const FEATURE_TOPICS: &[&str] = &[
    "dinosaurs",
    "space",
    "animals",
    "ocean",
    "colors",
    "shapes",
    "music",
    "feelings",
    "bedtime",
    "weather",
    "trains",
    "princesses",
];

/// `analytics.usage-stats` for a whole (leap) year: 120 feature counters in the map, 366 daily records,
/// each with a `["null", Emotion]` union (null on days without a conversation), and the envelope's unions.
fn usage_stats() -> Result<UsageStats> {
    let mut rng = Rng(0x5eed_0000_0000_0002);
    let first_day: i32 = 19_723; // 2024-01-01
    let days: i32 = 366;
    let day_ms: i64 = 86_400_000;
    let period_start_ms = i64::from(first_day) * day_ms;
    let period_end_ms = i64::from(first_day + days) * day_ms;

    let mut feature_usage = ursa_avro::IndexMap::new();
    for feature in FEATURES {
        for topic in FEATURE_TOPICS {
            let uses = i64::try_from(rng.below(2_000))?;
            feature_usage.insert(format!("{feature}.{topic}"), uses);
        }
    }

    let mut daily = Vec::with_capacity(366);
    let (mut conversation_count, mut message_count, mut talk_time_ms) = (0i32, 0i32, 0i64);
    for d in 0..days {
        // About one day in six without any conversation.
        let conversations = if rng.below(6) == 0 {
            0
        } else {
            i32::try_from(1 + rng.below(12))?
        };
        let talk = i64::from(conversations) * i64::try_from(60_000 + rng.below(600_000))?;
        let top_emotion = if conversations == 0 {
            None
        } else {
            Some(rng.emotion()?)
        };
        conversation_count += conversations;
        message_count += conversations * i32::try_from(4 + rng.below(20))?;
        talk_time_ms += talk;
        daily.push(DailyUsage {
            day: ursa_avro::Date::from_days(first_day + d),
            conversations,
            talk_time_ms: talk,
            top_emotion,
        });
    }

    Ok(UsageStats {
        metadata: metadata(&mut rng, period_end_ms + 3_600_000, "analytics-aggregator")?,
        child: ChildRef {
            child_id: rng.uuid(),
            household_id: rng.uuid(),
        },
        device: DeviceRef {
            device_id: "TB2-0042-A7F3-19C8".to_owned(),
            firmware_version: "3.14.2".to_owned(),
        },
        period_start: ursa_avro::Timestamp::from_millis(period_start_ms),
        period_end: ursa_avro::Timestamp::from_millis(period_end_ms),
        conversation_count,
        message_count,
        talk_time_ms,
        feature_usage,
        daily,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Setup checks and benchmarks.
// ---------------------------------------------------------------------------------------------------------

/// Where the datum bytes and schemas for the Python peer go.
fn data_dir() -> PathBuf {
    std::env::var_os("URSA_BENCH_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("ursa-bench-codegen"))
}

fn serde_encode<M: Serialize>(schema: &Schema, mirror: &M) -> Result<Vec<u8>, apache_avro::Error> {
    let mut buf = Vec::with_capacity(64);
    write_avro_datum_ref(schema, mirror, &mut buf)?;
    Ok(buf)
}

fn bench_event<T, M>(c: &mut Criterion, name: &str, event: &T, dir: &Path) -> Result<()>
where
    T: AvroRecord + PartialEq + Debug,
    M: Mirror<T> + Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = event.to_avro_datum()?;
    ensure!(
        T::from_avro_datum(&bytes)? == *event,
        "{name}: generated round trip differs"
    );
    let schema =
        Schema::parse_str(T::SCHEMA).with_context(|| format!("{name}: apache-avro schema"))?;

    // The mirror, built field by field from the event, encoded by apache-avro's serde serializer (b):
    // byte for byte the generated encoding.
    let mirror = M::mirror(event)?;
    ensure!(
        serde_encode(&schema, &mirror)? == bytes,
        "{name}: apache-avro serde encoding differs from the generated encoding"
    );
    // (a) encode goes through `Value::Map`, a HashMap: map entries may come out in another order, so
    // the check is on the length and on the event decoded by the generated code (maps compare unordered).
    let value_bytes = to_avro_datum(&schema, to_value(&mirror)?)?;
    ensure!(
        value_bytes.len() == bytes.len() && T::from_avro_datum(&value_bytes)? == *event,
        "{name}: apache-avro Value encoding differs from the generated encoding"
    );

    // (a) decode of the generated bytes gives the mirror (a HashMap again: IndexMap equality is unordered).
    let decoded_a: M = from_value(&from_avro_datum(&schema, &mut bytes.as_slice(), None)?)?;
    ensure!(
        decoded_a == mirror,
        "{name}: apache-avro Value decode differs"
    );

    // (b) decode: pre-resolved schema in a single-object reader; the same datum behind the header.
    let reader = GenericSingleObjectReader::new(schema.clone())?;
    let mut single_object = RabinFingerprintHeader::from_schema(&schema).build_header();
    single_object.extend_from_slice(&bytes);
    let decoded_b: M = from_value(&reader.read_value(&mut single_object.as_slice())?)?;
    ensure!(
        decoded_b == mirror,
        "{name}: apache-avro single-object decode differs"
    );

    std::fs::write(dir.join(format!("{name}.bin")), &bytes)?;
    std::fs::write(dir.join(format!("{name}.avsc")), T::SCHEMA)?;
    eprintln!(
        "{name}: {} bytes; generated, apache-avro (Value and serde) agree on them",
        bytes.len()
    );
    let throughput = Throughput::Bytes(u64::try_from(bytes.len())?);

    let mut g = c.benchmark_group(format!("{name}_decode"));
    g.throughput(throughput.clone());
    g.bench_function("generated", |b| {
        b.iter(|| T::from_avro_datum(black_box(&bytes)))
    });
    g.bench_function("apache_avro_value", |b| {
        b.iter(|| {
            from_avro_datum(&schema, &mut black_box(bytes.as_slice()), None)
                .and_then(|v| from_value::<M>(&v))
        })
    });
    g.bench_function("apache_avro_serde", |b| {
        b.iter(|| {
            reader
                .read_value(&mut black_box(single_object.as_slice()))
                .and_then(|v| from_value::<M>(&v))
        })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("{name}_encode"));
    g.throughput(throughput);
    g.bench_function("generated", |b| b.iter(|| black_box(event).to_avro_datum()));
    g.bench_function("apache_avro_value", |b| {
        b.iter(|| to_value(black_box(&mirror)).and_then(|v| to_avro_datum(&schema, v)))
    });
    g.bench_function("apache_avro_serde", |b| {
        b.iter(|| serde_encode(&schema, black_box(&mirror)))
    });
    g.finish();
    Ok(())
}

fn main() -> Result<()> {
    let dir = data_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_event::<MessageReceived, MessageReceivedM>(
        &mut c,
        "message_received",
        &message_received()?,
        &dir,
    )?;
    bench_event::<UsageStats, UsageStatsM>(&mut c, "usage_stats", &usage_stats()?, &dir)?;
    c.final_summary();
    Ok(())
}
