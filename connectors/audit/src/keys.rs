//! The data keys of data subjects (`ursa_audit_subject_keys`), and forgetting a subject.
//!
//! A subject's newest live key seals its new records; the sink caches keys, so every batch that sealed with a
//! key takes a shared advisory lock per subject and checks, inside its transaction, that its keys are still
//! live. `forget` takes the subject's lock exclusively, so it waits for batches already sealing with the key and
//! every later batch sees the key gone (and seals with a new one): no record is ever written under a destroyed
//! key. The erasure is itself recorded, hash-chained, in `ursa_audit_erasures`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::digest;
use tokio_postgres::Client;

use crate::crypto::{DataKey, MasterKey};
use crate::ddl::quote_ident;
use crate::error::AuditError;
use crate::merkle::Hash;

/// Cached keys at most, per sink.
const CACHE: usize = 50_000;

/// The advisory lock of a subject: the first 8 bytes of `SHA-256("ursa-audit-subject\n" || subject)`.
pub fn subject_lock(subject: &str) -> i64 {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"ursa-audit-subject\n");
    ctx.update(subject.as_bytes());
    let d = ctx.finish();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    i64::from_be_bytes(b)
}

/// The data keys, cached.
pub struct KeyStore {
    master: MasterKey,
    schema: String,
    by_subject: Mutex<HashMap<String, Arc<DataKey>>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// The keys in `schema`, wrapped by `master`.
    pub fn new(master: MasterKey, schema: &str) -> KeyStore {
        KeyStore {
            master,
            schema: schema.to_owned(),
            by_subject: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> String {
        format!("{}.ursa_audit_subject_keys", quote_ident(&self.schema))
    }

    /// The key that seals `subject`'s new records: its newest live key, or a new one.
    pub async fn for_subject(
        &self,
        client: &Client,
        subject: &str,
    ) -> Result<Arc<DataKey>, AuditError> {
        if let Some(k) = self.cached(subject) {
            return Ok(k);
        }
        match self.load(client, &[subject]).await?.pop() {
            Some((_, k)) => Ok(k),
            // Another batch cached it meanwhile.
            None => self
                .cached(subject)
                .ok_or_else(|| AuditError::Config(format!("no data key for subject {subject}"))),
        }
    }

    fn cached(&self, subject: &str) -> Option<Arc<DataKey>> {
        self.by_subject
            .lock()
            .ok()
            .and_then(|m| m.get(subject).cloned())
    }

    /// Caches the sealing keys of `subjects` (as [`KeyStore::for_subject`] would, one by one): the newest live
    /// key of each subject not cached yet in one query, and new keys for those that have none in one insert.
    pub async fn prefetch(&self, client: &Client, subjects: &[&str]) -> Result<(), AuditError> {
        self.load(client, subjects).await.map(drop)
    }

    /// The keys of those of `subjects` not cached (found, or made), now cached too.
    async fn load(
        &self,
        client: &Client,
        subjects: &[&str],
    ) -> Result<Vec<(String, Arc<DataKey>)>, AuditError> {
        let mut missing: Vec<&str> = {
            let Ok(cached) = self.by_subject.lock() else {
                return Ok(Vec::new());
            };
            subjects
                .iter()
                .copied()
                .filter(|s| !cached.contains_key(*s))
                .collect()
        };
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let t = self.table();
        let found = client
            .query(
                &format!(
                    "SELECT DISTINCT ON (subject) subject, key_id, wrapped_key, master_key_id FROM {t} \
                     WHERE subject = ANY($1) AND wrapped_key IS NOT NULL ORDER BY subject, key_id DESC"
                ),
                &[&missing],
            )
            .await?;
        let mut keys: Vec<(String, DataKey)> = Vec::with_capacity(missing.len());
        for row in &found {
            let subject: String = row.get(0);
            let id: i64 = row.get(1);
            let wrapped: Vec<u8> = row.get(2);
            let master_id: Vec<u8> = row.get(3);
            let key = self
                .master
                .unwrap(&subject, id, &wrapped, &master_id)
                .map_err(|e| AuditError::Config(e.to_string()))?;
            keys.push((subject, key));
        }
        let new: Vec<&str> = missing
            .iter()
            .copied()
            .filter(|s| !keys.iter().any(|(k, _)| k == s))
            .collect();
        if !new.is_empty() {
            let mut raws = Vec::with_capacity(new.len());
            let mut wrapped = Vec::with_capacity(new.len());
            for subject in &new {
                let (raw, w) = self
                    .master
                    .new_data_key(subject)
                    .map_err(|e| AuditError::Config(e.to_string()))?;
                raws.push(raw);
                wrapped.push(w);
            }
            let rows = client
                .query(
                    &format!(
                        "INSERT INTO {t} (subject, wrapped_key, master_key_id) \
                         SELECT s, w, $3 FROM unnest($1::text[], $2::bytea[]) AS n(s, w) RETURNING key_id, subject"
                    ),
                    &[&new, &wrapped, &&self.master.id()[..]],
                )
                .await?;
            for row in &rows {
                let id: i64 = row.get(0);
                let subject: String = row.get(1);
                let Some(at) = new.iter().position(|s| *s == subject) else {
                    continue;
                };
                let key =
                    DataKey::new(id, &raws[at]).map_err(|e| AuditError::Config(e.to_string()))?;
                keys.push((subject, key));
            }
        }
        let keys: Vec<(String, Arc<DataKey>)> =
            keys.into_iter().map(|(s, k)| (s, Arc::new(k))).collect();
        if let Ok(mut m) = self.by_subject.lock() {
            if m.len() + keys.len() > CACHE {
                m.clear();
            }
            for (subject, key) in &keys {
                m.insert(subject.clone(), Arc::clone(key));
            }
        }
        Ok(keys)
    }

    /// Forgets cached keys (destroyed by `forget`).
    pub fn evict(&self, ids: &[i64]) {
        if let Ok(mut m) = self.by_subject.lock() {
            m.retain(|_, k| !ids.contains(&k.id()));
        }
    }

    /// Inside a batch's transaction: locks `subjects` (shared) and returns which of `ids` were destroyed.
    pub async fn lock_and_check(
        &self,
        client: &Client,
        subjects: &[String],
        ids: &[i64],
    ) -> Result<Vec<i64>, AuditError> {
        let mut locks: Vec<i64> = subjects.iter().map(|s| subject_lock(s)).collect();
        locks.sort_unstable();
        locks.dedup();
        client
            .execute(
                "SELECT pg_advisory_xact_lock_shared(k) FROM unnest($1::bigint[]) AS k",
                &[&locks],
            )
            .await?;
        let t = self.table();
        let live: Vec<i64> = client
            .query(
                &format!(
                    "SELECT key_id FROM {t} WHERE key_id = ANY($1) AND wrapped_key IS NOT NULL"
                ),
                &[&ids],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(ids.iter().copied().filter(|i| !live.contains(i)).collect())
    }

    /// The key `id` for opening (`None` once destroyed); read from the database every time (never cached, so a
    /// key destroyed meanwhile is never used).
    pub async fn by_id(
        &self,
        client: &Client,
        id: i64,
    ) -> Result<Option<Arc<DataKey>>, AuditError> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT subject, wrapped_key, master_key_id FROM {} WHERE key_id = $1",
                    self.table()
                ),
                &[&id],
            )
            .await?;
        let key = match row {
            Some(row) => match row.get::<_, Option<Vec<u8>>>(1) {
                Some(wrapped) => {
                    let subject: String = row.get(0);
                    let master_id: Vec<u8> = row.get(2);
                    Some(Arc::new(
                        self.master
                            .unwrap(&subject, id, &wrapped, &master_id)
                            .map_err(|e| AuditError::Config(e.to_string()))?,
                    ))
                }
                None => None,
            },
            None => None,
        };
        Ok(key)
    }
}

