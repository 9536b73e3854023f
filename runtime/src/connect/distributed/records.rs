//! The records of the config and status topics (Kafka Connect's key names): `connector-<name>` holds a
//! connector's config (a tombstone deletes it), `target-state-<name>` its target state (kept apart from the
//! config: after compaction it may come first; a tombstone clears it), `restart-<name>` the latest restart
//! request. In the status topic, `status-task-<name>-<worker>-<task>` is each worker's status of each task of
//! a connector it runs (a tombstone: it stopped running it), and `worker-<worker>` a worker's heartbeat (a
//! tombstone: it stopped), from which every worker knows the live ones and so where each task runs.

use serde::{Deserialize, Serialize};

use crate::connect::api::{FlatConfig, State};
use crate::connect::pipeline::Target;

/// A decoded config-topic record.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigRecord {
    /// A connector's config, or its deletion.
    Connector {
        /// The connector.
        name: String,
        /// `None`: deleted.
        config: Option<FlatConfig>,
    },
    /// A restart request for every worker's task of a connector (or one worker's).
    Restart {
        /// The connector.
        name: String,
        /// Restart only tasks that are FAILED.
        only_failed: bool,
        /// Makes each request distinct (a compacted topic keeps the latest).
        nonce: u64,
        /// Only this worker's task (`POST …/tasks/{t}/restart`); `None`: every worker's.
        worker: Option<String>,
        /// Only this task of it; `None`: every task.
        task: Option<u32>,
    },
    /// A connector's target state.
    Target {
        /// The connector.
        name: String,
        /// The state.
        target: Target,
    },
    /// A connector's target state removed (written when it is deleted).
    ClearTarget {
        /// The connector.
        name: String,
    },
}

#[derive(Serialize, Deserialize)]
struct ConfigValue {
    config: FlatConfig,
}

#[derive(Serialize, Deserialize)]
struct RestartValue {
    only_failed: bool,
    nonce: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    worker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct TargetValue {
    state: String,
}

/// A task status as published by a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusValue {
    /// The state.
    pub state: State,
    /// For FAILED: why.
    pub trace: Option<String>,
    /// The worker.
    pub worker_id: String,
    /// When the worker last published it (ms since the epoch; 0 from older workers: never fresh).
    #[serde(default)]
    pub updated_ms: u64,
    /// The connector (older workers left it to the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// The task's id.
    #[serde(default)]
    pub task: u32,
}

/// A worker's heartbeat in the status topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerValue {
    /// The worker.
    pub worker_id: String,
    /// When it last published it (ms since the epoch).
    pub updated_ms: u64,
}

fn target_name(t: Target) -> &'static str {
    match t {
        Target::Running => "STARTED",
        Target::Paused => "PAUSED",
        Target::Stopped => "STOPPED",
    }
}

impl ConfigRecord {
    /// The record's key and value (a `None` value is a tombstone).
    pub fn encode(&self) -> (String, Option<Vec<u8>>) {
        match self {
            ConfigRecord::Connector { name, config } => (
                format!("connector-{name}"),
                config
                    .as_ref()
                    .and_then(|c| serde_json::to_vec(&ConfigValue { config: c.clone() }).ok()),
            ),
            ConfigRecord::Restart {
                name,
                only_failed,
                nonce,
                worker,
                task,
            } => (
                format!("restart-{name}"),
                serde_json::to_vec(&RestartValue {
                    only_failed: *only_failed,
                    nonce: *nonce,
                    worker: worker.clone(),
                    task: *task,
                })
                .ok(),
            ),
            ConfigRecord::ClearTarget { name } => (format!("target-state-{name}"), None),
            ConfigRecord::Target { name, target } => (
                format!("target-state-{name}"),
                serde_json::to_vec(&TargetValue {
                    state: target_name(*target).to_owned(),
                })
                .ok(),
            ),
        }
    }

