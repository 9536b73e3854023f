//! The sink: directory events update the directory, acknowledgement events stop escalations, and every other
//! record is matched against the rules and notifies its guardians through the ledger ([`crate::dedup`]); a
//! scheduler sends what is due later (retries, quiet hours, escalations, digests), re-checks quarantined push
//! tokens and publishes the audit outbox.
//!
//! No stalls: a record's outcome is per record, and a send that must wait (a provider's 429, a guardian's quiet
//! hours, a per-recipient limit) waits in the ledger, not in the partition: the record is done once the ledger
//! holds what will happen. Only a record none of whose guardians can be reached at all is dead-lettered, with
//! the providers' responses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Notify;
use ursa_connect::context::BoundedCounters;
use ursa_connect::limit::{LimitConfig, Limiter};
use ursa_connect::{
    BoxFuture, Conversion, Format, Outcome, Sink, SinkContext, SinkError, SinkRecord,
    TopicPartition,
};

use crate::audit::{self, AuditConfig, Publisher};
use crate::channels::email::Email;
use crate::channels::push_apns::Apns;
use crate::channels::push_fcm::Fcm;
use crate::channels::sms::Sms;
use crate::channels::webhook::Webhook;
use crate::channels::{Address, Message, SendResult};
use crate::db::{Conn, Db, DbError, ms, now_ms};
use crate::dedup::{self, Claim, Key, LedgerEntry};
use crate::recipients::{self, Device, DirectoryEvent, Guardian};
use crate::routing;
use crate::rules::{self, ChannelKind, Priority, Rule, Rules};

/// The channels that are configured.
#[derive(Debug, Default)]
pub struct Channels {
    /// SMTP.
    pub email: Option<Email>,
    /// Twilio.
    pub sms: Option<Sms>,
    /// FCM.
    pub fcm: Option<Fcm>,
    /// APNs.
    pub apns: Option<Apns>,
    /// Standard Webhooks.
    pub webhook: Option<Webhook>,
}

/// The sink's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The connector.
    pub connector: String,
    /// This sink instance (claims in the ledger name it).
    pub instance: String,
    /// Lease of a scheduled send.
    pub lease_ms: i64,
    /// Sends per entry before it fails.
    pub max_attempts: u32,
    /// Longest back-off.
    pub retry_max: Duration,
    /// Scheduler period.
    pub scheduler_interval: Duration,
    /// Directory topics.
    pub directory_topics: Vec<String>,
    /// The guardian contact topic.
    pub guardian_topic: String,
    /// The acknowledgement topic.
    pub ack_topic: Option<String>,
    /// Signs acknowledgement links.
    pub ack_secret: Option<Vec<u8>>,
    /// Where the HTTP server listens.
    pub listen: Option<String>,
    /// Its public URL.
    pub public_url: Option<String>,
    /// SMS per guardian per hour (non-immediate).
    pub sms_per_hour: i64,
    /// First re-check of a quarantined token.
    pub recheck_after: Duration,
    /// Re-checks before retiring a token.
    pub recheck_max_failures: i32,
    /// Limits per channel.
    pub limits: BTreeMap<&'static str, LimitConfig>,
    /// Recipients handled at once within a batch (their statements share one connection: pipelined).
    pub concurrency: usize,
}

struct Metrics {
    attempts: BoundedCounters,
    events: BoundedCounters,
    latency: HashMap<&'static str, Histogram>,
}

/// What a send is about: the rule or the digest, the event, the guardian.
#[derive(Clone)]
enum Owner {
    Rule(Arc<Rule>),
    Digest,
}

impl Owner {
    fn name(&self) -> &str {
        match self {
            Owner::Rule(r) => &r.name,
            Owner::Digest => "digest",
        }
    }
}

struct Job {
    key: Key,
    owner: Owner,
    priority: Priority,
    step: i32,
    attempts: i32,
    claimed_by: String,
    event: Arc<dedup::StoredEvent>,
    guardian: Guardian,
}

/// The shared state of a running sink.
pub struct Core {
    rules: Rules,
    db: Arc<Db>,
    channels: Channels,
    settings: Settings,
    limiters: BTreeMap<&'static str, Limiter>,
    blocked: Mutex<HashMap<&'static str, i64>>,
    metrics: Metrics,
    publisher: Option<Publisher>,
    pii_cache: Mutex<HashMap<u32, Arc<BTreeSet<String>>>>,
    kick: Notify,
    migrated: tokio::sync::OnceCell<()>,
    /// When the scheduler last expired kept status callbacks (ms).
    statuses_expired_at: AtomicI64,
}

/// What a record of a batch is, and so how it is ordered (see [`Core::put`]).
enum Lane {
    /// A directory change or an acknowledgement: after everything before it, before everything after it.
    Barrier,
    /// An event a rule matched: in order with the other events of its recipient.
    Event {
        /// The rule.
        rule: Arc<Rule>,
        /// Whom the event is about (the rule's `recipients` path).
        recipient: String,
    },
    /// Nothing to send: its outcome.
    Done(Outcome),
}

/// The `notify` sink.
pub struct NotifySink {
    core: Arc<Core>,
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    stop: Arc<Notify>,
}

/// The least time between two scheduler passes.
const PASS_GAP: Duration = Duration::from_millis(25);

/// How long a status callback for a message the ledger does not know is kept (a day).
const STATUS_KEPT_MS: i64 = 86_400_000;

fn db_err(e: DbError) -> SinkError {
    SinkError::retriable(e.to_string())
}

