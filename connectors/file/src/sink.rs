//! Writing JSON lines: buffered appends off the async threads, and a flush that fsyncs and reports, per
//! partition, the offset up to which lines are on disk (all that is done: each put appended before it
//! returned).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ursa_connect::{BoxFuture, Conversion, Offsets, Outcome, Sink, SinkError, SinkRecord};

use crate::line::json_line;

/// The `file` sink.
pub struct FileSink {
    path: PathBuf,
    fsync: bool,
    file: Arc<Mutex<BufWriter<File>>>,
    /// The average line length of the last put, to size the next put's buffer.
    line_len: AtomicUsize,
    /// Text buffers of earlier puts, written and emptied, for the next puts: a fresh buffer of a batch's
    /// size each put was pages the kernel had to fault in and the allocator to give back, per batch.
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// The write buffer: small puts are gathered, a put's text at least this long goes to the file directly
/// (no copy into the buffer).
const BUFFER: usize = 128 << 10;

/// The most spare text buffers kept (about one per partition task writing at once), and the largest kept:
/// a buffer that grew past it for one large batch is dropped rather than held.
const SPARE_BUFFERS: usize = 8;
const SPARE_MAX_BYTES: usize = 8 << 20;

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
            file: Arc::new(Mutex::new(BufWriter::with_capacity(BUFFER, file))),
            line_len: AtomicUsize::new(256),
            spare: Arc::new(Mutex::new(Vec::new())),
        })
    }
}

fn poisoned() -> SinkError {
    SinkError::permanent("file sink lock poisoned")
}

impl Sink for FileSink {
    fn put<'a>(
        &'a self,
        records: &'a [SinkRecord],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, SinkError>> {
        Box::pin(async move {
            let line = self.line_len.load(Ordering::Relaxed);
            let want = (line + line / 8 + 16) * records.len();
            let mut text = self
                .spare
                .lock()
                .ok()
                .and_then(|mut spare| spare.pop())
                .unwrap_or_default();
            text.reserve(want);
            let outcomes = records
                .iter()
                .map(|r| match json_line(r, &mut text) {
                    Ok(()) => Outcome::Delivered,
                    Err(e) => Outcome::permanent(e.to_string()),
                })
                .collect();
            if !records.is_empty() {
                self.line_len
                    .store(text.len() / records.len(), Ordering::Relaxed);
            }
            let file = Arc::clone(&self.file);
            let spare = Arc::clone(&self.spare);
            let path = self.path.clone();
            // Cancel-safe: a dropped call leaves the write to finish on its blocking thread.
            tokio::task::spawn_blocking(move || {
                let mut w = file.lock().map_err(|_| poisoned())?;
                let written = w
                    .write_all(&text)
                    .map_err(|e| SinkError::retriable(format!("writing {}: {e}", path.display())));
                drop(w);
                text.clear();
                if text.capacity() <= SPARE_MAX_BYTES
                    && let Ok(mut spare) = spare.lock()
                    && spare.len() < SPARE_BUFFERS
                {
                    spare.push(text);
                }
                written
            })
            .await
            .map_err(|e| SinkError::retriable(format!("writing: {e}")))??;
            Ok(outcomes)
        })
    }

    fn flush<'a>(&'a self, done: &'a Offsets) -> BoxFuture<'a, Result<Offsets, SinkError>> {
        Box::pin(async move {
            let file = Arc::clone(&self.file);
            let fsync = self.fsync;
            tokio::task::spawn_blocking(move || {
                let mut w = file.lock().map_err(|_| poisoned())?;
                w.flush()
                    .map_err(|e| SinkError::retriable(format!("flushing: {e}")))?;
                if fsync {
                    w.get_ref()
                        .sync_data()
                        .map_err(|e| SinkError::retriable(format!("fsync: {e}")))?;
                }
                Ok::<_, SinkError>(())
            })
            .await
            .map_err(|e| SinkError::retriable(format!("flushing: {e}")))??;
            // Every record in `done` was appended before this flush began (its put had returned), so the
            // fsync made it durable; records dead-lettered or skipped are not ours to write.
            Ok(done.clone())
        })
    }

    fn conversion(&self) -> Conversion {
        Conversion::JsonText
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            match self.file.lock() {
                Ok(_) => Ok(()),
                Err(_) => Err(poisoned()),
            }
        })
    }
}
