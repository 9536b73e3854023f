//! The typed publisher: an idempotent librdkafka producer that frames generated events in the Confluent wire
//! format, sends them to their catalog topic with their headers, reports each delivery through a future, and
//! dead-letters final failures to `dlq.failed-events` as the catalog's `FailedEvent`.
//!
//! Retries: librdkafka retries every produce request that fails for a transient reason (broker down, leader
//! moved, timeouts) with exponential backoff (`retry.backoff.ms` doubling up to `retry.backoff.max.ms`) until
//! the delivery timeout; the idempotent producer keeps those retries free of duplicates and in order. The
//! publisher itself never re-sends a record librdkafka gave up on: that would be a new record to the broker
//! (a duplicate if the first one did land, and out of order behind later ones). A full local queue is waited
//! out with backoff up to the enqueue deadline; registry requests are retried by the registry client.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc, oneshot};
use ursa_avro::chrono::{DateTime, Utc};
use ursa_avro::uuid::Uuid;
use ursa_avro::{encode, wire};
use ursa_events::com::teddy::common::{EventMetadata, Sha256 as Sha256Fixed};
use ursa_events::com::teddy::dlq::{ErrorContext, FailedEvent, FailureStage, Header as DlqHeader};
use ursa_registry::RegistryClient;

use crate::prepared::PreparedEvent;
use crate::registry::{STRING_SCHEMA, SchemaIds, string_fingerprint};
use crate::{DeadLetter, Error, Event, KeyFormat, PublisherConfig};

/// Header carrying the event id.
pub const EVENT_ID_HEADER: &str = "event_id";
/// Header carrying the W3C trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Header carrying the producing service's name.
pub const PRODUCER_HEADER: &str = "producer";
/// Header carrying the outbox row id, on records the outbox relay sends.
pub const OUTBOX_ID_HEADER: &str = "outbox_id";

/// Room left in a dead-letter record for everything but the original value: values that would not fit are
/// left out (their SHA-256 and size stay).
const DLQ_OVERHEAD: usize = 16 * 1024;

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The topic (with the configured prefix).
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

/// The outcome of one record: resolves once the broker acknowledged it (all in-sync replicas), or once it
/// failed for good and its dead-letter record was written (or failed). Bounded by the delivery timeout (plus,
/// on failure, the dead-letter record's own). Dropping it does not cancel the send.
#[must_use = "a Delivery reports whether the record was written"]
pub struct Delivery {
    rx: oneshot::Receiver<Result<Delivered, Error>>,
}

impl Future for Delivery {
    type Output = Result<Delivered, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Shutdown)))
    }
}

/// Counts records between enqueue and their final report (dead-letter record included).
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

struct InFlightGuard(Arc<InFlight>);

