//! Exactly-once delivery: the delivery ledger in PostgreSQL, keyed by (event id, guardian, channel, target,
//! round) — the target is a device for push, empty otherwise; the round counts escalations around the
//! channel list.
//!
//! - An entry is written `pending` before the send and `sent`, `failed`, `retry` (with `not_before`) or
//!   `ambiguous` after, with the provider's message id and response, in the same transaction as the audit
//!   record of the attempt (the outbox). A record's `put` returns only once the ledger holds the outcome of
//!   each of its sends, so the offsets the runtime commits never get ahead of the ledger.
//! - A redelivered record finds its entries: final ones are not sent again; a `pending` one left by a `put`
//!   (the worker died, or the call was cancelled, mid-send) is reconciled: sent again only where the provider
//!   dedupes (webhooks: the same `webhook-id`), otherwise marked `ambiguous` — and a critical alert escalates on
//!   its next channel instead of duplicating the first.
//! - Later sends (retries, quiet hours, escalations, digests) are claimed by the scheduler with a lease
//!   (`FOR UPDATE SKIP LOCKED`), so several tasks never send the same entry; a lease that expires is
//!   reconciled the same way.
//! - Dedupe windows: one notification per (rule, dedupe key, guardian) per window.

use serde_json::Value;
use tokio_postgres::GenericClient;

use crate::audit::{self, Entry};
use crate::channels::SendResult;
use crate::db::{Conn, DbError, now_ms};
use crate::rules::ChannelKind;

/// The key of a ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The source event (or `digest:<guardian>:<window>` for a digest).
    pub event_id: String,
    /// The guardian.
    pub guardian_id: String,
    /// The channel (`digest` for a digest item).
    pub channel: String,
    /// The device (hash) for push, empty otherwise.
    pub target: String,
    /// 0, then one more each time an escalation comes back to this channel.
    pub round: i32,
}

impl Key {
    /// A key.
    pub fn new(
        event_id: &str,
        guardian_id: &str,
        channel: ChannelKind,
        target: &str,
        round: i32,
    ) -> Key {
        Key {
            event_id: event_id.to_owned(),
            guardian_id: guardian_id.to_owned(),
            channel: channel.as_str().to_owned(),
            target: target.to_owned(),
            round,
        }
    }

    /// The idempotency key providers see (webhook-id, Message-ID, apns-id, collapse ids are derived from it).
    pub fn idempotency(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}",
            self.event_id, self.guardian_id, self.channel, self.target, self.round
        )
    }

    /// The channel, parsed.
    pub fn channel_kind(&self) -> Option<ChannelKind> {
        ChannelKind::parse(&self.channel)
    }
}

/// An entry as the ledger holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    /// Its key.
    pub key: Key,
    /// `pending`, `sent`, `failed`, `retry`, `held`, `ambiguous`, `queued`, `included`, `suppressed`.
    pub state: String,
    /// The rule (or `digest`).
    pub rule: String,
    /// The priority.
    pub priority: String,
    /// The escalation step (0 for the first delivery).
    pub step: i32,
    /// Sends so far.
    pub attempts: i32,
    /// Who claimed a pending entry (`put:…` or `scheduler:…`).
    pub claimed_by: Option<String>,
    /// The provider's message id.
    pub provider_message_id: Option<String>,
    /// The provider's response (redacted).
    pub response: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
}

/// What claiming an entry for a send found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// A new entry, now `pending` and ours: send.
    New,
    /// A `pending` entry a `put` left (a crash or a cancelled call mid-send): now ours; reconcile.
    Stale(LedgerEntry),
    /// The scheduler has it (it is being sent, or waits for its time): nothing to do here.
    Scheduled(LedgerEntry),
    /// Already final (`sent`, `failed`, `ambiguous`, …): nothing to do.
    Done(LedgerEntry),
}

const COLUMNS: &str = "event_id, guardian_id, channel, target, round, state, rule, priority, step, attempts, claimed_by, provider_message_id, response, reason";

