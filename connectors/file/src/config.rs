//! Configuration of the `file` sink: its keys, its checks, and building it.

use std::path::PathBuf;
use std::sync::Arc;

use ursa_connect::{FieldErrors, Key, Kind, Parsed, Sink, SinkContext, SinkError, SinkPlugin};

use crate::sink::FileSink;

/// The `file` plugin.
pub struct FilePlugin;

impl SinkPlugin for FilePlugin {
    fn name(&self) -> &'static str {
        "file"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &[
            "FileStreamSink",
            "org.apache.kafka.connect.file.FileStreamSinkConnector",
        ]
    }

    fn description(&self) -> &'static str {
        "Appends every record as one JSON line (topic, partition, offset, timestamp, headers, key, value) to a file."
    }

    fn keys(&self) -> Vec<Key> {
        vec![
            Key::required(
                "file",
                Kind::String,
                "file",
                "The file to append JSON lines to (created if missing).",
            ),
            Key::optional(
                "file.fsync",
                Kind::Boolean,
                "true",
                "file",
                "fsync the file before offsets are committed, so a committed record is on disk.",
            ),
        ]
    }

    fn validate(&self, config: &Parsed) -> FieldErrors {
        let mut errors = FieldErrors::new();
        let file = config.string("file").unwrap_or_default();
        if file.trim().is_empty() {
            errors
                .entry("file".into())
                .or_default()
                .push("must name a file".into());
        } else if file.ends_with('/') || file.ends_with("/.") || file.ends_with("/..") {
            errors
                .entry("file".into())
                .or_default()
                .push(format!("{file:?} names a directory, not a file"));
        }
        errors
    }

    fn build(&self, config: &Parsed, _context: SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        let path = config
            .string("file")
            .map(PathBuf::from)
            .ok_or_else(|| SinkError::permanent("`file` is required"))?;
        let fsync = config.boolean("file.fsync").unwrap_or(true);
        Ok(Arc::new(FileSink::open(path, fsync)?))
    }
}
