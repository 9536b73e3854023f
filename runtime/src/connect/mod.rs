//! The connector runtime: Kafka Connect–style sink connectors with per-record outcomes, retries, a real DLQ,
//! exact offset commits, a Connect-compatible REST API, and distributed mode on Kafka.
//!
//! Layers: [`config`] (typed config definitions, secrets) → [`api`] (what a worker answers) → the pipeline
//! (consumer, per-partition processing, sinks) → [`rest`] (HTTP).

pub mod active_topics;
pub mod api;
pub mod config;
pub mod connector;
pub mod convert;
pub mod distributed;
pub mod dlq;
pub mod pipeline;
pub mod record;
pub mod replay;
pub mod rest;
pub mod retry;
pub mod sink;
pub mod sinks;
pub mod telemetry;
pub mod tracecontext;
pub mod worker;
