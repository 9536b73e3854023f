//! A client for any Confluent-compatible schema registry.
