//! The platform's domain events as Rust types, generated from `schemas/avro/**.avsc` by `cargo xtask codegen`.
//!
//! Namespaces are modules: `com.teddy.child.SafetyViolation` is [`com::teddy::child::SafetyViolation`]. Every
//! record implements [`ursa_avro::AvroRecord`] (encode, decode, schema resolution, Confluent wire format) and
//! knows its topic and subjects from `schemas/topics.toml`; [`topics`] lists the catalog.

// The generator formats its output with prettyplease; `cargo fmt` leaves it as it is (`--check` compares it).
#[rustfmt::skip]
#[path = "generated/mod.rs"]
mod generated;

pub use generated::*;

/// The topic catalog this crate was generated with.
pub const CATALOG_TOML: &str = include_str!("../topics.toml");
