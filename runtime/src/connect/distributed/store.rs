//! The shared state of a distributed worker group, kept in two compacted Kafka topics: every worker reads both
//! from the beginning and applies what it reads; a REST call on any worker writes a record and waits until its
//! own reader has applied it, so the answer reflects the write.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::connect::api::FlatConfig;
use crate::connect::pipeline::Target;

use super::records::{ConfigRecord, StatusValue};

/// The desired state of one connector, as the config topic says.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Its config.
    pub config: FlatConfig,
    /// Its target state.
    pub target: Target,
}

/// What the topics hold, as applied so far.
#[derive(Debug, Default)]
pub struct View {
    /// Connectors by name.
    pub connectors: BTreeMap<String, Desired>,
    /// Task statuses by (connector, worker).
    pub statuses: BTreeMap<(String, String), StatusValue>,
    /// Restart requests by connector: (how many so far, only failed tasks).
    pub restarts: BTreeMap<String, (u64, bool)>,
}

/// The config and status topics of a worker group.
pub struct Store {
    producer: FutureProducer,
    config_topic: String,
    status_topic: String,
    view: Arc<Mutex<View>>,
    /// The next config-topic offset not yet applied.
    applied: watch::Receiver<i64>,
    /// Bumped on every applied config change.
    changed: watch::Receiver<u64>,
}

async fn ensure_topic(admin: &AdminClient<DefaultClientContext>, name: &str) -> Result<(), String> {
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|e| format!("creating topic {name}: {e}"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(format!("creating topic {t}: {code}")),
        }
    }
    Ok(())
}

fn reader(kafka: &ClientConfig, topic: &str, worker_id: &str) -> Result<StreamConsumer, String> {
    let consumer: StreamConsumer = kafka
        .clone()
        .set("group.id", format!("ursa-store-{worker_id}-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|e| format!("creating a reader of {topic}: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|e| e.to_string())?;
    consumer
        .assign(&tpl)
        .map_err(|e| format!("reading {topic}: {e}"))?;
    Ok(consumer)
}

impl Store {
    /// Creates the topics if needed and starts reading them.
    pub async fn open(
        kafka: &ClientConfig,
        config_topic: &str,
        status_topic: &str,
        worker_id: &str,
    ) -> Result<Arc<Store>, String> {
        let admin: AdminClient<DefaultClientContext> = kafka.create().map_err(|e| e.to_string())?;
        ensure_topic(&admin, config_topic).await?;
        ensure_topic(&admin, status_topic).await?;
        let producer: FutureProducer = kafka
            .clone()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .create()
            .map_err(|e| format!("creating the store producer: {e}"))?;
        let view = Arc::new(Mutex::new(View::default()));
        let (applied_tx, applied) = watch::channel(0i64);
        let (changed_tx, changed) = watch::channel(0u64);
        let configs = reader(kafka, config_topic, worker_id)?;
        let statuses = reader(kafka, status_topic, worker_id)?;
        let v = Arc::clone(&view);
        tokio::spawn(async move {
            loop {
                let Ok(m) = configs.recv().await else {
                    continue;
                };
                let key = m
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default();
                if let Some(record) = ConfigRecord::decode(&key, m.payload())
                    && let Ok(mut view) = v.lock()
                {
                    match record {
                        ConfigRecord::Connector {
                            name,
                            config: Some(config),
                        } => {
                            let target = view
                                .connectors
                                .get(&name)
                                .map_or(Target::Running, |d| d.target);
                            view.connectors.insert(name, Desired { config, target });
                        }
                        ConfigRecord::Connector { name, config: None } => {
                            view.connectors.remove(&name);
                        }
                        ConfigRecord::Restart {
                            name, only_failed, ..
                        } => {
                            let entry = view.restarts.entry(name).or_insert((0, only_failed));
                            *entry = (entry.0 + 1, only_failed);
                        }
                        ConfigRecord::Target { name, target } => {
                            if let Some(d) = view.connectors.get_mut(&name) {
                                d.target = target;
                            }
                        }
                    }
                }
                changed_tx.send_modify(|c| *c += 1);
                let _ = applied_tx.send(m.offset() + 1);
            }
        });
        let v = Arc::clone(&view);
        tokio::spawn(async move {
            loop {
                let Ok(m) = statuses.recv().await else {
                    continue;
                };
                let Some(key) = m.key().map(|k| String::from_utf8_lossy(k).into_owned()) else {
                    continue;
                };
                let Some(rest) = key.strip_prefix("status-task-") else {
                    continue;
                };
                let Some(value) = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<StatusValue>(p).ok())
                else {
                    continue;
                };
                // The key is status-task-<connector>-<worker>; the worker id is in the value.
                let connector = rest
                    .strip_suffix(&format!("-{}", value.worker_id))
                    .unwrap_or(rest)
                    .to_owned();
                if let Ok(mut view) = v.lock() {
                    view.statuses
                        .insert((connector, value.worker_id.clone()), value);
                }
            }
        });
        Ok(Arc::new(Store {
            producer,
            config_topic: config_topic.to_owned(),
            status_topic: status_topic.to_owned(),
            view,
            applied,
            changed,
        }))
    }

    /// Writes a config record and waits until this worker has applied it.
    pub async fn write(&self, record: ConfigRecord) -> Result<(), String> {
        let (key, value) = record.encode();
        let mut r: FutureRecord<'_, str, [u8]> = FutureRecord::to(&self.config_topic).key(&key);
        if let Some(v) = &value {
            r = r.payload(v.as_slice());
        }
        let delivery = self
            .producer
            .send(r, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| format!("writing the config topic: {e}"))?;
        let mut applied = self.applied.clone();
        let wanted = delivery.offset + 1;
        tokio::time::timeout(Duration::from_secs(30), applied.wait_for(|a| *a >= wanted))
            .await
            .map_err(|_| "the config topic was written but not read back within 30 s".to_owned())?
            .map_err(|_| "the config reader stopped".to_owned())?;
        Ok(())
    }

    /// Publishes this worker's status of a connector.
    pub async fn publish_status(
        &self,
        connector: &str,
        status: &StatusValue,
    ) -> Result<(), String> {
        let key = super::records::status_key(connector, &status.worker_id);
        let value = serde_json::to_vec(status).map_err(|e| e.to_string())?;
        self.producer
            .send(
                FutureRecord::to(&self.status_topic)
                    .key(&key)
                    .payload(&value),
                Duration::from_secs(30),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| format!("writing the status topic: {e}"))
    }

    /// A snapshot of the desired connectors.
    pub fn connectors(&self) -> BTreeMap<String, Desired> {
        self.view
            .lock()
            .map(|v| v.connectors.clone())
            .unwrap_or_default()
    }

    /// Restart requests so far per connector (count, only failed).
    pub fn restarts(&self) -> BTreeMap<String, (u64, bool)> {
        self.view
            .lock()
            .map(|v| v.restarts.clone())
            .unwrap_or_default()
    }

    /// Every worker's status of `connector`.
    pub fn statuses(&self, connector: &str) -> Vec<StatusValue> {
        self.view
            .lock()
            .map(|v| {
                v.statuses
                    .iter()
                    .filter(|((c, _), _)| c == connector)
                    .map(|(_, s)| s.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Notified on every applied config change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.clone()
    }
}
