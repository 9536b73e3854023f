//! `cargo xtask bench notify`: the `notify` sink's latency and throughput on loopback providers, beside a
//! Python notifier doing the same flow, in one run.
//!
//! One run starts Apache Kafka (a KRaft JVM from `target/peers/kafka`), the dev registry, PostgreSQL (as
//! `cargo xtask test` does) and the providers (`connectors/notify/examples/bench_peers.rs`, release build: the
//! tests' Twilio fake and FCM HTTP v1 server with its OAuth2 grant, a Standard Webhooks receiver verifying every
//! signature, a plain SMTP server), then produces one `GuardianContactUpdated` per household (Avro, 1,000
//! households) and runs:
//!
//! - **latency**: `ursa run` (release, `notify`, Avro converter, 3 tasks) with the directory built and the
//!   consumer group settled (stable, three members with partitions); Python
//!   confluent-kafka produces `SafetyViolation`s of severity HIGH at a steady 200 per second for 20 seconds
//!   (`immediate`, SMS and push at once). Latency = the provider's receipt minus the time taken just before
//!   `produce`, per notification (the same machine's wall clock); p50, p99 and max per channel, and ursa's CPU
//!   per event over the phase;
//! - **throughput**, (a) `ursa run` restarted on a backlog of N `UsageStats` (`normal`, email and webhook:
//!   2N notifications), from process start until the providers hold all 2N; CPU from /proc;
//! - (a') the same from the first notification received (ursa's start-up, about 0.3 s of CPU here, mostly
//!   OpenSSL loading the system's trust store for each HTTP client, left out);
//! - (b) the Python notifier (`connectors/notify/bench/notify_peer.py job`): confluent-kafka, fastavro, the
//!   directory ursa built, a ledger row `pending` before and `sent` after each send, smtplib and requests
//!   (each over one kept connection), offsets after each batch; from process start until done, and (b') from
//!   its first notification sent.
//!
//! Goals, informational (a miss never fails the command): p99 under 100 ms on SMS and on push; (a) at least
//! 10× (b)'s notifications per CPU-second. The providers count repeats: any is reported (it must be 0).
//! `URSA_BENCH_RECORDS` sets N (5,000); `URSA_BENCH_SECONDS` the latency phase's length (20); with
//! `URSA_BENCH_KEEP` set, the working directory (configs, worker logs, send and receipt times) is kept.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::bench_audit::with_database;
use crate::bench_runtime::{
    Measure, Proc, clock_ticks, cpu_of, env_u64, generated_schema, machine, peak_of, peer, python,
    release_ursa, start_apache_kafka, start_registry, ursa_command, write_row,
};

const HOUSEHOLDS: u64 = 1000;
const RATE: u64 = 200;
const DEFAULT_SECONDS: u64 = 20;
const DEFAULT_RECORDS: u64 = 5000;
/// How long the providers may go without a new notification before the run is declared broken.
const STALL: Duration = Duration::from_secs(60);

/// The providers' process: asked over stdin, answering a JSON line each.
struct Providers {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    addresses: Value,
}

impl Drop for Providers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Providers {
    fn start(bin: &Path) -> Result<Providers> {
        let mut child = Command::new(bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdin = child.stdin.take().context("providers' stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("providers' stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let addresses = serde_json::from_str(&line)
            .with_context(|| format!("the providers' first line: {line:?}"))?;
        Ok(Providers {
            child,
            stdin,
            stdout,
            addresses,
        })
    }

    fn ask(&mut self, command: &str) -> Result<Value> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        serde_json::from_str(&line).with_context(|| format!("the providers' answer: {line:?}"))
    }

    fn address(&self, key: &str) -> String {
        match &self.addresses[key] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }
    }

