//! The `file` sink: every record as one JSON line (topic, partition, offset, timestamp, headers, key, value) —
//! Kafka Connect's FileStreamSink, with durable flushes and the decoded value. Built on `ursa-connect` only.

mod config;
mod line;
mod sink;

pub use config::FilePlugin;
pub use line::json_line;
pub use sink::FileSink;