impl InFlightGuard {
    fn new(in_flight: &Arc<InFlight>) -> Self {
        in_flight.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(Arc::clone(in_flight))
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What travels with a record through librdkafka.
struct Pending {
    done: oneshot::Sender<Result<Delivered, Error>>,
    dead_letter: bool,
    event_id: Option<Uuid>,
    traceparent: String,
    first_attempt: DateTime<Utc>,
    attempts: u32,
    _in_flight: InFlightGuard,
}

/// A framed record.
struct Framed {
    topic: String,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: OwnedHeaders,
    traceparent: String,
}

/// What became of a record handed to librdkafka.
enum Produced {
    /// In the queue: its delivery report will come.
    Queued,
    /// Refused at once.
    Refused(Failure),
}

/// A record librdkafka gave up on, on its way to the dead-letter task.
struct Failure {
    pending: Box<Pending>,
    topic: String,
    code: RDKafkaErrorCode,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The producer's context: delivery reports and librdkafka's logs.
struct Context {
    failures: mpsc::UnboundedSender<Failure>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, reason, "Kafka producer error");
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        match result {
            Ok(m) => {
                let delivered = Delivered {
                    topic: m.topic().to_owned(),
                    partition: m.partition(),
                    offset: m.offset(),
                };
                let _ = pending.done.send(Ok(delivered));
            }
            Err((error, m)) => {
                let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default();
                let failure = Failure {
                    pending,
                    topic: m.topic().to_owned(),
                    code,
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                };
                if let Err(mpsc::error::SendError(f)) = self.failures.send(failure) {
                    // The dead-letter task is gone (the publisher is shutting down).
                    let error =
                        delivery_error(&f, DeadLetter::Failed("the publisher shut down".into()));
                    let _ = f.pending.done.send(Err(error));
                }
            }
        }
    }
}

fn delivery_error(f: &Failure, dead_letter: DeadLetter) -> Error {
    Error::Delivery {
        topic: f.topic.clone(),
        code: f.code,
        reason: f.code.to_string(),
        dead_letter,
    }
}

struct Inner {
    producer: ThreadedProducer<Context>,
    ids: SchemaIds,
    config: PublisherConfig,
    dead_letter_topic: Option<String>,
    in_flight: Arc<InFlight>,
    closed: AtomicBool,
}

/// Sends generated events to their catalog topics. Cheap to clone: clones share the producer, the schema id
/// cache and the in-flight count. Call [`Publisher::shutdown`] before dropping the last clone: dropping it
/// purges records still queued (their deliveries fail).
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("config", &self.inner.config)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Publisher {
    /// Creates the producer (it connects in the background). Needs a tokio runtime.
    pub fn new(config: PublisherConfig) -> Result<Publisher, Error> {
        let client =
            RegistryClient::new(config.registry.clone()).map_err(|source| Error::Registry {
                subject: String::new(),
                source,
            })?;
        Self::with_registry(config, client)
    }

    /// Like [`Publisher::new`], sharing a registry client (and its cache) with the caller.
    pub fn with_registry(
        config: PublisherConfig,
        registry: RegistryClient,
    ) -> Result<Publisher, Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("a Publisher needs a tokio runtime".into()))?;
        let (failures, mut rx) = mpsc::unbounded_channel::<Failure>();
        let producer = ThreadedProducer::from_config_and_context(
            &config.kafka_config()?,
            Context { failures },
        )
        .map_err(Error::kafka("producer creation"))?;
        let ids = SchemaIds::new(registry, config.schema_ids, config.registry_timeout);
        let dead_letter_topic = config.dead_letter_topic.as_deref().map(|t| config.topic(t));
        let inner = Arc::new(Inner {
            producer,
            ids,
            config,
            dead_letter_topic,
            in_flight: Arc::default(),
            closed: AtomicBool::new(false),
        });
        // The dead-letter task holds the publisher weakly: it ends when the producer (and its context, which
        // holds the sender) is gone.
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        runtime.spawn(async move {
            while let Some(failure) = rx.recv().await {
                match weak.upgrade() {
                    Some(inner) => {
                        tokio::spawn(async move {
                            let outcome = inner.dead_letter(&failure).await;
                            let error = delivery_error(&failure, outcome);
                            tracing::warn!(%error, "a record failed for good");
                            let _ = failure.pending.done.send(Err(error));
                        });
                    }
                    None => {
                        let error = delivery_error(
                            &failure,
                            DeadLetter::Failed("the publisher shut down".into()),
                        );
                        let _ = failure.pending.done.send(Err(error));
                    }
                }
            }
        });
        Ok(Publisher { inner })
    }

    /// The configuration.
    pub fn config(&self) -> &PublisherConfig {
        &self.inner.config
    }

    /// The registry client (shared with the schema id cache).
    pub fn registry(&self) -> &RegistryClient {
        self.inner.ids.client()
    }

    /// Records sent and not yet reported (including dead-letter records being written).
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.count.load(Ordering::SeqCst)
    }

    /// Sends `event` to the topic its type is bound to; resolves once it is in the producer's queue (after the
    /// schema id is known: looked up once per type, then cached). The returned [`Delivery`] reports the
    /// broker's acknowledgement. An `Err` here means nothing was sent and nothing dead-lettered.
    pub async fn send<E: Event>(&self, event: &E) -> Result<Delivery, Error> {
        let prepared = PreparedEvent::new(event)?;
        self.send_prepared(&prepared).await
    }

    /// Like [`Publisher::send`], to `topic`, one of the topics the type is bound to.
    pub async fn send_to<E: Event>(&self, topic: &str, event: &E) -> Result<Delivery, Error> {
        let prepared = PreparedEvent::for_topic(event, topic)?;
        self.send_prepared(&prepared).await
    }

    /// Sends and waits for the acknowledgement.
    pub async fn publish<E: Event>(&self, event: &E) -> Result<Delivered, Error> {
        self.send(event).await?.await
    }

    /// Sends an event prepared earlier (e.g. collected by an aggregate).
    pub async fn send_prepared(&self, event: &PreparedEvent) -> Result<Delivery, Error> {
        self.inner.enqueue(event, true).await
    }

    /// Looks up (and caches) the schema ids `E` needs, so that the first `send` does not wait for the
    /// registry, and a registry outage later does not stop it.
    pub async fn prepare<E: Event>(&self) -> Result<(), Error> {
        for b in E::BINDINGS {
            self.inner
                .ids
                .id(b.value_subject, E::SCHEMA, E::FINGERPRINT, E::FULL_NAME)
                .await?;
            if self.inner.key_is_avro(b.key_subject)? {
                self.inner
                    .ids
                    .id(
                        b.key_subject,
                        STRING_SCHEMA,
                        string_fingerprint(),
                        "string key",
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Whether the value schema id of `E` on its first binding is cached.
    pub fn knows<E: Event>(&self) -> bool {
        E::BINDINGS
            .first()
            .is_some_and(|b| self.inner.ids.is_cached(b.value_subject, E::FINGERPRINT))
    }

    /// Waits until every record sent so far is reported (acknowledged, or failed and dead-lettered), at most
    /// `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), Error> {
        // Not librdkafka's flush: rdkafka's wrapper polls in 100 ms steps, so it returns 100 ms late, and
        // lingering batches go out within `linger` anyway. Every record's report arrives through the producer's
        // polling thread; the count falls to zero once all are in (dead-letter records included).
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.inner.in_flight.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let in_flight = self.in_flight();
            if in_flight == 0 {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return Err(Error::FlushTimeout {
                    in_flight: self.in_flight(),
                    after: timeout,
                });
            }
        }
    }

    /// Refuses further sends, then waits (at most `timeout`) for every record in flight to be reported.
    pub async fn shutdown(&self, timeout: Duration) -> Result<(), Error> {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.flush(timeout).await
    }

    /// Sends without dead-lettering a final failure (the outbox relay decides per failure).
    pub(crate) async fn send_without_dead_letter(
        &self,
        event: &PreparedEvent,
    ) -> Result<Delivery, Error> {
        self.inner.enqueue(event, false).await
    }

    /// Writes the dead-letter record of `event`, which failed with `error` outside the publisher (the outbox
    /// relay uses it for rows that can never be delivered).
    pub(crate) async fn dead_letter_prepared(
        &self,
        event: &PreparedEvent,
        code: RDKafkaErrorCode,
    ) -> DeadLetter {
        let value = match self.inner.value_bytes(event).await {
            Ok(v) => Some(v),
            Err(_) => Some(event.datum.clone()),
        };
        let (tx, _rx) = oneshot::channel();
        let failure = Failure {
            pending: Box::new(Pending {
                done: tx,
                dead_letter: true,
                event_id: event.event_id,
                traceparent: event
                    .traceparent
                    .clone()
                    .unwrap_or_else(crate::ids::new_traceparent),
                first_attempt: now_utc(),
                attempts: 1,
                _in_flight: InFlightGuard::new(&self.inner.in_flight),
            }),
            topic: self.inner.config.topic(&event.topic),
            code,
            key: event.key.as_ref().map(|k| k.as_bytes().to_vec()),
            value,
            headers: Vec::new(),
        };
        self.inner.dead_letter(&failure).await
    }
}

impl Inner {
    fn key_is_avro(&self, key_subject: &str) -> Result<bool, Error> {
        match self.config.key_format {
            KeyFormat::Utf8 => Ok(false),
            KeyFormat::Catalog => Ok(!key_subject.is_empty()),
            KeyFormat::Avro if key_subject.is_empty() => Err(Error::Config(
                "KeyFormat::Avro, but the topic has no key subject in the catalog".into(),
            )),
            KeyFormat::Avro => Ok(true),
        }
    }

    async fn value_bytes(&self, event: &PreparedEvent) -> Result<Vec<u8>, Error> {
        let id = self
            .ids
            .id(
                &event.value_subject,
                event.schema.as_str(),
                event.fingerprint,
                &event.type_name,
            )
            .await?;
        let mut value = Vec::with_capacity(wire::HEADER_LEN + event.datum.len());
        wire::write_header(&mut value, id);
        value.extend_from_slice(&event.datum);
        Ok(value)
    }

    async fn key_bytes(&self, event: &PreparedEvent) -> Result<Option<Vec<u8>>, Error> {
        let Some(key) = &event.key else {
            return Ok(None);
        };
        if !self.key_is_avro(&event.key_subject)? {
            return Ok(Some(key.as_bytes().to_vec()));
        }
        let id = self
            .ids
            .id(
                &event.key_subject,
                STRING_SCHEMA,
                string_fingerprint(),
                "string key",
            )
            .await?;
        let mut buf = Vec::with_capacity(wire::HEADER_LEN + 2 + key.len());
        wire::write_header(&mut buf, id);
        encode::string(&mut buf, key);
        Ok(Some(buf))
    }

    /// Frames `event`: the value and key in the Confluent wire format (schema ids from the cache), the headers.
    async fn frame(&self, event: &PreparedEvent) -> Result<Framed, Error> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Shutdown);
        }
        let value = self.value_bytes(event).await?;
        let key = self.key_bytes(event).await?;
        let traceparent = event
            .traceparent
            .clone()
            .unwrap_or_else(crate::ids::new_traceparent);
        let producer = event
            .producer
            .as_deref()
            .unwrap_or(&self.config.producer_name);
        let mut headers = OwnedHeaders::new_with_capacity(4);
        if let Some(id) = event.event_id {
            let id = id.to_string();
            headers = headers.insert(Header {
                key: EVENT_ID_HEADER,
                value: Some(id.as_bytes()),
            });
        }
        headers = headers
            .insert(Header {
                key: TRACEPARENT_HEADER,
                value: Some(traceparent.as_bytes()),
            })
            .insert(Header {
                key: PRODUCER_HEADER,
                value: Some(producer.as_bytes()),
            });
        if let Some(id) = event.outbox_id {
            let id = id.to_string();
            headers = headers.insert(Header {
                key: OUTBOX_ID_HEADER,
                value: Some(id.as_bytes()),
            });
        }
        Ok(Framed {
            topic: self.config.topic(&event.topic),
            key,
            value,
            headers,
            traceparent,
        })
    }

    /// Frames `event` and puts it in librdkafka's queue; a record refused at once is dead-lettered (when
    /// `dead_letter`) and reported through the returned [`Delivery`] like a failed delivery.
    async fn enqueue(&self, event: &PreparedEvent, dead_letter: bool) -> Result<Delivery, Error> {
        let framed = self.frame(event).await?;
        let (tx, rx) = oneshot::channel();
        let pending = Box::new(Pending {
            done: tx,
            dead_letter,
            event_id: event.event_id,
            traceparent: framed.traceparent.clone(),
            first_attempt: now_utc(),
            attempts: 1,
            _in_flight: InFlightGuard::new(&self.in_flight),
        });
        match self.produce(framed, pending).await? {
            Produced::Queued => {}
            Produced::Refused(failure) => {
                let outcome = self.dead_letter(&failure).await;
                let error = delivery_error(&failure, outcome);
                tracing::warn!(%error, "a record was refused");
                let _ = failure.pending.done.send(Err(error));
            }
        }
        Ok(Delivery { rx })
    }

    /// Puts a framed record in librdkafka's queue, waiting for room (with backoff) up to the enqueue deadline.
    async fn produce(&self, framed: Framed, pending: Box<Pending>) -> Result<Produced, Error> {
        let Framed {
            topic,
            key,
            value,
            headers,
            ..
        } = framed;
        let mut record: BaseRecord<'_, [u8], [u8], Box<Pending>> =
            BaseRecord::with_opaque_to(&topic, pending)
                .payload(&value[..])
                .headers(headers);
        if let Some(k) = &key {
            record = record.key(&k[..]);
        }
        let started = Instant::now();
        let mut backoff = Duration::from_millis(1);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(Produced::Queued),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    let waited = started.elapsed();
                    if waited >= self.config.enqueue_timeout {
                        return Err(Error::QueueFull { waited });
                    }
                    tokio::time::sleep(backoff.min(self.config.enqueue_timeout - waited)).await;
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                    record = r;
                }
                Err((error, r)) => {
                    // Refused at once (too large, a bad topic name, a fatal producer state): final.
                    let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                    let headers = r
                        .headers
                        .as_ref()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default();
                    let pending = r.delivery_opaque;
                    return Ok(Produced::Refused(Failure {
                        pending,
                        topic: topic.clone(),
                        code,
                        key,
                        value: Some(value),
                        headers,
                    }));
                }
            }
        }
    }

    /// Writes the `FailedEvent` of a record that failed for good, and says how that went.
    async fn dead_letter(&self, f: &Failure) -> DeadLetter {
        let Some(dlq_topic) = &self.dead_letter_topic else {
            return DeadLetter::NotAttempted;
        };
        if !f.pending.dead_letter || &f.topic == dlq_topic {
            return DeadLetter::NotAttempted;
        }
        let failed = self.failed_event(f);
        let mut prepared = match PreparedEvent::new(&failed) {
            Ok(p) => p,
            Err(e) => return DeadLetter::Failed(e.to_string()),
        };
        if let Some(t) = &self.config.dead_letter_topic {
            prepared.topic = t.clone().into();
        }
        prepared.traceparent = Some(f.pending.traceparent.clone());
        let bound = self
            .config
            .delivery_timeout
            .unwrap_or(Duration::from_secs(300))
            + self.config.enqueue_timeout
            + self.config.registry_timeout;
        let written = tokio::time::timeout(bound, async {
            let framed = self.frame(&prepared).await?;
            let (tx, rx) = oneshot::channel();
            let pending = Box::new(Pending {
                done: tx,
                dead_letter: false,
                event_id: prepared.event_id,
                traceparent: framed.traceparent.clone(),
                first_attempt: now_utc(),
                attempts: 1,
                _in_flight: InFlightGuard::new(&self.in_flight),
            });
            match self.produce(framed, pending).await? {
                Produced::Queued => Delivery { rx }.await,
                Produced::Refused(r) => Err(delivery_error(&r, DeadLetter::NotAttempted)),
            }
        })
        .await;
        match written {
            Ok(Ok(d)) => DeadLetter::Written {
                topic: d.topic,
                partition: d.partition,
                offset: d.offset,
            },
            Ok(Err(e)) => DeadLetter::Failed(e.to_string()),
            Err(_) => DeadLetter::Failed(format!("not acknowledged within {bound:?}")),
        }
    }

    fn failed_event(&self, f: &Failure) -> FailedEvent {
        let now = now_utc();
        let value_len = f.value.as_ref().map_or(0, Vec::len);
        let too_large = value_len + DLQ_OVERHEAD > self.config.max_message_bytes;
        let mut message = format!("{} ({:?})", f.code, f.code);
        if too_large {
            message.push_str(&format!(
                "; the value ({value_len} bytes) is left out of this record: see value_hash"
            ));
        }
        FailedEvent {
            metadata: EventMetadata {
                event_id: crate::ids::uuid_v4(),
                occurred_at: now.into(),
                correlation_id: f.pending.event_id,
                causation_id: f.pending.event_id,
                producer: self.config.producer_name.clone(),
                schema_version: 1,
                trace_parent: Some(f.pending.traceparent.clone()),
            },
            original_topic: f.topic.clone(),
            original_partition: -1,
            original_offset: -1,
            original_timestamp: Some(f.pending.first_attempt.into()),
            key: f.key.clone(),
            value: if too_large { None } else { f.value.clone() },
            value_hash: f
                .value
                .as_ref()
                .map(|v| Sha256Fixed(Sha256::digest(v).into())),
            headers: f
                .headers
                .iter()
                .map(|(k, v)| DlqHeader {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            error: ErrorContext {
                stage: FailureStage::Produce,
                error_class: format!("rdkafka::error::RDKafkaErrorCode::{:?}", f.code),
                message,
                stacktrace: None,
                attempt_count: i32::try_from(f.pending.attempts).unwrap_or(i32::MAX),
                first_failure_at: f.pending.first_attempt.into(),
                last_failure_at: now.into(),
                connector: Some(self.config.producer_name.clone()),
                task_id: None,
            },
        }
    }
}

/// The current time (chrono's `clock` feature is off in the workspace).
fn now_utc() -> DateTime<Utc> {
    std::time::SystemTime::now().into()
}
