//! A Confluent-compatible Schema Registry for development, demos and tests, and a client for any registry.
//!
//! - [`server`]: the dev registry — Confluent's REST API (subjects, versions, ids, references, compatibility,
//!   config, mode), in memory, optionally persisted to an append-only JSON-lines log that is synced before
//!   every write is acknowledged; [`serve`] runs it, [`Server::bind`] binds first so a caller (a test) can learn
//!   the address of port 0.
//! - [`client`]: [`RegistryClient`] for any Confluent-compatible registry (auth, custom CA, timeouts, retries
//!   with exponential backoff and jitter, a cache of schemas by id), with typed [`ClientError`]s.

pub mod client;
pub mod server;
mod types;

pub use client::{Auth, ClientConfig, ClientError, RegistryClient, RetryPolicy};
pub use server::{Error, RunningServer, Server, ServerConfig, serve};
pub use types::{
    CompatibilityLevel, Mode, Reference, RegisteredSchema, SchemaInfo, SubjectVersion, VersionId,
    parse_level,
};
