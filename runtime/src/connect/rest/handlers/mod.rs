//! The handlers, one file per resource.

pub(crate) mod admin;
pub(crate) mod connectors;
pub(crate) mod lifecycle;
pub(crate) mod offsets;
pub(crate) mod plugins;
pub(crate) mod root;