    /// Polls the counts until `done` holds of them; fails when nothing new arrives for [`STALL`].
    fn until(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
        let mut last = (Instant::now(), 0u64);
        loop {
            let c = self.ask("counts")?;
            if done(&c) {
                return Ok(c);
            }
            let total: u64 = ["sms", "push", "email", "webhook"]
                .iter()
                .map(|k| c[k].as_u64().unwrap_or(0))
                .sum();
            if total != last.1 {
                last = (Instant::now(), total);
            } else if last.0.elapsed() > STALL {
                bail!("{what}: no notification for {STALL:?}; the providers hold {c}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn run() -> Result<ExitCode> {
    crate::bench_runtime::ensure_kafka_peers()?;
    let n = env_u64("URSA_BENCH_RECORDS", DEFAULT_RECORDS)?;
    let seconds = env_u64("URSA_BENCH_SECONDS", DEFAULT_SECONDS)?;
    let root = crate::codegen::root();
    let ursa = release_ursa(&root)?;
    crate::test::cargo(&[
        "build",
        "--release",
        "--quiet",
        "-p",
        "ursa-connector-notify",
        "--features",
        "testing",
        "--example",
        "bench_peers",
    ])?;
    let providers = crate::bench_runtime::target_dir(&root).join("release/examples/bench_peers");
    let pg = crate::postgres::ensure_postgres()?;
    let work = std::env::temp_dir().join(format!("ursa-bench-notify-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = Bench {
        root: &root,
        ursa: &ursa,
        work: &work,
        script: root.join("connectors/notify/bench/notify_peer.py"),
        server_url: pg.url().to_owned(),
    }
    .run(&providers, n, seconds);
    if std::env::var_os("URSA_BENCH_KEEP").is_some() {
        eprintln!("working directory kept: {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

struct Bench<'a> {
    root: &'a Path,
    ursa: &'a Path,
    work: &'a Path,
    script: PathBuf,
    server_url: String,
}

/// Percentile `p` (0–100) of sorted `v`, nearest rank.
fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

impl Bench<'_> {
    fn schema(&self, module: &str, ty: &str) -> Result<String> {
        let path = self.work.join(format!("{ty}.avsc"));
        std::fs::write(&path, generated_schema(self.root, module, ty)?)?;
        Ok(path.display().to_string())
    }

    fn py(&self, args: &[&str]) -> Result<Value> {
        peer(&self.script, args)
    }

    /// A fresh database on the server; its URL.
    fn database(&self, tag: &str) -> Result<String> {
        let name = format!("bench_notify_{}_{tag}", std::process::id());
        let status = Command::new(python())
            .arg(self.root.join("connectors/audit/bench/audit_peer.py"))
            .args(["createdb", &self.server_url, &name])
            .status()
            .context("creating the bench database")?;
        if !status.success() {
            bail!("creating database {name} failed ({status})");
        }
        with_database(&self.server_url, &name)
    }

    /// Polls `sql` (a count) until it reaches `at_least`.
    fn wait_sql(&self, db: &str, sql: &str, at_least: u64) -> Result<()> {
        let out = Command::new(python())
            .arg(&self.script)
            .args(["wait", db, sql, &at_least.to_string()])
            .output()
            .context("waiting on the database")?;
        if String::from_utf8_lossy(&out.stdout).trim() != "reached" {
            bail!("`{sql}` never reached {at_least}");
        }
        Ok(())
    }

    fn run(&self, providers_bin: &Path, n: u64, seconds: u64) -> Result<ExitCode> {
        let machine_before = machine();
        let pid = std::process::id();
        eprintln!("starting Apache Kafka, the dev registry and the providers");
        let (_broker, bootstrap) = start_apache_kafka(&self.root.join("target/peers"), self.work)?;
        let (_registry, registry) = start_registry(self.ursa)?;
        let mut providers = Providers::start(providers_bin)?;
        let (guardians, alerts, news) = (
            format!("bench-notify-guardians-{pid}"),
            format!("bench-notify-alerts-{pid}"),
            format!("bench-notify-news-{pid}"),
        );
        self.py(&[
            "topics",
            &bootstrap,
            &format!("{guardians}:1"),
            &format!("{alerts}:3"),
            &format!("{news}:3"),
        ])?;
        let contact = self.schema("guardian", "GuardianContactUpdated")?;
        let violation = self.schema("child", "SafetyViolation")?;
        let usage = self.schema("analytics", "UsageStats")?;
        let households = HOUSEHOLDS.to_string();
        eprintln!("producing {HOUSEHOLDS} guardians");
        self.py(&[
            "guardians",
            &bootstrap,
            &registry,
            &guardians,
            &contact,
            &households,
        ])?;

        let db = self.database("ursa")?;
        let config = self.write_config(
            &providers,
            &db,
            &bootstrap,
            &registry,
            [&guardians, &alerts, &news],
        )?;
        let ticks = clock_ticks();

        // Latency.
        let mut worker = self.start_ursa(&config, "latency")?;
        let wpid = worker.0.id();
        self.wait_sql(&db, "SELECT count(*) FROM notify_guardian", HOUSEHOLDS)?;
        // The tasks join one by one: the phase starts once the group has settled.
        self.py(&[
            "wait_group",
            &bootstrap,
            &format!("connect-bench-notify-{pid}"),
            "3",
        ])?;
        let cpu_before = cpu_of(wpid, ticks);
        let total = RATE * seconds;
        eprintln!("latency: {total} HIGH safety violations at {RATE}/s");
        let sent_file = self.work.join("sent.json");
        let steady = self.py(&[
            "steady",
            &bootstrap,
            &registry,
            &alerts,
            &violation,
            &households,
            &RATE.to_string(),
            &seconds.to_string(),
            &sent_file.display().to_string(),
        ])?;
        providers.until("the alerts", |c| {
            c["sms"].as_u64() >= Some(total) && c["push"].as_u64() >= Some(total)
        })?;
        let cpu_latency = cpu_before.zip(cpu_of(wpid, ticks)).map(|(b, a)| a - b);
        let sent: serde_json::Map<String, Value> =
            serde_json::from_str(&std::fs::read_to_string(&sent_file)?)?;
        let times = providers.ask("times")?;
        std::fs::write(self.work.join("received.json"), times.to_string())?;
        let mut latency = String::new();
        let mut p99s = Vec::new();
        for channel in ["sms", "push"] {
            let mut ms: Vec<f64> = sent
                .iter()
                .filter_map(|(id, at)| {
                    let got = times[channel][id].as_u64()?;
                    Some((got as f64 - at.as_u64()? as f64) / 1e6)
                })
                .collect();
            ms.sort_by(f64::total_cmp);
            let p99 = percentile(&ms, 99.0);
            p99s.push((channel, p99));
            writeln!(
                latency,
                "| {channel} | {} | {:.1} | {p99:.1} | {:.1} |",
                ms.len(),
                percentile(&ms, 50.0),
                ms.last().copied().unwrap_or(f64::NAN)
            )?;
        }
        stop(&mut worker);

        // Throughput: (a) ursa on a backlog.
        eprintln!("throughput: a backlog of {n} usage events (email and webhook)");
        self.py(&[
            "backlog",
            &bootstrap,
            &registry,
            &news,
            &usage,
            &households,
            &n.to_string(),
        ])?;
        let start = Instant::now();
        let mut worker = self.start_ursa(&config, "throughput")?;
        let wpid = worker.0.id();
        let first = providers.until("the first usage notification", |c| {
            c["email"].as_u64() >= Some(1) || c["webhook"].as_u64() >= Some(1)
        });
        let steady_start = (Instant::now(), cpu_of(wpid, ticks));
        first?;
        let counts = providers.until("the usage notifications", |c| {
            c["email"].as_u64() >= Some(n) && c["webhook"].as_u64() >= Some(n)
        })?;
        let steady_ursa = Measure {
            name: "(a') `ursa run`, from the first notification received".into(),
            records: 2 * n,
            seconds: steady_start.0.elapsed().as_secs_f64(),
            cpu_seconds: steady_start.1.zip(cpu_of(wpid, ticks)).map(|(b, a)| a - b),
            peak_mib: None,
            note: "start-up left out".into(),
        };
        let ursa_row = Measure {
            name: "(a) `ursa run`, notify: ledger in PostgreSQL, email + webhook, 3 tasks".into(),
            records: 2 * n,
            seconds: start.elapsed().as_secs_f64(),
            cpu_seconds: cpu_of(wpid, ticks),
            peak_mib: peak_of(wpid),
            note: "process start to 2N received".into(),
        };
        stop(&mut worker);
        let repeats = counts["repeats"].as_u64().unwrap_or(0);
        let refused = counts["refused"].as_u64().unwrap_or(0);

        // (b) Python.
        eprintln!("(b) the Python notifier");
        providers.ask("reset")?;
        let job = self.py(&[
            "job",
            &db,
            &bootstrap,
            &registry,
            &news,
            &n.to_string(),
            &providers.address("smtp_port"),
            &providers.address("webhook_url"),
            &providers.address("webhook_secret"),
        ])?;
        let py_counts = providers.ask("counts")?;
        let steady_py = Measure {
            name: "(b') Python, from its first notification sent".into(),
            records: job["notifications"].as_u64().unwrap_or(0),
            seconds: job["steady_seconds"].as_f64().unwrap_or(0.0),
            cpu_seconds: job["steady_cpu_seconds"].as_f64(),
            peak_mib: None,
            note: "start-up left out".into(),
        };
        let py_row = Measure {
            name: "(b) Python: confluent-kafka + fastavro + psycopg ledger + smtplib + requests"
                .into(),
            records: job["notifications"].as_u64().unwrap_or(0),
            seconds: job["seconds"].as_f64().unwrap_or(0.0),
            cpu_seconds: job["cpu_seconds"].as_f64(),
            peak_mib: job["peak_rss_mib"].as_f64(),
            note: format!(
                "providers got {} emails, {} webhooks",
                py_counts["email"], py_counts["webhook"]
            ),
        };

        let mut out = String::new();
        writeln!(
            out,
            "{HOUSEHOLDS} households; Apache Kafka 4.4 (local KRaft JVM); machine before: {machine_before}; after: {}\n",
            machine()
        )?;
        writeln!(
            out,
            "Latency of `immediate` notifications (HIGH safety violations, SMS + push at once), {total} events at {RATE}/s (producer behind by {:.2} s at the end), produce → provider receipt:\n",
            steady["behind_seconds"].as_f64().unwrap_or(0.0)
        )?;
        writeln!(
            out,
            "| channel | notifications | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|"
        )?;
        out.push_str(&latency);
        if let Some(cpu) = cpu_latency {
            writeln!(
                out,
                "\nursa's CPU over the phase: {cpu:.2} s, {:.0} µs per event (two sends each).",
                cpu / total as f64 * 1e6
            )?;
        }
        writeln!(
            out,
            "\nThroughput of `normal` notifications (UsageStats, email + webhook), {n} events:\n"
        )?;
        writeln!(
            out,
            "| notifier | notifications | seconds | notifications/s | CPU s | per CPU-s | peak RSS MiB | measured |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|")?;
        write_row(&mut out, &ursa_row)?;
        write_row(&mut out, &py_row)?;
        write_row(&mut out, &steady_ursa)?;
        write_row(&mut out, &steady_py)?;
        writeln!(
            out,
            "\nRepeats at the providers during ursa's phases: {repeats}; requests refused: {refused}."
        )?;
        let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
        writeln!(out, "\n| goal | result |\n|---|---|")?;
        for (channel, p99) in p99s {
            writeln!(
                out,
                "| {channel} p99 < 100 ms | {}: {p99:.1} ms |",
                verdict(p99 < 100.0)
            )?;
        }
        match (ursa_row.per_cpu(), py_row.per_cpu()) {
            (Some(a), Some(b)) => {
                let r = a / b;
                writeln!(
                    out,
                    "| (a) ≥ 10× (b) per CPU-second | {}: {r:.2}× |",
                    verdict(r >= 10.0)
                )?;
            }
            _ => writeln!(out, "| (a) ≥ 10× (b) per CPU-second | not measured |")?,
        }
        if let (Some(a), Some(b)) = (steady_ursa.per_cpu(), steady_py.per_cpu()) {
            let r = a / b;
            writeln!(
                out,
                "| (a') ≥ 10× (b') per CPU-second, start-up left out | {}: {r:.2}× |",
                verdict(r >= 10.0)
            )?;
        }
        writeln!(
            out,
            "| (a) / (b) notifications/s | {:.2}× |",
            ursa_row.rate() / py_row.rate()
        )?;
        println!("{out}");
        Ok(ExitCode::SUCCESS)
    }

    /// The worker and connector configs; the connector's path.
    fn write_config(
        &self,
        providers: &Providers,
        db: &str,
        bootstrap: &str,
        registry: &str,
        [guardians, alerts, news]: [&String; 3],
    ) -> Result<(PathBuf, PathBuf)> {
        let rules = self.work.join("rules.toml");
        std::fs::write(
            &rules,
            format!(
                r#"
[[rule]]
name = "alerts"
topic = "{alerts}"
when = ["severity in [high, critical]"]
priority = "immediate"
category = "safety"
channels = ["sms", "push", "email"]
fanout = 2
[rule.templates.sms.en]
text = "Safety alert EV:{{{{ notification.event_id }}}}"
[rule.templates.push.en]
title = "Safety alert"
body = "EV:{{{{ notification.event_id }}}}"
[rule.templates.email.en]
subject = "Safety alert EV:{{{{ notification.event_id }}}}"
text = "{{{{ excerpt }}}}"

[[rule]]
name = "usage"
topic = "{news}"
priority = "normal"
category = "usage"
channels = ["email", "webhook"]
fanout = 2
[rule.templates.email.en]
subject = "News EV:{{{{ notification.event_id }}}}"
text = "{{{{ message_count }}}} messages"
"#
            ),
        )?;
        let sa = self.work.join("fcm.json");
        std::fs::write(&sa, providers.address("service_account"))?;
        let secrets = self.work.join("secrets.properties");
        std::fs::write(
            &secrets,
            format!("db={db}\nwebhook={}\n", providers.address("webhook_secret")),
        )?;
        let worker = self.work.join("worker.toml");
        std::fs::write(
            &worker,
            format!(
                "drain_deadline = \"30s\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n"
            ),
        )?;
        let s = secrets.display();
        let pairs: Vec<(&str, String)> = vec![
            ("name", format!("bench-notify-{}", std::process::id())),
            ("connector.class", "notify".into()),
            ("tasks.max", "3".into()),
            // A fetch waits at most this long for data (librdkafka: 500 ms). Partitions assigned while one
            // waits join the next fetch only: after a rebalance, alerts would wait for it.
            ("consumer.override.fetch.wait.max.ms", "100".into()),
            ("topics", format!("{guardians},{alerts},{news}")),
            ("key.converter", "string".into()),
            ("value.converter", "avro".into()),
            ("value.converter.schema.registry.url", registry.into()),
            ("notify.rules.file", rules.display().to_string()),
            ("notify.database.url", format!("${{file:{s}:db}}")),
            ("notify.directory.guardian.topic", guardians.clone()),
            ("notify.directory.topics", guardians.clone()),
            ("notify.email.host", "127.0.0.1".into()),
            ("notify.email.port", providers.address("smtp_port")),
            ("notify.email.tls", "none".into()),
            ("notify.email.from", "alerts@teddy.example".into()),
            ("notify.sms.base.url", providers.address("sms_url")),
            ("notify.sms.account.sid", TWILIO_SID.into()),
            ("notify.sms.auth.token", TWILIO_TOKEN.into()),
            ("notify.sms.from", "+15005550006".into()),
            ("notify.sms.per.recipient.hourly", "0".into()),
            (
                "notify.fcm.service.account",
                format!("${{file:{}}}", sa.display()),
            ),
            ("notify.fcm.base.url", providers.address("fcm_url")),
            ("notify.webhook.url", providers.address("webhook_url")),
            ("notify.webhook.secrets", format!("${{file:{s}:webhook}}")),
        ];
        let connector = self.work.join("notify.toml");
        let text: String = pairs
            .iter()
            .map(|(k, v)| {
                format!(
                    "{} = {}\n",
                    serde_json::to_string(k).unwrap_or_default(),
                    serde_json::to_string(v).unwrap_or_default()
                )
            })
            .collect();
        std::fs::write(&connector, text)?;
        Ok((worker, connector))
    }

    fn start_ursa(&self, (worker, connector): &(PathBuf, PathBuf), tag: &str) -> Result<Proc> {
        let log = std::fs::File::create(self.work.join(format!("ursa-{tag}.log")))?;
        // URSA_BENCH_PERF=FILE profiles the throughput phase's worker with `perf record` (its CPU figures then
        // are perf's own, not the worker's).
        let mut command = ursa_command(self.ursa, tag == "throughput");
        let child = command
            .arg("run")
            .arg(worker)
            .arg(connector)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting ursa run")?;
        Ok(Proc(child))
    }
}

/// The Twilio fake's account and auth token (`ursa_connector_notify::testing::twilio`).
const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "test-auth-token-0123456789";

/// SIGTERM, then the wait for the drain.
fn stop(worker: &mut Proc) {
    let _ = Command::new("kill")
        .args(["-TERM", &worker.0.id().to_string()])
        .status();
    let _ = worker.0.wait();
}