    /// Decodes a record; unknown keys (other tools' records) are `None`.
    pub fn decode(key: &str, value: Option<&[u8]>) -> Option<ConfigRecord> {
        if let Some(name) = key.strip_prefix("connector-") {
            let config = match value {
                None => None,
                Some(v) => Some(serde_json::from_slice::<ConfigValue>(v).ok()?.config),
            };
            return Some(ConfigRecord::Connector {
                name: name.to_owned(),
                config,
            });
        }
        if let Some(name) = key.strip_prefix("restart-") {
            let v: RestartValue = serde_json::from_slice(value?).ok()?;
            return Some(ConfigRecord::Restart {
                name: name.to_owned(),
                only_failed: v.only_failed,
                nonce: v.nonce,
                worker: v.worker,
                task: v.task,
            });
        }
        if let Some(name) = key.strip_prefix("target-state-") {
            let Some(value) = value else {
                return Some(ConfigRecord::ClearTarget {
                    name: name.to_owned(),
                });
            };
            let v: TargetValue = serde_json::from_slice(value).ok()?;
            let target = match v.state.as_str() {
                "STARTED" => Target::Running,
                "PAUSED" => Target::Paused,
                "STOPPED" => Target::Stopped,
                _ => return None,
            };
            return Some(ConfigRecord::Target {
                name: name.to_owned(),
                target,
            });
        }
        None
    }
}

/// The status-topic key of a worker's task of a connector.
pub fn status_key(connector: &str, worker: &str, task: u32) -> String {
    format!("status-task-{connector}-{worker}-{task}")
}

/// The status-topic key of a worker's heartbeat.
pub fn worker_key(worker: &str) -> String {
    format!("worker-{worker}")
}

/// The tasks of a connector with `tasks_max` tasks that worker `me` runs, given the live workers (`me`
/// counts as live): task t runs on the live worker ranked t mod (live workers) by id, the same answer on
/// every worker that sees the same live set. Kafka's group protocol keeps a partition with one task even
/// while two workers briefly disagree (a worker joining or leaving).
pub fn placed_tasks(tasks_max: u32, live: &[String], me: &str) -> Vec<u32> {
    let mut all: Vec<&str> = live.iter().map(String::as_str).collect();
    if !all.contains(&me) {
        all.push(me);
    }
    all.sort_unstable();
    all.dedup();
    let Some(rank) = all.iter().position(|w| *w == me) else {
        return Vec::new();
    };
    let workers = u32::try_from(all.len()).unwrap_or(u32::MAX);
    let rank = u32::try_from(rank).unwrap_or(u32::MAX);
    (0..tasks_max).filter(|t| t % workers == rank).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let c = ConfigRecord::Connector {
            name: "a-b".into(),
            config: Some([("topics".to_owned(), "x".to_owned())].into()),
        };
        let (k, v) = c.encode();
        assert_eq!(k, "connector-a-b");
        assert_eq!(ConfigRecord::decode(&k, v.as_deref()), Some(c));
        let t = ConfigRecord::Target {
            name: "a".into(),
            target: Target::Paused,
        };
        let (k, v) = t.encode();
        assert_eq!(ConfigRecord::decode(&k, v.as_deref()), Some(t));
        assert_eq!(
            ConfigRecord::decode("connector-x", None),
            Some(ConfigRecord::Connector {
                name: "x".into(),
                config: None
            })
        );
        assert_eq!(ConfigRecord::decode("commit-x", Some(b"{}")), None);
        let r = ConfigRecord::Restart {
            name: "a".into(),
            only_failed: false,
            nonce: 7,
            worker: Some("w1".into()),
            task: Some(2),
        };
        let (k, v) = r.encode();
        assert_eq!(ConfigRecord::decode(&k, v.as_deref()), Some(r));
    }

    #[test]
    fn tasks_are_placed_once_across_the_live_workers() {
        let live: Vec<String> = ["w-b", "w-a", "w-c"].map(String::from).into();
        let mut all: Vec<u32> = live
            .iter()
            .flat_map(|w| placed_tasks(5, &live, w))
            .collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4], "each task on exactly one worker");
        assert_eq!(placed_tasks(5, &live, "w-a"), vec![0, 3]);
        assert_eq!(placed_tasks(5, &live, "w-c"), vec![2]);
        // More workers than tasks: some run none.
        assert_eq!(placed_tasks(1, &live, "w-b"), Vec::<u32>::new());
        // A worker that does not see itself among the live ones (its own heartbeat not read back yet)
        // counts itself; alone, it runs everything.
        assert_eq!(placed_tasks(3, &[], "w-z"), vec![0, 1, 2]);
    }
}
