//! `ursa`: the operator binary's library — schema governance commands, topic management, the dev registry,
//! and (to come) the connector runtime.

pub mod cli;
pub mod connect;
pub mod topics;
