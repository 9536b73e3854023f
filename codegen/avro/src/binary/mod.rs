//! The Avro binary encoding: a bounds-checked reader and the writers generated code calls.

pub mod encode;
mod reader;

pub use reader::{Limits, Reader};
