//! Publisher configuration: where the broker and the registry are, how records are keyed, compressed, batched,
//! retried and dead-lettered, and every deadline.

use std::time::Duration;

use ursa_registry::ClientConfig as RegistryConfig;

use crate::Error;

/// How the writer schema's id is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemaIdPolicy {
    /// Look the schema up under its subject (and, failing an exact match, among the subject's versions by
    /// canonical form, which finds schemas `ursa schema register` stored with references); never register.
    /// The default: schemas are registered by the release pipeline, not by services.
    #[default]
    LookupOnly,
    /// Look up as above, and register the schema under its subject if it is not there (development, tests).
    AutoRegister,
}

/// How record keys are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyFormat {
    /// As the catalog says: an Avro `string` in the Confluent wire format (its id looked up under the binding's
    /// key subject) when the topic has a key schema, UTF-8 bytes when it has none.
    #[default]
    Catalog,
    /// Always an Avro `string` in the Confluent wire format, under the binding's key subject.
    Avro,
    /// Always the UTF-8 bytes of the key (what Kafka's `StringSerializer` writes).
    Utf8,
}

/// Record batch compression (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy (bundled with librdkafka).
    Snappy,
    /// LZ4 (bundled with librdkafka): the default, cheapest on CPU for Avro records.
    #[default]
    Lz4,
    /// zstd (librdkafka is built with it): smaller batches than lz4 for a little more CPU.
    Zstd,
}

impl Compression {
    /// librdkafka's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// What the publisher needs to know. `Debug` hides the values of secret-looking `kafka` properties.
#[derive(Clone)]
pub struct PublisherConfig {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// The schema registry.
    pub registry: RegistryConfig,
    /// The service's name: the `producer` header, `client.id`, and the `connector` of dead-letter records.
    pub producer_name: String,
    /// Whether schemas may be registered.
    pub schema_ids: SchemaIdPolicy,
    /// How keys are written.
    pub key_format: KeyFormat,
    /// Batch compression.
    pub compression: Compression,
    /// How long librdkafka waits to fill a batch (`linger.ms`).
    pub linger: Duration,
    /// The largest batch per partition (`batch.size`, bytes).
    pub batch_bytes: usize,
    /// The largest record the producer sends (`message.max.bytes`); a larger one fails at once and is
    /// dead-lettered (without its value).
    pub max_message_bytes: usize,
    /// How long librdkafka keeps retrying a record before it fails (`message.timeout.ms`, "delivery.timeout.ms"
    /// in Java); `None`: forever (the outbox relay's setting: it never gives up on a record).
    pub delivery_timeout: Option<Duration>,
    /// The first backoff between retries of a produce request (`retry.backoff.ms`); it doubles per retry.
    pub retry_backoff: Duration,
    /// The largest backoff between retries (`retry.backoff.max.ms`).
    pub retry_backoff_max: Duration,
    /// How long `send` waits for room when the producer's local queue is full.
    pub enqueue_timeout: Duration,
    /// The local queue's bound (`queue.buffering.max.messages`).
    pub queue_max_records: usize,
    /// Deadline of every schema registry request (the client's own retries included).
    pub registry_timeout: Duration,
    /// Where final failures go (`dlq.failed-events`, the catalog's DLQ topic); `None` turns dead-lettering off.
    pub dead_letter_topic: Option<String>,
    /// Prepended to every topic name (the bound topics and the dead-letter topic), e.g. `staging.`; subjects
    /// are unchanged.
    pub topic_prefix: String,
    /// Further librdkafka properties (security, …), applied last: they override the settings above.
    pub kafka: Vec<(String, String)>,
}

impl std::fmt::Debug for PublisherConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kafka: Vec<(&str, &str)> = self
            .kafka
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret(k) {
                        "<redacted>"
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("PublisherConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("registry", &self.registry)
            .field("producer_name", &self.producer_name)
            .field("schema_ids", &self.schema_ids)
            .field("key_format", &self.key_format)
            .field("compression", &self.compression)
            .field("linger", &self.linger)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("topic_prefix", &self.topic_prefix)
            .field("kafka", &kafka)
            .finish_non_exhaustive()
    }
}

/// Whether a librdkafka property holds a secret (passwords, keys, tokens).
pub(crate) fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "key.pem",
        "keystore",
        "sasl.jaas",
    ]
    .iter()
    .any(|s| k.contains(s))
}

impl PublisherConfig {
    /// The defaults for a broker and a registry: idempotent, `acks=all`, lz4, 5 ms linger, 2 min delivery
    /// timeout, backoff 100 ms doubling to 1 s, look-up only, dead letters to `dlq.failed-events`.
    pub fn new(
        bootstrap_servers: impl Into<String>,
        registry_url: impl Into<String>,
        producer_name: impl Into<String>,
    ) -> Self {
        PublisherConfig {
            bootstrap_servers: bootstrap_servers.into(),
            registry: RegistryConfig::new(registry_url.into()),
            producer_name: producer_name.into(),
            schema_ids: SchemaIdPolicy::default(),
            key_format: KeyFormat::default(),
            compression: Compression::default(),
            linger: Duration::from_millis(5),
            batch_bytes: 1_000_000,
            max_message_bytes: 1_000_000,
            delivery_timeout: Some(Duration::from_secs(120)),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            enqueue_timeout: Duration::from_secs(30),
            queue_max_records: 100_000,
            registry_timeout: Duration::from_secs(30),
            dead_letter_topic: Some(ursa_events::topics::DLQ_FAILED_EVENTS.to_owned()),
            topic_prefix: String::new(),
            kafka: Vec::new(),
        }
    }

    /// The librdkafka configuration.
    pub(crate) fn kafka_config(&self) -> Result<rdkafka::ClientConfig, Error> {
        if self.producer_name.trim().is_empty() {
            return Err(Error::Config("the producer name is empty".into()));
        }
        if self.bootstrap_servers.trim().is_empty() {
            return Err(Error::Config("bootstrap.servers is empty".into()));
        }
        let mut c = rdkafka::ClientConfig::new();
        let millis = |d: Duration| d.as_millis().to_string();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.producer_name)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("compression.type", self.compression.as_str())
            .set("linger.ms", millis(self.linger))
            .set("batch.size", self.batch_bytes.to_string())
            .set("message.max.bytes", self.max_message_bytes.to_string())
            .set(
                "message.timeout.ms",
                self.delivery_timeout.map_or("0".into(), millis),
            )
            .set("retry.backoff.ms", millis(self.retry_backoff))
            .set("retry.backoff.max.ms", millis(self.retry_backoff_max))
            .set(
                "queue.buffering.max.messages",
                self.queue_max_records.to_string(),
            )
            // The same partition for a key as Java clients and Kafka Streams pick.
            .set("partitioner", "murmur2_random")
            // Topics come from the catalog and are created by `ursa topics apply`: a missing one is an error,
            // not a topic created with the broker's defaults.
            .set("allow.auto.create.topics", "false");
        for (k, v) in &self.kafka {
            c.set(k, v);
        }
        Ok(c)
    }

    /// The topic a bound topic is written to.
    pub(crate) fn topic(&self, bound: &str) -> String {
        format!("{}{bound}", self.topic_prefix)
    }
}
