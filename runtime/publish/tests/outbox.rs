//! The transactional outbox on PostgreSQL and the real broker: rows exist only if their transaction
//! committed; the relay publishes them in order per key and marks them sent; kill -9 of the relay (with a
//! standby taking over) and of the application loses nothing, and duplicates stay within the documented bound.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio_postgres::Client;
use ursa_avro::uuid::Uuid;
use ursa_avro::{AvroRecord, wire};
use ursa_events::com::teddy::conversation::MessageReceived;
use ursa_events::com::teddy::dlq::FailedEvent;
use ursa_publish::demo::message_received;
use ursa_publish::{Aggregate, EventBuffer, Outbox, Relay, RelayConfig, UnitOfWork};
use ursa_testkit::{Kafka, Postgres, TestDatabase, unique_name};

use support::{create_topic, poll_until, publisher_config, read_topic, registry};

const RELAY_BATCH: i64 = 50;

/// A child process killed (SIGKILL) when dropped, so a failing test leaves none behind.
struct ChildGuard {
    child: Option<Child>,
    log: PathBuf,
}

impl ChildGuard {
    fn spawn(args: &[&str], log: &Path) -> ChildGuard {
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ursa-outbox"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        ChildGuard {
            child: Some(child),
            log: log.to_owned(),
        }
    }

    /// `kill -9`, and the proof that it was a kill.
    fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "the process had already exited: {status}"
        );
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-s", "TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap()
    }

    fn wait(mut self) -> std::process::ExitStatus {
        self.child.take().unwrap().wait().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Setup {
    kafka: &'static Kafka,
    db: TestDatabase,
    client: Client,
    outbox: Outbox,
    prefix: String,
    topic: String,
    registry: ursa_registry::RunningServer,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let kafka = Kafka::shared();
    let db = tokio::task::spawn_blocking(|| Postgres::shared().database())
        .await
        .unwrap()
        .unwrap();
    let client = db.connect().await.unwrap();
    let outbox = Outbox::new("outbox-test");
    outbox.install(&client).await.unwrap();
    outbox.install(&client).await.unwrap();
    let prefix = format!("{}.", unique_name("outbox"));
    let topic = format!("{prefix}message.received");
    create_topic(kafka.bootstrap(), &topic, 3, &[])
        .await
        .unwrap();
    create_topic(
        kafka.bootstrap(),
        &format!("{prefix}dlq.failed-events"),
        1,
        &[],
    )
    .await
    .unwrap();
    Setup {
        kafka,
        db,
        client,
        outbox,
        prefix,
        topic,
        registry: registry().await,
        dir: tempfile::tempdir().unwrap(),
    }
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// A record read back as (outbox id, event).
fn decode(r: &support::Record) -> (i64, MessageReceived) {
    let id = r.header("outbox_id").parse().unwrap();
    let e = MessageReceived::from_avro_datum(wire::split(&r.value).unwrap().1).unwrap();
    (id, e)
}

struct Chat {
    id: Uuid,
    events: EventBuffer,
}

impl Aggregate for Chat {
    fn events(&mut self) -> &mut EventBuffer {
        &mut self.events
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_exist_only_if_committed_and_the_relay_publishes_and_marks_them() {
    let mut s = setup().await;
    let c = ursa_publish::demo::uuid();

    // Rolled back: no row, nothing published.
    let tx = s.client.transaction().await.unwrap();
    s.outbox
        .write(&tx, &message_received(c, 0, "rolled back"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        count(&s.client, "SELECT count(*) FROM ursa_outbox").await,
        0
    );

    // Committed: a unit of work of an aggregate, plus one event written directly, plus one too large to send.
    let mut chat = Chat {
        id: c,
        events: EventBuffer::new(),
    };
    for seq in 0..3 {
        chat.events
            .record(&message_received(chat.id, seq, "committed"))
            .unwrap();
    }
    let tx = s.client.transaction().await.unwrap();
    let mut work = UnitOfWork::new();
    work.collect(&mut chat);
    let ids = work.complete_in(&tx, &s.outbox).await.unwrap();
    assert_eq!(ids.len(), 3);
    s.outbox
        .write(&tx, &message_received(c, 3, "committed too"))
        .await
        .unwrap();
    let too_large = message_received(c, 4, &"z".repeat(1_200_000));
    let too_large_id = s.outbox.write(&tx, &too_large).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.outbox.unsent(&s.client).await.unwrap(), 5);

    let mut config = RelayConfig::new(s.db.url());
    config.poll_interval = Duration::from_millis(100);
    let relay = Relay::new(
        s.outbox.clone(),
        publisher_config(s.kafka.bootstrap(), &s.registry.url(), &s.prefix),
        config,
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        relay
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    let (client, outbox) = (&s.client, &s.outbox);
    poll_until(
        "the relay to drain the outbox",
        Duration::from_secs(60),
        || async move { (outbox.unsent(client).await.unwrap() == 0).then_some(()) },
    )
    .await
    .unwrap();
    let records = read_topic(s.kafka.bootstrap(), &s.topic, 4, Duration::from_secs(30))
        .await
        .unwrap();
    let mut seqs: Vec<(i64, i32)> = records
        .iter()
        .map(|r| {
            let (id, e) = decode(r);
            assert_eq!(r.header("producer"), "outbox-test");
            assert_eq!(r.header("event_id"), e.metadata.event_id.to_string());
            (id, e.sequence_number)
        })
        .collect();
    seqs.sort();
    assert_eq!(
        seqs.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(
        count(
            &s.client,
            "SELECT count(*) FROM ursa_outbox WHERE sent_at IS NOT NULL"
        )
        .await,
        4
    );
    // The row no broker will take is dead-lettered, marked failed, and kept.
    let row = s
        .client
        .query_one(
            "SELECT failed_at IS NOT NULL, last_error, length(payload) FROM ursa_outbox WHERE id = $1",
            &[&too_large_id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert!(
        row.get::<_, String>(1).contains("too large"),
        "{}",
        row.get::<_, String>(1)
    );
    assert!(
        row.get::<_, i32>(2) > 1_200_000,
        "the payload stays in the table"
    );
    let dlq = read_topic(
        s.kafka.bootstrap(),
        &format!("{}dlq.failed-events", s.prefix),
        1,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let failed = FailedEvent::from_avro_datum(wire::split(&dlq[0].value).unwrap().1).unwrap();
    assert_eq!(
        failed.metadata.causation_id,
        Some(too_large.metadata.event_id)
    );

    stop.send(()).unwrap();
    let stats = running.await.unwrap().unwrap();
    assert_eq!((stats.sent, stats.failed), (4, 1));
}

/// Writes transactions of 1–3 events over `keys` conversations until `stop`; returns the rows written per key,
/// in commit order (the outbox ids).
async fn write_until(
    client: &mut Client,
    outbox: &Outbox,
    keys: &[Uuid],
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> usize {
    let mut seq: HashMap<Uuid, i32> = HashMap::new();
    let mut written = 0;
    let mut n: u64 = 0;
    while stop.try_recv().is_err() {
        let tx = client.transaction().await.unwrap();
        for i in 0..(1 + n % 3) {
            let k = keys[((n * 7 + i) % keys.len() as u64) as usize];
            let s = seq.entry(k).or_insert(0);
            outbox
                .write(&tx, &message_received(k, *s, "stream"))
                .await
                .unwrap();
            *s += 1;
            written += 1;
        }
        tx.commit().await.unwrap();
        n += 1;
        // Let the relays run: a steady stream rather than one burst.
        tokio::task::yield_now().await;
    }
    written
}

/// Who holds the relay lock of the test's database (by the relay's producer name), if anyone.
async fn leader(client: &Client) -> Option<String> {
    client
        .query_opt(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .map(|r| r.get::<_, String>(0))
}

async fn sent(client: &Client) -> i64 {
    count(
        client,
        "SELECT count(*) FROM ursa_outbox WHERE sent_at IS NOT NULL",
    )
    .await
}

/// Checks the relay's guarantee on what the topic holds against the outbox table: every row published, in
/// commit order per key once duplicates (by outbox id) are removed; returns the number of duplicates.
async fn check_guarantee(s: &Setup) -> usize {
    let rows: BTreeMap<i64, String> = s
        .client
        .query("SELECT id, event_id FROM ursa_outbox ORDER BY id", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let size = support::topic_size(s.kafka.bootstrap(), &s.topic)
        .await
        .unwrap() as usize;
    assert!(size >= rows.len(), "{size} records for {} rows", rows.len());
    let mut records = read_topic(s.kafka.bootstrap(), &s.topic, size, Duration::from_secs(60))
        .await
        .unwrap();
    records.sort_by_key(|r| (r.partition, r.offset));
    let mut first: HashSet<i64> = HashSet::new();
    let mut duplicates = 0;
    let mut per_key: HashMap<Uuid, Vec<(i64, i32)>> = HashMap::new();
    for r in &records {
        let (id, e) = decode(r);
        assert_eq!(
            rows.get(&id).map(String::as_str),
            Some(r.header("event_id")),
            "a record for a committed row, with its event id"
        );
        if first.insert(id) {
            per_key
                .entry(e.conversation_id)
                .or_default()
                .push((id, e.sequence_number));
        } else {
            duplicates += 1;
        }
    }
    assert_eq!(first.len(), rows.len(), "every committed row is published");
    for (key, seen) in per_key {
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "key {key}: first occurrences in commit order");
        let seqs: Vec<i32> = seen.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            seqs,
            (0..seqs.len() as i32).collect::<Vec<_>>(),
            "key {key}: no gap"
        );
    }
    duplicates
}

fn relay_args<'a>(s: &'a Setup, name: &'a str, registry: &'a str, batch: &'a str) -> Vec<&'a str> {
    vec![
        "relay",
        "--database-url",
        s.db.url(),
        "--bootstrap-servers",
        s.kafka.bootstrap(),
        "--registry-url",
        registry,
        "--topic-prefix",
        &s.prefix,
        "--producer",
        name,
        "--batch-size",
        batch,
        "--poll-interval-ms",
        "100",
        "--auto-register",
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn relays_killed_mid_stream_lose_nothing_and_keep_key_order() {
    let s = setup().await;
    let (client, outbox) = (&s.client, &s.outbox);
    let url = s.registry.url();
    let batch = RELAY_BATCH.to_string();
    let keys: Vec<Uuid> = (0..8).map(|_| ursa_publish::demo::uuid()).collect();
    let (stop_writing, stop) = tokio::sync::oneshot::channel();
    let mut writer_client = s.db.connect().await.unwrap();
    let writer_outbox = s.outbox.clone();
    let writer =
        tokio::spawn(
            async move { write_until(&mut writer_client, &writer_outbox, &keys, stop).await },
        );

    let a = ChildGuard::spawn(
        &relay_args(&s, "a", &url, &batch),
        &s.dir.path().join("a.log"),
    );
    poll_until(
        "relay a to publish",
        Duration::from_secs(60),
        || async move { (sent(client).await >= 300).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", a.log()));
    assert_eq!(
        leader(&s.client).await.as_deref(),
        Some("ursa-outbox-relay a")
    );
    let b = ChildGuard::spawn(
        &relay_args(&s, "b", &url, &batch),
        &s.dir.path().join("b.log"),
    );
    poll_until(
        "relay b to stand by",
        Duration::from_secs(30),
        || async move {
            let n = count(
            client,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ursa-outbox-relay b'",
        )
        .await;
            (n > 0).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", b.log()));
    assert_eq!(
        leader(&s.client).await.as_deref(),
        Some("ursa-outbox-relay a"),
        "one leader"
    );

    let before = sent(&s.client).await;
    a.kill9();
    poll_until(
        "relay b to take over",
        Duration::from_secs(60),
        || async move {
            (leader(client).await.as_deref() == Some("ursa-outbox-relay b")
                && sent(client).await >= before + 300)
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", b.log()));
    b.kill9();

    let c = ChildGuard::spawn(
        &relay_args(&s, "c", &url, &batch),
        &s.dir.path().join("c.log"),
    );
    poll_until("relay c to lead", Duration::from_secs(60), || async move {
        (leader(client).await.as_deref() == Some("ursa-outbox-relay c")).then_some(())
    })
    .await
    .unwrap();
    stop_writing.send(()).unwrap();
    let written = writer.await.unwrap();
    poll_until(
        "relay c to drain the outbox",
        Duration::from_secs(120),
        || async move { (outbox.unsent(client).await.unwrap() == 0).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log()));
    let log = c.log();
    let status = c.terminate();
    assert!(
        status.success(),
        "relay c stops cleanly on SIGTERM: {status}\n{log}"
    );

    assert_eq!(
        count(&s.client, "SELECT count(*) FROM ursa_outbox").await as usize,
        written
    );
    let duplicates = check_guarantee(&s).await;
    eprintln!("{written} rows, {duplicates} duplicates after two kill -9");
    assert!(
        duplicates <= 2 * RELAY_BATCH as usize,
        "at most one batch per killed relay is published twice: {duplicates}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_application_killed_mid_transaction_commits_all_or_nothing() {
    let s = setup().await;
    let (client, outbox) = (&s.client, &s.outbox);
    let writer_args = ["demo-writer", "--database-url", s.db.url(), "--keys", "5"];
    let writer = ChildGuard::spawn(&writer_args, &s.dir.path().join("writer.log"));
    poll_until(
        "the application to commit",
        Duration::from_secs(60),
        || async move {
            let n: Option<i64> = client
                .query_one("SELECT count(*) FROM ursa_outbox_demo", &[])
                .await
                .ok()
                .map(|r| r.get(0));
            n.filter(|n| *n >= 500).map(|_| ())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", writer.log()));
    writer.kill9();

    // After the kill: every business row has its outbox row and the reverse, nothing half-written.
    let mismatched = count(
        &s.client,
        "SELECT count(*) FROM ursa_outbox o FULL JOIN ursa_outbox_demo d ON d.outbox_id = o.id
         WHERE o.id IS NULL OR d.outbox_id IS NULL OR d.event_id <> o.event_id",
    )
    .await;
    assert_eq!(
        mismatched, 0,
        "the state change and its events commit together"
    );

    // Started again, the application continues; the relay publishes everything.
    let more = ChildGuard::spawn(
        &[
            "demo-writer",
            "--database-url",
            s.db.url(),
            "--keys",
            "5",
            "--count",
            "20",
        ],
        &s.dir.path().join("writer2.log"),
    );
    let status = tokio::task::spawn_blocking(move || more.wait())
        .await
        .unwrap();
    assert!(status.success());
    let url = s.registry.url();
    let relay = ChildGuard::spawn(
        &relay_args(&s, "r", &url, "500"),
        &s.dir.path().join("r.log"),
    );
    poll_until(
        "the relay to drain the outbox",
        Duration::from_secs(120),
        || async move { (outbox.unsent(client).await.unwrap() == 0).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", relay.log()));
    assert!(relay.terminate().success());
    assert_eq!(check_guarantee(&s).await, 0, "no relay died: no duplicates");
    assert_eq!(
        count(&s.client, "SELECT count(*) FROM ursa_outbox_demo").await,
        count(&s.client, "SELECT count(*) FROM ursa_outbox").await
    );
}
