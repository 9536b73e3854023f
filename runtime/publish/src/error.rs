//! The crate's error type: what failed, where, and whether trying again can help ([`Error::is_retriable`]).

use std::fmt;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use ursa_registry::ClientError;

/// What became of the dead-letter record of a failed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetter {
    /// The `FailedEvent` was written to the dead-letter topic.
    Written {
        /// The dead-letter topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
    },
    /// Writing the `FailedEvent` failed too; the event is only in the returned error.
    Failed(String),
    /// No dead-letter record was attempted: dead-lettering is off for this send, or the failed record was a
    /// dead-letter record itself.
    NotAttempted,
}

impl fmt::Display for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadLetter::Written {
                topic,
                partition,
                offset,
            } => write!(f, "dead-lettered to {topic}/{partition}@{offset}"),
            DeadLetter::Failed(why) => write!(f, "the dead-letter record failed too: {why}"),
            DeadLetter::NotAttempted => f.write_str("not dead-lettered"),
        }
    }
}

/// Everything that can go wrong while publishing, relaying or subscribing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The type has no binding in the catalog (`T::BINDINGS` is empty), so there is no topic to send it to.
    #[error("`{type_name}` is not bound to a topic in the catalog (schemas/topics.toml)")]
    NotBound {
        /// The type's full Avro name.
        type_name: &'static str,
    },
    /// The type is bound to several topics, or not to the one asked for.
    #[error(
        "`{type_name}` is not bound to topic `{topic}` (its topics: {bound}); use `send_to` with one of them"
    )]
    NotBoundTo {
        /// The type's full Avro name.
        type_name: &'static str,
        /// The topic asked for (empty: none was, and the type has several).
        topic: String,
        /// The topics it is bound to.
        bound: String,
    },
    /// The event could not be encoded (e.g. a decimal beyond its precision).
    #[error("encoding `{type_name}`: {source}")]
    Encode {
        /// The type's full Avro name.
        type_name: &'static str,
        /// Why.
        #[source]
        source: ursa_avro::Error,
    },
    /// A schema registry request failed.
    #[error("schema registry, subject `{subject}`: {source}")]
    Registry {
        /// The subject (or `schema id N`) asked about.
        subject: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// The schema registry did not answer in time.
    #[error("schema registry, subject `{subject}`: no answer within {after:?}")]
    RegistryTimeout {
        /// The subject (or `schema id N`) asked about.
        subject: String,
        /// The deadline.
        after: Duration,
    },
    /// The writer schema is not registered under its subject, and registering is not allowed
    /// ([`crate::SchemaIdPolicy::LookupOnly`]).
    #[error(
        "subject `{subject}` has no version with the schema of `{type_name}` (fingerprint {fingerprint:#018x}) and \
         the publisher may not register it: run `ursa schema register`, or allow registration"
    )]
    SchemaNotRegistered {
        /// The subject.
        subject: String,
        /// The type (or the outbox row's subject).
        type_name: String,
        /// CRC-64-AVRO fingerprint of the schema's canonical form.
        fingerprint: u64,
    },
    /// The producer's local queue stayed full for the whole enqueue deadline.
    #[error(
        "the producer queue stayed full for {waited:?} (the broker is slower than the event rate, or down)"
    )]
    QueueFull {
        /// How long the send waited.
        waited: Duration,
    },
    /// The broker did not take the record: a final failure, after librdkafka's own retries.
    #[error("delivery to `{topic}` failed: {reason}; {dead_letter}")]
    Delivery {
        /// The topic.
        topic: String,
        /// librdkafka's error code.
        code: RDKafkaErrorCode,
        /// librdkafka's description.
        reason: String,
        /// Whether a `FailedEvent` carrying the record was written to the dead-letter topic.
        dead_letter: DeadLetter,
    },
    /// The publisher was shut down (or dropped) before the record was delivered.
    #[error("the publisher shut down before the record was delivered")]
    Shutdown,
    /// `flush` or `shutdown` reached its deadline with deliveries still outstanding.
    #[error("{in_flight} deliveries still outstanding after {after:?}")]
    FlushTimeout {
        /// Deliveries not yet reported.
        in_flight: usize,
        /// The deadline.
        after: Duration,
    },
    /// A Kafka client operation failed (creation, a consumer poll, a commit).
    #[error("Kafka {what}: {source}")]
    Kafka {
        /// What was being done.
        what: &'static str,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// A Kafka client operation did not finish in time.
    #[error("Kafka {what}: no answer within {after:?}")]
    KafkaTimeout {
        /// What was being done.
        what: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A PostgreSQL statement failed.
    #[error("PostgreSQL, {what}: {source}")]
    Postgres {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// PostgreSQL did not answer in time.
    #[error("PostgreSQL, {what}: no answer within {after:?}")]
    PostgresTimeout {
        /// What was being done.
        what: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// A consumed record could not be decoded as the subscriber's type.
    #[error("decoding {topic}/{partition}@{offset}: {problem}")]
    Decode {
        /// Its topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// Why.
        problem: String,
    },
    /// The subscriber's handler failed; the record's offset was not committed.
    #[error("the handler failed on {topic}/{partition}@{offset}: {source}")]
    Handler {
        /// Its topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// The handler's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Whether the same operation may succeed if tried again later (the broker, registry or database was
    /// unavailable or slow), as opposed to failing the same way every time (a record too large, an unknown or
    /// forbidden topic, a schema the registry does not have, bad input or configuration).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Registry { source, .. } => source.is_retriable(),
            Error::RegistryTimeout { .. }
            | Error::QueueFull { .. }
            | Error::FlushTimeout { .. }
            | Error::KafkaTimeout { .. }
            | Error::PostgresTimeout { .. } => true,
            Error::Delivery { code, .. } => retriable_code(*code),
            Error::Kafka { source, .. } => source.rdkafka_error_code().is_some_and(retriable_code),
            Error::Postgres { source, .. } => retriable_postgres(source),
            Error::NotBound { .. }
            | Error::NotBoundTo { .. }
            | Error::Encode { .. }
            | Error::SchemaNotRegistered { .. }
            | Error::Shutdown
            | Error::Config(_)
            | Error::Decode { .. }
            | Error::Handler { .. } => false,
        }
    }

    /// The librdkafka error code of a failed delivery.
    pub fn delivery_code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            Error::Delivery { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// What became of the dead-letter record, for a failed delivery.
    pub fn dead_letter(&self) -> Option<&DeadLetter> {
        match self {
            Error::Delivery { dead_letter, .. } => Some(dead_letter),
            _ => None,
        }
    }

    pub(crate) fn postgres(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
        move |source| Error::Postgres { what, source }
    }

    pub(crate) fn kafka(what: &'static str) -> impl FnOnce(KafkaError) -> Error {
        move |source| Error::Kafka { what, source }
    }
}

/// Delivery errors that a later attempt may not hit: the broker or the network was unavailable or slow.
pub(crate) fn retriable_code(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::MessageTimedOut
            | C::RequestTimedOut
            | C::OperationTimedOut
            | C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::BrokerNotAvailable
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::NetworkException
            | C::QueueFull
            | C::PurgeQueue
            | C::PurgeInflight
            | C::Resolve
            | C::KafkaStorageError
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::CoordinatorLoadInProgress
    )
}

/// Whether a PostgreSQL failure is transient: the connection broke, or the server asks to retry
/// (serialization failure, deadlock, shutdown, too many connections).
fn retriable_postgres(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        None => true,
        Some(db) => {
            let code = db.code().code();
            code.starts_with("40")
                || code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriable_or_not() {
        let delivery = |code| Error::Delivery {
            topic: "t".into(),
            code,
            reason: "r".into(),
            dead_letter: DeadLetter::NotAttempted,
        };
        assert!(delivery(RDKafkaErrorCode::MessageTimedOut).is_retriable());
        assert!(delivery(RDKafkaErrorCode::AllBrokersDown).is_retriable());
        assert!(!delivery(RDKafkaErrorCode::MessageSizeTooLarge).is_retriable());
        assert!(!delivery(RDKafkaErrorCode::TopicAuthorizationFailed).is_retriable());
        assert!(!delivery(RDKafkaErrorCode::UnknownTopic).is_retriable());
        assert!(
            Error::QueueFull {
                waited: Duration::from_secs(1)
            }
            .is_retriable()
        );
        assert!(!Error::NotBound { type_name: "x" }.is_retriable());
        assert!(
            !Error::SchemaNotRegistered {
                subject: "s".into(),
                type_name: "x".into(),
                fingerprint: 1
            }
            .is_retriable()
        );
        assert!(
            Error::RegistryTimeout {
                subject: "s".into(),
                after: Duration::from_secs(1)
            }
            .is_retriable()
        );
    }

    #[test]
    fn messages_say_what_happened_to_the_dead_letter() {
        let e = Error::Delivery {
            topic: "child.safety-violation".into(),
            code: RDKafkaErrorCode::MessageSizeTooLarge,
            reason: "Broker: Message size too large".into(),
            dead_letter: DeadLetter::Written {
                topic: "dlq.failed-events".into(),
                partition: 0,
                offset: 7,
            },
        };
        assert_eq!(
            e.to_string(),
            "delivery to `child.safety-violation` failed: Broker: Message size too large; dead-lettered to \
             dlq.failed-events/0@7"
        );
    }
}
