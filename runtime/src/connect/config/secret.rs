//! Secrets in configs (`${env:VAR}`, `${file:/path:key}` or literals, never shown), from the connector SDK.

pub use ursa_connect::config::secret::*;
