//! A Confluent-compatible Schema Registry for development, demos and tests, and a client for any registry.
