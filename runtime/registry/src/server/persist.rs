//! Persistence: an append-only JSON-lines log of mutations. Each record is written and synced before the
//! mutation is applied and acknowledged; on start the log is replayed, and a torn last line (a crash mid-write,
//! so never acknowledged) is dropped with a warning.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Error;
use crate::types::Reference;

/// One mutation of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Record {
    /// A new version of a subject (with a new or an existing schema id).
    Register {
        subject: String,
        version: u32,
        id: u32,
        schema: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        references: Vec<Reference>,
        /// Confluent's data-contract metadata (absent in logs written before it was kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<serde_json::Value>,
        /// Confluent's data-contract rules.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule_set: Option<serde_json::Value>,
    },
    /// A version soft- or permanently deleted.
    DeleteVersion {
        subject: String,
        version: u32,
        permanent: bool,
    },
    /// All versions of a subject soft- or permanently deleted.
    DeleteSubject { subject: String, permanent: bool },
    /// A compatibility level set (`Some`) or removed (`None`), for a subject or globally.
    Config {
        #[serde(default)]
        subject: Option<String>,
        compatibility: Option<String>,
    },
    /// A mode set or removed, for a subject or globally.
    Mode {
        #[serde(default)]
        subject: Option<String>,
        mode: Option<String>,
    },
}

/// The open log.
#[derive(Debug)]
pub(crate) struct Log {
    path: PathBuf,
    file: Arc<File>,
    len: u64,
}

impl Log {
    /// Opens (creating) the log and reads its records, with their 1-based line numbers.
    pub(crate) fn open(path: &Path) -> Result<(Log, Vec<(usize, Record)>), Error> {
        let io = |source| Error::Data {
            path: path.to_owned(),
            source,
        };
        let existed = path.exists();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        if !existed {
            sync_dir(path).map_err(io)?;
        }
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io)?;

        let mut records = Vec::new();
        let mut pos = 0usize;
        let mut line = 0usize;
        while pos < data.len() {
            line += 1;
            let Some(n) = data[pos..].iter().position(|b| *b == b'\n') else {
                tracing::warn!(
                    path = %path.display(),
                    line,
                    bytes = data.len() - pos,
                    "ignoring a torn last line in the data file (a write interrupted by a crash; never acknowledged)"
                );
                file.set_len(pos as u64).map_err(io)?;
                file.sync_data().map_err(io)?;
                data.truncate(pos);
                break;
            };
            let text = &data[pos..pos + n];
            pos += n + 1;
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let record = serde_json::from_slice::<Record>(text).map_err(|e| Error::Corrupt {
                path: path.to_owned(),
                line,
                message: e.to_string(),
            })?;
            records.push((line, record));
        }
        Ok((
            Log {
                path: path.to_owned(),
                file: Arc::new(file),
                len: data.len() as u64,
            },
            records,
        ))
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` and syncs it to disk.
    pub(crate) async fn append(&mut self, record: &Record) -> Result<(), String> {
        let mut line = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let file = Arc::clone(&self.file);
        let len = self.len;
        let n = line.len() as u64;
        let result = tokio::task::spawn_blocking(move || {
            let written = (&*file).write_all(&line).and_then(|()| file.sync_data());
            if written.is_err() {
                // Take back a partial line so the next record starts on a line of its own.
                let _ = file.set_len(len);
            }
            written
        })
        .await
        .map_err(|e| e.to_string())?;
        match result {
            Ok(()) => {
                self.len += n;
                Ok(())
            }
            Err(e) => Err(format!("writing {}: {e}", self.path.display())),
        }
    }
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}