fn entry(r: &tokio_postgres::Row) -> LedgerEntry {
    LedgerEntry {
        key: Key {
            event_id: r.get(0),
            guardian_id: r.get(1),
            channel: r.get(2),
            target: r.get(3),
            round: r.get(4),
        },
        state: r.get(5),
        rule: r.get(6),
        priority: r.get(7),
        step: r.get(8),
        attempts: r.get(9),
        claimed_by: r.get(10),
        provider_message_id: r.get(11),
        response: r.get(12),
        reason: r.get(13),
    }
}

/// Reads an entry.
pub async fn get(conn: &Conn<'_>, key: &Key) -> Result<Option<LedgerEntry>, DbError> {
    let row = conn
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM notify_ledger WHERE event_id = $1 AND guardian_id = $2 AND channel = $3
                 AND target = $4 AND round = $5"
            ),
            &[&key.event_id, &key.guardian_id, &key.channel, &key.target, &key.round],
        )
        .await?;
    Ok(row.as_ref().map(entry))
}

/// Claims `key` for a send by `by` (`put:<instance>` or `scheduler:<instance>`): a new `pending` entry, or
/// what is there already (a stale `put` claim becomes ours).
pub async fn claim(
    conn: &Conn<'_>,
    key: &Key,
    rule: &str,
    priority: &str,
    step: i32,
    by: &str,
    lease_ms: i64,
) -> Result<Claim, DbError> {
    let now = now_ms();
    let n = conn
        .execute(
            "INSERT INTO notify_ledger (event_id, guardian_id, channel, target, round, state, claimed_by, rule,
               priority, step, lease_until, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10, $11, $11)
             ON CONFLICT DO NOTHING",
            &[
                &key.event_id,
                &key.guardian_id,
                &key.channel,
                &key.target,
                &key.round,
                &by,
                &rule,
                &priority,
                &step,
                &(now + lease_ms),
                &now,
            ],
        )
        .await?;
    if n == 1 {
        return Ok(Claim::New);
    }
    let Some(e) = get(conn, key).await? else {
        return Ok(Claim::New);
    };
    match e.state.as_str() {
        "pending"
            if e.claimed_by
                .as_deref()
                .is_some_and(|c| c.starts_with("put:")) =>
        {
            // The put that claimed it is gone (the record is being delivered again): take it over.
            conn
                .execute(
                    "UPDATE notify_ledger SET claimed_by = $6, lease_until = $7, updated_at = $8
                     WHERE event_id = $1 AND guardian_id = $2 AND channel = $3 AND target = $4 AND round = $5",
                    &[
                        &key.event_id,
                        &key.guardian_id,
                        &key.channel,
                        &key.target,
                        &key.round,
                        &by,
                        &(now + lease_ms),
                        &now,
                    ],
                )
                .await?;
            Ok(Claim::Stale(e))
        }
        "pending" | "retry" | "held" => Ok(Claim::Scheduled(e)),
        _ => Ok(Claim::Done(e)),
    }
}

/// How a send ended, for the ledger.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The new state: `sent`, `failed`, `retry`, `ambiguous`, `held`, `skipped`.
    pub state: &'static str,
    /// When a `retry` or `held` entry is due.
    pub not_before: Option<i64>,
    /// The provider.
    pub provider: Option<String>,
    /// Its message id.
    pub provider_message_id: Option<String>,
    /// Its response (redacted).
    pub response: Option<String>,
    /// Why it did not succeed.
    pub reason: Option<String>,
    /// Whether this was a send (attempts + 1).
    pub attempted: bool,
}

impl Outcome {
    /// From a provider's result.
    pub fn from_result(
        result: &SendResult,
        provider: &str,
        not_before: Option<i64>,
        retry_exhausted: bool,
    ) -> Outcome {
        let state = match result {
            SendResult::Retry { .. } if retry_exhausted => "failed",
            r => r.state(),
        };
        Outcome {
            state,
            not_before: if state == "retry" { not_before } else { None },
            provider: Some(provider.to_owned()),
            provider_message_id: match result {
                SendResult::Sent { provider_id, .. } => provider_id.clone(),
                _ => None,
            },
            response: Some(result.response().to_owned()).filter(|r| !r.is_empty()),
            reason: Some(result.reason().to_owned()).filter(|r| !r.is_empty()),
            attempted: true,
        }
    }

