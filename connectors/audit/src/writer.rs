//! Exactly once: each batch of one partition is one transaction, which
//!
//! 1. locks the partition's row of `ursa_audit_offsets` (`FOR UPDATE`) and checks the fence: a stored generation
//!    newer than the writer's means another worker owns the partition now, and the writer rolls back;
//! 2. skips records below the stored next offset (a retry of a batch that did commit), records any gap before
//!    the others (offsets the sink never got: dead-lettered or skipped by the runtime, transaction markers,
//!    compaction; or rejected by the sink, with its reason) in `ursa_audit_gaps`;
//! 3. chains the rows ([`crate::chain`]), appends their leaves to the partition's Merkle tree, and adds any new
//!    writer schema's columns (and the schema text) in the same transaction;
//! 4. writes the rows by binary COPY, the batch's Merkle root in `ursa_audit_batches`, a signed checkpoint when
//!    one is due, and the new offsets row (next offset, generation, chain head, tree) — then commits.
//!
//! Starting offsets come from the offsets table; Kafka's committed offsets are advisory. A crash anywhere rolls
//! the whole batch back, and the next owner starts at the stored next offset: nothing lost, nothing twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::cell::{Cell, JsonRef, JsonText, PgType};
use crate::chain::{genesis, hash_from, row_hash};
use crate::checkpoint::{Checkpoint, Signer, origin};
use crate::ddl::{BASE_COLUMNS, quote_ident};
use crate::error::AuditError;
use crate::keys::KeyStore;
use crate::merkle::{self, Frontier, Hash, leaf_hash};
use crate::pool::Conn;
use crate::row::{Prepared, headers_json};
use crate::tables::{Table, Tables};

/// A partition as one writer holds it.
#[derive(Debug, Clone, Copy)]
pub struct Partition<'a> {
    /// The connector.
    pub connector: &'a str,
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The writer's generation.
    pub generation: i64,
}

/// When checkpoints are made, and with which key.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The signer (no checkpoints without one).
    pub signer: Option<Arc<Signer>>,
    /// The origin prefix: a partition's log is `<origin>/<topic>/<partition>`.
    pub origin: String,
    /// A checkpoint after this many batches...
    pub every_batches: i64,
    /// ...or this many milliseconds since the last one, whichever comes first.
    pub every_ms: i64,
}

/// A checkpoint that was committed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredCheckpoint {
    /// The connector.
    pub connector: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The number of rows it covers.
    pub tree_size: u64,
    /// The offset of its last row.
    pub last_offset: i64,
    /// The signed note.
    pub note: String,
}

/// What a committed batch did.
#[derive(Debug, Default)]
pub struct Committed {
    /// The stored next offset afterwards.
    pub next_offset: Option<i64>,
    /// Rows written (the rest were there already).
    pub written: usize,
    /// The checkpoint made with it.
    pub checkpoint: Option<StoredCheckpoint>,
    /// The columns its table has now, when it added some.
    pub columns: Option<HashMap<String, String>>,
    /// Writer schemas it stored.
    pub schemas: Vec<u32>,
}

/// Why a batch did not commit.
#[derive(Debug)]
pub enum WriteError {
    /// An error (retriable or not).
    Audit(AuditError),
    /// Data keys the batch sealed with were destroyed (`forget`) meanwhile: seal again with new ones.
    KeysErased(Vec<i64>),
}