/// What `forget` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// The erasure's sequence number.
    pub seq: i64,
    /// Keys destroyed.
    pub keys_destroyed: i32,
    /// Whether the dead key rows were vacuumed away (needs ownership of the table).
    pub vacuumed: bool,
}

/// The hash chained over erasures: `SHA-256(previous || "ursa-audit-erasure/v1\n" || be64(seq) || str(subject) ||
/// be32(keys) || str(by) || be64(ms) || str(reason))`, from `SHA-256("ursa-audit-erasures/v1\n")`.
pub fn erasure_hash(
    prev: &Hash,
    seq: i64,
    subject: &str,
    keys: i32,
    by: &str,
    at_ms: i64,
    reason: &str,
) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev);
    ctx.update(b"ursa-audit-erasure/v1\n");
    ctx.update(&seq.to_be_bytes());
    for (i, s) in [subject, by, reason].iter().enumerate() {
        if i == 1 {
            ctx.update(&keys.to_be_bytes());
        }
        if i == 2 {
            ctx.update(&at_ms.to_be_bytes());
        }
        ctx.update(&(s.len() as u64).to_be_bytes());
        ctx.update(s.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The hash before the first erasure.
pub fn erasure_genesis() -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, b"ursa-audit-erasures/v1\n").as_ref());
    out
}

