//! The sink connector interface, from the connector SDK (`ursa-connect`, Kafka Connect's connect-api): see
//! [`ursa_connect::sink`] for the life cycle, deadlines and cancel-safety.

pub use ursa_connect::{
    BatchConfig, Batcher, DecodeError, Format, Header, LimitConfig, Limiter, Offsets, Outcome,
    Payload, Request, Sink, SinkContext, SinkError, SinkMetrics, SinkPlugin, SinkRecord,
    StartingOffsets, TimestampType, TopicPartition,
};
