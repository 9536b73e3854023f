//! `ursa-connector-audit`: the compliance audit store, a PostgreSQL sink (`connector.class = "audit-postgres"`)
//! that is exactly-once, append-only, tamper-evident and able to forget a data subject.
//!
//! - **Tables from schemas** ([`schema_map`], [`ddl`], [`tables`]): one table per topic with the Kafka
//!   coordinates (primary key partition + offset), timestamp, key, headers, writer schema id, the value as stored
//!   and as `jsonb`, and typed columns flattened from the Avro schema; a compatible schema change adds nullable
//!   columns in the transaction of its first rows, a type change fails naming the table, column and both types.
//! - **Exactly once** ([`writer`]): each batch is one transaction — binary COPY of the rows and the partition's
//!   offsets row, fenced by generation; starting offsets come from that table.
//! - **Append-only and tamper-evident**: a trigger refuses UPDATE, DELETE and TRUNCATE and the sink's role needs
//!   INSERT only ([`ddl`] documents the GRANTs); a hash chain per partition ([`chain`]); an RFC 6962 Merkle root
//!   per batch and a tree per partition ([`merkle`]); signed C2SP checkpoints ([`checkpoint`]) stored and
//!   published to a file ([`publish`]); [`verify`] recomputes all of it.
//! - **Crypto-shredding** ([`pii`], [`crypto`], [`keys`], [`export`]): `"pii": true` fields sealed with AES-256-GCM
//!   under a key per data subject, wrapped by a master key; `forget` destroys a subject's keys, `show` exports a
//!   subject's records with `<erased>` where keys are gone.
//! - **The sink** ([`sink`], [`config`]) on the connector SDK; [`connect`] and [`pool`]: TLS and connections.

pub mod cell;
pub mod chain;
pub mod checkpoint;
pub mod config;
/// Connecting to PostgreSQL: the SDK's (`sslmode` as libpq reads it, TLS through rustls).
pub use ursa_connect::postgres as connect;
pub mod crypto;
pub mod datum;
pub mod ddl;
pub mod error;
pub mod export;
pub mod keys;
pub mod merkle;
pub mod pii;
pub mod pool;
pub mod publish;
pub mod row;
pub mod schema_map;
pub mod sink;
pub mod tables;
pub mod verify;
pub mod writer;

pub use config::{AuditConfig, AuditPlugin, CLASS};
pub use sink::AuditSink;
