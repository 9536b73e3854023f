//! Configuration keys: a Kafka Connect–style definition system ([`def`]: `ConfigDef`) and secrets ([`secret`]).

pub mod def;
pub mod secret;

pub use def::{FieldErrors, Key, Kind, Parsed, Value, flatten, parse, parse_duration};
pub use secret::{Secret, SecretError};
