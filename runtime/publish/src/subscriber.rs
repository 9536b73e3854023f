//! A typed consumer for services that read events without the connector runtime: records decoded as `T` from
//! whatever compatible writer schema they were written with (fetched from the registry by id, with its
//! references, and resolved against `T`'s schema once per id), offsets committed only for records whose
//! handler returned.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, ClientContext, Offset};
use ursa_avro::{AvroRecord, Reader, Resolver, wire};
use ursa_registry::{ClientConfig as RegistryConfig, RegistryClient};

use crate::Error;
use crate::registry::{deadline, writer_by_id};

/// What a subscriber needs to know.
#[derive(Clone)]
pub struct SubscriberConfig {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// The consumer group.
    pub group_id: String,
    /// The schema registry.
    pub registry: RegistryConfig,
    /// The topics to read; empty: the topics the catalog binds `T` to (with `topic_prefix`).
    pub topics: Vec<String>,
    /// Prepended to the bound topics.
    pub topic_prefix: String,
    /// Deadline of each registry request.
    pub registry_timeout: Duration,
    /// How often handled offsets are committed (`auto.commit.interval.ms`); [`Subscriber::commit`] and
    /// [`Subscriber::close`] commit at once.
    pub commit_interval: Duration,
    /// Where a group without committed offsets starts: the earliest record (`true`) or the next one.
    pub from_earliest: bool,
    /// Further librdkafka properties, applied last.
    pub kafka: Vec<(String, String)>,
}

impl std::fmt::Debug for SubscriberConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriberConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("group_id", &self.group_id)
            .field("registry", &self.registry)
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl SubscriberConfig {
    /// Defaults: the bound topics, from the earliest record, commits every second.
    pub fn new(
        bootstrap_servers: impl Into<String>,
        registry_url: impl Into<String>,
        group_id: impl Into<String>,
    ) -> SubscriberConfig {
        SubscriberConfig {
            bootstrap_servers: bootstrap_servers.into(),
            group_id: group_id.into(),
            registry: RegistryConfig::new(registry_url.into()),
            topics: Vec::new(),
            topic_prefix: String::new(),
            registry_timeout: Duration::from_secs(30),
            commit_interval: Duration::from_secs(1),
            from_earliest: true,
            kafka: Vec::new(),
        }
    }
}

/// A decoded record and where it came from.
#[derive(Debug, Clone)]
pub struct Received<T> {
    /// The value, decoded as `T`.
    pub value: T,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The raw key.
    pub key: Option<Vec<u8>>,
    /// The headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The record's timestamp (ms since the epoch), if any.
    pub timestamp_ms: Option<i64>,
    /// The writer schema's id.
    pub schema_id: u32,
}

impl<T> Received<T> {
    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The key as a string: an Avro `string` in the Confluent wire format, or UTF-8 bytes.
    pub fn key_string(&self) -> Option<String> {
        let key = self.key.as_deref()?;
        if let Ok((_, datum)) = wire::split(key) {
            let mut r = Reader::new(datum);
            if let Ok(s) = r.string()
                && r.finish().is_ok()
            {
                return Some(s);
            }
        }
        Some(String::from_utf8_lossy(key).into_owned())
    }
}

/// The consumer's context: librdkafka's logs to `tracing`.
struct Context;

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
        tracing::warn!(target: "librdkafka", %error, reason, "Kafka consumer error");
    }
}

impl ConsumerContext for Context {}