/// Destroys every key of `subject` and records the erasure; then vacuums the keys table (best effort) so the
/// wrapped keys do not linger in dead rows. Backups and WAL archives older than this keep them: their retention
/// bounds how long erasure takes.
pub async fn forget(
    client: &Client,
    schema: &str,
    subject: &str,
    reason: &str,
) -> Result<Erasure, AuditError> {
    let s = quote_ident(schema);
    client.batch_execute("BEGIN").await?;
    let result = async {
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&subject_lock(subject)])
            .await?;
        client
            .execute("SELECT pg_advisory_xact_lock(hashtext('ursa_audit_erasures'))", &[])
            .await?;
        let keys = client
            .execute(
                &format!(
                    "UPDATE {s}.ursa_audit_subject_keys SET wrapped_key = NULL, erased_at = now() \
                     WHERE subject = $1 AND wrapped_key IS NOT NULL"
                ),
                &[&subject],
            )
            .await?;
        let last = client
            .query_opt(
                &format!("SELECT seq, hash FROM {s}.ursa_audit_erasures ORDER BY seq DESC LIMIT 1"),
                &[],
            )
            .await?;
        let (seq, prev) = match last {
            Some(r) => (
                r.get::<_, i64>(0) + 1,
                crate::chain::hash_from(&r.get::<_, Vec<u8>>(1))
                    .ok_or_else(|| AuditError::Corrupt("an erasure hash is not 32 bytes".into()))?,
            ),
            None => (1, erasure_genesis()),
        };
        let by: String = client.query_one("SELECT current_user::text", &[]).await?.get(0);
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let keys = i32::try_from(keys).unwrap_or(i32::MAX);
        let hash = erasure_hash(&prev, seq, subject, keys, &by, at_ms, reason);
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.ursa_audit_erasures (seq, subject, keys_destroyed, erased_by, erased_at_ms, reason, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ),
                &[&seq, &subject, &keys, &by, &at_ms, &reason, &&hash[..]],
            )
            .await?;
        Ok::<_, AuditError>((seq, keys))
    }
    .await;
    match result {
        Ok((seq, keys)) => {
            client.batch_execute("COMMIT").await?;
            let vacuumed = client
                .batch_execute(&format!("VACUUM {s}.ursa_audit_subject_keys"))
                .await
                .is_ok();
            Ok(Erasure {
                seq,
                keys_destroyed: keys,
                vacuumed,
            })
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}