fn provider_of(channel: ChannelKind, device: Option<&Device>) -> &'static str {
    match channel {
        ChannelKind::Email => "smtp",
        ChannelKind::Sms => "twilio",
        ChannelKind::Webhook => "webhook",
        ChannelKind::Push => match device.map(|d| d.platform.as_str()) {
            Some("apns") => "apns",
            _ => "fcm",
        },
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl NotifySink {
    /// Builds the sink (connections are made on first use; the scheduler starts at the first `open`).
    pub fn new(
        rules: Rules,
        db: Db,
        channels: Channels,
        settings: Settings,
        audit: Option<AuditConfig>,
        context: SinkContext,
    ) -> Result<NotifySink, SinkError> {
        let publisher = match audit {
            Some(a) => Some(Publisher::new(a).map_err(SinkError::permanent)?),
            None => None,
        };
        let m = context.metrics();
        let mut latency = HashMap::new();
        for c in ChannelKind::ALL {
            let h = m.histogram(
                &format!("notify_send_seconds_{c}"),
                &format!("Latency of {c} sends (provider round trip)"),
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            );
            latency.insert(c.as_str(), h);
        }
        let metrics = Metrics {
            attempts: m.labelled_counters(
                "notify_attempts",
                "Sends by channel, provider and outcome",
                &["channel", "provider", "outcome"],
            ),
            events: m.counters(
                "notify_events",
                "Escalations, acknowledgements, holds, suppressions",
                "kind",
            ),
            latency,
        };
        let limiters = settings
            .limits
            .iter()
            .map(|(k, c)| (*k, Limiter::new(*c)))
            .collect();
        Ok(NotifySink {
            core: Arc::new(Core {
                rules,
                db: Arc::new(db),
                channels,
                settings,
                limiters,
                blocked: Mutex::new(HashMap::new()),
                metrics,
                publisher,
                pii_cache: Mutex::new(HashMap::new()),
                kick: Notify::new(),
                migrated: tokio::sync::OnceCell::new(),
                statuses_expired_at: AtomicI64::new(0),
            }),
            background: Mutex::new(Vec::new()),
            stop: Arc::new(Notify::new()),
        })
    }

    /// The shared core (tests, the HTTP server).
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Starts the scheduler and the HTTP listener (acknowledgement links, Twilio's status callbacks) once.
    /// A listen address that cannot be bound is a retriable error and starts nothing: the task does not run
    /// without the endpoints its messages link to, and the next open or put tries again.
    fn start_background(&self) -> Result<(), SinkError> {
        let mut bg = self
            .background
            .lock()
            .map_err(|_| SinkError::permanent("notify sink lock poisoned"))?;
        if !bg.is_empty() {
            return Ok(());
        }
        let listener = match &self.core.settings.listen {
            Some(listen) => {
                let std = std::net::TcpListener::bind(listen).map_err(|e| {
                    SinkError::retriable(format!(
                        "notify.http.listen: cannot listen on {listen}: {e}"
                    ))
                })?;
                std.set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpListener::from_std(std))
                    .map_err(|e| SinkError::permanent(format!("notify.http.listen: {e}")))?
                    .into()
            }
            None => None,
        };
        let core = Arc::clone(&self.core);
        let stop = Arc::clone(&self.stop);
        bg.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.notified() => return,
                    () = core.kick.notified() => {}
                    () = tokio::time::sleep(core.settings.scheduler_interval) => {}
                }
                if let Err(e) = core.run_scheduler().await {
                    tracing::warn!(connector = %core.settings.connector, "notify scheduler: {e}");
                }
                // Kicks that come meanwhile (every batch kicks) wait for one pass after the gap: a busy sink
                // runs a few passes a second, not one per batch.
                tokio::select! {
                    () = stop.notified() => return,
                    () = tokio::time::sleep(PASS_GAP) => {}
                }
            }
        }));
        if let Some(l) = listener {
            let core = Arc::clone(&self.core);
            let stop = Arc::clone(&self.stop);
            bg.push(tokio::spawn(async move {
                let app = crate::ack::router(core);
                let _ = axum::serve(l, app)
                    .with_graceful_shutdown(async move { stop.notified().await })
                    .await;
            }));
        }
        Ok(())
    }
}

