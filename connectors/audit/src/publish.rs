//! Publishing checkpoints outside the database: an append-only file of JSON lines (one [`StoredCheckpoint`] each,
//! the signed note inside), fsynced after every append, for external anchoring (ship it to WORM storage, a
//! witness, another site). Checkpoints committed while the file could not be written are appended later (at the
//! next flush, or when the partition is opened again), so the file misses none.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use tokio_postgres::Client;

use crate::ddl::quote_ident;
use crate::error::AuditError;
use crate::writer::StoredCheckpoint;

/// The checkpoint file.
#[derive(Debug, Clone)]
pub struct Publisher {
    path: PathBuf,
}

impl Publisher {
    /// Appends to `path` (created with its directory when missing).
    pub fn new(path: &Path) -> Publisher {
        Publisher {
            path: path.to_owned(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends and fsyncs (off the async threads).
    pub async fn publish(&self, checkpoints: Vec<StoredCheckpoint>) -> Result<(), String> {
        if checkpoints.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            let mut text = Vec::new();
            for c in &checkpoints {
                serde_json::to_writer(&mut text, c).map_err(|e| e.to_string())?;
                text.push(b'\n');
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("opening {}: {e}", path.display()))?;
            f.write_all(&text)
                .and_then(|()| f.sync_data())
                .map_err(|e| format!("appending to {}: {e}", path.display()))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The largest tree size published per (connector, topic, partition).
    pub async fn published(&self) -> Result<HashMap<(String, String, i32), u64>, String> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(format!("reading {}: {e}", path.display())),
            };
            let mut out: HashMap<(String, String, i32), u64> = HashMap::new();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                // A torn last line (a crash mid-append) is skipped; the checkpoint is published again.
                if let Ok(c) = serde_json::from_str::<StoredCheckpoint>(line) {
                    let e = out.entry((c.connector, c.topic, c.partition)).or_default();
                    *e = (*e).max(c.tree_size);
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The stored checkpoints of `partitions` of `topic` that the file lacks.
    pub async fn missing(
        &self,
        client: &Client,
        schema: &str,
        connector: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Vec<StoredCheckpoint>, AuditError> {
        let published = self.published().await.map_err(AuditError::Config)?;
        let s = quote_ident(schema);
        let rows = client
            .query(
                &format!(
                    "SELECT partition, tree_size, last_offset, note FROM {s}.ursa_audit_checkpoints \
                     WHERE connector = $1 AND topic = $2 AND partition = ANY($3) ORDER BY partition, tree_size"
                ),
                &[&connector, &topic, &partitions],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let partition: i32 = r.get(0);
                let size = u64::try_from(r.get::<_, i64>(1)).ok()?;
                let have = published
                    .get(&(connector.to_owned(), topic.to_owned(), partition))
                    .copied()
                    .unwrap_or(0);
                (size > have).then(|| StoredCheckpoint {
                    connector: connector.to_owned(),
                    topic: topic.to_owned(),
                    partition,
                    tree_size: size,
                    last_offset: r.get(2),
                    note: r.get(3),
                })
            })
            .collect())
    }
}
