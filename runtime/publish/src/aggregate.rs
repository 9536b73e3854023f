//! Domain events from aggregates: an aggregate records events in its [`EventBuffer`] while it handles a
//! command; a [`UnitOfWork`] collects them from every aggregate it touched and publishes them, in the order they
//! were recorded, when it completes — to Kafka directly ([`UnitOfWork::complete`]), or into the transactional
//! outbox inside the application's own database transaction ([`UnitOfWork::complete_in`]), which is the only
//! way to make the events and the state change all-or-nothing. Dropping a unit of work discards its events.
//!
//! ```
//! use ursa_publish::{Aggregate, EventBuffer, UnitOfWork};
//! # use ursa_events::com::teddy::conversation::ConversationEnded;
//!
//! struct Conversation {
//!     id: ursa_avro::uuid::Uuid,
//!     open: bool,
//!     events: EventBuffer,
//! }
//!
//! impl Aggregate for Conversation {
//!     fn events(&mut self) -> &mut EventBuffer {
//!         &mut self.events
//!     }
//! }
//!
//! impl Conversation {
//!     fn end(&mut self, ended: ConversationEnded) -> Result<(), ursa_publish::Error> {
//!         self.open = false;
//!         self.events.record(&ended) // encoded now: a bad event fails the command, not the commit
//!     }
//! }
//!
//! # async fn handle(publisher: &ursa_publish::Publisher, c: &mut Conversation, e: ConversationEnded)
//! #     -> Result<(), ursa_publish::Error> {
//! let mut work = UnitOfWork::new();
//! c.end(e)?;
//! work.collect(c);
//! work.complete(publisher).await?; // every event acknowledged
//! # Ok(()) }
//! ```

use tokio_postgres::Transaction;

use crate::{Delivered, Error, Event, Outbox, PreparedEvent, Publisher};

/// Events an aggregate recorded and has not handed over yet.
#[derive(Debug, Default, Clone)]
pub struct EventBuffer {
    events: Vec<PreparedEvent>,
}

impl EventBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `event` (encoded at once, so an event that cannot be encoded fails here).
    pub fn record<E: Event>(&mut self, event: &E) -> Result<(), Error> {
        self.events.push(PreparedEvent::new(event)?);
        Ok(())
    }

    /// Records `event` for `topic`, one of the topics its type is bound to.
    pub fn record_to<E: Event>(&mut self, topic: &str, event: &E) -> Result<(), Error> {
        self.events.push(PreparedEvent::for_topic(event, topic)?);
        Ok(())
    }

    /// How many events are buffered.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The buffered events, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &PreparedEvent> {
        self.events.iter()
    }

    /// Takes the buffered events out, oldest first.
    pub fn take(&mut self) -> Vec<PreparedEvent> {
        std::mem::take(&mut self.events)
    }

    /// Discards the buffered events (the command failed).
    pub fn clear(&mut self) {
        self.events.clear();
    }
}

/// Something that records domain events.
pub trait Aggregate {
    /// The aggregate's buffer of recorded events.
    fn events(&mut self) -> &mut EventBuffer;
}

/// The events of one unit of work, from every aggregate it touched, in the order collected.
#[derive(Debug, Default)]
#[must_use = "a unit of work publishes nothing until it completes"]
pub struct UnitOfWork {
    events: Vec<PreparedEvent>,
}

impl UnitOfWork {
    /// An empty unit of work.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the aggregate's buffered events into this unit of work.
    pub fn collect<A: Aggregate + ?Sized>(&mut self, aggregate: &mut A) {
        self.events.append(&mut aggregate.events().take());
    }

    /// Adds one event directly.
    pub fn record<E: Event>(&mut self, event: &E) -> Result<(), Error> {
        self.events.push(PreparedEvent::new(event)?);
        Ok(())
    }

    /// How many events the unit of work holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Publishes the events in order and waits for every acknowledgement. It stops sending at the first event
    /// that cannot be sent (so no later event overtakes it), still waits for those already sent, and returns
    /// the first error. Not atomic with anything else: for that, use [`UnitOfWork::complete_in`].
    pub async fn complete(self, publisher: &Publisher) -> Result<Vec<Delivered>, Error> {
        let mut deliveries = Vec::with_capacity(self.events.len());
        let mut first_error = None;
        for event in &self.events {
            match publisher.send_prepared(event).await {
                Ok(d) => deliveries.push(d),
                Err(e) => {
                    first_error = Some(e);
                    break;
                }
            }
        }
        let mut delivered = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            match d.await {
                Ok(d) => delivered.push(d),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(delivered),
        }
    }

    /// Writes the events into `outbox` inside the application's transaction `tx`; they are published by the
    /// relay once the caller commits `tx` (and never, if it rolls back). Returns the outbox row ids.
    pub async fn complete_in(
        self,
        tx: &Transaction<'_>,
        outbox: &Outbox,
    ) -> Result<Vec<i64>, Error> {
        outbox.write_prepared(tx, &self.events).await
    }
}
