//! Publishing the catalog's events: the producer side of ursa.
//!
//! - [`Publisher`]: sends any generated type bound to a topic in the catalog (`schemas/topics.toml`): topic,
//!   key and subjects from the binding, the writer schema id looked up once and cached (or registered, when
//!   allowed), the Confluent wire format, headers `event_id`, `traceparent` and `producer`; an idempotent
//!   producer (`enable.idempotence`, `acks=all`) with lz4 and linger batching, retries with backoff, and a
//!   [`Delivery`] future per event. A final failure (record too large, topic unknown or unauthorised, retries
//!   run out) is written to `dlq.failed-events` as the catalog's `FailedEvent`, and returned.
//! - [`EventBuffer`], [`Aggregate`], [`UnitOfWork`]: domain events recorded by aggregates, published when the
//!   unit of work completes.
//! - [`Outbox`] and [`Relay`]: the transactional outbox, for events that must never be lost (see [`Relay`] for
//!   the exact guarantee); `ursa-outbox relay` runs a relay as a process.
//! - [`Subscriber`]: a typed consumer that commits after the handler returns and decodes from any compatible
//!   writer schema.
//!
//! ```no_run
//! use std::time::Duration;
//! use ursa_publish::{Publisher, PublisherConfig};
//! # use ursa_events::com::teddy::child::SafetyViolation;
//!
//! # async fn example(violation: SafetyViolation) -> Result<(), ursa_publish::Error> {
//! let config = PublisherConfig::new("127.0.0.1:9092", "http://127.0.0.1:8081", "safety-classifier");
//! let publisher = Publisher::new(config)?;
//! publisher.prepare::<SafetyViolation>().await?; // schema ids cached: a registry outage no longer matters
//!
//! let delivery = publisher.send(&violation).await?; // to `child.safety-violation`, keyed by child id
//! let at = delivery.await?; // acknowledged by all in-sync replicas
//! println!("written to {}/{}@{}", at.topic, at.partition, at.offset);
//!
//! publisher.shutdown(Duration::from_secs(30)).await?; // waits for everything in flight
//! # Ok(()) }
//! ```

mod aggregate;
mod config;
#[doc(hidden)]
pub mod demo;
mod error;
mod event;
mod ids;
mod outbox;
mod prepared;
mod publisher;
mod registry;
mod subscriber;

pub use aggregate::{Aggregate, EventBuffer, UnitOfWork};
pub use config::{Compression, KeyFormat, PublisherConfig, SchemaIdPolicy};
pub use error::{DeadLetter, Error};
pub use event::Event;
pub use outbox::{Outbox, Relay, RelayConfig, RelayStats};
pub use prepared::PreparedEvent;
pub use publisher::{
    Delivered, Delivery, EVENT_ID_HEADER, OUTBOX_ID_HEADER, PRODUCER_HEADER, Publisher,
    TRACEPARENT_HEADER,
};
pub use subscriber::{Received, Subscriber, SubscriberConfig};

pub use rdkafka::error::RDKafkaErrorCode;
