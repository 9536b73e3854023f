//! The Avro binary encoding: a bounds-checked reader and the writers generated code calls.

#[cfg(test)]
pub(crate) mod builder;
pub mod encode;
mod reader;

pub use reader::{Limits, Reader};
