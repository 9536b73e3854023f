//! The shared state of a distributed worker group, kept in two compacted Kafka topics: every worker reads both
//! from the beginning and applies what it reads — up to the topics' ends before it does anything else (a
//! worker never acts on a partial view); a REST call on any worker writes a record and waits until its own
//! reader has applied it, so the answer reflects the write. Statuses are heartbeats: each worker republishes
//! its own, removes them when it stops, and a status not refreshed for [`STATUS_TTL`] (a killed worker's) is
//! no longer reported.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::connect::active_topics::{
    ActiveTopics, Discovered, TopicStatus, TopicValue, parse_key, topic_key,
};
use crate::connect::api::FlatConfig;
use crate::connect::pipeline::Target;

use super::records::{ConfigRecord, StatusValue, WorkerValue};

/// The desired state of one connector, as the config topic says.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Its config.
    pub config: FlatConfig,
    /// Its target state.
    pub target: Target,
}

/// A restart request, as the latest `restart-<name>` record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartRequest {
    /// How many requests for this connector this worker has read so far.
    pub count: u64,
    /// Only FAILED tasks.
    pub only_failed: bool,
    /// Only this worker's task.
    pub worker: Option<String>,
    /// Only this task.
    pub task: Option<u32>,
}

/// What the topics hold, as applied so far.
#[derive(Debug, Default)]
pub struct View {
    /// Connector configs by name.
    pub configs: BTreeMap<String, FlatConfig>,
    /// Target states by connector, kept apart from the configs: compaction can leave a target state before
    /// its connector's config, and it must still apply.
    pub targets: BTreeMap<String, Target>,
    /// Task statuses by status-topic key (`status-task-<connector>-<worker>-<task>`), with their connector.
    pub statuses: BTreeMap<String, (String, StatusValue)>,
    /// Workers' heartbeats: when each last published one (ms since the epoch, its clock) and when this worker
    /// read it (its own clock).
    pub workers: BTreeMap<String, (u64, Instant)>,
    /// Restart requests by connector.
    pub restarts: BTreeMap<String, RestartRequest>,
}

/// How often a worker republishes its statuses, changed or not.
pub const STATUS_HEARTBEAT: Duration = Duration::from_secs(2);

/// A status not republished for this long is a gone worker's: it is not reported (clocks of the workers
/// may differ by less than this).
pub const STATUS_TTL: Duration = Duration::from_secs(15);

/// How often a worker publishes its heartbeat.
pub const WORKER_HEARTBEAT: Duration = Duration::from_secs(1);

/// A worker whose heartbeat was not read for this long is gone: its tasks are placed on the others. With the
/// consumers' session timeout (6 s by default) running meanwhile, a task of a killed worker runs elsewhere
/// within about 6 s.
pub const WORKER_TTL: Duration = Duration::from_secs(5);

/// How long a worker may take to read the topics to their ends when it starts.
const CATCH_UP: Duration = Duration::from_secs(60);

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The config and status topics of a worker group.
pub struct Store {
    producer: FutureProducer,
    config_topic: String,
    status_topic: String,
    view: Arc<Mutex<View>>,
    /// The next config-topic offset not yet applied.
    applied: watch::Receiver<i64>,
    /// The next status-topic offset not yet applied.
    status_applied: watch::Receiver<i64>,
    /// Bumped on every applied config change.
    changed: watch::Receiver<u64>,
    /// The status keys this worker published (and has not removed).
    own: Mutex<std::collections::BTreeSet<String>>,
}

