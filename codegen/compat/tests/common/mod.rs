//! Shared test helpers: parsing schema text into sets with file labels, and running the checker on text.

#![allow(dead_code)]

pub mod generator;

use ursa_avro::schema::{ParseOptions, SchemaSet, SourceFile};
use ursa_compat::{Doc, Message, reader_writer};

/// Parses one schema document labelled `path`.
pub fn parse(path: &str, text: &str) -> SchemaSet {
    SchemaSet::parse(vec![SourceFile::new(path, text)], ParseOptions::default())
        .unwrap_or_else(|e| panic!("{path} does not parse: {e}\n{text}"))
}

/// The incompatibilities of reading `writer` data with `reader` (both schema JSON text).
pub fn incompatibilities(reader: &str, writer: &str) -> Vec<Message> {
    let r = parse("reader.avsc", reader);
    let w = parse("writer.avsc", writer);
    reader_writer(Doc::last(&r), Doc::last(&w))
}
