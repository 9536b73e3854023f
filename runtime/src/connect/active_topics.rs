//! The topics each connector has consumed records from since it was created or last reset (Kafka Connect's
//! active topics, KIP-558): `GET /connectors/{c}/topics` lists them, `PUT …/topics/reset` forgets them.
//!
//! A partition records its topic with its first batch, and again with its first batch after a reset, so the
//! check costs one atomic load per batch. A standalone worker keeps the topics in memory (as Kafka Connect's
//! standalone mode does). A distributed one also publishes each newly seen topic to the status topic
//! (`status-topic-<topic>:connector-<connector>`, Kafka Connect's key; a tombstone forgets it), and every
//! worker applies what it reads there, so all of them list the same topics and a restart keeps them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// A topic a task saw records of, to publish (distributed mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The connector.
    pub connector: String,
    /// The topic.
    pub topic: String,
    /// The task that saw it.
    pub task: u32,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// The value of a `status-topic-…` record: `{"topic": {"name", "connector", "task", "discoverTimestamp"}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TopicValue {
    /// The topic's status.
    pub topic: TopicStatus,
}

/// What the value says.
#[derive(Debug, Serialize, Deserialize)]
pub struct TopicStatus {
    /// The topic.
    pub name: String,
    /// The connector.
    pub connector: String,
    /// The task that recorded it.
    pub task: u32,
    /// When it was seen (ms since the epoch).
    #[serde(rename = "discoverTimestamp")]
    pub discover_timestamp: u64,
}

const PREFIX: &str = "status-topic-";
const SEPARATOR: &str = ":connector-";

/// The status-topic key of `connector`'s active `topic`. A `:` never occurs in a topic name, so the key splits
/// back unambiguously ([`parse_key`]).
pub fn topic_key(connector: &str, topic: &str) -> String {
    format!("{PREFIX}{topic}{SEPARATOR}{connector}")
}

/// The (connector, topic) of a status-topic key, if it is a topic key.
pub fn parse_key(key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (topic, connector) = rest.split_once(SEPARATOR)?;
    Some((connector.to_owned(), topic.to_owned()))
}

/// The active topics of every connector of a worker.
#[derive(Debug)]
pub struct ActiveTopics {
    enabled: bool,
    allow_reset: bool,
    topics: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Bumped whenever a topic is forgotten: partitions record their topic again with their next batch.
    epoch: AtomicU64,
    /// Distributed mode: where newly seen topics go to be published.
    publish: OnceLock<mpsc::UnboundedSender<Discovered>>,
}

impl ActiveTopics {
    /// Tracking on or off (`topic_tracking.enable`): off, nothing is recorded. Resets allowed or not.
    pub fn new(enabled: bool) -> ActiveTopics {
        Self::with_reset(enabled, true)
    }

    /// As [`ActiveTopics::new`], resets allowed when `allow_reset` (`topic_tracking.allow_reset`).
    pub fn with_reset(enabled: bool, allow_reset: bool) -> ActiveTopics {
        ActiveTopics {
            enabled,
            allow_reset,
            topics: Mutex::default(),
            epoch: AtomicU64::new(0),
            publish: OnceLock::new(),
        }
    }

    /// Whether topics are tracked at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `PUT …/topics/reset` is allowed.
    pub fn allow_reset(&self) -> bool {
        self.allow_reset
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, BTreeSet<String>>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Distributed mode: newly seen topics are sent to `tx` (the worker publishes them).
    pub fn publish_to(&self, tx: mpsc::UnboundedSender<Discovered>) {
        let _ = self.publish.set(tx);
    }

    /// Changes whenever a topic is forgotten; a partition that recorded its topic at another epoch records it
    /// again.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Task `task` of `connector` consumed records of `topic`.
    pub fn record(&self, connector: &str, topic: &str, task: u32, now_ms: u64) {
        if !self.enabled {
            return;
        }
        let fresh = {
            let mut all = self.lock();
            match all.get_mut(connector) {
                Some(set) if set.contains(topic) => false,
                Some(set) => set.insert(topic.to_owned()),
                None => {
                    all.insert(connector.to_owned(), BTreeSet::from([topic.to_owned()]));
                    true
                }
            }
        };
        if fresh {
            tracing::info!(connector, topic, task, "topic active");
            if let Some(tx) = self.publish.get() {
                let _ = tx.send(Discovered {
                    connector: connector.to_owned(),
                    topic: topic.to_owned(),
                    task,
                    at_ms: now_ms,
                });
            }
        }
    }

    /// The connector's active topics, sorted.
    pub fn of(&self, connector: &str) -> Vec<String> {
        self.lock()
            .get(connector)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets the connector's active topics (a reset, or its deletion); returns them.
    pub fn forget(&self, connector: &str) -> Vec<String> {
        let gone = self.lock().remove(connector).unwrap_or_default();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        gone.into_iter().collect()
    }

    /// Applies a record read from the status topic: the topic is active (`present`) or was forgotten.
    pub fn applied(&self, connector: &str, topic: &str, present: bool) {
        if present {
            if self.enabled {
                self.lock()
                    .entry(connector.to_owned())
                    .or_default()
                    .insert(topic.to_owned());
            }
            return;
        }
        let removed = {
            let mut all = self.lock();
            let removed = all.get_mut(connector).is_some_and(|s| s.remove(topic));
            if all.get(connector).is_some_and(BTreeSet::is_empty) {
                all.remove(connector);
            }
            removed
        };
        if removed {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_back_whatever_the_names_hold() {
        let key = topic_key("my-connector-x", "orders.v1-connector-y");
        assert_eq!(
            key,
            "status-topic-orders.v1-connector-y:connector-my-connector-x"
        );
        assert_eq!(
            parse_key(&key),
            Some((
                "my-connector-x".to_owned(),
                "orders.v1-connector-y".to_owned()
            ))
        );
        assert_eq!(parse_key("status-task-a-w-0"), None);
    }

    #[test]
    fn a_topic_is_published_once_until_it_is_forgotten() {
        let active = ActiveTopics::new(true);
        let (tx, mut rx) = mpsc::unbounded_channel();
        active.publish_to(tx);
        active.record("c", "b", 0, 1);
        active.record("c", "a", 1, 2);
        active.record("c", "b", 1, 3);
        assert_eq!(active.of("c"), ["a", "b"]);
        assert_eq!(rx.try_recv().map(|d| d.topic).ok(), Some("b".to_owned()));
        assert_eq!(rx.try_recv().map(|d| d.topic).ok(), Some("a".to_owned()));
        assert!(rx.try_recv().is_err(), "b was not published twice");
        let before = active.epoch();
        assert_eq!(active.forget("c"), ["a", "b"]);
        assert!(active.of("c").is_empty());
        assert_ne!(
            active.epoch(),
            before,
            "partitions record their topic again"
        );
        active.record("c", "b", 0, 4);
        assert_eq!(rx.try_recv().map(|d| d.at_ms).ok(), Some(4));
    }

    #[test]
    fn records_read_back_apply_and_tombstones_forget() {
        let active = ActiveTopics::new(true);
        active.applied("c", "t", true);
        assert_eq!(active.of("c"), ["t"]);
        let before = active.epoch();
        active.applied("c", "t", false);
        assert!(active.of("c").is_empty());
        assert_ne!(active.epoch(), before);
        let off = ActiveTopics::new(false);
        off.record("c", "t", 0, 0);
        off.applied("c", "t", true);
        assert!(off.of("c").is_empty(), "tracking off records nothing");
    }
}