/// Creates `name` (one partition, compacted) unless it exists: with `replication` replicas, or the broker's
/// default (`-1`, KIP-464) when unset.
async fn ensure_topic(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
    replication: Option<i16>,
) -> Result<(), String> {
    let factor = replication.map_or(-1, i32::from);
    let topic =
        NewTopic::new(name, 1, TopicReplication::Fixed(factor)).set("cleanup.policy", "compact");
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
            Err((t, code)) => {
                let factor = match replication {
                    Some(r) => format!("replication factor {r}"),
                    None => "the broker's default replication factor".to_owned(),
                };
                return Err(format!("creating topic {t} with {factor}: {code}"));
            }
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

/// The end (high watermark) of partition 0 of `topic`.
async fn end_of(kafka: &ClientConfig, topic: &str) -> Result<i64, String> {
    let kafka = kafka.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = kafka.create().map_err(|e| e.to_string())?;
        consumer
            .fetch_watermarks(&topic, 0, Duration::from_secs(10))
            .map(|(_, high)| high)
            .map_err(|e| format!("reading the end of {topic}: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Waits until this worker's reader of `topic` has applied everything before offset `end` (its end when it
/// starts, or a record it wrote), for at most `within`.
async fn read_back(
    applied: &watch::Receiver<i64>,
    end: i64,
    topic: &str,
    within: Duration,
) -> Result<(), String> {
    let mut applied = applied.clone();
    tokio::time::timeout(within, applied.wait_for(|a| *a >= end))
        .await
        .map_err(|_| format!("{topic} was not read back to offset {end} within {within:?}"))?
        .map_err(|_| format!("the reader of {topic} stopped"))?;
    Ok(())
}

impl Store {
    /// Creates the topics if needed (with `replication` replicas, else the broker's default), starts reading
    /// them, and returns once both are read to the end they had when it started.
    pub async fn open(
        kafka: &ClientConfig,
        config_topic: &str,
        status_topic: &str,
        worker_id: &str,
        replication: Option<i16>,
        active: Arc<ActiveTopics>,
    ) -> Result<Arc<Store>, String> {
        let admin: AdminClient<DefaultClientContext> = kafka.create().map_err(|e| e.to_string())?;
        ensure_topic(&admin, config_topic, replication).await?;
        ensure_topic(&admin, status_topic, replication).await?;
        let producer: FutureProducer = kafka
            .clone()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .create()
            .map_err(|e| format!("creating the store producer: {e}"))?;
        let view = Arc::new(Mutex::new(View::default()));
        let (applied_tx, applied) = watch::channel(0i64);
        let (status_applied_tx, status_applied) = watch::channel(0i64);
        let (changed_tx, changed) = watch::channel(0u64);
        let config_end = end_of(kafka, config_topic).await?;
        let status_end = end_of(kafka, status_topic).await?;
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
                    apply(&mut view, record);
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
                let offset = m.offset();
                let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
                if let Some((connector, topic)) = key.as_deref().and_then(parse_key) {
                    active.applied(&connector, &topic, m.payload().is_some());
                } else if let Some(key) = &key
                    && let Some(worker) = key.strip_prefix("worker-")
                    && let Ok(mut view) = v.lock()
                {
                    match m.payload().map(serde_json::from_slice::<WorkerValue>) {
                        None => {
                            view.workers.remove(worker);
                        }
                        Some(Ok(value)) => {
                            view.workers
                                .insert(value.worker_id, (value.updated_ms, Instant::now()));
                        }
                        Some(Err(_)) => {}
                    }
                } else if let Some(key) = key
                    && key.starts_with("status-task-")
                    && let Ok(mut view) = v.lock()
                {
                    match m.payload().map(serde_json::from_slice::<StatusValue>) {
                        // A tombstone: that worker stopped running the connector.
                        None => {
                            view.statuses.remove(&key);
                        }
                        Some(Ok(value)) => {
                            // The connector is in the value (older workers: the key is
                            // status-task-<connector>-<worker>).
                            let connector = value.connector.clone().unwrap_or_else(|| {
                                let rest = key.trim_start_matches("status-task-");
                                rest.strip_suffix(&format!("-{}", value.worker_id))
                                    .unwrap_or(rest)
                                    .to_owned()
                            });
                            view.statuses.insert(key, (connector, value));
                        }
                        Some(Err(_)) => {}
                    }
                }
                let _ = status_applied_tx.send(offset + 1);
            }
        });
        read_back(&applied, config_end, config_topic, CATCH_UP).await?;
        read_back(&status_applied, status_end, status_topic, CATCH_UP).await?;
        Ok(Arc::new(Store {
            producer,
            config_topic: config_topic.to_owned(),
            status_topic: status_topic.to_owned(),
            view,
            applied,
            status_applied,
            changed,
            own: Mutex::default(),
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
        read_back(
            &self.applied,
            delivery.offset + 1,
            &self.config_topic,
            Duration::from_secs(30),
        )
        .await
    }

    /// Publishes this worker's status of a connector (`None`: it no longer runs it).
    pub async fn publish_status(
        &self,
        connector: &str,
        worker_id: &str,
        task: u32,
        status: Option<&StatusValue>,
    ) -> Result<(), String> {
        let key = super::records::status_key(connector, worker_id, task);
        let value = status
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| e.to_string())?;
        let present = value.is_some();
        self.send_status(&key, value).await?;
        if let Ok(mut own) = self.own.lock() {
            if present {
                own.insert(key);
            } else {
                own.remove(&key);
            }
        }
        Ok(())
    }

    /// Removes every status this worker published and its heartbeat (it stops): the others stop reporting its
    /// tasks and place them among themselves at once.
    pub async fn remove_own(&self, worker_id: &str) -> Result<(), String> {
        let keys: Vec<String> = self
            .own
            .lock()
            .map(|own| own.iter().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            self.send_status(&key, None).await?;
            if let Ok(mut own) = self.own.lock() {
                own.remove(&key);
            }
        }
        self.publish_worker(worker_id, false).await
    }

    /// Publishes this worker's heartbeat (`alive`), or removes it (it stops).
    pub async fn publish_worker(&self, worker_id: &str, alive: bool) -> Result<(), String> {
        let key = super::records::worker_key(worker_id);
        let value = alive
            .then(|| {
                serde_json::to_vec(&WorkerValue {
                    worker_id: worker_id.to_owned(),
                    updated_ms: now_ms(),
                })
            })
            .transpose()
            .map_err(|e| e.to_string())?;
        self.send_status(&key, value).await.map(|_| ())
    }

    /// The live workers, by id: those whose last heartbeat this worker read less than [`WORKER_TTL`] ago (its
    /// own clock, so the workers' clocks may differ), and which was published less than [`STATUS_TTL`]
    /// before this worker's now (so a heartbeat of long ago, read while catching up, does not count).
    pub fn live_workers(&self) -> Vec<String> {
        let published_since =
            now_ms().saturating_sub(u64::try_from(STATUS_TTL.as_millis()).unwrap_or(0));
        self.view
            .lock()
            .map(|v| {
                v.workers
                    .iter()
                    .filter(|(_, (at, seen))| *at >= published_since && seen.elapsed() < WORKER_TTL)
                    .map(|(w, _)| w.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn send_status(&self, key: &str, value: Option<Vec<u8>>) -> Result<i64, String> {
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&self.status_topic).key(key);
        if let Some(v) = &value {
            record = record.payload(v.as_slice());
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|d| d.offset)
            .map_err(|(e, _)| format!("writing the status topic: {e}"))
    }

    /// Publishes a connector's newly active topic (KIP-558) to the status topic.
    pub async fn publish_topic(&self, d: &Discovered) -> Result<(), String> {
        let value = serde_json::to_vec(&TopicValue {
            topic: TopicStatus {
                name: d.topic.clone(),
                connector: d.connector.clone(),
                task: d.task,
                discover_timestamp: d.at_ms,
            },
        })
        .map_err(|e| e.to_string())?;
        self.send_status(&topic_key(&d.connector, &d.topic), Some(value))
            .await
            .map(|_| ())
    }

    /// Forgets a connector's active topics (a reset or a deletion): a tombstone each, then waits until this
    /// worker has read them back, so that its next answer no longer lists them.
    pub async fn forget_topics(&self, connector: &str, topics: &[String]) -> Result<(), String> {
        let mut last = None;
        for topic in topics {
            last = Some(self.send_status(&topic_key(connector, topic), None).await?);
        }
        let Some(last) = last else { return Ok(()) };
        read_back(
            &self.status_applied,
            last + 1,
            &self.status_topic,
            Duration::from_secs(30),
        )
        .await
    }

    /// A snapshot of the desired connectors: each config with its target state (RUNNING when none was
    /// written).
    pub fn connectors(&self) -> BTreeMap<String, Desired> {
        self.view
            .lock()
            .map(|v| {
                v.configs
                    .iter()
                    .map(|(name, config)| {
                        (
                            name.clone(),
                            Desired {
                                config: config.clone(),
                                target: v.targets.get(name).copied().unwrap_or(Target::Running),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Restart requests so far per connector.
    pub fn restarts(&self) -> BTreeMap<String, RestartRequest> {
        self.view
            .lock()
            .map(|v| v.restarts.clone())
            .unwrap_or_default()
    }

    /// Every worker's status of `connector` refreshed within [`STATUS_TTL`].
    pub fn statuses(&self, connector: &str) -> Vec<StatusValue> {
        let fresh_since =
            now_ms().saturating_sub(u64::try_from(STATUS_TTL.as_millis()).unwrap_or(0));
        self.view
            .lock()
            .map(|v| {
                v.statuses
                    .values()
                    .filter(|(c, s)| c == connector && s.updated_ms >= fresh_since)
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

/// Applies one config-topic record to the view.
fn apply(view: &mut View, record: ConfigRecord) {
    match record {
        ConfigRecord::Connector {
            name,
            config: Some(config),
        } => {
            view.configs.insert(name, config);
        }
        ConfigRecord::Connector { name, config: None } => {
            view.configs.remove(&name);
        }
        ConfigRecord::Restart {
            name,
            only_failed,
            worker,
            task,
            ..
        } => {
            let count = view.restarts.get(&name).map_or(0, |r| r.count) + 1;
            view.restarts.insert(
                name,
                RestartRequest {
                    count,
                    only_failed,
                    worker,
                    task,
                },
            );
        }
        ConfigRecord::Target { name, target } => {
            view.targets.insert(name, target);
        }
        ConfigRecord::ClearTarget { name } => {
            view.targets.remove(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compaction keeps the latest record per key, in offset order: a target state can come before its
    /// config, and a restart before a deletion; each applies whatever the order.
    #[test]
    fn applies_records_in_any_order_compaction_leaves() {
        let mut view = View::default();
        let config: FlatConfig = [("topics".to_owned(), "t".to_owned())].into();
        apply(
            &mut view,
            ConfigRecord::Target {
                name: "c".into(),
                target: Target::Stopped,
            },
        );
        apply(
            &mut view,
            ConfigRecord::Connector {
                name: "c".into(),
                config: Some(config.clone()),
            },
        );
        assert_eq!(view.targets.get("c"), Some(&Target::Stopped));
        apply(
            &mut view,
            ConfigRecord::Connector {
                name: "c".into(),
                config: None,
            },
        );
        apply(&mut view, ConfigRecord::ClearTarget { name: "c".into() });
        assert!(view.configs.is_empty() && view.targets.is_empty());
    }
}