impl Core {
    /// The database.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The channels.
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// Wakes the scheduler.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    async fn conn(&self) -> Result<Conn<'_>, SinkError> {
        self.migrated
            .get_or_try_init(|| async { self.db.migrate().await })
            .await
            .map_err(db_err)?;
        self.db.get().await.map_err(db_err)
    }

    /// The acknowledgement link of (event, guardian).
    pub fn ack_url(&self, event_id: &str, guardian_id: &str) -> Option<String> {
        let (base, secret) = (
            self.settings.public_url.as_ref()?,
            self.settings.ack_secret.as_ref()?,
        );
        Some(format!(
            "{base}/ack?e={}&g={}&s={}",
            encode(event_id),
            encode(guardian_id),
            crate::ack::sign(secret, event_id, guardian_id)
        ))
    }

    fn status_callback(&self) -> Option<String> {
        self.settings
            .public_url
            .as_ref()
            .map(|b| format!("{b}/twilio/status"))
    }

    /// The PII paths of a record's value: from its Avro writer schema, else the catalog's schema of its topic.
    fn pii_of(&self, record: &SinkRecord) -> Arc<BTreeSet<String>> {
        if let Some(Format::Avro(w)) = record.value.format() {
            if let Ok(cache) = self.pii_cache.lock()
                && let Some(p) = cache.get(&w.id())
            {
                return Arc::clone(p);
            }
            let set = w.schema_set();
            let json = set.full_json(set.last_root());
            let p = Arc::new(rules::pii_paths(&json));
            if let Ok(mut cache) = self.pii_cache.lock() {
                cache.insert(w.id(), Arc::clone(&p));
            }
            return p;
        }
        let p = rules::catalog_schema(&record.topic)
            .and_then(|s| serde_json::from_str(s).ok())
            .map(|s: Value| rules::pii_paths(&s))
            .unwrap_or_default();
        Arc::new(p)
    }

    fn count(&self, kind: &str) {
        self.metrics.events.get(kind).inc();
    }

    /// Handles a batch. Directory changes and acknowledgements are applied in order, each after everything
    /// before it; between them, the events of different recipients are handled at once (`notify.concurrency`),
    /// and those of one recipient in order, so a guardian's limits and dedupe windows see them one by one.
    async fn put(&self, records: &[SinkRecord]) -> Result<Vec<Outcome>, SinkError> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.conn().await?;
        let mut out: Vec<Option<Outcome>> = vec![None; records.len()];
        let mut lanes: Vec<Option<Lane>> = records.iter().map(|r| Some(self.lane_of(r))).collect();
        let mut i = 0;
        while i < records.len() {
            if matches!(lanes[i], Some(Lane::Barrier)) {
                out[i] = Some(self.handle_barrier(&records[i]).await?);
                i += 1;
                continue;
            }
            // Up to the next barrier: the events of one recipient in a queue of their own, in the order the
            // recipients first appear.
            let mut queues: Vec<Vec<(usize, Arc<Rule>, String)>> = Vec::new();
            let mut by_recipient: HashMap<String, usize> = HashMap::new();
            while i < records.len() && !matches!(lanes[i], Some(Lane::Barrier)) {
                match lanes[i].take() {
                    Some(Lane::Event { rule, recipient }) => match by_recipient.get(&recipient) {
                        Some(&q) => queues[q].push((i, rule, recipient)),
                        None => {
                            by_recipient.insert(recipient.clone(), queues.len());
                            queues.push(vec![(i, rule, recipient)]);
                        }
                    },
                    Some(Lane::Done(o)) => out[i] = Some(o),
                    Some(Lane::Barrier) | None => {}
                }
                i += 1;
            }
            let conn = &conn;
            let done: Vec<Vec<(usize, Outcome)>> = stream::iter(queues)
                .map(|queue| async move {
                    let mut done = Vec::with_capacity(queue.len());
                    for (j, rule, recipient) in queue {
                        let o = self
                            .handle_event(conn, &records[j], rule, &recipient)
                            .await?;
                        done.push((j, o));
                    }
                    Ok::<_, SinkError>(done)
                })
                .buffer_unordered(self.settings.concurrency.max(1))
                .try_collect()
                .await?;
            for (j, o) in done.into_iter().flatten() {
                out[j] = Some(o);
            }
        }
        conn.release();
        self.kick();
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Delivered))
            .collect())
    }

    /// Whether `topic`'s records build the guardian directory.
    fn is_directory_topic(&self, topic: &str) -> bool {
        self.settings.directory_topics.iter().any(|t| t == topic)
            || topic == self.settings.guardian_topic
    }

    /// What a record is: decoded, its topic and the rules looked at once.
    fn lane_of(&self, record: &SinkRecord) -> Lane {
        let value = match record.value_json() {
            Ok(v) => v,
            Err(e) => return Lane::Done(Outcome::permanent(e.to_string())),
        };
        if value.is_null() {
            return Lane::Done(Outcome::Delivered);
        }
        let topic: &str = &record.topic;
        if self.is_directory_topic(topic) || self.settings.ack_topic.as_deref() == Some(topic) {
            return Lane::Barrier;
        }
        let Some(rule) = self.rules.find(topic, value) else {
            return Lane::Done(Outcome::Delivered);
        };
        match rules::lookup(value, &rule.recipients).and_then(Value::as_str) {
            Some(r) => Lane::Event {
                rule: Arc::clone(rule),
                recipient: r.to_owned(),
            },
            None => Lane::Done(Outcome::permanent(format!(
                "rule {}: the event has no `{}` to find its guardians by",
                rule.name,
                rule.recipients.join(".")
            ))),
        }
    }

    /// Handles a directory change or an acknowledgement (a [`Lane::Barrier`]), on a connection of its own (a
    /// directory change is a transaction).
    async fn handle_barrier(&self, record: &SinkRecord) -> Result<Outcome, SinkError> {
        let value = match record.value_json() {
            Ok(v) => v,
            Err(e) => return Ok(Outcome::permanent(e.to_string())),
        };
        let topic: &str = &record.topic;
        if self.is_directory_topic(topic) {
            let type_name = match record.value.format() {
                Some(Format::Avro(w)) => w.record_name(),
                _ => None,
            };
            let Some(kind) =
                DirectoryEvent::of(type_name.as_deref(), topic, &self.settings.guardian_topic)
            else {
                tracing::warn!(connector = %self.settings.connector, topic, offset = record.offset,
                    "directory: {} is not a directory event; skipped", type_name.as_deref().unwrap_or("this record"));
                return Ok(Outcome::Delivered);
            };
            let mut conn = self.conn().await?;
            let applied = recipients::apply(&mut conn, kind, value)
                .await
                .map_err(db_err)?;
            conn.release();
            for w in &applied.warnings {
                tracing::warn!(connector = %self.settings.connector, topic, offset = record.offset, "directory: {w}");
            }
            self.count("directory");
            return Ok(Outcome::Delivered);
        }
        let Some(event_id) = value.get("event_id").and_then(Value::as_str) else {
            return Ok(Outcome::permanent("an acknowledgement without event_id"));
        };
        let guardian = value
            .get("guardian_id")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        self.acknowledge(event_id, guardian, "topic").await?;
        Ok(Outcome::Delivered)
    }

    /// Handles an event `rule` matched, about `recipient`, on `conn` (shared by the batch's queues, so their
    /// statements go out together).
    async fn handle_event(
        &self,
        conn: &Conn<'_>,
        record: &SinkRecord,
        rule: Arc<Rule>,
        recipient: &str,
    ) -> Result<Outcome, SinkError> {
        let value = match record.value_json() {
            Ok(v) => v,
            Err(e) => return Ok(Outcome::permanent(e.to_string())),
        };
        let topic: &str = &record.topic;
        let event_id = value
            .get("metadata")
            .and_then(|m| m.get("event_id"))
            .and_then(Value::as_str)
            .map_or_else(
                || format!("{topic}/{}/{}", record.partition, record.offset),
                str::to_owned,
            );
        let pii = self.pii_of(record);
        let child_id = value
            .get("child")
            .and_then(|c| c.get("child_id"))
            .and_then(Value::as_str);
        let household_id = value
            .get("child")
            .and_then(|c| c.get("household_id"))
            .and_then(Value::as_str);
        let pii_json = Value::Array(pii.iter().map(|p| Value::String(p.clone())).collect());
        // Both on one connection at once: tokio-postgres pipelines them (one round trip).
        let (stored, guardians) = tokio::join!(
            dedup::store_event(
                conn,
                &event_id,
                topic,
                &rule.name,
                value,
                &pii_json,
                child_id,
                household_id,
            ),
            recipients::guardians(conn, recipient)
        );
        stored.map_err(db_err)?;
        let guardians = guardians.map_err(db_err)?;
        if guardians.is_empty() {
            return Ok(Outcome::Permanent {
                reason: format!("rule {}: no guardian is known for {recipient}", rule.name),
                detail: Some("the directory has no guardian for this household or child".into()),
            });
        }
        let stored = Arc::new(dedup::StoredEvent {
            topic: topic.to_owned(),
            rule: rule.name.clone(),
            payload: value.clone(),
            pii: pii.iter().cloned().collect(),
            child_id: child_id.map(str::to_owned),
            household_id: household_id.map(str::to_owned),
            acked_at: None,
        });
        let mut failures = Vec::new();
        let mut any_ok = false;
        for g in guardians {
            match self
                .notify_guardian(conn, &rule, &event_id, &stored, g)
                .await?
            {
                Ok(()) => any_ok = true,
                Err(why) => failures.push(why),
            }
        }
        if any_ok || failures.is_empty() {
            Ok(Outcome::Delivered)
        } else {
            Ok(Outcome::Permanent {
                reason: format!("rule {}: no guardian could be notified", rule.name),
                detail: Some(failures.join("; ")),
            })
        }
    }

    /// Notifies one guardian of an event per its rule: `Err` (inside) says why nobody was reached.
    async fn notify_guardian(
        &self,
        conn: &Conn<'_>,
        rule: &Arc<Rule>,
        event_id: &str,
        event: &Arc<dedup::StoredEvent>,
        g: Guardian,
    ) -> Result<Result<(), String>, SinkError> {
        let immediate = rule.priority == Priority::Immediate;
        if !g.wants(&rule.category, immediate) {
            self.count("suppressed_preference");
            return Ok(Ok(()));
        }
        if let Some(window) = rule.dedupe_window {
            let ctx = rules::context(
                &event.payload,
                json!({"rule": rule.name, "event_id": event_id}),
            );
            let key = self
                .rules
                .dedupe_key(rule, &ctx)
                .ok()
                .flatten()
                .unwrap_or_else(|| event_id.to_owned());
            let first = dedup::dedupe(conn, &rule.name, &key, &g.id, event_id, ms(window))
                .await
                .map_err(db_err)?;
            if !first {
                let k = Key {
                    event_id: event_id.to_owned(),
                    guardian_id: g.id.clone(),
                    channel: "dedupe".into(),
                    target: String::new(),
                    round: 0,
                };
                let new = dedup::insert_waiting(
                    conn.client(),
                    &k,
                    "suppressed",
                    &rule.name,
                    rule.priority.as_str(),
                    0,
                    None,
                    None,
                    Some("within the rule's dedupe window"),
                )
                .await
                .map_err(db_err)?;
                if new {
                    let a =
                        self.audit_entry("notification.suppressed", "SUCCESS", &k, event, "", None);
                    audit::enqueue(conn, &a).await.map_err(db_err)?;
                    self.count("suppressed_dedupe");
                }
                return Ok(Ok(()));
            }
        }
        let now = jiff::Timestamp::now();
        let tz = routing::zone(&g.time_zone);
        if rule.priority == Priority::Digest {
            let Some(digest) = &self.rules.digest else {
                return Ok(Err("no digest configured".into()));
            };
            let end = routing::digest_window_end(digest.window, now, &tz).as_millisecond();
            let k = Key {
                event_id: event_id.to_owned(),
                guardian_id: g.id.clone(),
                channel: "digest".into(),
                target: String::new(),
                round: 0,
            };
            dedup::insert_waiting(
                conn.client(),
                &k,
                "queued",
                &rule.name,
                "digest",
                0,
                None,
                Some(end),
                None,
            )
            .await
            .map_err(db_err)?;
            return Ok(Ok(()));
        }
        let held =
            routing::held_until(rule.priority, now, &tz, g.quiet).map(|t| t.as_millisecond());
        // Devices matter only to push: a rule without it reads none.
        let devices = if rule.channels.contains(&ChannelKind::Push) {
            recipients::devices(conn, &g.id).await.map_err(db_err)?
        } else {
            Vec::new()
        };
        let preferred = g.channels_for(&rule.category);
        let order: Vec<ChannelKind> = match &preferred {
            Some(p) if !immediate => {
                let mut o: Vec<ChannelKind> = p
                    .iter()
                    .filter_map(|c| ChannelKind::parse(c))
                    .filter(|c| rule.channels.contains(c))
                    .collect();
                let rest: Vec<ChannelKind> = rule
                    .channels
                    .iter()
                    .filter(|c| !o.contains(c))
                    .copied()
                    .collect();
                o.extend(rest);
                o
            }
            _ => rule.channels.clone(),
        };
        let mut chosen = Vec::new();
        for c in &order {
            if chosen.len() >= rule.fanout {
                break;
            }
            if self.reachable(*c, &g, &devices) {
                chosen.push(*c);
            }
        }
        if chosen.is_empty() {
            return Ok(Err(format!(
                "guardian {} has no reachable channel among {:?}",
                g.id, rule.channels
            )));
        }
        if let Some(esc) = rule.escalation {
            dedup::start_escalation(
                conn,
                event_id,
                &g.id,
                &rule.name,
                esc.max as i32,
                now_ms() + ms(esc.every),
            )
            .await
            .map_err(db_err)?;
        }
        let mut reached = false;
        let mut why = Vec::new();
        let mut jobs = Vec::new();
        for c in chosen {
            for target in self.targets(c, &devices) {
                let key = Key::new(event_id, &g.id, c, &target, 0);
                if let Some(until) = held {
                    let new = dedup::insert_waiting(
                        conn.client(),
                        &key,
                        "held",
                        &rule.name,
                        rule.priority.as_str(),
                        0,
                        Some(until),
                        None,
                        Some("quiet hours"),
                    )
                    .await
                    .map_err(db_err)?;
                    if new {
                        let a = self.audit_entry(
                            "notification.held",
                            "SUCCESS",
                            &key,
                            event,
                            "",
                            Some("quiet hours"),
                        );
                        audit::enqueue(conn, &a).await.map_err(db_err)?;
                        self.count("held_quiet_hours");
                    }
                    reached = true;
                    continue;
                }
                jobs.push((
                    c,
                    Job {
                        key,
                        owner: Owner::Rule(Arc::clone(rule)),
                        priority: rule.priority,
                        step: 0,
                        attempts: 0,
                        claimed_by: format!("put:{}", self.settings.instance),
                        event: Arc::clone(event),
                        guardian: g.clone(),
                    },
                ));
            }
        }
        // Every channel at once: the claims go out in one round trip (tokio-postgres pipelines the statements
        // of one connection), then the sends run side by side, each recording its own outcome.
        let states = futures_util::future::join_all(
            jobs.into_iter()
                .map(|(c, job)| async move { (c, self.claim_and_send(conn, job).await) }),
        )
        .await;
        for (c, state) in states {
            match state? {
                s if s == "failed" || s == "skipped" => why.push(format!("{c}: {s}")),
                _ => reached = true,
            }
        }
        if reached {
            Ok(Ok(()))
        } else {
            // Every first channel failed permanently; fallbacks were tried inside.
            let entries = dedup::entries_of(conn, event_id, &g.id)
                .await
                .map_err(db_err)?;
            let ok = entries
                .iter()
                .any(|e| !matches!(e.state.as_str(), "failed" | "skipped"));
            if ok {
                Ok(Ok(()))
            } else {
                Ok(Err(entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}: {}",
                            e.key.channel,
                            e.state,
                            e.response.clone().or(e.reason.clone()).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")))
            }
        }
    }

    fn channel_configured(&self, c: ChannelKind) -> bool {
        match c {
            ChannelKind::Email => self.channels.email.is_some(),
            ChannelKind::Sms => self.channels.sms.is_some(),
            ChannelKind::Push => self.channels.fcm.is_some() || self.channels.apns.is_some(),
            ChannelKind::Webhook => self.channels.webhook.is_some(),
        }
    }

    fn reachable(&self, c: ChannelKind, g: &Guardian, devices: &[Device]) -> bool {
        self.channel_configured(c)
            && match c {
                ChannelKind::Email => g.email.is_some(),
                ChannelKind::Sms => g.phone.is_some(),
                ChannelKind::Push => devices.iter().any(|d| {
                    (d.platform == "fcm" && self.channels.fcm.is_some())
                        || (d.platform == "apns" && self.channels.apns.is_some())
                }),
                ChannelKind::Webhook => {
                    g.webhook_url.is_some()
                        || self
                            .channels
                            .webhook
                            .as_ref()
                            .is_some_and(|w| w.url.is_some())
                }
            }
    }

    fn targets(&self, c: ChannelKind, devices: &[Device]) -> Vec<String> {
        match c {
            ChannelKind::Push => devices
                .iter()
                .filter(|d| {
                    (d.platform == "fcm" && self.channels.fcm.is_some())
                        || (d.platform == "apns" && self.channels.apns.is_some())
                })
                .map(|d| d.hash.clone())
                .collect(),
            _ => vec![String::new()],
        }
    }

    /// Claims a job's entry and sends it; the final (or waiting) state.
    async fn claim_and_send(&self, conn: &Conn<'_>, mut job: Job) -> Result<String, SinkError> {
        let claim = dedup::claim(
            conn,
            &job.key,
            job.owner.name(),
            job.priority.as_str(),
            job.step,
            &job.claimed_by,
            self.settings.lease_ms,
        )
        .await
        .map_err(db_err)?;
        match claim {
            Claim::New => self.send(conn, job).await,
            Claim::Stale(e) => {
                job.attempts = e.attempts;
                self.reconcile(conn, job).await
            }
            Claim::Scheduled(e) | Claim::Done(e) => Ok(e.state),
        }
    }

    /// A pending entry whose send may or may not have happened: sent again where the provider dedupes
    /// (webhooks), else marked ambiguous (and a critical alert escalates on its next channel).
    async fn reconcile(&self, conn: &Conn<'_>, job: Job) -> Result<String, SinkError> {
        if job.key.channel_kind() == Some(ChannelKind::Webhook) {
            return self.send(conn, job).await;
        }
        let outcome = dedup::Outcome::not_sent(
            "ambiguous",
            None,
            "the worker stopped during the send: whether the provider accepted it is unknown, so it is not sent again",
        );
        let a = self.audit_entry(
            "notification.ambiguous",
            "FAILURE",
            &job.key,
            &job.event,
            provider_of(job.key.channel_kind().unwrap_or(ChannelKind::Email), None),
            outcome.reason.as_deref(),
        );
        dedup::record(conn, &job.key, &job.claimed_by, &outcome, Some(&a))
            .await
            .map_err(db_err)?;
        self.metrics
            .attempts
            .get_set(&[
                &job.key.channel,
                provider_of(job.key.channel_kind().unwrap_or(ChannelKind::Email), None),
                "ambiguous",
            ])
            .inc();
        if let Owner::Rule(r) = &job.owner
            && r.escalation.is_some()
        {
            dedup::escalate_now(conn, &job.key.event_id, &job.key.guardian_id)
                .await
                .map_err(db_err)?;
            self.kick();
        }
        Ok("ambiguous".into())
    }

    fn audit_entry(
        &self,
        action: &str,
        outcome: &str,
        key: &Key,
        event: &dedup::StoredEvent,
        provider: &str,
        reason: Option<&str>,
    ) -> audit::Entry {
        let resource =
            crate::channels::jwt::sha256_hex(key.idempotency().as_bytes())[..32].to_owned();
        let mut a = audit::Entry::new(
            action,
            outcome,
            "notification",
            &resource,
            &format!("{}|{}", key.idempotency(), now_ms()),
        )
        .detail("event_id", key.event_id.clone())
        .detail("guardian_id", key.guardian_id.clone())
        .detail("channel", key.channel.clone())
        .detail("provider", provider)
        .detail("rule", event.rule.clone())
        .detail("round", key.round.to_string());
        a.reason = reason.map(crate::channels::redact);
        a.child_id = event.child_id.clone();
        a.household_id = event.household_id.clone();
        a
    }

    /// Renders and sends a claimed job, records the outcome, and acts on it (quarantine, fallback, escalation,
    /// back-off). Returns the entry's new state.
    async fn send(&self, conn: &Conn<'_>, job: Job) -> Result<String, SinkError> {
        let Some(channel) = job.key.channel_kind() else {
            return Ok("skipped".into());
        };
        let device = if channel == ChannelKind::Push {
            recipients::device(conn, &job.key.target)
                .await
                .map_err(db_err)?
        } else {
            None
        };
        let provider = provider_of(channel, device.as_ref());
        // The address, as the directory has it now.
        let to = match channel {
            ChannelKind::Email => job.guardian.email.clone().map(Address::Email),
            ChannelKind::Sms => job.guardian.phone.clone().map(Address::Phone),
            ChannelKind::Webhook => job
                .guardian
                .webhook_url
                .clone()
                .or_else(|| self.channels.webhook.as_ref().and_then(|w| w.url.clone()))
                .map(Address::Webhook),
            ChannelKind::Push => device.as_ref().filter(|d| d.state == "active").map(|d| {
                if d.platform == "apns" {
                    Address::Apns(d.token.clone())
                } else {
                    Address::Fcm(d.token.clone())
                }
            }),
        };
        let Some(to) = to.filter(|_| self.channel_configured(channel)) else {
            let outcome =
                dedup::Outcome::not_sent("skipped", None, "no address for this channel any more");
            dedup::record(conn, &job.key, &job.claimed_by, &outcome, None)
                .await
                .map_err(db_err)?;
            self.fallback(conn, &job).await?;
            return Ok("skipped".into());
        };
        // A per-recipient SMS limit (not for immediate notifications): wait in the ledger.
        if channel == ChannelKind::Sms
            && job.priority != Priority::Immediate
            && self.settings.sms_per_hour > 0
        {
            let hour = 3_600_000;
            let (n, oldest) = dedup::recent_sends(conn, &job.guardian.id, "sms", now_ms() - hour)
                .await
                .map_err(db_err)?;
            if n >= self.settings.sms_per_hour {
                let until = oldest.unwrap_or_else(now_ms) + hour;
                let outcome =
                    dedup::Outcome::not_sent("held", Some(until), "per-recipient SMS limit");
                let a = self.audit_entry(
                    "notification.held",
                    "SUCCESS",
                    &job.key,
                    &job.event,
                    provider,
                    Some("per-recipient SMS limit"),
                );
                dedup::record(conn, &job.key, &job.claimed_by, &outcome, Some(&a))
                    .await
                    .map_err(db_err)?;
                self.count("held_recipient_limit");
                return Ok("held".into());
            }
        }
        // A provider that asked us to slow down (429 Retry-After): wait in the ledger, not in the partition.
        let blocked_until = self
            .blocked
            .lock()
            .ok()
            .and_then(|b| b.get(provider).copied());
        if let Some(until) = blocked_until.filter(|u| *u > now_ms()) {
            let outcome = dedup::Outcome::not_sent(
                "retry",
                Some(until),
                "the provider asked to wait (Retry-After)",
            );
            dedup::record(conn, &job.key, &job.claimed_by, &outcome, None)
                .await
                .map_err(db_err)?;
            return Ok("retry".into());
        }
        let message = match self.render(&job, channel, to) {
            Ok(m) => m,
            Err(e) => {
                let outcome = dedup::Outcome::not_sent("failed", None, &format!("template: {e}"));
                let a = self.audit_entry(
                    "notification.failed",
                    "FAILURE",
                    &job.key,
                    &job.event,
                    provider,
                    outcome.reason.as_deref(),
                );
                dedup::record(conn, &job.key, &job.claimed_by, &outcome, Some(&a))
                    .await
                    .map_err(db_err)?;
                self.fallback(conn, &job).await?;
                return Ok("failed".into());
            }
        };
        let limiter_key = match channel {
            ChannelKind::Email => "email",
            ChannelKind::Sms => "sms",
            ChannelKind::Push => "push",
            ChannelKind::Webhook => "webhook",
        };
        let _permit = match self.limiters.get(limiter_key) {
            Some(l) => Some(l.acquire(Some(&job.guardian.id)).await),
            None => None,
        };
        let started = tokio::time::Instant::now();
        let result = match (&message.to, channel) {
            (Address::Email(_), _) => match &self.channels.email {
                Some(e) => e.send(&message).await,
                None => unconfigured(),
            },
            (Address::Phone(_), _) => match &self.channels.sms {
                Some(s) => s.send(&message).await,
                None => unconfigured(),
            },
            (Address::Fcm(_), _) => match &self.channels.fcm {
                Some(f) => f.send(&message, false).await,
                None => unconfigured(),
            },
            (Address::Apns(_), _) => match &self.channels.apns {
                Some(a) => a.send(&message).await,
                None => unconfigured(),
            },
            (Address::Webhook(_), _) => match &self.channels.webhook {
                Some(w) => {
                    let data = public_event(&job.event, true);
                    let body = Webhook::body(&message, &job.guardian.id, &data);
                    w.send(&message, body).await
                }
                None => unconfigured(),
            },
        };
        if let Some(h) = self.metrics.latency.get(channel.as_str()) {
            h.observe(started.elapsed().as_secs_f64());
        }
        self.metrics
            .attempts
            .get_set(&[channel.as_str(), provider, result.outcome()])
            .inc();
        let attempts = job.attempts as u32 + 1;
        let exhausted =
            matches!(result, SendResult::Retry { .. }) && attempts >= self.settings.max_attempts;
        let after = match &result {
            SendResult::Retry { after, .. } => *after,
            _ => None,
        };
        if let (SendResult::Retry { after: Some(a), .. }, true) =
            (&result, matches!(provider, "twilio" | "fcm" | "webhook"))
        {
            // The provider's Retry-After holds every send to it, not only this one.
            if let Ok(mut b) = self.blocked.lock() {
                b.insert(provider, now_ms() + ms(*a));
            }
        }
        let not_before = now_ms() + ms(routing::backoff(attempts, after, self.settings.retry_max));
        let outcome = dedup::Outcome::from_result(&result, provider, Some(not_before), exhausted);
        let (action, audit_outcome) = match outcome.state {
            "sent" => ("notification.sent", "SUCCESS"),
            "retry" => ("notification.retry", "FAILURE"),
            "ambiguous" => ("notification.ambiguous", "FAILURE"),
            _ => ("notification.failed", "FAILURE"),
        };
        let mut a = self.audit_entry(
            action,
            audit_outcome,
            &job.key,
            &job.event,
            provider,
            outcome.reason.as_deref(),
        );
        a = a
            .detail("priority", job.priority.as_str())
            .detail("step", job.step.to_string())
            .detail("attempt", attempts.to_string())
            .detail(
                "provider_message_id",
                outcome.provider_message_id.clone().unwrap_or_default(),
            );
        let ours = dedup::record(conn, &job.key, &job.claimed_by, &outcome, Some(&a))
            .await
            .map_err(db_err)?;
        if !ours {
            return Ok(outcome.state.to_owned());
        }
        if let (ChannelKind::Sms, Some(sid), Some(_)) = (
            channel,
            outcome.provider_message_id.as_deref(),
            self.settings.public_url.as_ref(),
        ) {
            // Status callbacks that came before this outcome was recorded.
            self.apply_statuses(conn, sid).await?;
        }
        match &result {
            SendResult::BadAddress { reason, .. } if channel == ChannelKind::Push => {
                recipients::quarantine(
                    conn,
                    &job.key.target,
                    reason,
                    ms(self.settings.recheck_after),
                )
                .await
                .map_err(db_err)?;
                let q = audit::Entry::new(
                    "device.quarantined",
                    "SUCCESS",
                    "device",
                    &job.key.target,
                    &format!("{}|{}", job.key.idempotency(), now_ms()),
                )
                .detail("guardian_id", job.guardian.id.clone())
                .detail("provider", provider);
                audit::enqueue(conn, &q).await.map_err(db_err)?;
                self.count("device_quarantined");
                self.fallback(conn, &job).await?;
            }
            SendResult::Permanent { .. } | SendResult::BadAddress { .. } => {
                self.fallback(conn, &job).await?
            }
            SendResult::Retry { .. } if exhausted => self.fallback(conn, &job).await?,
            SendResult::Ambiguous { .. } => {
                if let Owner::Rule(r) = &job.owner
                    && r.escalation.is_some()
                {
                    dedup::escalate_now(conn, &job.key.event_id, &job.key.guardian_id)
                        .await
                        .map_err(db_err)?;
                    self.kick();
                }
            }
            _ => {}
        }
        Ok(outcome.state.to_owned())
    }

    /// After a channel failed for good: the next channel of the rule not used yet in this round (push counts
    /// as failed only when every device failed).
    async fn fallback(&self, conn: &Conn<'_>, job: &Job) -> Result<(), SinkError> {
        let channels: Vec<ChannelKind> = match &job.owner {
            Owner::Rule(r) => r.channels.clone(),
            Owner::Digest => self
                .rules
                .digest
                .as_ref()
                .map(|d| d.channels.clone())
                .unwrap_or_default(),
        };
        let entries = dedup::entries_of(conn, &job.key.event_id, &job.key.guardian_id)
            .await
            .map_err(db_err)?;
        let this_round: Vec<&LedgerEntry> = entries
            .iter()
            .filter(|e| e.key.round == job.key.round)
            .collect();
        let still_alive = this_round.iter().any(|e| {
            e.key.channel == job.key.channel && !matches!(e.state.as_str(), "failed" | "skipped")
        });
        if still_alive {
            return Ok(());
        }
        let used: BTreeSet<&str> = this_round.iter().map(|e| e.key.channel.as_str()).collect();
        let devices = recipients::devices(conn, &job.guardian.id)
            .await
            .map_err(db_err)?;
        let Some(next) = channels
            .iter()
            .find(|c| !used.contains(c.as_str()) && self.reachable(**c, &job.guardian, &devices))
        else {
            return Ok(());
        };
        self.count("fallback");
        for target in self.targets(*next, &devices) {
            let next_job = Job {
                key: Key::new(
                    &job.key.event_id,
                    &job.guardian.id,
                    *next,
                    &target,
                    job.key.round,
                ),
                owner: job.owner.clone(),
                priority: job.priority,
                step: job.step,
                attempts: 0,
                claimed_by: job.claimed_by.clone(),
                event: Arc::clone(&job.event),
                guardian: job.guardian.clone(),
            };
            Box::pin(self.claim_and_send(conn, next_job)).await?;
        }
        Ok(())
    }

    /// The message of a job: its templates rendered for the guardian's locale, PII kept out of SMS and push.
    fn render(&self, job: &Job, channel: ChannelKind, to: Address) -> Result<Message, String> {
        let ack_url = self.ack_url(&job.key.event_id, &job.guardian.id);
        let notification = json!({
            "rule": job.owner.name(),
            "priority": job.priority.as_str(),
            "event_id": job.key.event_id,
            "guardian_id": job.guardian.id,
            "locale": job.guardian.locale,
            "ack_url": ack_url,
            "step": job.step,
            "channel": channel.as_str(),
        });
        let (owner, locales, ctx) = match &job.owner {
            Owner::Rule(r) => {
                let mut event = job.event.payload.clone();
                if channel.is_public() {
                    let pii: BTreeSet<String> = job.event.pii.iter().cloned().collect();
                    rules::strip_paths(&mut event, &pii, &r.allow_pii);
                }
                (
                    r.name.as_str(),
                    r.locales.get(&channel).cloned().unwrap_or_default(),
                    rules::context(&event, notification),
                )
            }
            Owner::Digest => {
                let items = self.digest_items(&job.event.payload, channel, &job.guardian.locale);
                (
                    "digest",
                    self.rules
                        .digest
                        .as_ref()
                        .and_then(|d| d.locales.get(&channel).cloned())
                        .unwrap_or_default(),
                    rules::digest_context(&items, notification),
                )
            }
        };
        let content = if channel == ChannelKind::Webhook && locales.is_empty() {
            rules::Rendered::default()
        } else {
            let locale = self
                .rules
                .pick_locale(&locales, &job.guardian.locale)
                .ok_or_else(|| format!("no {channel} template"))?
                .to_owned();
            self.rules.render(owner, channel, &locale, &ctx)?
        };
        Ok(Message {
            key: job.key.idempotency(),
            to,
            content,
            priority: job.priority,
            event_id: job.key.event_id.clone(),
            rule: owner.to_owned(),
            ack_url,
            status_callback: (channel == ChannelKind::Sms)
                .then(|| self.status_callback())
                .flatten(),
        })
    }

    /// The items of a digest for a channel: each item's title rendered from its rule's template for that
    /// channel (subject, title or text), PII kept out for public channels.
    fn digest_items(&self, payload: &Value, channel: ChannelKind, locale: &str) -> Value {
        let items = payload
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Value::Array(
            items
                .into_iter()
                .map(|mut item| {
                    let rule = item
                        .get("rule")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let pii: BTreeSet<String> = item
                        .get("pii")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|p| p.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    let r = self.rules.rules.iter().find(|r| r.name == rule);
                    if let Some(ev) = item.get_mut("event") {
                        if channel.is_public() {
                            rules::strip_paths(
                                ev,
                                &pii,
                                &r.map(|r| r.allow_pii.clone()).unwrap_or_default(),
                            );
                        }
                    }
                    let title = r.and_then(|r| {
                        let locales = r.locales.get(&channel)?;
                        let l = self.rules.pick_locale(locales, locale)?;
                        let ctx = rules::context(
                            item.get("event").unwrap_or(&Value::Null),
                            json!({"rule": rule}),
                        );
                        let out = self.rules.render(&r.name, channel, l, &ctx).ok()?;
                        out.subject.or(out.title).or(out.text)
                    });
                    item["title"] = Value::String(title.unwrap_or(rule));
                    if let Some(o) = item.as_object_mut() {
                        o.shift_remove("pii");
                    }
                    item
                })
                .collect(),
        )
    }

    /// Acknowledges an event for a guardian (a link or an event): its escalations stop.
    pub async fn acknowledge(
        &self,
        event_id: &str,
        guardian: &str,
        via: &str,
    ) -> Result<bool, SinkError> {
        let mut conn = self.conn().await?;
        let ev = dedup::event(&conn, event_id).await.map_err(db_err)?;
        let key = Key {
            event_id: event_id.to_owned(),
            guardian_id: guardian.to_owned(),
            channel: "ack".into(),
            target: String::new(),
            round: 0,
        };
        let stored = ev.unwrap_or(dedup::StoredEvent {
            topic: String::new(),
            rule: String::new(),
            payload: Value::Null,
            pii: Vec::new(),
            child_id: None,
            household_id: None,
            acked_at: None,
        });
        let a = self
            .audit_entry(
                "notification.acknowledged",
                "SUCCESS",
                &key,
                &stored,
                "",
                None,
            )
            .detail("via", via);
        let first = dedup::acknowledge(&mut conn, event_id, guardian, &a)
            .await
            .map_err(db_err)?;
        conn.release();
        if first {
            self.count("acknowledged");
        }
        Ok(first)
    }

    /// Forgets the kept status callbacks of messages the ledger never learnt (another sender's, or a send lost
    /// in a crash) once they are a day old; how many. The scheduler does it once a minute.
    pub async fn expire_statuses(&self) -> Result<u64, SinkError> {
        let conn = self.conn().await?;
        let n = dedup::expire_statuses(&conn, now_ms() - STATUS_KEPT_MS)
            .await
            .map_err(db_err)?;
        conn.release();
        Ok(n)
    }

    /// One pass of the scheduler: due sends, escalations, digests, token re-checks, the audit outbox.
    pub async fn run_scheduler(&self) -> Result<(), SinkError> {
        let mut conn = self.conn().await?;
        let instance = self.settings.instance.clone();
        // Due sends.
        let due = dedup::claim_due(&conn, &instance, self.settings.lease_ms, 200)
            .await
            .map_err(db_err)?;
        for e in due {
            let Some(job) = self.job_of(&conn, &e).await? else {
                let outcome =
                    dedup::Outcome::not_sent("failed", None, "its event or guardian is gone");
                dedup::record(
                    &conn,
                    &e.key,
                    &format!("scheduler:{instance}"),
                    &outcome,
                    None,
                )
                .await
                .map_err(db_err)?;
                continue;
            };
            if e.reason.as_deref() == Some("lease expired") {
                self.reconcile(&conn, job).await?;
            } else {
                self.send(&conn, job).await?;
            }
        }
        // Kept status callbacks, once a minute (not on every pass: a busy sink makes dozens a second).
        let now = now_ms();
        let last = self.statuses_expired_at.load(Ordering::Relaxed);
        if now - last >= 60_000
            && self
                .statuses_expired_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            dedup::expire_statuses(&conn, now - STATUS_KEPT_MS)
                .await
                .map_err(db_err)?;
        }
        // Escalations.
        let every = |rule: &str| {
            self.rules
                .rules
                .iter()
                .find(|r| r.name == rule)
                .and_then(|r| r.escalation)
                .map(|e| ms(e.every))
        };
        let steps = dedup::claim_escalations(&mut conn, &every, 100)
            .await
            .map_err(db_err)?;
        for s in steps {
            self.escalate(&mut conn, &s).await?;
        }
        // Digests.
        if let Some(digest) = &self.rules.digest {
            for (guardian_id, window) in dedup::due_digests(&conn, 100).await.map_err(db_err)? {
                let Some(g) = recipients::guardian(&conn, &guardian_id)
                    .await
                    .map_err(db_err)?
                else {
                    continue;
                };
                let devices = recipients::devices(&conn, &g.id).await.map_err(db_err)?;
                let Some(first) = digest
                    .channels
                    .iter()
                    .find(|c| self.reachable(**c, &g, &devices))
                else {
                    continue;
                };
                let target = self
                    .targets(*first, &devices)
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                let digest_id = format!("digest:{guardian_id}:{window}");
                let key = Key::new(&digest_id, &g.id, *first, &target, 0);
                let make = |items: &[dedup::DigestItem]| {
                    json!({"window": window, "items": items.iter().map(|(id, rule, payload, pii)| json!({
                        "event_id": id, "rule": rule, "event": payload, "pii": pii,
                    })).collect::<Vec<_>>()})
                };
                if dedup::close_digest(&mut conn, &guardian_id, window, &key, &make)
                    .await
                    .map_err(db_err)?
                {
                    self.count("digest");
                    self.kick();
                }
            }
        }
        // Quarantined FCM tokens: a validate-only send says whether they are valid again.
        if let Some(fcm) = &self.channels.fcm {
            for d in recipients::due_rechecks(&conn, 20).await.map_err(db_err)? {
                if d.platform != "fcm" {
                    continue;
                }
                let m = Message {
                    key: format!("recheck/{}", d.hash),
                    to: Address::Fcm(d.token.clone()),
                    content: rules::Rendered::default(),
                    priority: Priority::Normal,
                    event_id: String::new(),
                    rule: "recheck".into(),
                    ack_url: None,
                    status_callback: None,
                };
                let r = fcm.send(&m, true).await;
                let ok = matches!(r, SendResult::Sent { .. });
                if ok
                    || matches!(
                        r,
                        SendResult::BadAddress { .. } | SendResult::Permanent { .. }
                    )
                {
                    recipients::recheck_result(
                        &conn,
                        &d.hash,
                        ok,
                        r.reason(),
                        ms(self.settings.recheck_after),
                        self.settings.recheck_max_failures,
                    )
                    .await
                    .map_err(db_err)?;
                }
            }
        }
        conn.release();
        // The audit outbox.
        if let Some(p) = &self.publisher {
            match p.drain(&self.db, 500).await {
                Ok(500) => self.kick(),
                Ok(_) => {}
                Err(e) => tracing::warn!(connector = %self.settings.connector, "{e}"),
            }
        }
        Ok(())
    }

    async fn job_of(&self, conn: &Conn<'_>, e: &LedgerEntry) -> Result<Option<Job>, SinkError> {
        let Some(event) = dedup::event(conn, &e.key.event_id).await.map_err(db_err)? else {
            return Ok(None);
        };
        let Some(guardian) = recipients::guardian(conn, &e.key.guardian_id)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let owner = if e.rule == "digest" {
            Owner::Digest
        } else {
            match self.rules.rules.iter().find(|r| r.name == e.rule) {
                Some(r) => Owner::Rule(Arc::clone(r)),
                None => return Ok(None),
            }
        };
        Ok(Some(Job {
            key: e.key.clone(),
            owner,
            priority: Priority::parse(&e.priority).unwrap_or(Priority::Normal),
            step: e.step,
            attempts: e.attempts,
            claimed_by: format!("scheduler:{}", self.settings.instance),
            event: Arc::new(event),
            guardian,
        }))
    }

    async fn escalate(
        &self,
        conn: &mut Conn<'_>,
        s: &dedup::DueEscalation,
    ) -> Result<(), SinkError> {
        let Some(rule) = self.rules.rules.iter().find(|r| r.name == s.rule).cloned() else {
            return Ok(());
        };
        let Some(event) = dedup::event(conn, &s.event_id).await.map_err(db_err)? else {
            return Ok(());
        };
        let Some(g) = recipients::guardian(conn, &s.guardian_id)
            .await
            .map_err(db_err)?
        else {
            return Ok(());
        };
        let devices = recipients::devices(conn, &g.id).await.map_err(db_err)?;
        let event = Arc::new(event);
        // The step's channel, or the next reachable one after it.
        let n = rule.channels.len() as u32;
        for skip in 0..n {
            let Some((channel, round)) = routing::escalation_channel(&rule, s.step as u32 + skip)
            else {
                break;
            };
            if !self.reachable(channel, &g, &devices) {
                continue;
            }
            let key0 = Key::new(&s.event_id, &g.id, channel, "", round);
            let a = self
                .audit_entry("notification.escalated", "SUCCESS", &key0, &event, "", None)
                .detail("step", s.step.to_string());
            audit::enqueue(conn, &a).await.map_err(db_err)?;
            self.count("escalated");
            for target in self.targets(channel, &devices) {
                let job = Job {
                    key: Key::new(&s.event_id, &g.id, channel, &target, round),
                    owner: Owner::Rule(Arc::clone(&rule)),
                    priority: rule.priority,
                    step: s.step,
                    attempts: 0,
                    claimed_by: format!("scheduler:{}", self.settings.instance),
                    event: Arc::clone(&event),
                    guardian: g.clone(),
                };
                self.claim_and_send(conn, job).await?;
            }
            break;
        }
        Ok(())
    }

    /// A Twilio status callback: a message the carrier could not deliver for a reason that passes (30003) is
    /// sent again later; a delivery is noted.
    pub async fn twilio_status(
        &self,
        sid: &str,
        status: &str,
        error_code: Option<&str>,
    ) -> Result<bool, SinkError> {
        let conn = self.conn().await?;
        // Usually the send's outcome is recorded already: one statement. Otherwise the status is kept, then
        // applied if the ledger knows the message by now; if not, the send applies it once it records the
        // message id (`apply_statuses` after `dedup::record`): one of the two always sees the other.
        let applied = match self.apply_status(&conn, sid, status, error_code).await? {
            Some(changed) => changed,
            None => {
                dedup::keep_status(&conn, sid, status, error_code)
                    .await
                    .map_err(db_err)?;
                self.apply_statuses(&conn, sid).await?
            }
        };
        conn.release();
        Ok(applied)
    }

    /// Applies one status to the entry of its message: `None` if the ledger does not know the message (or
    /// knows a status as far along, which the kept-status path then sorts out).
    async fn apply_status(
        &self,
        conn: &Conn<'_>,
        sid: &str,
        status: &str,
        code: Option<&str>,
    ) -> Result<Option<bool>, SinkError> {
        match (status, code) {
            ("undelivered" | "failed", Some("30003")) => {
                let Some(e) = dedup::by_message_id(conn, sid).await.map_err(db_err)? else {
                    return Ok(None);
                };
                let at = now_ms() + 300_000;
                dedup::reschedule_sent(
                    conn,
                    &e.key,
                    at,
                    "Twilio 30003: unreachable handset; trying again later",
                )
                .await
                .map(Some)
                .map_err(db_err)
            }
            (status, code) => Ok(dedup::set_status(conn, sid, status, code)
                .await
                .map_err(db_err)?
                .then_some(true)),
        }
    }

    /// Applies the kept status callbacks of a message the ledger knows. Returns whether any changed it.
    async fn apply_statuses(&self, conn: &Conn<'_>, sid: &str) -> Result<bool, SinkError> {
        let statuses = dedup::take_statuses(conn, sid).await.map_err(db_err)?;
        let mut changed = false;
        for (status, code) in &statuses {
            changed |= self
                .apply_status(conn, sid, status, code.as_deref())
                .await?
                .unwrap_or(false);
        }
        Ok(changed)
    }
}

