//! Sample events for the `ursa-outbox demo-writer`, the tests and the bench (not part of the API).

use ursa_avro::Decimal;
use ursa_avro::uuid::Uuid;
use ursa_events::com::teddy::child::{ActionTaken, SafetyViolation, Severity, ViolationCategory};
use ursa_events::com::teddy::common::{ChildRef, DeviceRef, EventMetadata, Sha256};
use ursa_events::com::teddy::conversation::{InputModality, MessageReceived};

/// A fresh random UUID (version 4).
pub fn uuid() -> Uuid {
    crate::ids::uuid_v4()
}

/// The current time, to the millisecond.
pub fn now() -> ursa_avro::Timestamp {
    ursa_avro::Timestamp::from_millis(ursa_avro::Timestamp::now().millis().unwrap_or(0))
}

fn metadata(producer: &str) -> EventMetadata {
    EventMetadata {
        event_id: uuid(),
        occurred_at: now(),
        correlation_id: None,
        causation_id: None,
        producer: producer.to_owned(),
        schema_version: 1,
        trace_parent: None,
    }
}

/// Message `sequence_number` of `conversation`, with `text`.
pub fn message_received(conversation: Uuid, sequence_number: i32, text: &str) -> MessageReceived {
    MessageReceived {
        metadata: metadata("demo"),
        message_id: uuid(),
        conversation_id: conversation,
        child: ChildRef {
            child_id: Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef),
            household_id: Uuid::from_u128(0x0fed_cba9_8765_4321_8fed_cba9_8765_4321),
        },
        device: DeviceRef {
            device_id: "bear-0042".into(),
            firmware_version: "3.1.4".into(),
        },
        sequence_number,
        text: text.to_owned(),
        modality: InputModality::Voice,
        detected_emotion: None,
        audio_duration_ms: Some(1_250),
        asr_confidence: Some(0.93),
        captured_at: now(),
    }
}

/// A safety violation of `child`, with an `excerpt`.
pub fn safety_violation(child: Uuid, excerpt: &str) -> SafetyViolation {
    SafetyViolation {
        metadata: metadata("safety-classifier"),
        violation_id: uuid(),
        child: ChildRef {
            child_id: child,
            household_id: Uuid::from_u128(0x0fed_cba9_8765_4321_8fed_cba9_8765_4321),
        },
        device: DeviceRef {
            device_id: "bear-0042".into(),
            firmware_version: "3.1.4".into(),
        },
        conversation_id: uuid(),
        message_id: Some(uuid()),
        severity: Severity::High,
        category: ViolationCategory::SelfHarm,
        excerpt: excerpt.to_owned(),
        content_hash: Sha256([7; 32]),
        detected_at: now(),
        detector_model: "guard-2.3".into(),
        confidence: 0.97,
        risk_score: Decimal::from_i128(875_125, 4),
        action_taken: ActionTaken::ResponseBlocked,
        guardian_notified: true,
    }
}