impl From<AuditError> for WriteError {
    fn from(e: AuditError) -> WriteError {
        WriteError::Audit(e)
    }
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> WriteError {
        WriteError::Audit(e.into())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Takes the partition for `p.generation`: stores it unless a newer generation is stored (then: fenced).
pub async fn claim(client: &Client, schema: &str, p: &Partition<'_>) -> Result<(), AuditError> {
    let s = quote_ident(schema);
    let claimed = client
        .query_opt(
            &format!(
                "INSERT INTO {s}.ursa_audit_offsets (connector, topic, partition, generation) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (connector, topic, partition) DO UPDATE SET generation = EXCLUDED.generation, updated_at = now() \
                 WHERE {s}.ursa_audit_offsets.generation <= EXCLUDED.generation RETURNING generation"
            ),
            &[&p.connector, &p.topic, &p.partition, &p.generation],
        )
        .await?;
    if claimed.is_some() {
        return Ok(());
    }
    let theirs: i64 = client
        .query_one(
            &format!(
                "SELECT generation FROM {s}.ursa_audit_offsets WHERE connector = $1 AND topic = $2 AND partition = $3"
            ),
            &[&p.connector, &p.topic, &p.partition],
        )
        .await?
        .get(0);
    Err(AuditError::Fenced {
        topic: p.topic.to_owned(),
        partition: p.partition,
        ours: p.generation,
        theirs,
    })
}

/// The stored next offsets of `partitions` of `topic` (partitions never written are left out).
pub async fn next_offsets(
    client: &Client,
    schema: &str,
    connector: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<HashMap<i32, i64>, AuditError> {
    let s = quote_ident(schema);
    let rows = client
        .query(
            &format!(
                "SELECT partition, next_offset FROM {s}.ursa_audit_offsets WHERE connector = $1 AND topic = $2 \
                 AND partition = ANY($3) AND next_offset IS NOT NULL"
            ),
            &[&connector, &topic, &partitions],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

struct Locked {
    generation: i64,
    next_offset: Option<i64>,
    last_offset: Option<i64>,
    chain_head: Option<Vec<u8>>,
    frontier: Vec<u8>,
    batches_since: i32,
    last_checkpoint_ms: Option<i64>,
}

async fn lock(conn: &mut Conn<'_>, schema: &str, p: &Partition<'_>) -> Result<Locked, WriteError> {
    let s = quote_ident(schema);
    let sql = format!(
        "SELECT generation, next_offset, last_offset, chain_head, frontier, batches_since_checkpoint, last_checkpoint_ms \
         FROM {s}.ursa_audit_offsets WHERE connector = $1 AND topic = $2 AND partition = $3 FOR UPDATE"
    );
    let stmt = conn.prepare(&sql).await?;
    let client = conn.client();
    let key: [&(dyn ToSql + Sync); 3] = [&p.connector, &p.topic, &p.partition];
    let (_, row) = tokio::try_join!(client.batch_execute("BEGIN"), client.query_opt(&stmt, &key))?;
    let row = match row {
        Some(r) => r,
        None => {
            // Not claimed yet (or the row was removed): claim inside this transaction.
            client
                .execute(
                    &format!(
                        "INSERT INTO {s}.ursa_audit_offsets (connector, topic, partition, generation) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
                    ),
                    &[&p.connector, &p.topic, &p.partition, &p.generation],
                )
                .await?;
            client
                .query_one(&stmt, &[&p.connector, &p.topic, &p.partition])
                .await?
        }
    };
    let locked = Locked {
        generation: row.get(0),
        next_offset: row.get(1),
        last_offset: row.get(2),
        chain_head: row.get(3),
        frontier: row.get(4),
        batches_since: row.get(5),
        last_checkpoint_ms: row.get(6),
    };
    if locked.generation > p.generation {
        client.batch_execute("ROLLBACK").await?;
        return Err(AuditError::Fenced {
            topic: p.topic.to_owned(),
            partition: p.partition,
            ours: p.generation,
            theirs: locked.generation,
        }
        .into());
    }
    Ok(locked)
}

fn sign(policy: &Policy, p: &Partition<'_>, frontier: &Frontier) -> Option<(Checkpoint, String)> {
    let signer = policy.signer.as_ref()?;
    let cp = Checkpoint {
        origin: origin(&policy.origin, p.topic, p.partition),
        size: frontier.size(),
        root: frontier.root(),
    };
    let note = signer.sign(&cp.text());
    Some((cp, note))
}

async fn insert_checkpoint(
    client: &Client,
    schema: &str,
    p: &Partition<'_>,
    cp: &Checkpoint,
    last_offset: i64,
    note: &str,
) -> Result<StoredCheckpoint, AuditError> {
    let s = quote_ident(schema);
    let size = i64::try_from(cp.size).unwrap_or(i64::MAX);
    client
        .execute(
            &format!(
                "INSERT INTO {s}.ursa_audit_checkpoints (connector, topic, partition, tree_size, last_offset, root_hash, note) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[&p.connector, &p.topic, &p.partition, &size, &last_offset, &&cp.root[..], &note],
        )
        .await?;
    Ok(StoredCheckpoint {
        connector: p.connector.to_owned(),
        topic: p.topic.to_owned(),
        partition: p.partition,
        tree_size: cp.size,
        last_offset,
        note: note.to_owned(),
    })
}

/// Everything a batch needs besides its rows.
pub struct Context<'a> {
    /// The schema of the audit tables.
    pub schema: &'a str,
    /// The tables.
    pub tables: &'a Tables,
    /// The data keys, when PII is sealed.
    pub keys: Option<&'a KeyStore>,
    /// Checkpoints.
    pub policy: &'a Policy,
    /// Writer schemas already stored.
    pub stored_schemas: &'a HashSet<u32>,
}

/// Writes `rows` (of one partition, in offset order) as one transaction; `gap_reason(from, to)` says why
/// offsets `from..to` never reached the sink.
pub async fn write(
    conn: &mut Conn<'_>,
    ctx: &Context<'_>,
    p: &Partition<'_>,
    table: &Table,
    rows: &[Prepared],
    gap_reason: &(dyn Fn(i64, i64) -> String + Sync),
) -> Result<Committed, WriteError> {
    let s = quote_ident(ctx.schema);
    // Prepared before the transaction: the statements pipelined with COMMIT must be sent in order, and an
    // unprepared one is sent only after its own prepare round trip (COMMIT would overtake it).
    let insert_batch = conn
        .prepare(&format!(
            "INSERT INTO {s}.ursa_audit_batches (connector, topic, partition, first_offset, last_offset, row_count, \
             tree_size, merkle_root, chain_head, generation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .await?;
    let update = conn
        .prepare(&format!(
            "UPDATE {s}.ursa_audit_offsets SET generation = $4, next_offset = $5, first_offset = COALESCE(first_offset, $6), \
             last_offset = $7, chain_head = $8, tree_size = $9, frontier = $10, batches_since_checkpoint = $11, \
             last_checkpoint_ms = $12, updated_at = now() WHERE connector = $1 AND topic = $2 AND partition = $3"
        ))
        .await?;
    let locked = lock(conn, ctx.schema, p).await?;
    let client = conn.client();

    // Keys sealed with must still be live (and stay so until commit).
    if let Some(keys) = ctx.keys {
        let mut ids: Vec<i64> = rows.iter().filter_map(|r| r.key_id).collect();
        if !ids.is_empty() {
            ids.sort_unstable();
            ids.dedup();
            let mut subjects: Vec<String> = rows
                .iter()
                .filter(|r| r.key_id.is_some())
                .filter_map(|r| r.subject.clone())
                .collect();
            subjects.sort();
            subjects.dedup();
            let erased = keys.lock_and_check(client, &subjects, &ids).await?;
            if !erased.is_empty() {
                client.batch_execute("ROLLBACK").await?;
                return Err(WriteError::KeysErased(erased));
            }
        }
    }

    let start = match locked.next_offset {
        Some(next) => rows
            .iter()
            .position(|r| r.offset >= next)
            .unwrap_or(rows.len()),
        None => 0,
    };
    let rows = &rows[start..];
    if rows.is_empty() {
        client.batch_execute("ROLLBACK").await?;
        return Ok(Committed {
            next_offset: locked.next_offset,
            ..Committed::default()
        });
    }

    // Gaps, before and inside the batch.
    let mut gaps = Vec::new();
    let mut expected = locked.next_offset;
    for r in rows {
        match expected {
            Some(e) if r.offset > e => gaps.push((e, r.offset)),
            Some(e) if r.offset < e => {
                return Err(AuditError::Corrupt(format!(
                    "{}-{}: offset {} after {} in one batch",
                    p.topic,
                    p.partition,
                    r.offset,
                    e - 1
                ))
                .into());
            }
            _ => {}
        }
        expected = Some(r.offset + 1);
    }

    // The chain and the trees.
    let mut prev: Hash = match &locked.chain_head {
        Some(h) => hash_from(h).ok_or_else(|| {
            AuditError::Corrupt(format!(
                "{}-{}: the stored chain head is not 32 bytes",
                p.topic, p.partition
            ))
        })?,
        None => genesis(p.topic, p.partition),
    };
    let mut frontier = Frontier::from_bytes(&locked.frontier).ok_or_else(|| {
        AuditError::Corrupt(format!(
            "{}-{}: the stored Merkle frontier is malformed",
            p.topic, p.partition
        ))
    })?;
    let mut prev_offset = locked.last_offset;
    let mut scratch = Vec::with_capacity(512);
    let mut hashes = Vec::with_capacity(rows.len());
    let mut leaves = Vec::with_capacity(rows.len());
    for r in rows {
        let h = row_hash(
            &prev,
            &r.chain_row(p.topic, p.partition, prev_offset),
            &mut scratch,
        );
        let leaf = leaf_hash(&h);
        frontier.push(leaf);
        leaves.push(leaf);
        hashes.push(h);
        prev = h;
        prev_offset = Some(r.offset);
    }
    let batch_root = merkle::root(&leaves);

    // New writer schemas: their text, and their columns.
    let mut infos = Vec::new();
    let mut seen = HashSet::new();
    for r in rows {
        if let Some(info) = &r.info {
            if seen.insert(info.id) {
                infos.push(Arc::clone(info));
            }
        }
    }
    let mut committed = Committed::default();
    for info in &infos {
        if !ctx.stored_schemas.contains(&info.id) {
            let id = i32::try_from(info.id).map_err(|_| {
                AuditError::Corrupt(format!("schema id {} is out of range", info.id))
            })?;
            client
                .execute(
                    &format!(
                        "INSERT INTO {s}.ursa_audit_schemas (schema_id, schema) VALUES ($1, $2) ON CONFLICT (schema_id) DO NOTHING"
                    ),
                    &[&id, &info.text],
                )
                .await?;
            committed.schemas.push(info.id);
        }
        if let Some(columns) = ctx
            .tables
            .add_columns(client, table, info.mapping.columns(), Some(info.id))
            .await?
        {
            committed.columns = Some(columns);
        }
    }

    // The rows.
    let mut typed: Vec<(String, PgType)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for info in &infos {
        for c in info.mapping.columns() {
            if !index.contains_key(&c.name) {
                index.insert(c.name.clone(), typed.len());
                typed.push((c.name.clone(), c.pg));
            }
        }
    }
    let maps: HashMap<u32, Vec<Option<usize>>> = infos
        .iter()
        .map(|info| {
            let mut m = vec![None; typed.len()];
            for (i, c) in info.mapping.columns().iter().enumerate() {
                if let Some(&at) = index.get(&c.name) {
                    m[at] = Some(i);
                }
            }
            (info.id, m)
        })
        .collect();
    let mut names: Vec<String> = BASE_COLUMNS.iter().map(|(n, _)| quote_ident(n)).collect();
    let mut types: Vec<Type> = BASE_COLUMNS.iter().map(|(_, t)| t.pg()).collect();
    for (n, t) in &typed {
        names.push(quote_ident(n));
        types.push(t.pg());
    }
    let copy_sql = format!(
        "COPY {} ({}) FROM STDIN BINARY",
        table.qualified,
        names.join(", ")
    );
    let null = Cell::Null;
    {
        let copy = client.copy_in(&copy_sql).await?;
        let writer = BinaryCopyInWriter::new(copy, &types);
        tokio::pin!(writer);
        for (r, h) in rows.iter().zip(&hashes) {
            let timestamp = r
                .timestamp
                .and_then(Cell::timestamp_from_unix_millis)
                .unwrap_or(Cell::Null);
            let headers = headers_json(&r.headers);
            let schema_id = r.schema_id.and_then(|i| i32::try_from(i).ok());
            let value_json = r.value.as_ref().map(|_| JsonText(&r.value_json));
            let key = r.key.as_deref();
            let value = r.value.as_deref();
            let subject = r.subject.as_deref();
            let hash = &h[..];
            let headers = JsonRef(&headers);
            let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(types.len());
            values.push(&p.topic);
            values.push(&p.partition);
            values.push(&r.offset);
            values.push(&timestamp);
            values.push(&key);
            values.push(&headers);
            values.push(&schema_id);
            values.push(&value);
            values.push(&value_json);
            values.push(&subject);
            values.push(&hash);
            match r.info.as_ref().and_then(|i| maps.get(&i.id)) {
                Some(m) => {
                    for slot in m {
                        values.push(match slot {
                            Some(i) => r.cells.get(*i).unwrap_or(&null),
                            None => &null,
                        });
                    }
                }
                None => values.extend(std::iter::repeat_n(
                    &null as &(dyn ToSql + Sync),
                    typed.len(),
                )),
            }
            writer.as_mut().write(&values).await?;
        }
        let n = writer.finish().await?;
        if n != rows.len() as u64 {
            return Err(
                AuditError::Corrupt(format!("COPY wrote {n} rows of {}", rows.len())).into(),
            );
        }
    }

    for (from, to) in &gaps {
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.ursa_audit_gaps (connector, topic, partition, from_offset, to_offset, reason) \
                     VALUES ($1, $2, $3, $4, $5, $6)"
                ),
                &[&p.connector, &p.topic, &p.partition, from, to, &gap_reason(*from, *to)],
            )
            .await?;
    }

    let first = rows[0].offset;
    let last = rows[rows.len() - 1].offset;
    let now = now_ms();
    let mut batches_since = locked.batches_since.saturating_add(1);
    let mut last_cp = locked.last_checkpoint_ms;
    let due = i64::from(batches_since) >= ctx.policy.every_batches
        || last_cp.is_none_or(|t| now - t >= ctx.policy.every_ms);
    if due {
        if let Some((cp, note)) = sign(ctx.policy, p, &frontier) {
            committed.checkpoint =
                Some(insert_checkpoint(client, ctx.schema, p, &cp, last, &note).await?);
            batches_since = 0;
            last_cp = Some(now);
        }
    }

    let row_count = i32::try_from(rows.len()).unwrap_or(i32::MAX);
    let tree_size = i64::try_from(frontier.size()).unwrap_or(i64::MAX);
    let next = last + 1;
    let frontier_bytes = frontier.to_bytes();
    let head = &prev[..];
    let root = &batch_root[..];
    let batch_params: [&(dyn ToSql + Sync); 10] = [
        &p.connector,
        &p.topic,
        &p.partition,
        &first,
        &last,
        &row_count,
        &tree_size,
        &root,
        &head,
        &p.generation,
    ];
    let update_params: [&(dyn ToSql + Sync); 12] = [
        &p.connector,
        &p.topic,
        &p.partition,
        &p.generation,
        &next,
        &first,
        &last,
        &head,
        &tree_size,
        &frontier_bytes,
        &batches_since,
        &last_cp,
    ];
    // Pipelined, in this order: prepared statements are sent when first polled, and `try_join!` polls in order.
    let (_, updated, _) = tokio::try_join!(
        client.execute(&insert_batch, &batch_params),
        client.execute(&update, &update_params),
        client.batch_execute("COMMIT"),
    )?;
    if updated != 1 {
        return Err(AuditError::Corrupt(format!(
            "{}-{}: the offsets row was not updated (the commit did not include it)",
            p.topic, p.partition
        ))
        .into());
    }
    committed.next_offset = Some(next);
    committed.written = rows.len();
    Ok(committed)
}

/// Makes a checkpoint of what is not checkpointed yet, if the interval has passed (or `force`): for partitions
/// that went idle after their last batch, and at close.
pub async fn checkpoint(
    conn: &mut Conn<'_>,
    schema: &str,
    policy: &Policy,
    p: &Partition<'_>,
    force: bool,
) -> Result<Option<StoredCheckpoint>, WriteError> {
    if policy.signer.is_none() {
        return Ok(None);
    }
    let locked = lock(conn, schema, p).await?;
    let client = conn.client();
    let now = now_ms();
    let due = locked.batches_since > 0
        && (force
            || locked
                .last_checkpoint_ms
                .is_none_or(|t| now - t >= policy.every_ms));
    let (Some(last), true) = (locked.last_offset, due) else {
        client.batch_execute("ROLLBACK").await?;
        return Ok(None);
    };
    let frontier = Frontier::from_bytes(&locked.frontier).ok_or_else(|| {
        AuditError::Corrupt(format!(
            "{}-{}: the stored Merkle frontier is malformed",
            p.topic, p.partition
        ))
    })?;
    let Some((cp, note)) = sign(policy, p, &frontier) else {
        client.batch_execute("ROLLBACK").await?;
        return Ok(None);
    };
    let stored = insert_checkpoint(client, schema, p, &cp, last, &note).await?;
    let s = quote_ident(schema);
    client
        .execute(
            &format!(
                "UPDATE {s}.ursa_audit_offsets SET batches_since_checkpoint = 0, last_checkpoint_ms = $4, updated_at = now() \
                 WHERE connector = $1 AND topic = $2 AND partition = $3"
            ),
            &[&p.connector, &p.topic, &p.partition, &now],
        )
        .await?;
    client.batch_execute("COMMIT").await?;
    Ok(Some(stored))
}
