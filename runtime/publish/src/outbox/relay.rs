//! The outbox relay: publishes committed outbox rows in id order and marks them sent.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};
use ursa_avro::schema::fingerprint64;
use ursa_avro::uuid::Uuid;

use crate::prepared::{PreparedEvent, SchemaText};
use crate::{Error, Outbox, Publisher, PublisherConfig};

/// How the relay runs.
#[derive(Clone)]
pub struct RelayConfig {
    /// The database holding the outbox (`postgres://…`; the relay connects without TLS).
    pub database_url: String,
    /// Rows published per batch; also the most rows a relay crash can leave published-but-unmarked.
    pub batch_size: i64,
    /// How often an idle relay (or a standby) looks again, besides the `NOTIFY` that wakes it.
    pub poll_interval: Duration,
    /// The longest backoff after a failure (database, registry, an unknown topic); it starts at 100 ms.
    pub max_backoff: Duration,
    /// How long the relay logs "still waiting" between checks while the broker does not acknowledge.
    pub progress_interval: Duration,
    /// On shutdown, how long the relay still waits for the acknowledgements of the batch in flight before it
    /// stops (the batch stays unmarked and is published again by the next relay).
    pub shutdown_grace: Duration,
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("batch_size", &self.batch_size)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl RelayConfig {
    /// Defaults: batches of 500, polling every second, backoff up to 30 s, 30 s of grace on shutdown.
    pub fn new(database_url: impl Into<String>) -> RelayConfig {
        RelayConfig {
            database_url: database_url.into(),
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            progress_interval: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// What a relay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Rows published and marked sent.
    pub sent: u64,
    /// Rows that can never be delivered (too large for the topic), dead-lettered and marked failed.
    pub failed: u64,
    /// Batches published.
    pub batches: u64,
}

/// Publishes the outbox's committed rows to Kafka, in id order, and marks them sent.
///
/// # Guarantee
///
/// - **Nothing committed is lost.** A row is marked `sent_at` only after the broker acknowledged it with
///   `acks=all`; a relay that dies (kill -9 included) before that leaves the row unsent, and the next relay
///   publishes it. The relay's producer never gives up on a row (`message.timeout.ms = 0`: librdkafka retries a
///   down broker forever); rows the broker can never take (larger than the topic allows) are dead-lettered and
///   marked `failed_at`, and stay in the table with their payload ([`Outbox::retry_failed`]).
/// - **Order per key.** One relay at a time starts batches (the others wait as standbys): the leader holds a
///   PostgreSQL session advisory lock, released by the server when the leader's connection ends, however it
///   ends. The leader sends a batch in id order to the idempotent producer, which keeps order per partition
///   across its retries, and sends the next batch only once every row of the batch is acknowledged. So the
///   records of one key appear in the topic in the order their rows were committed (by id). A row that fails
///   for a topic-wide reason (unknown or forbidden topic) stays unsent and is retried with backoff, together
///   with every later row of that topic, so no later row of its key overtakes it. A relay that lost its
///   connection starts no new batch, but its last batch may still be in flight while the next leader begins
///   with the same rows: both send in id order, so the first occurrences stay in commit order, and the
///   overlap is the duplicates below.
/// - **Duplicates.** The idempotent producer absorbs its own retries. What it cannot absorb is a new producer:
///   when a relay stops (crash, kill -9, lost connection, shutdown past its grace period) after the broker
///   acknowledged rows of a batch but before the `UPDATE … SET sent_at` of that batch committed, the next
///   relay publishes those rows again. Such duplicates are at most one batch (`batch_size` rows) per relay
///   stop, carry the same `event_id` and `outbox_id` headers as the first copies, and come after them.
///   Precisely: per key, the records with duplicates removed (keeping the first occurrence of each
///   `outbox_id`) are exactly the committed rows, in commit order. Consumers that need exactly-once effects
///   de-duplicate on `event_id` (or `outbox_id`).
pub struct Relay {
    outbox: Outbox,
    publisher: Publisher,
    config: RelayConfig,
    schemas: Mutex<HashMap<i64, Arc<str>>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("outbox", &self.outbox)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The shutdown signal, remembered once it fired.
struct Stop<'a> {
    signal: Pin<&'a mut (dyn Future<Output = ()> + Send + 'a)>,
    fired: Option<Instant>,
}

impl Stop<'_> {
    /// Resolves when shutdown was asked for (at once if it was already).
    async fn fired(&mut self) {
        if self.fired.is_none() {
            self.signal.as_mut().await;
            self.fired = Some(Instant::now());
        }
    }

    fn is_fired(&self) -> bool {
        self.fired.is_some()
    }
}

/// A database connection: the client, and the notifications its connection task forwards.
struct Connection {
    client: Client,
    notifications: mpsc::UnboundedReceiver<()>,
}

/// One batch's outcome.
enum Batch {
    /// Rows were published (or failed for good); more may be waiting.
    Done(usize),
    /// Nothing to do.
    Empty,
    /// Rows stay unsent for a reason that may pass (registry down, unknown topic): back off.
    Stalled(Error),
    /// Shutdown came while the batch was in flight, past the grace period.
    Stopped,
}

impl Relay {
    /// A relay for `outbox`, publishing with `publisher` settings (its `delivery_timeout` is set to forever:
    /// the relay never gives up on a row).
    pub fn new(
        outbox: Outbox,
        mut publisher: PublisherConfig,
        config: RelayConfig,
    ) -> Result<Relay, Error> {
        if config.batch_size < 1 {
            return Err(Error::Config(
                "the relay's batch size must be at least 1".into(),
            ));
        }
        publisher.delivery_timeout = None;
        Ok(Relay {
            outbox,
            publisher: Publisher::new(publisher)?,
            config,
            schemas: Mutex::new(HashMap::new()),
        })
    }

