//! Configuration: a Kafka Connect–style definition system ([`def`]) and secrets ([`secret`]).

pub mod connector;
pub mod def;
pub mod secret;
pub mod worker;

pub use connector::{ConnectorConfig, Subscription};
pub use def::{FieldErrors, Key, Kind, Parsed, Value, flatten, parse, parse_duration};
pub use secret::{Secret, SecretError};
pub use worker::WorkerConfig;
