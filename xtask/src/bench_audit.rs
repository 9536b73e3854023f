//! `cargo xtask bench audit`: the `audit-postgres` sink against the ceiling of its database work and a Python
//! audit consumer, in one run.
//!
//! One run starts Apache Kafka (a KRaft JVM from `target/peers/kafka`), the dev registry (`ursa registry serve`,
//! release build) and PostgreSQL (`DATABASE_URL`'s server or a private cluster, as `cargo xtask test` does), and
//! produces N Avro `com.teddy.system.AuditLog` events (Python confluent-kafka with its `AvroSerializer`: a few
//! hundred distinct values from the generated type's schema, produced N times; keys cycle through 1,000, so
//! the events have about 1,500 data subjects: the values' child ids, and the key where there is no child) to a
//! 3-partition topic, twice:
//! once with the schema as it is (two `"pii": true` fields), once with the `pii` marks removed. Then, each
//! into its own database:
//!
//! - (d) `ursa run` (release) with the `audit-postgres` sink, PII sealed, hash chain, Merkle roots and signed
//!   checkpoints (every 100 batches or 10 s): from process start until the table holds N rows (polled every
//!   50 ms by `connectors/audit/bench/audit_peer.py wait`); CPU = utime + stime of the worker from
//!   /proc/PID/stat, peak memory = VmHWM;
//! - (d') the same on the topic without `pii` marks: no encryption (the hash chain stays: the sink has no
//!   switch to turn tamper evidence off, so its cost shows in (a) against (d'));
//! - (a) the ceiling: the very rows (d) wrote, replayed in (d)'s own batches and transactions by binary COPY,
//!   one connection per partition, with the fenced offsets row (`audit_peer.py ceiling`);
//! - (b) a Python audit consumer: confluent-kafka + fastavro + psycopg 3 COPY with the offsets in the same
//!   transaction, no hashing, no encryption (`audit_peer.py job`);
//! - (c) Kafka Connect 4.3.1 (`ConnectDistributed` from `target/peers/connect`, 512 MiB heap) with Debezium's
//!   JDBC sink 3.5.0.Final (the JDBC sink Maven Central serves: Confluent's kafka-connect-jdbc is not published
//!   there; fetched by `connectors/audit/bench/connect-jdbc/pom.xml` into `target/peers/debezium-jdbc`), on a
//!   third topic holding the same kind of events as JsonConverter envelopes with a Connect schema (the JDBC
//!   sink needs schemas, and no Confluent Avro converter is on Maven Central), flattened by Connect's `Flatten`
//!   SMT into typed columns (`parent__child`; the `details` map is dropped first with `ReplaceField`, as
//!   `Flatten` refuses maps in records with schemas), `primary.key.mode = kafka`, `insert.mode = insert`, three tasks
//!   (ursa's partitions also run concurrently); from `POST /connectors` until the table holds N rows, CPU = the
//!   JVM's over that time. At-least-once, no hashing, no encryption.
//!
//! Goals for (d), informational (a miss never fails the command): at least 0.7× (a)'s rows/s, 5× (b)'s and
//! 10× (c)'s.
//! `URSA_BENCH_RECORDS` sets N (500,000); `URSA_BENCH_PERF=FILE` records a `perf` profile of the sealed run (d).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::bench_runtime::{
    Measure, Proc, clock_ticks, cpu_of, generated_schema, http, machine, peak_of, peer, python,
    release_ursa, start_apache_kafka, start_connect_with, start_registry, write_row,
};

const DEFAULT_RECORDS: u64 = 500_000;
const PARTITIONS: u32 = 3;
/// Distinct record keys by default: an event without a child has its key as its data subject, so the events
/// have about 1,500 subjects (the 500 distinct values' child ids and these keys), as a day of a deployment
/// might. `URSA_BENCH_AUDIT_KEYS` sets another number; `0` makes every key distinct (a new subject per
/// event without a child: the worst case for the subjects' keys).
const KEYS: u64 = 1000;

/// The run's fixed parts.
struct Bench<'a> {
    ursa: &'a Path,
    script: &'a Path,
    work: &'a Path,
    server_url: String,
    bootstrap: String,
    registry: String,
    n: u64,
}

/// `schema` without its `"pii"` attributes.
fn strip_pii(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("pii");
            m.values_mut().for_each(strip_pii);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_pii),
        _ => {}
    }
}