    /// Not sent now: held until `until` (quiet hours, a per-recipient limit), or skipped.
    pub fn not_sent(state: &'static str, until: Option<i64>, reason: &str) -> Outcome {
        Outcome {
            state,
            not_before: until,
            provider: None,
            provider_message_id: None,
            response: None,
            reason: Some(reason.to_owned()),
            attempted: false,
        }
    }
}

/// Records an outcome for a pending entry we hold, and its audit record, in one transaction. Returns false if
/// the entry was not ours any more (another claim took it over).
pub async fn record(
    conn: &Conn<'_>,
    key: &Key,
    claimed_by: &str,
    outcome: &Outcome,
    audit: Option<&Entry>,
) -> Result<bool, DbError> {
    let now = now_ms();
    // The outcome and its audit record in one statement (one implicit transaction, one round trip).
    let (audit_id, record, at) = match audit {
        Some(a) => (
            Some(a.audit_id.as_str()),
            Some(serde_json::to_value(a).unwrap_or_default()),
            Some(a.at),
        ),
        None => (None, None, None),
    };
    let row = conn
        .query_one(
            "WITH upd AS (
               UPDATE notify_ledger SET state = $6, not_before = $7, provider = COALESCE($8, provider),
                 provider_message_id = COALESCE($9, provider_message_id), response = COALESCE($10, response),
                 reason = $11, attempts = attempts + $12, lease_until = NULL,
                 claimed_by = CASE WHEN $6 = 'pending' THEN claimed_by ELSE NULL END, updated_at = $13
               WHERE event_id = $1 AND guardian_id = $2 AND channel = $3 AND target = $4 AND round = $5
                 AND state = 'pending' AND claimed_by = $14
               RETURNING 1),
             ins AS (
               INSERT INTO notify_outbox (audit_id, record, created_at)
               SELECT $15::text, $16::jsonb, $17::bigint FROM upd WHERE $15::text IS NOT NULL
               ON CONFLICT (audit_id) DO NOTHING)
             SELECT count(*) FROM upd",
            &[
                &key.event_id,
                &key.guardian_id,
                &key.channel,
                &key.target,
                &key.round,
                &outcome.state,
                &outcome.not_before,
                &outcome.provider,
                &outcome.provider_message_id,
                &outcome.response,
                &outcome.reason,
                &i32::from(outcome.attempted),
                &now,
                &claimed_by,
                &audit_id,
                &record,
                &at,
            ],
        )
        .await?;
    Ok(row.get::<_, i64>(0) == 1)
}

