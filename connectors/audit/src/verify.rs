//! `ursa audit verify`: recomputes everything the audit store claims, partition by partition, and reports the
//! first break of each with its table, partition and offset.
//!
//! For every row, in offset order: the chain hash from the stored columns (a mismatch: the row was edited, or
//! moved); the offsets are contiguous, or the gap is recorded in `ursa_audit_gaps` (a deleted row breaks this,
//! and its successor's hash, which covers the previous offset); the value's `jsonb` and typed columns are what
//! the stored value bytes decode to (an edited column that the hash does not cover). For every batch: its rows,
//! Merkle root and chain head. For every checkpoint, stored or external: its signature (by the verifier key),
//! its origin, and the root of the partition's tree at its size — which catches a superuser who edits, deletes,
//! reorders or re-chains rows with the trigger disabled, and, with an external checkpoint, one who truncates
//! the partition and its bookkeeping too. Then the offsets row (chain head, tree size), the erasure log's chain,
//! and the append-only triggers.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Client;
use ursa_avro::wire::HEADER_LEN;

use crate::cell::{Cell, PG_EPOCH_MICROS};
use crate::chain::{ChainRow, genesis, row_hash};
use crate::checkpoint::{Checkpoint, Verifier};
use crate::ddl::{BASE_COLUMNS, quote_ident};
use crate::error::AuditError;
use crate::keys::{erasure_genesis, erasure_hash};
use crate::merkle::{self, Frontier, Hash, hex, leaf_hash};
use crate::row::{WriterInfo, headers_from_json};
use crate::schema_map::pg_json;
use crate::writer::StoredCheckpoint;

/// Rows read per query.
const PAGE: i64 = 2000;

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// The schema of the audit tables.
    pub schema: String,
    /// Only this connector's tables (all when `None`).
    pub connector: Option<String>,
    /// The checkpoint signer's verifier key (checkpoints are not trusted without it).
    pub verifier: Option<Verifier>,
    /// Checkpoints held outside the database (the published file).
    pub external: Vec<StoredCheckpoint>,
}

/// A break: where the store stops being what it claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The connector.
    pub connector: String,
    /// The table (`""` for the erasure log).
    pub table: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: Option<i32>,
    /// The offset.
    pub offset: Option<i64>,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table {}",
            if self.table.is_empty() {
                "-"
            } else {
                &self.table
            }
        )?;
        if let Some(p) = self.partition {
            write!(f, " partition {p}")?;
        }
        if let Some(o) = self.offset {
            write!(f, " offset {o}")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// What was checked of one partition.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PartitionSummary {
    /// The connector.
    pub connector: String,
    /// The table.
    pub table: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Rows checked.
    pub rows: u64,
    /// The first and last offsets.
    pub offsets: Option<(i64, i64)>,
    /// Batches checked.
    pub batches: usize,
    /// Stored checkpoints checked.
    pub checkpoints: usize,
    /// External checkpoints checked.
    pub external_checkpoints: usize,
    /// Recorded gaps.
    pub gaps: usize,
}

/// The outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Per partition.
    pub partitions: Vec<PartitionSummary>,
    /// The first break of each partition (and of the erasure log, the triggers).
    pub breaks: Vec<Break>,
    /// Things worth knowing that are not breaks.
    pub notes: Vec<String>,
}

impl Report {
    /// Whether nothing broke.
    pub fn ok(&self) -> bool {
        self.breaks.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.partitions {
            write!(
                f,
                "checked {} partition {}: {} rows",
                p.table, p.partition, p.rows
            )?;
            if let Some((a, b)) = p.offsets {
                write!(f, " (offsets {a}..={b})")?;
            }
            writeln!(
                f,
                ", {} batches, {} checkpoints ({} external), {} gaps",
                p.batches, p.checkpoints, p.external_checkpoints, p.gaps
            )?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        for b in &self.breaks {
            writeln!(f, "BREAK: {b}")?;
        }
        if self.ok() {
            writeln!(f, "verified: no break")
        } else {
            writeln!(f, "{} break(s)", self.breaks.len())
        }
    }
}

/// Reads a published checkpoint file (one JSON object per line, as the sink appends them).
pub fn read_checkpoint_file(text: &str) -> Result<Vec<StoredCheckpoint>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<StoredCheckpoint>(l).map_err(|e| format!("line {}: {e}", i + 1))
        })
        .collect()
}

struct Signed {
    size: u64,
    root: Hash,
    external: bool,
    last_offset: i64,
}

