//! Distributed mode: connector configs and target states in a compacted config topic, task statuses in a
//! compacted status topic — Kafka is the distributed engine; there is no consensus of our own. Every worker
//! of the group runs every running connector's consumer in that connector's group, so Kafka's group protocol
//! spreads the partitions.

mod records;
mod store;

pub use records::{ConfigRecord, StatusValue, WorkerValue, placed_tasks, status_key, worker_key};
pub use store::{
    Desired, RestartRequest, STATUS_HEARTBEAT, STATUS_TTL, Store, View, WORKER_HEARTBEAT,
    WORKER_TTL, now_ms,
};