    /// The relay's publisher.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The advisory lock key of this outbox (one leader per table).
    fn lock_key(&self) -> i64 {
        fingerprint64(format!("ursa-outbox:{}", self.outbox.table()).as_bytes()) as i64
    }

    /// Relays until `shutdown` resolves, then waits (up to the grace period) for the batch in flight and the
    /// producer. Failures of the database, the registry or the broker are retried with backoff, never returned.
    pub async fn run(
        &self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<RelayStats, Error> {
        let mut stats = RelayStats::default();
        let signal = std::pin::pin!(shutdown);
        let mut stop = Stop {
            signal,
            fired: None,
        };
        let mut backoff = Backoff::new(self.config.max_backoff);
        'connect: while !stop.is_fired() {
            let mut conn = tokio::select! {
                biased;
                _ = stop.fired() => break,
                c = self.connect() => match c {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox relay: cannot connect to PostgreSQL");
                        self.pause(&mut stop, backoff.next()).await;
                        continue;
                    }
                },
            };
            // Leadership: one relay per outbox table.
            let mut standby_logged = false;
            loop {
                let sql = "SELECT pg_try_advisory_lock($1)";
                let key = self.lock_key();
                match self
                    .outbox
                    .deadline("taking the relay lock", conn.client.query_one(sql, &[&key]))
                    .await
                    .and_then(|row| {
                        row.try_get::<_, bool>(0)
                            .map_err(Error::postgres("taking the relay lock"))
                    }) {
                    Ok(true) => break,
                    Ok(false) => {
                        if !standby_logged {
                            tracing::info!(
                                table = self.outbox.table(),
                                "outbox relay: another relay leads; standing by"
                            );
                            standby_logged = true;
                        }
                        self.pause(&mut stop, self.config.poll_interval).await;
                        if stop.is_fired() {
                            break 'connect;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox relay: lost the database connection");
                        self.pause(&mut stop, backoff.next()).await;
                        continue 'connect;
                    }
                }
            }
            tracing::info!(table = self.outbox.table(), "outbox relay: leading");
            let listen = format!("LISTEN {}", self.outbox.channel());
            if let Err(e) = self
                .outbox
                .deadline("listening for new rows", conn.client.batch_execute(&listen))
                .await
            {
                tracing::warn!(error = %e, "outbox relay: LISTEN failed");
                self.pause(&mut stop, backoff.next()).await;
                continue;
            }
            loop {
                if stop.is_fired() {
                    break 'connect;
                }
                match self.batch(&conn.client, &mut stop, &mut stats).await {
                    Batch::Done(n) => {
                        tracing::debug!(rows = n, "outbox relay: batch done");
                        backoff.reset();
                    }
                    Batch::Empty => {
                        backoff.reset();
                        tokio::select! {
                            biased;
                            _ = stop.fired() => break 'connect,
                            n = conn.notifications.recv() => if n.is_none() {
                                tracing::warn!("outbox relay: the database connection closed");
                                continue 'connect;
                            },
                            _ = tokio::time::sleep(self.config.poll_interval) => {}
                        }
                    }
                    Batch::Stalled(e) => {
                        let wait = backoff.next();
                        tracing::warn!(error = %e, ?wait, "outbox relay: rows stay unsent for now");
                        let lost = e.is_retriable()
                            && matches!(e, Error::Postgres { .. } | Error::PostgresTimeout { .. });
                        self.pause(&mut stop, wait).await;
                        if lost {
                            continue 'connect;
                        }
                    }
                    Batch::Stopped => break 'connect,
                }
                // Drain wake-ups that arrived while publishing: the next batch reads the table anyway.
                while conn.notifications.try_recv().is_ok() {}
            }
        }
        self.publisher.shutdown(self.config.shutdown_grace).await?;
        Ok(stats)
    }