/// Reads `T` from its topics in a consumer group.
pub struct Subscriber<T> {
    consumer: Arc<StreamConsumer<Context>>,
    registry: RegistryClient,
    registry_timeout: Duration,
    plans: Mutex<HashMap<u32, Arc<Resolver>>>,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl<T: AvroRecord + Send> Subscriber<T> {
    /// Joins the group and subscribes (assignment happens in the background). Needs a tokio runtime.
    pub fn new(config: SubscriberConfig) -> Result<Subscriber<T>, Error> {
        let registry =
            RegistryClient::new(config.registry.clone()).map_err(|source| Error::Registry {
                subject: String::new(),
                source,
            })?;
        let topics: Vec<String> = if config.topics.is_empty() {
            T::BINDINGS
                .iter()
                .map(|b| format!("{}{}", config.topic_prefix, b.topic))
                .collect()
        } else {
            config.topics.clone()
        };
        if topics.is_empty() {
            return Err(Error::NotBound {
                type_name: T::FULL_NAME,
            });
        }
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.bootstrap_servers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "true")
            // Offsets are stored only once the handler returned; the periodic commit sends only those.
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.commit.interval.ms",
                config.commit_interval.as_millis().to_string(),
            )
            .set(
                "auto.offset.reset",
                if config.from_earliest {
                    "earliest"
                } else {
                    "latest"
                },
            )
            .set("partition.assignment.strategy", "cooperative-sticky");
        for (k, v) in &config.kafka {
            c.set(k, v);
        }
        let consumer: StreamConsumer<Context> = c
            .create_with_context(Context)
            .map_err(Error::kafka("consumer creation"))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(Error::kafka("subscribe"))?;
        Ok(Subscriber {
            consumer: Arc::new(consumer),
            registry,
            registry_timeout: config.registry_timeout,
            plans: Mutex::new(HashMap::new()),
            _type: PhantomData,
        })
    }

    /// The next record within `timeout` (`None` if none came), decoded. Its offset is not committed until
    /// [`Subscriber::done`] is called with it (the handler helpers do that). A record that cannot be decoded
    /// (or whose writer schema cannot be fetched) is returned as an error and comes again on the next call:
    /// retry, or [`Subscriber::skip`] it.
    pub async fn recv(&self, timeout: Duration) -> Result<Option<Received<T>>, Error> {
        let message = match tokio::time::timeout(timeout, self.consumer.recv()).await {
            Err(_) => return Ok(None),
            Ok(m) => m.map_err(Error::kafka("consume"))?,
        };
        let topic = message.topic().to_owned();
        let (partition, offset) = (message.partition(), message.offset());
        let decoded = self.decode(&message, &topic, partition, offset).await;
        if decoded.is_err() {
            self.rewind(&topic, partition, offset);
        }
        decoded.map(Some)
    }

    async fn decode(
        &self,
        message: &rdkafka::message::BorrowedMessage<'_>,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Received<T>, Error> {
        let decode_error = |problem: String| Error::Decode {
            topic: topic.to_owned(),
            partition,
            offset,
            problem,
        };
        let payload = message
            .payload()
            .ok_or_else(|| decode_error("the record has no value (a tombstone)".into()))?;
        let (id, datum) = wire::split(payload).map_err(|e| decode_error(e.to_string()))?;
        let plan = self.plan(id).await.map_err(|e| match e {
            Error::Decode { problem, .. } => decode_error(problem),
            other => other,
        })?;
        let value = T::from_resolved(datum, &plan).map_err(|e| decode_error(e.to_string()))?;
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Received {
            value,
            topic: topic.to_owned(),
            partition,
            offset,
            key: message.key().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: message.timestamp().to_millis(),
            schema_id: id,
        })
    }

    /// Moves the partition back to `offset`, so the record comes again (librdkafka drops what it prefetched).
    fn rewind(&self, topic: &str, partition: i32, offset: i64) {
        if let Err(e) = self
            .consumer
            .seek(topic, partition, Offset::Offset(offset), Duration::ZERO)
        {
            tracing::warn!(topic, partition, offset, error = %e, "cannot rewind to a record that failed");
        }
    }

    /// Gives up on the record at `offset` (e.g. one that can never be decoded): marks it handled and moves on
    /// to the next one.
    pub fn skip(&self, topic: &str, partition: i32, offset: i64) -> Result<(), Error> {
        self.done(topic, partition, offset)?;
        self.consumer
            .seek(topic, partition, Offset::Offset(offset + 1), Duration::ZERO)
            .map_err(Error::kafka("seeking past a record"))
    }

    /// Marks the record at `offset` handled: the group's position after it (`offset + 1`) is committed with
    /// the next commit.
    pub fn done(&self, topic: &str, partition: i32, offset: i64) -> Result<(), Error> {
        // librdkafka's `rd_kafka_offset_store` stores `offset + 1` itself.
        self.consumer
            .store_offset(topic, partition, offset)
            .map_err(Error::kafka("storing an offset"))
    }

    /// Receives one record (waiting at most `timeout`), runs `handler` on it, and marks it handled once the
    /// handler returned `Ok`. `Ok(false)`: no record came. A handler error is returned (as
    /// [`Error::Handler`]) and the record is not marked: it comes again on the next call (and, after a
    /// restart, the group reads it again).
    pub async fn handle_next<F, Fut, E>(&self, timeout: Duration, handler: F) -> Result<bool, Error>
    where
        F: FnOnce(Received<T>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(received) = self.recv(timeout).await? else {
            return Ok(false);
        };
        let (topic, partition, offset) =
            (received.topic.clone(), received.partition, received.offset);
        match handler(received).await {
            Ok(()) => {
                self.done(&topic, partition, offset)?;
                Ok(true)
            }
            Err(e) => {
                self.rewind(&topic, partition, offset);
                Err(Error::Handler {
                    topic,
                    partition,
                    offset,
                    source: e.into(),
                })
            }
        }
    }

    /// Handles records until `shutdown` resolves or a handler (or decoding) fails; then commits what was
    /// handled. Returns how many records were handled.
    pub async fn run<F, Fut, E>(
        &self,
        mut handler: F,
        shutdown: impl Future<Output = ()>,
    ) -> Result<u64, Error>
    where
        F: FnMut(Received<T>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut handled = 0u64;
        let result = loop {
            let next = tokio::select! {
                biased;
                _ = &mut shutdown => break Ok(handled),
                r = self.handle_next(Duration::from_millis(500), &mut handler) => r,
            };
            match next {
                Ok(true) => handled += 1,
                Ok(false) => {}
                Err(e) => break Err(e),
            }
        };
        self.commit(Duration::from_secs(30)).await?;
        result
    }

    /// Commits the handled offsets now (synchronously), within `timeout`.
    pub async fn commit(&self, timeout: Duration) -> Result<(), Error> {
        let consumer = Arc::clone(&self.consumer);
        let commit =
            tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync));
        match tokio::time::timeout(timeout, commit).await {
            Err(_) => Err(Error::KafkaTimeout {
                what: "commit",
                after: timeout,
            }),
            Ok(Err(join)) => Err(Error::Config(format!("the commit task failed: {join}"))),
            // Nothing handled since the last commit.
            Ok(Ok(Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)))) => Ok(()),
            Ok(Ok(r)) => r.map_err(Error::kafka("commit")),
        }
    }

    /// Commits, then leaves the group.
    pub async fn close(self, timeout: Duration) -> Result<(), Error> {
        let committed = self.commit(timeout).await;
        let consumer = self.consumer;
        let left = tokio::task::spawn_blocking(move || {
            consumer.unsubscribe();
            drop(consumer);
        });
        let _ = tokio::time::timeout(timeout, left).await;
        committed
    }

    /// The resolution plan for writer schema `id` (fetched and compiled once).
    async fn plan(&self, id: u32) -> Result<Arc<Resolver>, Error> {
        if let Some(p) = self
            .plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(Arc::clone(p));
        }
        let subject = format!("schema id {id}");
        let writer = deadline(
            &subject,
            self.registry_timeout,
            writer_by_id(&self.registry, id),
        )
        .await?;
        let plan = Arc::new(
            Resolver::for_record::<T>(&writer).map_err(|e| Error::Decode {
                topic: String::new(),
                partition: -1,
                offset: -1,
                problem: format!("writer schema {id} cannot be read as {}: {e}", T::FULL_NAME),
            })?,
        );
        self.plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&plan));
        Ok(plan)
    }
}