/// Verifies the audit store.
pub async fn verify(client: &Client, options: &Options) -> Result<Report, AuditError> {
    let s = quote_ident(&options.schema);
    client.batch_execute("SET TimeZone = 'UTC'").await?;
    let mut report = Report::default();
    if options.verifier.is_none() {
        report.notes.push(
            "no verifier key given (--vkey): checkpoint signatures and roots are not checked"
                .into(),
        );
    }
    let tables = client
        .query(
            &format!(
                "SELECT connector, topic, table_name FROM {s}.ursa_audit_tables \
                 WHERE $1::text IS NULL OR connector = $1 ORDER BY connector, topic"
            ),
            &[&options.connector],
        )
        .await?;
    let mut schemas: HashMap<u32, Arc<WriterInfo>> = HashMap::new();
    for t in &tables {
        let (connector, topic, table): (String, String, String) = (t.get(0), t.get(1), t.get(2));
        triggers(
            client,
            &options.schema,
            &connector,
            &topic,
            &table,
            &mut report,
        )
        .await?;
        let partitions: Vec<i32> = client
            .query(
                &format!(
                    "SELECT partition FROM {s}.ursa_audit_offsets WHERE connector = $1 AND topic = $2 \
                     UNION SELECT DISTINCT kafka_partition FROM {s}.{} ORDER BY 1",
                    quote_ident(&table)
                ),
                &[&connector, &topic],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for partition in partitions {
            let mut check = PartitionCheck {
                client,
                options,
                s: &s,
                connector: &connector,
                topic: &topic,
                table: &table,
                partition,
                schemas: &mut schemas,
                summary: PartitionSummary {
                    connector: connector.clone(),
                    table: table.clone(),
                    topic: topic.clone(),
                    partition,
                    ..PartitionSummary::default()
                },
            };
            let outcome = check.run().await?;
            let summary = check.summary;
            if let Err((offset, what)) = outcome {
                report.breaks.push(Break {
                    connector: connector.clone(),
                    table: table.clone(),
                    topic: topic.clone(),
                    partition: Some(partition),
                    offset,
                    what,
                });
            }
            if summary.checkpoints + summary.external_checkpoints == 0 && summary.rows > 0 {
                report.notes.push(format!(
                    "{table} partition {partition} has no checkpoint: its rows are only as safe as the database"
                ));
            }
            report.partitions.push(summary);
        }
    }
    erasures(client, &s, &mut report).await?;
    Ok(report)
}

async fn triggers(
    client: &Client,
    schema: &str,
    connector: &str,
    topic: &str,
    table: &str,
    report: &mut Report,
) -> Result<(), AuditError> {
    let rows = client
        .query(
            "SELECT t.tgname::text, t.tgenabled::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema, &table],
        )
        .await?;
    let state: HashMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for name in ["ursa_audit_append_only", "ursa_audit_no_truncate"] {
        let what = match state.get(name).map(String::as_str) {
            None => Some(format!(
                "the trigger {name} is missing: the table is not append-only"
            )),
            Some("D") => Some(format!(
                "the trigger {name} is disabled: the table is not append-only"
            )),
            _ => None,
        };
        if let Some(what) = what {
            report.breaks.push(Break {
                connector: connector.to_owned(),
                table: table.to_owned(),
                topic: topic.to_owned(),
                partition: None,
                offset: None,
                what,
            });
        }
    }
    Ok(())
}

async fn erasures(client: &Client, s: &str, report: &mut Report) -> Result<(), AuditError> {
    let rows = client
        .query(
            &format!(
                "SELECT seq, subject, keys_destroyed, erased_by, erased_at_ms, reason, hash FROM {s}.ursa_audit_erasures ORDER BY seq"
            ),
            &[],
        )
        .await?;
    let mut prev = erasure_genesis();
    for (expect, r) in (1i64..).zip(rows.iter()) {
        let seq: i64 = r.get(0);
        let h = erasure_hash(&prev, seq, r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        let stored: Vec<u8> = r.get(6);
        if seq != expect || stored != h {
            report.breaks.push(Break {
                connector: String::new(),
                table: "ursa_audit_erasures".into(),
                topic: String::new(),
                partition: None,
                offset: Some(seq),
                what: if seq != expect {
                    format!("erasure {expect} is missing")
                } else {
                    "the erasure record was edited (its hash does not match)".into()
                },
            });
            return Ok(());
        }
        prev = h;
    }
    Ok(())
}

struct PartitionCheck<'a> {
    client: &'a Client,
    options: &'a Options,
    s: &'a str,
    connector: &'a str,
    topic: &'a str,
    table: &'a str,
    partition: i32,
    schemas: &'a mut HashMap<u32, Arc<WriterInfo>>,
    summary: PartitionSummary,
}

type Outcome = Result<(), (Option<i64>, String)>;

struct Batch {
    first: i64,
    last: i64,
    rows: i32,
    tree_size: i64,
    root: Vec<u8>,
    head: Vec<u8>,
}

impl PartitionCheck<'_> {
    async fn run(&mut self) -> Result<Outcome, AuditError> {
        let s = self.s;
        let key: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&self.connector, &self.topic, &self.partition];
        let gaps: BTreeMap<i64, (i64, String)> = self
            .client
            .query(
                &format!(
                    "SELECT from_offset, to_offset, reason FROM {s}.ursa_audit_gaps \
                     WHERE connector = $1 AND topic = $2 AND partition = $3"
                ),
                &key,
            )
            .await?
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        self.summary.gaps = gaps.len();
        let batches: Vec<Batch> = self
            .client
            .query(
                &format!(
                    "SELECT first_offset, last_offset, row_count, tree_size, merkle_root, chain_head FROM {s}.ursa_audit_batches \
                     WHERE connector = $1 AND topic = $2 AND partition = $3 ORDER BY first_offset"
                ),
                &key,
            )
            .await?
            .iter()
            .map(|r| Batch {
                first: r.get(0),
                last: r.get(1),
                rows: r.get(2),
                tree_size: r.get(3),
                root: r.get(4),
                head: r.get(5),
            })
            .collect();
        let stored_cps: Vec<(i64, i64, Vec<u8>, String)> = self
            .client
            .query(
                &format!(
                    "SELECT tree_size, last_offset, root_hash, note FROM {s}.ursa_audit_checkpoints \
                     WHERE connector = $1 AND topic = $2 AND partition = $3 ORDER BY tree_size"
                ),
                &key,
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        let offsets = self
            .client
            .query_opt(
                &format!(
                    "SELECT last_offset, chain_head, tree_size FROM {s}.ursa_audit_offsets \
                     WHERE connector = $1 AND topic = $2 AND partition = $3"
                ),
                &key,
            )
            .await?;

        // Checkpoints: signature, origin, and what they say, before any row is read.
        let mut signed: Vec<Signed> = Vec::new();
        if let Some(v) = &self.options.verifier {
            for (size, last, root, note) in &stored_cps {
                match self.open_checkpoint(v, note) {
                    Ok(cp)
                        if i64::try_from(cp.size).ok() == Some(*size)
                            && cp.root[..] == root[..] =>
                    {
                        signed.push(Signed {
                            size: cp.size,
                            root: cp.root,
                            external: false,
                            last_offset: *last,
                        });
                    }
                    Ok(_) => {
                        return Ok(Err((
                            Some(*last),
                            format!(
                                "the stored checkpoint at tree size {size} does not say what its row says"
                            ),
                        )));
                    }
                    Err(e) => {
                        return Ok(Err((
                            Some(*last),
                            format!("stored checkpoint at tree size {size}: {e}"),
                        )));
                    }
                }
            }
            for ext in self.options.external.iter().filter(|c| {
                c.connector == self.connector
                    && c.topic == self.topic
                    && c.partition == self.partition
            }) {
                match self.open_checkpoint(v, &ext.note) {
                    Ok(cp) => signed.push(Signed {
                        size: cp.size,
                        root: cp.root,
                        external: true,
                        last_offset: ext.last_offset,
                    }),
                    Err(e) => {
                        return Ok(Err((
                            Some(ext.last_offset),
                            format!("external checkpoint at tree size {}: {e}", ext.tree_size),
                        )));
                    }
                }
            }
        }
        signed.sort_by_key(|c| c.size);
        self.summary.checkpoints = if self.options.verifier.is_some() {
            signed.iter().filter(|c| !c.external).count()
        } else {
            stored_cps.len()
        };
        self.summary.external_checkpoints = signed.iter().filter(|c| c.external).count();
        self.summary.batches = batches.len();

        // The rows.
        let mut prev: Hash = genesis(self.topic, self.partition);
        let mut prev_offset: Option<i64> = None;
        let mut frontier = Frontier::new();
        let mut batch_at = 0usize;
        let mut batch_leaves: Vec<Hash> = Vec::new();
        let mut cp_at = 0usize;
        let mut since: Option<i64> = None;
        let mut scratch = Vec::with_capacity(512);
        let mut after = i64::MIN;
        let table = format!("{s}.{}", quote_ident(self.table));
        loop {
            let rows = self
                .client
                .query(
                    &format!(
                        "SELECT * FROM {table} WHERE kafka_partition = $1 AND kafka_offset > $2 ORDER BY kafka_offset LIMIT {PAGE}"
                    ),
                    &[&self.partition, &after],
                )
                .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let offset: i64 = row.try_get("kafka_offset")?;
                after = offset;
                // Contiguity.
                if let Some(p) = prev_offset {
                    if offset != p + 1 {
                        match gaps.get(&(p + 1)) {
                            Some((to, _)) if *to == offset => {}
                            _ => {
                                return Ok(Err((
                                    Some(offset),
                                    format!(
                                        "offsets {}..{} are missing and no gap is recorded: rows were deleted",
                                        p + 1,
                                        offset
                                    ),
                                )));
                            }
                        }
                    }
                }
                let cells = match Fetched::new(row) {
                    Ok(c) => c,
                    Err(e) => return Ok(Err((Some(offset), e))),
                };
                // The chain.
                let chained = match self.chain_row(&cells, offset, prev_offset) {
                    Ok(c) => c,
                    Err(e) => return Ok(Err((Some(offset), e))),
                };
                let h = row_hash(
                    &prev,
                    &chained.row(self.topic, self.partition),
                    &mut scratch,
                );
                if cells.hash.as_deref() != Some(&h[..]) {
                    return Ok(Err((
                        Some(offset),
                        "the row's hash does not match its contents: the row was edited, moved or re-chained".into(),
                    )));
                }
                // Derived columns.
                if let Err(e) = self.derived(&cells, &chained).await? {
                    return Ok(Err((Some(offset), e)));
                }
                let leaf = leaf_hash(&h);
                frontier.push(leaf);
                prev = h;
                prev_offset = Some(offset);
                self.summary.rows += 1;
                self.summary.offsets = Some(match self.summary.offsets {
                    None => (offset, offset),
                    Some((a, _)) => (a, offset),
                });
                // Batches.
                match batches.get(batch_at) {
                    Some(b) if (b.first..=b.last).contains(&offset) => {
                        batch_leaves.push(leaf);
                        if offset == b.last {
                            if usize::try_from(b.rows).ok() != Some(batch_leaves.len())
                                || b.root[..] != merkle::root(&batch_leaves)[..]
                                || b.head[..] != h[..]
                                || u64::try_from(b.tree_size).ok() != Some(frontier.size())
                            {
                                return Ok(Err((
                                    Some(b.first),
                                    format!(
                                        "batch {}..={}: its rows, Merkle root or chain head do not match the rows",
                                        b.first, b.last
                                    ),
                                )));
                            }
                            batch_leaves.clear();
                            batch_at += 1;
                        }
                    }
                    Some(b) if offset > b.last => {
                        return Ok(Err((
                            Some(b.first),
                            format!(
                                "batch {}..={} lost rows: rows were deleted",
                                b.first, b.last
                            ),
                        )));
                    }
                    _ => {
                        return Ok(Err((
                            Some(offset),
                            "the row is in no batch: rows were inserted".into(),
                        )));
                    }
                }
                // Checkpoints at this size.
                while let Some(cp) = signed.get(cp_at) {
                    if cp.size > frontier.size() {
                        break;
                    }
                    if cp.size < frontier.size() || cp.root != frontier.root() {
                        return Ok(Err((
                            Some(cp.last_offset),
                            format!(
                                "the {} checkpoint at tree size {} (signed) does not match the rows: a row at offsets \
                                 {}..={} was edited, deleted, reordered or re-chained",
                                if cp.external { "external" } else { "stored" },
                                cp.size,
                                since
                                    .map(|o| o + 1)
                                    .or(self.summary.offsets.map(|(a, _)| a))
                                    .unwrap_or(offset),
                                cp.last_offset
                            ),
                        )));
                    }
                    since = Some(offset);
                    cp_at += 1;
                }
            }
        }
        if let Some(b) = batches.get(batch_at) {
            return Ok(Err((
                Some(b.first),
                format!(
                    "batch {}..={} has rows missing: the partition was truncated",
                    b.first, b.last
                ),
            )));
        }
        if let Some(cp) = signed.get(cp_at) {
            return Ok(Err((
                prev_offset.map(|o| o + 1).or(Some(cp.last_offset)),
                format!(
                    "the {} checkpoint says {} rows up to offset {}, only {} remain: the partition was truncated",
                    if cp.external { "external" } else { "stored" },
                    cp.size,
                    cp.last_offset,
                    frontier.size()
                ),
            )));
        }
        if let Some(o) = offsets {
            let last: Option<i64> = o.get(0);
            let head: Option<Vec<u8>> = o.get(1);
            let size: i64 = o.get(2);
            if last != prev_offset
                || head.as_deref() != prev_offset.map(|_| &prev[..])
                || u64::try_from(size).ok() != Some(frontier.size())
            {
                return Ok(Err((
                    prev_offset.map(|o| o + 1),
                    format!(
                        "the offsets row says the chain ends at offset {} with head {} ({} rows); the rows end at {} \
                         ({} rows): the partition was truncated or its bookkeeping edited",
                        last.map_or_else(|| "-".into(), |l| l.to_string()),
                        head.as_deref().map_or_else(|| "-".into(), hex),
                        size,
                        prev_offset.map_or_else(|| "-".into(), |l| l.to_string()),
                        frontier.size()
                    ),
                )));
            }
        }
        Ok(Ok(()))
    }

    fn open_checkpoint(&self, v: &Verifier, note: &str) -> Result<Checkpoint, String> {
        let text = v.open(note).map_err(|e| e.to_string())?;
        let cp = Checkpoint::parse(text).map_err(|e| e.to_string())?;
        let suffix = format!("/{}/{}", self.topic, self.partition);
        if !cp.origin.ends_with(&suffix) {
            return Err(format!(
                "its origin {} is not this partition's log",
                cp.origin
            ));
        }
        Ok(cp)
    }

    fn chain_row(
        &self,
        c: &Fetched,
        offset: i64,
        prev_offset: Option<i64>,
    ) -> Result<Chained, String> {
        if c.topic.as_deref() != Some(self.topic) {
            return Err(format!("kafka_topic is {:?}, not {}", c.topic, self.topic));
        }
        let timestamp = match c.timestamp {
            None => None,
            Some(pg) => {
                let us = pg
                    .checked_add(PG_EPOCH_MICROS)
                    .ok_or("kafka_timestamp is out of range")?;
                if us % 1000 != 0 {
                    return Err("kafka_timestamp has sub-millisecond digits: it was edited".into());
                }
                Some(us / 1000)
            }
        };
        let headers = headers_from_json(&c.headers).ok_or_else(|| {
            "kafka_headers is not the sink's header form: it was edited".to_string()
        })?;
        let schema_id = match c.schema_id {
            None => None,
            Some(i) => Some(u32::try_from(i).map_err(|_| "kafka_schema_id is negative")?),
        };
        Ok(Chained {
            offset,
            prev_offset,
            timestamp,
            key: c.key.clone(),
            headers,
            schema_id,
            value: c.value.clone(),
            subject: c.subject.clone(),
        })
    }

    async fn info(&mut self, id: u32) -> Result<Result<Arc<WriterInfo>, String>, AuditError> {
        if let Some(i) = self.schemas.get(&id) {
            return Ok(Ok(Arc::clone(i)));
        }
        let sid = i32::try_from(id).unwrap_or(-1);
        let row = self
            .client
            .query_opt(
                &format!(
                    "SELECT schema FROM {}.ursa_audit_schemas WHERE schema_id = $1",
                    self.s
                ),
                &[&sid],
            )
            .await?;
        let Some(row) = row else {
            return Ok(Err(format!(
                "writer schema {id} is not in ursa_audit_schemas"
            )));
        };
        match WriterInfo::parse(id, &row.get::<_, String>(0)) {
            Ok(info) => {
                let info = Arc::new(info);
                self.schemas.insert(id, Arc::clone(&info));
                Ok(Ok(info))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// The value's `jsonb` and the typed columns against the stored value bytes.
    async fn derived(
        &mut self,
        c: &Fetched,
        chained: &Chained,
    ) -> Result<Result<(), String>, AuditError> {
        let (Some(value), Some(id)) = (&chained.value, chained.schema_id) else {
            // A null value has no JSON; a value of another format is not re-derived (its converter is unknown).
            if chained.value.is_none() && c.value_json.is_some() {
                return Ok(Err("audit_value_json is set for a null value".into()));
            }
            return Ok(c.typed_all_null());
        };
        let info = match self.info(id).await? {
            Ok(i) => i,
            Err(e) => return Ok(Err(e)),
        };
        let datum = value.get(HEADER_LEN..).unwrap_or_default();
        let set = info.stored_set();
        let json = match ursa_avro::value::decode_json(set, set.last_root(), datum) {
            Ok(j) => pg_json(j),
            Err(e) => {
                return Ok(Err(format!(
                    "the stored value does not decode with schema {id}: {e}"
                )));
            }
        };
        if c.value_json.as_ref() != Some(&json) {
            return Ok(Err(
                "audit_value_json does not match the stored value bytes: it was edited".into(),
            ));
        }
        let cells = match info.mapping.cells(set, datum) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Err(format!(
                    "the stored value does not decode with schema {id}: {e}"
                )));
            }
        };
        let mut mine = std::collections::HashSet::new();
        for (col, cell) in info.mapping.columns().iter().zip(&cells) {
            mine.insert(col.name.as_str());
            let stored = c.typed.get(&col.name).unwrap_or(&Cell::Null);
            if stored != cell {
                return Ok(Err(format!(
                    "column {} does not match the stored value bytes: it was edited",
                    quote_ident(&col.name)
                )));
            }
        }
        for (name, cell) in &c.typed {
            if !mine.contains(name.as_str()) && !cell.is_null() {
                return Ok(Err(format!(
                    "column {} is set, but writer schema {id} has no such field: it was edited",
                    quote_ident(name)
                )));
            }
        }
        Ok(Ok(()))
    }
}

