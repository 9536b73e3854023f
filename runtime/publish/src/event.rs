//! What the publisher needs from an event beyond its Avro encoding: its record key, its id and its trace
//! context; implemented here for every event of the catalog (`ursa_events`), per the keying convention of
//! `schemas/topics.toml`.

use ursa_avro::AvroRecord;
use ursa_avro::uuid::Uuid;
use ursa_events::com::teddy::analytics::{EngagementMetrics, UsageStats};
use ursa_events::com::teddy::child::{
    ChildProfileUpdated, ChildRegistered, MilestoneAchieved, SafetyViolation,
};
use ursa_events::com::teddy::common::EventMetadata;
use ursa_events::com::teddy::conversation::{
    ConversationEnded, ConversationEscalated, ConversationStarted, EmotionDetected,
    MessageReceived, ResponseGenerated,
};
use ursa_events::com::teddy::dlq::FailedEvent;
use ursa_events::com::teddy::guardian::{AlertAcknowledged, GuardianContactUpdated};
use ursa_events::com::teddy::system::{AuditLog, HealthCheck};

/// A generated record the publisher can send: the topic and subjects come from its catalog binding
/// ([`AvroRecord::BINDINGS`]); this trait adds what the binding cannot know.
///
/// Every event of `ursa_events` implements it. For a type of your own generated crate, implement it next to the
/// type, e.g. `impl ursa_publish::Event for OrderPlaced { fn key(&self) -> Option<String> {
/// Some(self.order_id.to_string()) } fn event_id(&self) -> Option<Uuid> { Some(self.metadata.event_id) } }`.
pub trait Event: AvroRecord + Send + Sync {
    /// The record key, as a string (the catalog's keys are `string`s): it picks the partition, so all events of
    /// one key stay in order. `None` sends the record without a key.
    fn key(&self) -> Option<String>;

    /// The event's unique id, sent in the `event_id` header (consumers de-duplicate on it).
    fn event_id(&self) -> Option<Uuid> {
        None
    }

    /// A W3C `traceparent` to send; without one the publisher starts a new trace.
    fn trace_parent(&self) -> Option<&str> {
        None
    }
}

/// The catalog's envelope, when the event has one.
fn envelope_id(m: &EventMetadata) -> Option<Uuid> {
    Some(m.event_id)
}

macro_rules! catalog_event {
    ($($ty:ty => |$e:ident| $key:expr;)*) => {
        $(
            impl Event for $ty {
                fn key(&self) -> Option<String> {
                    let $e = self;
                    Some($key)
                }

                fn event_id(&self) -> Option<Uuid> {
                    envelope_id(&self.metadata)
                }

                fn trace_parent(&self) -> Option<&str> {
                    self.metadata.trace_parent.as_deref()
                }
            }
        )*
    };
}

// The keying convention of schemas/topics.toml: child.* and analytics.* by child id; guardian.* by household id; conversation.*,
// message.received, response.generated and emotion.detected by conversation id; system.health-check by service
// name; system.audit-log by resource id; dlq.failed-events by original topic.
catalog_event! {
    ChildRegistered => |e| e.child.child_id.to_string();
    ChildProfileUpdated => |e| e.child.child_id.to_string();
    SafetyViolation => |e| e.child.child_id.to_string();
    MilestoneAchieved => |e| e.child.child_id.to_string();
    UsageStats => |e| e.child.child_id.to_string();
    GuardianContactUpdated => |e| e.household_id.to_string();
    AlertAcknowledged => |e| e.household_id.to_string();
    EngagementMetrics => |e| e.child.child_id.to_string();
    ConversationStarted => |e| e.conversation_id.to_string();
    ConversationEnded => |e| e.conversation_id.to_string();
    ConversationEscalated => |e| e.conversation_id.to_string();
    MessageReceived => |e| e.conversation_id.to_string();
    ResponseGenerated => |e| e.conversation_id.to_string();
    EmotionDetected => |e| e.conversation_id.to_string();
    HealthCheck => |e| e.service.clone();
    AuditLog => |e| e.resource.id.clone();
    FailedEvent => |e| e.original_topic.clone();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every topic of the catalog has a type implementing `Event` (a new topic needs a line above).
    #[test]
    fn every_catalog_topic_has_an_event_impl() {
        fn topic<T: Event>() -> &'static str {
            T::BINDINGS.first().map_or("", |b| b.topic)
        }
        let covered = [
            topic::<ChildRegistered>(),
            topic::<ChildProfileUpdated>(),
            topic::<SafetyViolation>(),
            topic::<MilestoneAchieved>(),
            topic::<UsageStats>(),
            topic::<GuardianContactUpdated>(),
            topic::<AlertAcknowledged>(),
            topic::<EngagementMetrics>(),
            topic::<ConversationStarted>(),
            topic::<ConversationEnded>(),
            topic::<ConversationEscalated>(),
            topic::<MessageReceived>(),
            topic::<ResponseGenerated>(),
            topic::<EmotionDetected>(),
            topic::<HealthCheck>(),
            topic::<AuditLog>(),
            topic::<FailedEvent>(),
        ];
        for b in ursa_events::topics::BINDINGS {
            assert!(
                covered.contains(&b.topic),
                "topic {} has no `Event` impl in ursa-publish",
                b.topic
            );
        }
    }
}
