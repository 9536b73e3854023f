//! Encode a safety-violation event, frame it for Kafka, decode it back, and read it with an older schema.
//!
//! Run with `cargo run -p ursa-events --example roundtrip` (or `cargo xtask demo`, which regenerates first).

use ursa_avro::chrono::{TimeZone, Utc};
use ursa_avro::uuid::Uuid;
use ursa_avro::{AvroRecord, ConfluentDecoder, Decimal};
use ursa_events::com::teddy::child::{ActionTaken, SafetyViolation, Severity, ViolationCategory};
use ursa_events::com::teddy::common::{ChildRef, DeviceRef, EventMetadata, Sha256};

fn main() -> anyhow::Result<()> {
    // Generated timestamp fields are `ursa_avro::Timestamp` (which holds any wire value); from chrono with `into`.
    let detected_at: ursa_avro::Timestamp = Utc
        .with_ymd_and_hms(2026, 11, 26, 18, 30, 0)
        .single()
        .unwrap_or_default()
        .into();
    let event = SafetyViolation {
        metadata: EventMetadata {
            event_id: Uuid::from_u128(0x0192_b3c4_d5e6_7f80_9a1b_2c3d_4e5f_6071),
            occurred_at: detected_at,
            correlation_id: None,
            causation_id: None,
            producer: "safety-classifier".into(),
            schema_version: 1,
            trace_parent: None,
        },
        violation_id: Uuid::from_u128(1),
        child: ChildRef {
            child_id: Uuid::from_u128(2),
            household_id: Uuid::from_u128(3),
        },
        device: DeviceRef {
            device_id: "bear-0042".into(),
            firmware_version: "3.1.4".into(),
        },
        conversation_id: Uuid::from_u128(4),
        message_id: Some(Uuid::from_u128(5)),
        severity: Severity::High,
        category: ViolationCategory::PersonalInfoDisclosure,
        excerpt: "my address is 12 Elm Street".into(),
        content_hash: Sha256([7; 32]),
        detected_at,
        detector_model: "guardian-v7".into(),
        confidence: 0.97,
        risk_score: "87.5000".parse()?,
        action_taken: ActionTaken::GuardianNotified,
        guardian_notified: true,
    };

    // Plain Avro binary, and the Confluent wire format with a registry schema id.
    let datum = event.to_avro_datum()?;
    let framed = event.to_confluent(42)?;
    println!(
        "topic {} / subject {}",
        SafetyViolation::TOPIC,
        SafetyViolation::VALUE_SUBJECT
    );
    println!(
        "{} bytes of Avro, {} framed; fingerprint {:#x}",
        datum.len(),
        framed.len(),
        SafetyViolation::FINGERPRINT
    );

    // Decoding: the same schema, then through a decoder that looks writer schemas up by id.
    assert_eq!(SafetyViolation::from_avro_datum(&datum)?, event);
    let decoder = ConfluentDecoder::<SafetyViolation>::new();
    let decoded = decoder.decode(&framed, |id| {
        if id == 42 {
            Ok(SafetyViolation::SCHEMA.to_owned())
        } else {
            Err(format!("unknown id {id}"))
        }
    })?;
    assert_eq!(decoded, event);
    assert_eq!(decoded.risk_score, Decimal::from_i128(875_000, 4));

    // Personal data never reaches logs through Debug.
    let shown = format!("{decoded:?}");
    assert!(!shown.contains("Elm Street"));
    println!("{shown}");
    println!("PII fields: {:?}", SafetyViolation::PII_FIELDS);
    Ok(())
}