struct Chained {
    offset: i64,
    prev_offset: Option<i64>,
    timestamp: Option<i64>,
    key: Option<Vec<u8>>,
    headers: Vec<ursa_connect::Header>,
    schema_id: Option<u32>,
    value: Option<Vec<u8>>,
    subject: Option<String>,
}

impl Chained {
    fn row<'a>(&'a self, topic: &'a str, partition: i32) -> ChainRow<'a> {
        ChainRow {
            topic,
            partition,
            offset: self.offset,
            prev_offset: self.prev_offset,
            timestamp: self.timestamp,
            key: self.key.as_deref(),
            headers: &self.headers,
            schema_id: self.schema_id,
            value: self.value.as_deref(),
            subject: self.subject.as_deref(),
        }
    }
}

/// One stored row, by column.
struct Fetched {
    topic: Option<String>,
    timestamp: Option<i64>,
    key: Option<Vec<u8>>,
    headers: Value,
    schema_id: Option<i32>,
    value: Option<Vec<u8>>,
    value_json: Option<Value>,
    subject: Option<String>,
    hash: Option<Vec<u8>>,
    typed: HashMap<String, Cell>,
}

impl Fetched {
    fn new(row: &tokio_postgres::Row) -> Result<Fetched, String> {
        let mut f = Fetched {
            topic: None,
            timestamp: None,
            key: None,
            headers: Value::Null,
            schema_id: None,
            value: None,
            value_json: None,
            subject: None,
            hash: None,
            typed: HashMap::new(),
        };
        for (i, col) in row.columns().iter().enumerate() {
            let cell: Cell = row
                .try_get(i)
                .map_err(|e| format!("column {}: {e}", col.name()))?;
            let name = col.name();
            if !BASE_COLUMNS.iter().any(|(b, _)| *b == name) {
                f.typed.insert(name.to_owned(), cell);
                continue;
            }
            match (name, cell) {
                ("kafka_topic", Cell::Text(t)) => f.topic = Some(t),
                ("kafka_timestamp", Cell::Timestamp(t)) => f.timestamp = Some(t),
                ("kafka_key", Cell::Bytes(b)) => f.key = Some(b),
                ("kafka_headers", Cell::Json(v)) => f.headers = v,
                ("kafka_schema_id", Cell::I32(v)) => f.schema_id = Some(v),
                ("kafka_value", Cell::Bytes(b)) => f.value = Some(b),
                ("audit_value_json", Cell::Json(v)) => f.value_json = Some(v),
                ("audit_subject", Cell::Text(t)) => f.subject = Some(t),
                ("audit_hash", Cell::Bytes(b)) => f.hash = Some(b),
                (_, _) => {}
            }
        }
        Ok(f)
    }

    fn typed_all_null(&self) -> Result<(), String> {
        match self.typed.iter().find(|(_, c)| !c.is_null()) {
            Some((name, _)) => Err(format!(
                "column {} is set, but the row has no Avro value: it was edited",
                quote_ident(name)
            )),
            None => Ok(()),
        }
    }
}
