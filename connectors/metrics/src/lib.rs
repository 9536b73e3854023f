//! The `metrics` sink: events into Prometheus metrics — counters, gauges and histograms defined in config,
//! labels from fields (nested paths, enum symbols, union branches, normalised), a cardinality guard per
//! metric with an `__overflow__` series, idle expiry on a timer, Prometheus text / OpenMetrics on a
//! listener of its own, Prometheus remote write, and per-partition checkpoints in a compacted Kafka topic
//! that keep counts exact across restarts and rebalances. Built on `ursa-connect` (and rdkafka for the
//! checkpoints). See README.md.

pub mod checkpoint;
pub mod config;
pub mod exposition;
pub mod extract;
pub mod filter;
pub mod remote_write;
pub mod series;
mod sink;

pub use config::{MetricsPlugin, OVERFLOW, parse_definitions};
pub use sink::MetricsSink;
