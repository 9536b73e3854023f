//! Configuration: a Kafka Connect–style definition system ([`def`]), secrets ([`secret`]) and which secret
//! references a REST client may submit ([`references`]).

pub mod connector;
pub mod def;
pub mod references;
pub mod secret;
pub mod worker;

pub use connector::{ConnectorConfig, Subscription};
pub use def::{FieldErrors, Key, Kind, Parsed, Value, flatten, parse, parse_duration};
pub use references::{Reference, ReferencePolicy};
pub use secret::{Secret, SecretError};
pub use worker::WorkerConfig;
