//! The typed configuration definition (Kafka Connect's `ConfigDef`), from the connector SDK: every key with
//! its type, default, documentation and group; parsing a flat map with an error per key.

pub use ursa_connect::config::def::*;