    /// Sleeps `wait`, or until shutdown.
    async fn pause(&self, stop: &mut Stop<'_>, wait: Duration) {
        tokio::select! {
            biased;
            _ = stop.fired() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }

    async fn connect(&self) -> Result<Connection, Error> {
        let mut config: tokio_postgres::Config = self
            .config
            .database_url
            .parse()
            .map_err(|e| Error::Config(format!("the relay's database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.outbox.timeout());
        }
        config.application_name(format!(
            "ursa-outbox-relay {}",
            self.publisher.config().producer_name
        ));
        let (client, mut connection) = self
            .outbox
            .deadline("connecting", config.connect(NoTls))
            .await?;
        let (tx, notifications) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        if tx.send(()).is_err() {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "outbox relay: database connection error");
                        break;
                    }
                    None => break,
                }
            }
        });
        Ok(Connection {
            client,
            notifications,
        })
    }

    /// Publishes one batch of unsent rows in id order, waits for every acknowledgement, and marks them.
    async fn batch(&self, client: &Client, stop: &mut Stop<'_>, stats: &mut RelayStats) -> Batch {
        let rows = match self.unsent(client).await {
            Ok(rows) if rows.is_empty() => return Batch::Empty,
            Ok(rows) => rows,
            Err(e) => return Batch::Stalled(e),
        };
        // Send in id order; stop at the first row that cannot be sent, so no later row overtakes it.
        let mut in_flight = Vec::with_capacity(rows.len());
        let mut stalled = None;
        for (id, event) in rows {
            match self.publisher.send_without_dead_letter(&event).await {
                Ok(d) => in_flight.push((id, event, d)),
                Err(e) => {
                    stalled = Some(e);
                    break;
                }
            }
        }
        let mut sent = Vec::with_capacity(in_flight.len());
        let mut failed: Vec<(i64, String)> = Vec::new();
        for (id, event, mut delivery) in in_flight {
            let started = Instant::now();
            let result = loop {
                let wait = match stop.fired {
                    Some(at) => match self.config.shutdown_grace.checked_sub(at.elapsed()) {
                        Some(left) => left,
                        None => {
                            tracing::warn!(
                                unacknowledged = id,
                                "outbox relay: stopping with rows in flight; the next relay publishes them again"
                            );
                            self.mark(client, &sent, &failed, stats).await;
                            return Batch::Stopped;
                        }
                    },
                    None => self.config.progress_interval,
                };
                tokio::select! {
                    biased;
                    r = &mut delivery => break r,
                    _ = stop.fired(), if !stop.is_fired() => {}
                    _ = tokio::time::sleep(wait) => {
                        if !stop.is_fired() {
                            tracing::warn!(row = id, waited = ?started.elapsed(), "outbox relay: the broker has not acknowledged yet; still waiting");
                        }
                    }
                }
            };
            match result {
                Ok(_) => sent.push(id),
                Err(e) if record_level(&e) => {
                    let code = e.delivery_code().unwrap_or(RDKafkaErrorCode::Fail);
                    let dl = self.publisher.dead_letter_prepared(&event, code).await;
                    tracing::error!(row = id, error = %e, dead_letter = %dl, "outbox relay: a row can never be delivered");
                    failed.push((id, format!("{e}; {dl}")));
                }
                Err(e) => {
                    // Topic-wide (unknown or forbidden topic: every row of the topic in this batch fails the
                    // same way) or the producer shutting down: the row stays unsent, and is retried.
                    stalled.get_or_insert(e);
                }
            }
        }
        let sent_n = sent.len();
        self.mark(client, &sent, &failed, stats).await;
        match stalled {
            Some(e) => Batch::Stalled(e),
            None => Batch::Done(sent_n + failed.len()),
        }
    }

    /// Marks rows sent or failed (a failure here leaves them unsent: they are published again).
    async fn mark(
        &self,
        client: &Client,
        sent: &[i64],
        failed: &[(i64, String)],
        stats: &mut RelayStats,
    ) {
        let t = self.outbox.table();
        if !sent.is_empty() {
            let sql = format!(
                "UPDATE {t} SET sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1)"
            );
            match self
                .outbox
                .deadline("marking rows sent", client.execute(&sql, &[&sent]))
                .await
            {
                Ok(_) => {
                    stats.sent += sent.len() as u64;
                    stats.batches += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, rows = sent.len(), "outbox relay: cannot mark rows sent; they will be published again")
                }
            }
        }
        for (id, reason) in failed {
            let sql = format!(
                "UPDATE {t} SET failed_at = now(), attempts = attempts + 1, last_error = $2 WHERE id = $1"
            );
            match self
                .outbox
                .deadline("marking a row failed", client.execute(&sql, &[id, reason]))
                .await
            {
                Ok(_) => stats.failed += 1,
                Err(e) => {
                    tracing::warn!(error = %e, row = id, "outbox relay: cannot mark a row failed")
                }
            }
        }
    }

    /// The next unsent rows, in id order, as prepared events.
    async fn unsent(&self, client: &Client) -> Result<Vec<(i64, PreparedEvent)>, Error> {
        let t = self.outbox.table();
        let sql = format!(
            "SELECT id, topic, record_key, key_subject, value_subject, schema_fingerprint, payload, event_id,
                    traceparent, producer
             FROM {t} WHERE sent_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT $1"
        );
        let rows = self
            .outbox
            .deadline(
                "reading unsent rows",
                client.query(&sql, &[&self.config.batch_size]),
            )
            .await?;
        let read = |e| Error::Postgres {
            what: "reading unsent rows",
            source: e,
        };
        let mut missing: Vec<i64> = Vec::new();
        for row in &rows {
            let fp: i64 = row.try_get(5).map_err(read)?;
            if !self.schema_cached(fp) && !missing.contains(&fp) {
                missing.push(fp);
            }
        }
        if !missing.is_empty() {
            let sql =
                format!("SELECT fingerprint, schema FROM {t}_schemas WHERE fingerprint = ANY($1)");
            let found = self
                .outbox
                .deadline("reading writer schemas", client.query(&sql, &[&missing]))
                .await?;
            let mut schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
            for row in found {
                let fp: i64 = row.try_get(0).map_err(read)?;
                let text: String = row.try_get(1).map_err(read)?;
                schemas.insert(fp, Arc::from(text));
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get(0).map_err(read)?;
            let fp: i64 = row.try_get(5).map_err(read)?;
            let schema = self.schema(fp).ok_or_else(|| {
                Error::Config(format!(
                    "outbox row {id}: writer schema {fp:#x} is missing from {t}_schemas"
                ))
            })?;
            let value_subject: String = row.try_get(4).map_err(read)?;
            let event_id: Option<String> = row.try_get(7).map_err(read)?;
            out.push((
                id,
                PreparedEvent {
                    type_name: value_subject.clone().into(),
                    topic: row.try_get::<_, String>(1).map_err(read)?.into(),
                    key: row.try_get(2).map_err(read)?,
                    key_subject: row.try_get::<_, String>(3).map_err(read)?.into(),
                    value_subject: value_subject.into(),
                    schema: SchemaText::Shared(schema),
                    fingerprint: fp as u64,
                    datum: row.try_get(6).map_err(read)?,
                    event_id: event_id.and_then(|s| Uuid::parse_str(&s).ok()),
                    traceparent: row.try_get(8).map_err(read)?,
                    producer: Some(row.try_get(9).map_err(read)?),
                    outbox_id: Some(id),
                },
            ));
        }
        Ok(out)
    }

    fn schema_cached(&self, fp: i64) -> bool {
        self.schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&fp)
    }

    fn schema(&self, fp: i64) -> Option<Arc<str>> {
        self.schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fp)
            .cloned()
    }
}

/// Failures of the row itself, which no retry fixes: it is dead-lettered and marked failed.
fn record_level(e: &Error) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.delivery_code(),
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize | C::InvalidRecord | C::InvalidMessage)
    )
}

/// Exponential backoff from 100 ms, doubling up to a bound.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Backoff {
            next: Duration::from_millis(100),
            max,
        }
    }

    fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
}
