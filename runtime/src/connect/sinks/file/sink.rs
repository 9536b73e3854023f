//! Writing JSON lines: buffered appends off the async threads, fsync on flush.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::connect::api::BoxFuture;
use crate::connect::sink::{Outcome, Sink, SinkError, SinkRecord};

use super::line::json_line;

/// The `file` sink.
pub struct FileSink {
    path: PathBuf,
    fsync: bool,
    file: Arc<Mutex<std::io::BufWriter<File>>>,
}

impl FileSink {
    /// Opens (creating if needed) the file for appending.
    pub fn open(path: PathBuf, fsync: bool) -> Result<FileSink, SinkError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                SinkError::permanent(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| SinkError::permanent(format!("cannot open {}: {e}", path.display())))?;
        Ok(FileSink {
            path,
            fsync,
            file: Arc::new(Mutex::new(std::io::BufWriter::with_capacity(1 << 20, file))),
        })
    }
}

impl Sink for FileSink {
    fn put<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(async move {
            let mut text = String::with_capacity(records.len() * 256);
            for r in records {
                json_line(r, &mut text);
            }
            let file = Arc::clone(&self.file);
            let path = self.path.clone();
            let result = tokio::task::spawn_blocking(move || {
                let mut w = file.lock().map_err(|_| "file lock poisoned".to_owned())?;
                w.write_all(text.as_bytes())
                    .map_err(|e| format!("writing {}: {e}", path.display()))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let outcome = match result {
                Ok(()) => Outcome::Delivered,
                Err(reason) => Outcome::Retriable {
                    reason,
                    retry_after: None,
                },
            };
            vec![outcome; records.len()]
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let file = Arc::clone(&self.file);
            let fsync = self.fsync;
            tokio::task::spawn_blocking(move || {
                let mut w = file
                    .lock()
                    .map_err(|_| SinkError::permanent("file lock poisoned"))?;
                w.flush()
                    .map_err(|e| SinkError::retriable(format!("flushing: {e}")))?;
                if fsync {
                    w.get_ref()
                        .sync_data()
                        .map_err(|e| SinkError::retriable(format!("fsync: {e}")))?;
                }
                Ok(())
            })
            .await
            .unwrap_or_else(|e| Err(SinkError::retriable(e.to_string())))
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            match self.file.lock() {
                Ok(_) => Ok(()),
                Err(_) => Err(SinkError::permanent("file lock poisoned")),
            }
        })
    }
}