fn unconfigured() -> SendResult {
    SendResult::Permanent {
        reason: "the channel is not configured".into(),
        response: String::new(),
    }
}

/// The event without its PII (webhook payloads carry no PII: they leave the platform).
fn public_event(event: &dedup::StoredEvent, strip: bool) -> Value {
    let mut v = event.payload.clone();
    if strip {
        let pii: BTreeSet<String> = event.pii.iter().cloned().collect();
        rules::strip_paths(&mut v, &pii, &BTreeSet::new());
    }
    v
}

impl Sink for NotifySink {
    fn open<'a>(
        &'a self,
        _partitions: &'a [TopicPartition],
        _generation: u64,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.core.conn().await?.release();
            self.start_background()
        })
    }

    fn put<'a>(
        &'a self,
        records: &'a [SinkRecord],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, SinkError>> {
        Box::pin(async move {
            self.start_background()?;
            self.core.put(records).await
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let conn = self.core.conn().await?;
            conn.client()
                .simple_query("SELECT 1")
                .await
                .map_err(|e| db_err(e.into()))?;
            conn.release();
            Ok(())
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stop.notify_waiters();
            let handles: Vec<_> = self
                .background
                .lock()
                .map(|mut b| b.drain(..).collect())
                .unwrap_or_default();
            for h in handles {
                h.abort();
                let _ = h.await;
            }
            // What is left in the outbox goes out now (the next start would send it otherwise).
            if let Some(p) = &self.core.publisher {
                let _ = p.drain(&self.core.db, 5000).await;
            }
        })
    }

    fn conversion(&self) -> Conversion {
        Conversion::JsonTree
    }
}
