//! The Avro binary encoding: a bounds-checked reader and the writers generated code calls.

#[cfg(test)]
pub(crate) mod builder;
pub mod encode;
mod reader;

pub(crate) use reader::reservation;
pub use reader::{Limits, Reader};