/// `url` with its database replaced by `database`.
pub(crate) fn with_database(url: &str, database: &str) -> Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .context("expected a postgres:// URL")?;
    let (location, query) = match rest.split_once('?') {
        Some((l, q)) => (l, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = location.split_once('/').map_or(location, |(a, _)| a);
    Ok(format!("{scheme}://{authority}/{database}{query}"))
}

pub fn run() -> Result<ExitCode> {
    crate::bench_runtime::ensure_kafka_peers()?;
    let n = crate::bench_runtime::env_u64("URSA_BENCH_RECORDS", DEFAULT_RECORDS)?;
    let root = crate::codegen::root();
    let ursa = release_ursa(&root)?;
    let pg = crate::postgres::ensure_postgres()?;
    let work = std::env::temp_dir().join(format!("ursa-bench-audit-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = run_in(&root, &ursa, pg.url(), &work, n);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run_in(root: &Path, ursa: &Path, server_url: &str, work: &Path, n: u64) -> Result<ExitCode> {
    let machine_before = machine();
    let script = root.join("connectors/audit/bench/audit_peer.py");
    let produce_script = root.join("runtime/bench/runtime_peer.py");
    let schema_text = generated_schema(root, "system", "AuditLog")?;
    let sealed = work.join("AuditLog.avsc");
    std::fs::write(&sealed, &schema_text)?;
    let mut plain_doc: Value = serde_json::from_str(&schema_text)?;
    strip_pii(&mut plain_doc);
    let plain = work.join("AuditLog-plain.avsc");
    std::fs::write(&plain, plain_doc.to_string())?;

    eprintln!("starting Apache Kafka and the dev registry");
    let (_broker, bootstrap) = start_apache_kafka(&root.join("target/peers"), work)?;
    let (_registry, registry) = start_registry(ursa)?;
    let pid = std::process::id();
    let topics = [
        (format!("bench-audit-pii-{pid}"), &sealed),
        (format!("bench-audit-plain-{pid}"), &plain),
    ];
    let keys: u64 = match std::env::var("URSA_BENCH_AUDIT_KEYS") {
        Ok(v) => v
            .parse()
            .context("URSA_BENCH_AUDIT_KEYS must be a number")?,
        Err(_) => KEYS,
    };
    // 0: every key distinct (the producer's default, key = the index).
    let keys = if keys == 0 { n } else { keys };
    let mut avg_bytes = 0.0;
    for (topic, schema) in &topics {
        eprintln!("producing {n} Avro AuditLog events to {topic} ({PARTITIONS} partitions)");
        let produced = peer(
            &produce_script,
            &[
                "produce",
                &bootstrap,
                &registry,
                topic,
                &PARTITIONS.to_string(),
                schema.to_str().context("schema path")?,
                &n.to_string(),
                &keys.to_string(),
            ],
        )?;
        avg_bytes = produced["avg_value_bytes"].as_f64().unwrap_or(0.0);
    }
    let bench = Bench {
        ursa,
        script: &script,
        work,
        server_url: server_url.to_owned(),
        bootstrap,
        registry,
        n,
    };
    let mut rows = Vec::new();
    eprintln!("(d) ursa run, audit-postgres, PII sealed");
    let (sealed_row, sealed_db, connector, table) = bench.ursa_row(
        "(d) `ursa run`, audit-postgres: PII sealed, hash chain, Merkle roots, signed checkpoints",
        &topics[0].0,
        true,
    )?;
    eprintln!("(a) the ceiling: (d)'s rows in (d)'s batches by binary COPY");
    let ceiling = peer(&script, &["ceiling", &sealed_db, &table, &connector])?;
    rows.push(peer_row(
        "(a) ceiling: (d)'s rows replayed by binary COPY in (d)'s batches and transactions",
        &ceiling,
        format!(
            "{} batches, one connection per partition",
            ceiling["batches"].as_u64().unwrap_or(0)
        ),
    ));
    rows.push(sealed_row);
    eprintln!("(d') ursa run, no PII marks");
    let (plain_row, ..) = bench.ursa_row(
        "(d') the same, schema without `pii` marks (no encryption)",
        &topics[1].0,
        false,
    )?;
    rows.push(plain_row);
    eprintln!("(b) the Python audit consumer");
    let python_db = bench.database("python")?;
    let job = peer(
        &script,
        &[
            "job",
            &python_db,
            &bench.bootstrap,
            &bench.registry,
            &topics[0].0,
            &n.to_string(),
        ],
    )?;
    rows.push(peer_row(
        "(b) Python: confluent-kafka + fastavro + psycopg 3 COPY, offsets in the transaction",
        &job,
        "no hashing, no encryption".into(),
    ));
    eprintln!("(c) Kafka Connect with Debezium's JDBC sink");
    let connect_row = bench.connect_row(root, &sealed);
    if let Err(e) = &connect_row {
        eprintln!("(c) failed: {e:#}");
    }

    let mut out = String::new();
    writeln!(
        out,
        "{n} Avro AuditLog events per topic ({avg_bytes:.0} bytes per value on average, {keys} distinct keys), {PARTITIONS} partitions, Apache Kafka 4.4 (local KRaft JVM), PostgreSQL {}; machine before: {machine_before}; after: {}\n",
        postgres_version(&bench.server_url),
        machine()
    )?;
    writeln!(
        out,
        "| writer | rows | seconds | rows/s | CPU s | rows/CPU-s | peak RSS MiB | measured |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|")?;
    for r in &rows {
        write_row(&mut out, r)?;
    }
    let connect = match connect_row {
        Ok(r) => {
            write_row(&mut out, &r)?;
            Some(r)
        }
        Err(e) => {
            let why: String = format!("{e:#}")
                .replace('|', "/")
                .chars()
                .take(300)
                .collect();
            writeln!(
                out,
                "| (c) Kafka Connect + Debezium JDBC sink | - | - | - | - | - | - | failed: {why} |"
            )?;
            None
        }
    };
    let (a, d, d_plain, b) = (&rows[0], &rows[1], &rows[2], &rows[3]);
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    writeln!(out, "\n| goal for (d) | result |\n|---|---|")?;
    let vs_a = d.rate() / a.rate();
    let vs_b = d.rate() / b.rate();
    writeln!(
        out,
        "| rows/s ≥ 0.7× (a) | {}: {vs_a:.2}× |",
        verdict(vs_a >= 0.7)
    )?;
    writeln!(
        out,
        "| rows/s ≥ 5× (b) | {}: {vs_b:.2}× |",
        verdict(vs_b >= 5.0)
    )?;
    match &connect {
        Some(c) => {
            let vs_c = d.rate() / c.rate();
            writeln!(
                out,
                "| rows/s ≥ 10× (c) | {}: {vs_c:.2}× |",
                verdict(vs_c >= 10.0)
            )?;
        }
        None => writeln!(out, "| rows/s ≥ 10× (c) | not measured: (c) failed |")?,
    }
    writeln!(
        out,
        "\nEncryption costs (d) {:.0}% of (d')'s rows/s; (d') reaches {:.2}× the ceiling (a).",
        (1.0 - d.rate() / d_plain.rate()) * 100.0,
        d_plain.rate() / a.rate()
    )?;
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn peer_row(name: &str, v: &Value, note: String) -> Measure {
    Measure {
        name: name.into(),
        records: v["rows"].as_u64().unwrap_or(0),
        seconds: v["seconds"].as_f64().unwrap_or(0.0),
        cpu_seconds: v["cpu_seconds"].as_f64(),
        peak_mib: v["peak_rss_mib"].as_f64(),
        note,
    }
}

fn postgres_version(url: &str) -> String {
    Command::new(python())
        .args([
            "-c",
            "import psycopg,sys; print(psycopg.connect(sys.argv[1]).info.server_version)",
            url,
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .map_or_else(|| "?".into(), |v| format!("{v} (server_version_num)"))
}

/// `host:port` and the user of a `postgres://user@host:port/db` URL.
fn host_port_user(url: &str) -> Result<(String, String)> {
    let rest = url
        .split_once("://")
        .context("expected a postgres:// URL")?
        .1;
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let (user, host) = authority
        .rsplit_once('@')
        .map_or(("postgres", authority), |(u, h)| (u, h));
    let user = user.split(':').next().unwrap_or(user);
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    Ok((host, user.to_owned()))
}

impl Bench<'_> {
    /// (c): Kafka Connect with Debezium's JDBC sink on JSON-with-schema records.
    fn connect_row(&self, root: &Path, schema: &Path) -> Result<Measure> {
        let peers = root.join("target/peers");
        let plugin = peers.join("debezium-jdbc");
        if !plugin.join("debezium-connector-jdbc").is_dir() {
            let status = Command::new("mvn")
                .args(["-B", "-q", "-f"])
                .arg(root.join("connectors/audit/bench/connect-jdbc/pom.xml"))
                .arg("package")
                .status()
                .context("running mvn for the Debezium JDBC sink")?;
            if !status.success() {
                bail!("fetching io.debezium:debezium-connector-jdbc with Maven failed ({status})");
            }
        }
        let topic = format!("bench-audit-connect-{}", std::process::id());
        eprintln!(
            "producing {} JSON-with-schema AuditLog events to {topic}",
            self.n
        );
        let produce_script = self.script;
        peer(
            produce_script,
            &[
                "produce_connect",
                &self.bootstrap,
                &topic,
                &PARTITIONS.to_string(),
                schema.to_str().context("schema path")?,
                &self.n.to_string(),
            ],
        )?;
        let db = self.database("connect")?;
        let (host, user) = host_port_user(&db)?;
        let database = db
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (mut connect, pid, addr) = start_connect_with(
            &peers,
            self.work,
            &self.bootstrap,
            &[plugin],
            "JdbcSinkConnector",
        )?;
        let table = "bench_connect_jdbc";
        let name = format!("bench-audit-jdbc-{}", std::process::id());
        let body = serde_json::json!({
            "name": name,
            "config": {
                "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
                "tasks.max": "3",
                "topics": topic,
                "connection.url": format!("jdbc:postgresql://{host}/{database}"),
                "connection.username": user,
                "connection.password": "",
                "insert.mode": "insert",
                "primary.key.mode": "kafka",
                "schema.evolution": "basic",
                "table.name.format": table,
                "batch.size": "500",
                "key.converter": "org.apache.kafka.connect.storage.StringConverter",
                "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                "value.converter.schemas.enable": "true",
                "transforms": "drop,flatten",
                "transforms.drop.type": "org.apache.kafka.connect.transforms.ReplaceField$Value",
                "transforms.drop.exclude": "details",
                "transforms.flatten.type": "org.apache.kafka.connect.transforms.Flatten$Value",
                "transforms.flatten.delimiter": "__",
            }
        });
        let mut watcher = Command::new(python())
            .arg(self.script)
            .args(["wait", &db, table, &self.n.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the row-count watcher")?;
        let watch_out = watcher.stdout.take().context("watcher stdout")?;
        let _watcher = Proc(watcher);
        let ticks = clock_ticks();
        let cpu_before = cpu_of(pid, ticks);
        let start = Instant::now();
        let (status, answer) = http(&addr, "POST", "/connectors", Some(&body.to_string()))?;
        if status != 201 {
            bail!("creating the JDBC sink connector: {status} {answer}");
        }
        let mut line = String::new();
        BufReader::new(watch_out).read_line(&mut line)?;
        let seconds = start.elapsed().as_secs_f64();
        let cpu_after = cpu_of(pid, ticks);
        let peak = peak_of(pid);
        let (_, status) = http(&addr, "GET", &format!("/connectors/{name}/status"), None)
            .unwrap_or((0, String::new()));
        let _ = connect.0.kill();
        if line.trim() != "reached" {
            bail!(
                "the JDBC sink's table never held {} rows; its status: {status}",
                self.n
            );
        }
        Ok(Measure {
            name: "(c) Kafka Connect 4.3.1 + Debezium JDBC sink 3.5.0 (JSON with schema, Flatten SMT, 3 tasks)"
                .into(),
            records: self.n,
            seconds,
            cpu_seconds: cpu_before.zip(cpu_after).map(|(b, a)| a - b),
            peak_mib: peak,
            note: "POST /connectors to N rows; JVM CPU in that time; no hashing, no encryption".into(),
        })
    }

    /// A fresh database `bench_audit_<pid>_<tag>` on the server; its URL.
    fn database(&self, tag: &str) -> Result<String> {
        let name = format!("bench_audit_{}_{tag}", std::process::id());
        let status = Command::new(python())
            .arg(self.script)
            .args(["createdb", &self.server_url, &name])
            .status()
            .context("creating the bench database")?;
        if !status.success() {
            bail!("creating database {name} failed ({status})");
        }
        with_database(&self.server_url, &name)
    }

    /// `ursa run` with the audit sink on `topic` until the table holds N rows: the row, the database URL,
    /// the connector's name and the table.
    fn ursa_row(
        &self,
        label: &str,
        topic: &str,
        sealed: bool,
    ) -> Result<(Measure, String, String, String)> {
        let tag = if sealed { "sealed" } else { "plain" };
        let db = self.database(tag)?;
        let keys = Command::new(self.ursa)
            .args(["audit", "keygen", "--name", "bench.ursa/audit"])
            .output()
            .context("ursa audit keygen")?;
        let text = String::from_utf8_lossy(&keys.stdout).into_owned();
        let keys: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let [signing, _verifier, master] = keys[..] else {
            bail!("unexpected `ursa audit keygen` output: {text}");
        };
        let secrets = self.work.join(format!("secrets-{tag}.properties"));
        std::fs::write(
            &secrets,
            format!("url={db}\nsigning={signing}\nmaster={master}\n"),
        )?;
        let worker = self.work.join("worker.toml");
        std::fs::write(
            &worker,
            format!(
                "drain_deadline = \"30s\"\n[kafka]\nbootstrap_servers = \"{}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n",
                self.bootstrap
            ),
        )?;
        let name = format!("bench-audit-{tag}-{}", std::process::id());
        let s = secrets.display();
        let mut connector = format!(
            "name = \"{name}\"\n\"connector.class\" = \"audit-postgres\"\ntopics = \"{topic}\"\n\
             \"key.converter\" = \"string\"\n\"value.converter\" = \"avro\"\n\
             \"value.converter.schema.registry.url\" = \"{}\"\n\
             \"audit.db.url\" = \"${{file:{s}:url}}\"\n\"audit.db.sslmode\" = \"disable\"\n\
             \"audit.checkpoint.signing.key\" = \"${{file:{s}:signing}}\"\n\
             \"audit.checkpoint.batches\" = \"100\"\n\"audit.checkpoint.interval\" = \"10s\"\n\
             \"audit.checkpoint.file\" = \"{}\"\n",
            self.registry,
            self.work.join(format!("checkpoints-{tag}.jsonl")).display()
        );
        if sealed {
            writeln!(
                connector,
                "\"audit.pii.master.key\" = \"${{file:{s}:master}}\"\n\"audit.pii.subject.field\" = \"child.child_id\""
            )?;
        }
        let connector_path = self.work.join(format!("audit-{tag}.toml"));
        std::fs::write(&connector_path, connector)?;
        let table = format!(
            "audit_{}",
            topic.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        // The watcher first (connected, polling), then the worker: the clock runs from the worker's start.
        let mut watcher = Command::new(python())
            .arg(self.script)
            .args(["wait", &db, &table, &self.n.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the row-count watcher")?;
        let watch_out = watcher.stdout.take().context("watcher stdout")?;
        let _watcher = Proc(watcher);
        let log = std::fs::File::create(self.work.join(format!("ursa-{tag}.log")))?;
        let ticks = clock_ticks();
        let start = Instant::now();
        // URSA_BENCH_PERF=FILE profiles the sealed run's worker with `perf record` (its CPU figures then are
        // perf's).
        let mut child = crate::bench_runtime::ursa_command(self.ursa, sealed)
            .arg("run")
            .arg(&worker)
            .arg(&connector_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting ursa run")?;
        let pid = child.id();
        let mut line = String::new();
        BufReader::new(watch_out).read_line(&mut line)?;
        let seconds = start.elapsed().as_secs_f64();
        let (cpu, peak) = (cpu_of(pid, ticks), peak_of(pid));
        let exited = child.try_wait()?;
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let _ = child.wait();
        if line.trim() != "reached" {
            bail!(
                "{label}: the table never held {} rows (exited: {exited:?}; log in {})",
                self.n,
                self.work.display()
            );
        }
        Ok((
            Measure {
                name: label.into(),
                records: self.n,
                seconds,
                cpu_seconds: cpu,
                peak_mib: peak,
                note: "process start to N rows".into(),
            },
            db,
            name,
            table,
        ))
    }
}
