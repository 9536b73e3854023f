//! An event ready to send, with its type erased: encoded, keyed, with its topic and subjects from the binding.
//! Aggregates buffer these, the outbox stores them, the publisher frames and sends them.

use std::borrow::Cow;
use std::sync::Arc;

use ursa_avro::uuid::Uuid;
use ursa_avro::{AvroRecord, Binding};

use crate::{Error, Event};

/// Schema text: the generated type's constant, or one shared by the outbox relay's cache.
#[derive(Debug, Clone)]
pub(crate) enum SchemaText {
    Static(&'static str),
    Shared(Arc<str>),
}

impl SchemaText {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            SchemaText::Static(s) => s,
            SchemaText::Shared(s) => s,
        }
    }
}

/// An encoded event with what the publisher needs to send it: the bound topic, the key and its subject, the
/// value subject, the writer schema (and its fingerprint), the event id and trace context.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub(crate) type_name: Cow<'static, str>,
    pub(crate) topic: Cow<'static, str>,
    pub(crate) key: Option<String>,
    pub(crate) key_subject: Cow<'static, str>,
    pub(crate) value_subject: Cow<'static, str>,
    pub(crate) schema: SchemaText,
    pub(crate) fingerprint: u64,
    pub(crate) datum: Vec<u8>,
    pub(crate) event_id: Option<Uuid>,
    pub(crate) traceparent: Option<String>,
    /// The `producer` header, when not the publisher's own name (outbox rows carry the writing service's).
    pub(crate) producer: Option<String>,
    /// The outbox row, for the `outbox_id` header.
    pub(crate) outbox_id: Option<i64>,
}

impl PreparedEvent {
    /// Encodes `event` for the one topic its type is bound to.
    pub fn new<E: Event>(event: &E) -> Result<PreparedEvent, Error> {
        match E::BINDINGS {
            [] => Err(Error::NotBound {
                type_name: E::FULL_NAME,
            }),
            [binding] => Self::with_binding(event, binding),
            many => Err(Error::NotBoundTo {
                type_name: E::FULL_NAME,
                topic: String::new(),
                bound: topics(many),
            }),
        }
    }

    /// Encodes `event` for `topic`, one of the topics its type is bound to.
    pub fn for_topic<E: Event>(event: &E, topic: &str) -> Result<PreparedEvent, Error> {
        let binding = E::BINDINGS
            .iter()
            .find(|b| b.topic == topic)
            .ok_or_else(|| Error::NotBoundTo {
                type_name: E::FULL_NAME,
                topic: topic.to_owned(),
                bound: topics(E::BINDINGS),
            })?;
        Self::with_binding(event, binding)
    }

    fn with_binding<E: Event>(
        event: &E,
        binding: &'static Binding,
    ) -> Result<PreparedEvent, Error> {
        let datum = event.to_avro_datum().map_err(|source| Error::Encode {
            type_name: E::FULL_NAME,
            source,
        })?;
        Ok(PreparedEvent {
            type_name: Cow::Borrowed(E::FULL_NAME),
            topic: Cow::Borrowed(binding.topic),
            key: event.key(),
            key_subject: Cow::Borrowed(binding.key_subject),
            value_subject: Cow::Borrowed(binding.value_subject),
            schema: SchemaText::Static(E::SCHEMA),
            fingerprint: <E as AvroRecord>::FINGERPRINT,
            datum,
            event_id: event.event_id(),
            traceparent: event
                .trace_parent()
                .filter(|t| crate::ids::is_traceparent(t))
                .map(str::to_owned),
            producer: None,
            outbox_id: None,
        })
    }

    /// The topic the catalog binds the event to (before any prefix).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The record key.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The event id.
    pub fn event_id(&self) -> Option<Uuid> {
        self.event_id
    }

    /// The Avro datum (without framing).
    pub fn datum(&self) -> &[u8] {
        &self.datum
    }

    /// The generated type's full name.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }
}

fn topics(bindings: &[Binding]) -> String {
    bindings
        .iter()
        .map(|b| format!("`{}`", b.topic))
        .collect::<Vec<_>>()
        .join(", ")
}