/// Inserts an entry that is not sent now (`held`, `queued` digest item, `suppressed`), unless the key has one.
#[allow(clippy::too_many_arguments)]
pub async fn insert_waiting<C: GenericClient>(
    c: &C,
    key: &Key,
    state: &str,
    rule: &str,
    priority: &str,
    step: i32,
    not_before: Option<i64>,
    digest_window: Option<i64>,
    reason: Option<&str>,
) -> Result<bool, DbError> {
    let now = now_ms();
    let n = c
        .execute(
            "INSERT INTO notify_ledger (event_id, guardian_id, channel, target, round, state, rule, priority, step,
               not_before, digest_window, reason, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
             ON CONFLICT DO NOTHING",
            &[
                &key.event_id,
                &key.guardian_id,
                &key.channel,
                &key.target,
                &key.round,
                &state,
                &rule,
                &priority,
                &step,
                &not_before,
                &digest_window,
                &reason,
                &now,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Claims up to `limit` entries due for a send (`retry` and `held` past their time, and `pending` ones whose
/// scheduler lease expired) for the scheduler `instance`.
pub async fn claim_due(
    conn: &Conn<'_>,
    instance: &str,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<LedgerEntry>, DbError> {
    let now = now_ms();
    let by = format!("scheduler:{instance}");
    let rows = conn
        .query(
            &format!(
                "WITH due AS (
                   SELECT event_id, guardian_id, channel, target, round FROM notify_ledger
                   WHERE (state IN ('retry', 'held') AND not_before <= $1)
                      OR (state = 'pending' AND claimed_by LIKE 'scheduler:%' AND lease_until < $1)
                   ORDER BY not_before NULLS FIRST LIMIT $4 FOR UPDATE SKIP LOCKED)
                 UPDATE notify_ledger l SET state = 'pending', claimed_by = $2, lease_until = $1 + $3,
                   updated_at = $1, reason = CASE WHEN l.state = 'pending' THEN 'lease expired' ELSE l.reason END
                 FROM due WHERE l.event_id = due.event_id AND l.guardian_id = due.guardian_id
                   AND l.channel = due.channel AND l.target = due.target AND l.round = due.round
                 RETURNING {}",
                COLUMNS
                    .split(", ")
                    .map(|c| format!("l.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[&now, &by, &lease_ms, &limit],
        )
        .await?;
    Ok(rows.iter().map(entry).collect())
}

/// Every entry of an (event, guardian): which channels were used, and how they ended.
pub async fn entries_of(
    conn: &Conn<'_>,
    event_id: &str,
    guardian_id: &str,
) -> Result<Vec<LedgerEntry>, DbError> {
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM notify_ledger WHERE event_id = $1 AND guardian_id = $2
                 ORDER BY created_at, channel, target"
            ),
            &[&event_id, &guardian_id],
        )
        .await?;
    Ok(rows.iter().map(entry).collect())
}

/// An entry by the provider's message id (Twilio status callbacks).
pub async fn by_message_id(conn: &Conn<'_>, id: &str) -> Result<Option<LedgerEntry>, DbError> {
    let row = conn
        .query_opt(
            &format!("SELECT {COLUMNS} FROM notify_ledger WHERE provider_message_id = $1 LIMIT 1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(entry))
}

/// How far along a provider's delivery status is: callbacks arrive in any order, and a late `sent` must not
/// overwrite `delivered`. Final statuses (`delivered`, `undelivered`, `failed`, `read`, `canceled`) rank highest.
pub fn status_rank(status: &str) -> i32 {
    match status {
        "accepted" | "scheduled" | "queued" => 0,
        "sending" => 1,
        "sent" => 2,
        _ => 3,
    }
}

/// Keeps a provider's status callback until it is applied: it can arrive before the send's outcome (and so its
/// message id) is in the ledger.
pub async fn keep_status(
    conn: &Conn<'_>,
    message_id: &str,
    status: &str,
    error_code: Option<&str>,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO notify_provider_status (message_id, status, error_code, received_at)
         VALUES ($1, $2, $3, $4)",
        &[&message_id, &status, &error_code, &now_ms()],
    )
    .await?;
    Ok(())
}

/// Takes the kept statuses of a message once the ledger knows it, oldest first (none while it does not). Run
/// after [`keep_status`] by the callback and after [`record`] by the send, one of the two always finds them.
pub async fn take_statuses(
    conn: &Conn<'_>,
    message_id: &str,
) -> Result<Vec<(String, Option<String>)>, DbError> {
    let rows = conn
        .query(
            "DELETE FROM notify_provider_status WHERE message_id = $1
               AND EXISTS (SELECT 1 FROM notify_ledger WHERE provider_message_id = $1)
             RETURNING id, status, error_code",
            &[&message_id],
        )
        .await?;
    let mut taken: Vec<(i64, String, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    taken.sort_by_key(|t| t.0);
    Ok(taken.into_iter().map(|(_, s, c)| (s, c)).collect())
}

/// Forgets kept statuses received before `before` whose message the ledger never learnt.
pub async fn expire_statuses(conn: &Conn<'_>, before: i64) -> Result<u64, DbError> {
    Ok(conn
        .execute(
            "DELETE FROM notify_provider_status WHERE received_at < $1",
            &[&before],
        )
        .await?)
}

/// Records a provider's delivery status on the entry of its message, unless a status as far along is there.
pub async fn set_status(
    conn: &Conn<'_>,
    message_id: &str,
    status: &str,
    error_code: Option<&str>,
) -> Result<bool, DbError> {
    let shown = format!(
        "status {status}{}",
        error_code.map(|c| format!(" ({c})")).unwrap_or_default()
    );
    let n = conn
        .execute(
            "UPDATE notify_ledger SET response = $2, provider_status_rank = $3, updated_at = $4
             WHERE provider_message_id = $1 AND COALESCE(provider_status_rank, -1) <= $3",
            &[&message_id, &shown, &status_rank(status), &now_ms()],
        )
        .await?;
    Ok(n == 1)
}

/// A sent SMS that the carrier could not deliver (Twilio 30003): due again at `at`.
pub async fn reschedule_sent(
    conn: &Conn<'_>,
    key: &Key,
    at: i64,
    reason: &str,
) -> Result<bool, DbError> {
    let n = conn
        .execute(
            "UPDATE notify_ledger SET state = 'retry', not_before = $6, reason = $7, updated_at = $8
             WHERE event_id = $1 AND guardian_id = $2 AND channel = $3 AND target = $4 AND round = $5
               AND state = 'sent'",
            &[
                &key.event_id,
                &key.guardian_id,
                &key.channel,
                &key.target,
                &key.round,
                &at,
                &reason,
                &now_ms(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// How many `channel` sends to `guardian` went out since `since` (except immediate ones), and the oldest.
pub async fn recent_sends(
    conn: &Conn<'_>,
    guardian: &str,
    channel: &str,
    since: i64,
) -> Result<(i64, Option<i64>), DbError> {
    let row = conn
        .query_one(
            "SELECT count(*), min(updated_at) FROM notify_ledger WHERE guardian_id = $1 AND channel = $2
               AND state = 'sent' AND priority <> 'immediate' AND updated_at >= $3",
            &[&guardian, &channel, &since],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Stores the source event (templates of later sends render from it). The payload keeps PII: the ledger's
/// database is the sink's own; audit records never carry it.
#[allow(clippy::too_many_arguments)]
pub async fn store_event(
    c: &Conn<'_>,
    event_id: &str,
    topic: &str,
    rule: &str,
    payload: &Value,
    pii: &Value,
    child_id: Option<&str>,
    household_id: Option<&str>,
) -> Result<(), DbError> {
    c.execute(
        "INSERT INTO notify_event (event_id, topic, rule, payload, pii, child_id, household_id, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
        &[&event_id, &topic, &rule, payload, pii, &child_id, &household_id, &now_ms()],
    )
    .await?;
    Ok(())
}

/// A stored event: topic, rule, payload, PII paths, child and household ids, and when it was acknowledged.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The topic.
    pub topic: String,
    /// The rule (or `digest`).
    pub rule: String,
    /// The payload.
    pub payload: Value,
    /// Its PII paths.
    pub pii: Vec<String>,
    /// The child, if known.
    pub child_id: Option<String>,
    /// The household, if known.
    pub household_id: Option<String>,
    /// When a guardian acknowledged it.
    pub acked_at: Option<i64>,
}

/// Reads a stored event.
pub async fn event(conn: &Conn<'_>, event_id: &str) -> Result<Option<StoredEvent>, DbError> {
    let row = conn
        .query_opt(
            "SELECT topic, rule, payload, pii, child_id, household_id, acked_at FROM notify_event WHERE event_id = $1",
            &[&event_id],
        )
        .await?;
    Ok(row.map(|r| {
        let pii: Value = r.get(3);
        StoredEvent {
            topic: r.get(0),
            rule: r.get(1),
            payload: r.get(2),
            pii: pii
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            child_id: r.get(4),
            household_id: r.get(5),
            acked_at: r.get(6),
        }
    }))
}

/// Opens the dedupe window for (rule, key, guardian) with `event_id`, unless one is open for another event.
/// Returns whether this event may notify.
pub async fn dedupe(
    conn: &Conn<'_>,
    rule: &str,
    key: &str,
    guardian: &str,
    event_id: &str,
    window_ms: i64,
) -> Result<bool, DbError> {
    let now = now_ms();
    let row = conn
        .query_opt(
            "INSERT INTO notify_dedupe (rule, dedupe_key, guardian_id, event_id, until_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (rule, dedupe_key, guardian_id) DO UPDATE SET event_id = EXCLUDED.event_id,
               until_at = EXCLUDED.until_at
             WHERE notify_dedupe.until_at <= $6 OR notify_dedupe.event_id = EXCLUDED.event_id
             RETURNING event_id",
            &[&rule, &key, &guardian, &event_id, &(now + window_ms), &now],
        )
        .await?;
    Ok(row.is_some())
}

/// Marks an event acknowledged (the first acknowledgement wins) and stops its escalations. Returns whether
/// this acknowledgement was the first.
pub async fn acknowledge(
    conn: &mut Conn<'_>,
    event_id: &str,
    guardian: &str,
    audit: &Entry,
) -> Result<bool, DbError> {
    let now = now_ms();
    let tx = conn.client_mut().transaction().await?;
    let n = tx
        .execute(
            "UPDATE notify_event SET acked_at = $2, acked_by = $3 WHERE event_id = $1 AND acked_at IS NULL",
            &[&event_id, &now, &guardian],
        )
        .await?;
    tx.execute(
        "UPDATE notify_escalation SET state = 'acked', updated_at = $2 WHERE event_id = $1 AND state = 'active'",
        &[&event_id, &now],
    )
    .await?;
    if n == 1 {
        audit::enqueue_in(&tx, audit).await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

/// Starts (or keeps) the escalation of an event for a guardian: step `next_step` is due at `due_at`.
pub async fn start_escalation(
    conn: &Conn<'_>,
    event_id: &str,
    guardian: &str,
    rule: &str,
    max_steps: i32,
    due_at: i64,
) -> Result<(), DbError> {
    conn
        .execute(
            "INSERT INTO notify_escalation (event_id, guardian_id, rule, next_step, max_steps, due_at, state, updated_at)
             VALUES ($1, $2, $3, 1, $4, $5, 'active', $6) ON CONFLICT (event_id, guardian_id) DO NOTHING",
            &[&event_id, &guardian, &rule, &max_steps, &due_at, &now_ms()],
        )
        .await?;
    Ok(())
}

/// Brings an active escalation's next step forward to now (a send was ambiguous: move on rather than repeat).
pub async fn escalate_now(conn: &Conn<'_>, event_id: &str, guardian: &str) -> Result<(), DbError> {
    let now = now_ms();
    conn.execute(
        "UPDATE notify_escalation SET due_at = LEAST(due_at, $3), updated_at = $3
             WHERE event_id = $1 AND guardian_id = $2 AND state = 'active'",
        &[&event_id, &guardian, &now],
    )
    .await?;
    Ok(())
}

/// An escalation step that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEscalation {
    /// The event.
    pub event_id: String,
    /// The guardian.
    pub guardian_id: String,
    /// The rule.
    pub rule: String,
    /// The step to send (1-based).
    pub step: i32,
    /// The last step.
    pub max_steps: i32,
}

/// Claims due escalation steps: each is moved to its next step (or `done`) in the same statement, so a step is
/// taken once; `every_ms` per rule comes from `every`.
pub async fn claim_escalations(
    conn: &mut Conn<'_>,
    every: &(dyn Fn(&str) -> Option<i64> + Sync),
    limit: i64,
) -> Result<Vec<DueEscalation>, DbError> {
    let now = now_ms();
    let tx = conn.client_mut().transaction().await?;
    let rows = tx
        .query(
            "SELECT e.event_id, e.guardian_id, e.rule, e.next_step, e.max_steps, v.acked_at
             FROM notify_escalation e LEFT JOIN notify_event v ON v.event_id = e.event_id
             WHERE e.state = 'active' AND e.due_at <= $1 ORDER BY e.due_at LIMIT $2 FOR UPDATE OF e SKIP LOCKED",
            &[&now, &limit],
        )
        .await?;
    let mut out = Vec::new();
    for r in &rows {
        let (event_id, guardian_id, rule): (String, String, String) =
            (r.get(0), r.get(1), r.get(2));
        let (step, max): (i32, i32) = (r.get(3), r.get(4));
        let acked: Option<i64> = r.get(5);
        let (state, due) = if acked.is_some() {
            ("acked", now)
        } else if step >= max {
            ("done", now)
        } else {
            ("active", now + every(&rule).unwrap_or(60_000))
        };
        tx.execute(
            "UPDATE notify_escalation SET next_step = next_step + 1, due_at = $3, state = $4, updated_at = $5
             WHERE event_id = $1 AND guardian_id = $2",
            &[&event_id, &guardian_id, &due, &state, &now],
        )
        .await?;
        if acked.is_none() {
            out.push(DueEscalation {
                event_id,
                guardian_id,
                rule,
                step,
                max_steps: max,
            });
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// Digest windows that closed: (guardian, window end) with queued items.
pub async fn due_digests(conn: &Conn<'_>, limit: i64) -> Result<Vec<(String, i64)>, DbError> {
    let rows = conn
        .query(
            "SELECT guardian_id, digest_window FROM notify_ledger WHERE channel = 'digest' AND state = 'queued'
               AND digest_window <= $1 GROUP BY guardian_id, digest_window ORDER BY digest_window LIMIT $2",
            &[&now_ms(), &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A queued digest item: event id, rule, payload, PII paths.
pub type DigestItem = (String, String, Value, Vec<String>);

/// Closes a digest window in one transaction: its items become `included` in the digest event (stored with
/// their payloads), and the digest's first send is scheduled at once. Returns false if another task did it.
pub async fn close_digest(
    conn: &mut Conn<'_>,
    guardian: &str,
    window: i64,
    first: &Key,
    make_payload: &(dyn Fn(&[DigestItem]) -> Value + Sync),
) -> Result<bool, DbError> {
    let now = now_ms();
    let digest_id = first.event_id.clone();
    let tx = conn.client_mut().transaction().await?;
    let items = tx
        .query(
            "SELECT l.event_id, l.rule, v.payload, v.pii FROM notify_ledger l JOIN notify_event v ON v.event_id = l.event_id
             WHERE l.guardian_id = $1 AND l.channel = 'digest' AND l.state = 'queued' AND l.digest_window = $2
             ORDER BY v.received_at FOR UPDATE OF l SKIP LOCKED",
            &[&guardian, &window],
        )
        .await?;
    if items.is_empty() {
        tx.commit().await?;
        return Ok(false);
    }
    let items: Vec<DigestItem> = items
        .iter()
        .map(|r| {
            let pii: Value = r.get(3);
            (
                r.get(0),
                r.get(1),
                r.get(2),
                pii.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect();
    let ids: Vec<&str> = items.iter().map(|i| i.0.as_str()).collect();
    tx.execute(
        "UPDATE notify_ledger SET state = 'included', digest_id = $3, updated_at = $4
         WHERE guardian_id = $1 AND channel = 'digest' AND event_id = ANY($2)",
        &[&guardian, &ids, &digest_id, &now],
    )
    .await?;
    let payload = make_payload(&items);
    tx.execute(
        "INSERT INTO notify_event (event_id, topic, rule, payload, received_at) VALUES ($1, 'digest', 'digest', $2, $3)
         ON CONFLICT (event_id) DO NOTHING",
        &[&digest_id, &payload, &now],
    )
    .await?;
    insert_waiting(
        &tx,
        first,
        "retry",
        "digest",
        "digest",
        0,
        Some(now),
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
