//! `cargo xtask bench metrics`: the `metrics` sink with the shipped definitions beside a Python peer doing the
//! same, in one run, and the memory of 100k live series.
//!
//! One run starts Apache Kafka (a KRaft JVM from `target/peers/kafka`) and the dev registry, and produces N Avro
//! events (Python confluent-kafka, values generated from the generated types' schemas, 500 distinct per topic)
//! spread over the six catalog topics the shipped definitions (`connectors/metrics/definitions/analytics.toml`)
//! read: `conversation.started`, `child.safety-violation`, `response.generated`, `emotion.detected`,
//! `analytics.engagement-metrics` and `analytics.usage-stats` (3 partitions each). Then:
//!
//! - (a) `ursa run` (release, `metrics`, Avro converter, one task, its own listener) from process start until
//!   the group's committed offsets cover all N (`offset.flush.interval.ms = 200`); CPU and peak RSS from /proc;
//! - (b) the Python peer (`connectors/metrics/bench/metrics_peer.py job`): confluent-kafka, fastavro and
//!   prometheus_client applying the same definitions file, from process start until N records;
//! - memory: the shipped definitions plus a counter labelled by child id (limits raised to 200k), on a topic of
//!   100k `UsageStats` for 100k children, and again for one child: (peak RSS with 100k series − with 1) / 100k,
//!   for ursa and for the peer.
//!
//! - instructions per event: (a) and (b) under `valgrind --tool=callgrind`, each on topics of 6,000 and 24,000
//!   events (the difference of the two counts over the difference of the events), a ratio that the load of a
//!   shared machine does not move (`URSA_BENCH_NO_CALLGRIND=1` leaves it out).
//!
//! Goals, informational: (a) at least 10× (b) per CPU-second; under 300 bytes per live series.
//! `URSA_BENCH_RECORDS` sets N (300,000); `URSA_BENCH_SERIES` the live series (100,000); `URSA_BENCH_PERF=FILE`
//! records a `perf` profile of (a); `URSA_BENCH_BIN=PATH` runs that `ursa` binary instead of building one (to
//! compare two builds one run after the other).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::bench_runtime::{
    Measure, Proc, callgrind_top, callgrind_total, callgrind_wrapper, clock_ticks, cpu_of, env_u64,
    free_port, generated_schema, has_valgrind, machine, peak_of, peer, peer_under, python,
    release_ursa, start_apache_kafka, start_registry, ursa_command, wrapped, write_row,
};

const DEFAULT_RECORDS: u64 = 300_000;
const DEFAULT_SERIES: u64 = 100_000;
const PARTITIONS: u32 = 3;
/// Events in the two runs under callgrind (of each consumer): the difference of their instruction counts over
/// N₂ − N₁ is the cost of an event, without start-up, group join and shutdown.
const CALLGRIND_EVENTS: [u64; 2] = [6_000, 24_000];
/// The topics of the shipped definitions: (topic, generated module, type).
const TOPICS: &[(&str, &str, &str)] = &[
    (
        "conversation.started",
        "conversation",
        "ConversationStarted",
    ),
    ("child.safety-violation", "child", "SafetyViolation"),
    ("response.generated", "conversation", "ResponseGenerated"),
    ("emotion.detected", "conversation", "EmotionDetected"),
    (
        "analytics.engagement-metrics",
        "analytics",
        "EngagementMetrics",
    ),
    ("analytics.usage-stats", "analytics", "UsageStats"),
];

pub fn run() -> Result<ExitCode> {
    crate::bench_runtime::ensure_kafka_peers()?;
    let n = env_u64("URSA_BENCH_RECORDS", DEFAULT_RECORDS)?;
    let series = env_u64("URSA_BENCH_SERIES", DEFAULT_SERIES)?;
    let root = crate::codegen::root();
    let ursa = release_ursa(&root)?;
    let work = std::env::temp_dir().join(format!("ursa-bench-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let bench = Bench {
        root: &root,
        ursa: &ursa,
        work: &work,
        script: root.join("connectors/metrics/bench/metrics_peer.py"),
    };
    let result = bench.run(n, series);
    let _ = std::fs::remove_dir_all(&work);
    result
}

struct Bench<'a> {
    root: &'a Path,
    ursa: &'a Path,
    work: &'a Path,
    script: PathBuf,
}

impl Bench<'_> {
    fn schema(&self, module: &str, ty: &str) -> Result<PathBuf> {
        let path = self.work.join(format!("{ty}.avsc"));
        std::fs::write(&path, generated_schema(self.root, module, ty)?)?;
        Ok(path)
    }

    /// Produces `per_topic` events to each of the six topics, named with `prefix`; their average value size.
    fn produce(
        &self,
        bootstrap: &str,
        registry: &str,
        prefix: &str,
        per_topic: u64,
    ) -> Result<f64> {
        let produce = self.root.join("runtime/bench/runtime_peer.py");
        let mut bytes = 0.0;
        for (topic, module, ty) in TOPICS {
            let schema = self.schema(module, ty)?;
            let topic = format!("{prefix}{topic}");
            eprintln!("producing {per_topic} {ty} to {topic}");
            let out = peer(
                &produce,
                &[
                    "produce",
                    bootstrap,
                    registry,
                    &topic,
                    &PARTITIONS.to_string(),
                    schema.to_str().context("schema path")?,
                    &per_topic.to_string(),
                ],
            )?;
            bytes += out["avg_value_bytes"].as_f64().unwrap_or(0.0);
        }
        Ok(bytes / TOPICS.len() as f64)
    }

    /// Instructions per event of (a) and (b) under `valgrind --tool=callgrind`, each run on topics of N₁ and
    /// N₂ events (the shipped definitions with the topics renamed): a ratio the shared machine does not blur.
    fn instructions(&self, bootstrap: &str, registry: &str, shipped: &Path) -> Result<String> {
        if !has_valgrind() {
            return Ok("Instructions per event: not measured (valgrind is not installed: `apt-get install valgrind`).".into());
        }
        let text = std::fs::read_to_string(shipped)?;
        let (mut ursa, mut py) = (Vec::new(), Vec::new());
        for n in CALLGRIND_EVENTS {
            let prefix = format!("cg{n}-{}.", std::process::id());
            self.produce(bootstrap, registry, &prefix, n / TOPICS.len() as u64)?;
            let mut defs = text.clone();
            for (topic, _, _) in TOPICS {
                defs = defs.replace(&format!("\"{topic}\""), &format!("\"{prefix}{topic}\""));
            }
            let file = self.work.join(format!("callgrind-{n}.toml"));
            std::fs::write(&file, defs)?;
            let topics: Vec<String> = TOPICS.iter().map(|t| format!("{prefix}{}", t.0)).collect();
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            let out = |who: &str| self.work.join(format!("callgrind-{who}-{n}.out"));
            let wrapper = |who: &str| callgrind_wrapper(&out(who));
            eprintln!("(a) under callgrind, {n} events");
            self.ursa_row(
                &wrapper("ursa"),
                &format!("cg{n}"),
                bootstrap,
                registry,
                &topics,
                &file,
                n,
            )?;
            ursa.push(callgrind_total(&out("ursa"))?);
            eprintln!("(b) under callgrind, {n} events");
            let mut args = vec!["job", bootstrap, registry];
            let file = file.display().to_string();
            let count = n.to_string();
            args.extend([file.as_str(), count.as_str()]);
            args.extend(&topics);
            peer_under(&wrapper("python"), &self.script, &args)?;
            py.push(callgrind_total(&out("python"))?);
        }
        let [n1, n2] = CALLGRIND_EVENTS;
        let per = |i: &[u64]| (i[1] as f64 - i[0] as f64) / (n2 - n1) as f64;
        let (a, b) = (per(&ursa), per(&py));
        let out = |n: u64| self.work.join(format!("callgrind-ursa-{n}.out"));
        let top = callgrind_top(
            &out(n1),
            &out(n2),
            n1,
            n2,
            "Top functions of (a), instructions per event (self cost; the difference of the two runs):",
        );
        Ok(format!(
            "Instructions per event under callgrind ((I(N₂) − I(N₁)) / (N₂ − N₁), N = {n1} and {n2}): (a) ursa {a:.0}, (b) Python {b:.0}; (b) / (a) = **{:.2}×**.\n\n{top}",
            b / a
        ))
    }

    fn run(&self, n: u64, series: u64) -> Result<ExitCode> {
        let machine_before = machine();
        eprintln!("starting Apache Kafka and the dev registry");
        let (_broker, bootstrap) = start_apache_kafka(&self.root.join("target/peers"), self.work)?;
        let (_registry, registry) = start_registry(self.ursa)?;
        let per_topic = n / TOPICS.len() as u64;
        let n = per_topic * TOPICS.len() as u64;
        let bytes = self.produce(&bootstrap, &registry, "", per_topic)?;
        let topics: Vec<&str> = TOPICS.iter().map(|t| t.0).collect();
        let shipped = self
            .root
            .join("connectors/metrics/definitions/analytics.toml");

        eprintln!("(a) ursa run, the shipped definitions");
        let ursa_row = self.ursa_row(&[], "all", &bootstrap, &registry, &topics, &shipped, n)?;
        eprintln!("(b) the Python peer");
        let mut args = vec![
            "job".to_owned(),
            bootstrap.clone(),
            registry.clone(),
            shipped.display().to_string(),
            n.to_string(),
        ];
        args.extend(topics.iter().map(|t| (*t).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let job = peer(&self.script, &args)?;
        let py_row = Measure {
            name:
                "(b) Python: confluent-kafka + fastavro + prometheus_client, the same definitions"
                    .into(),
            records: job["records"].as_u64().unwrap_or(0),
            seconds: job["seconds"].as_f64().unwrap_or(0.0),
            cpu_seconds: job["cpu_seconds"].as_f64(),
            peak_mib: job["peak_rss_mib"].as_f64(),
            note: format!("{} samples exposed; no cardinality guard", job["samples"]),
        };

        // Memory per live series.
        let usage = self.schema("analytics", "UsageStats")?;
        let by_child = self.work.join("by-child.toml");
        let mut defs = std::fs::read_to_string(&shipped)?;
        let many = format!("bench.usage-many-{}", std::process::id());
        let one = format!("bench.usage-one-{}", std::process::id());
        write!(
            defs,
            "\n[[metric]]\nname = \"usage_by_child\"\nhelp = \"Usage reports per child\"\ntype = \"counter\"\ntopics = [\"{many}\", \"{one}\"]\nlabels = {{ child = \"child.child_id\" }}\nmax_series = 200000\nmax_label_values = 200000\n"
        )?;
        std::fs::write(&by_child, defs)?;
        let mut memory = Vec::new();
        for (topic, children) in [(&many, series), (&one, 1)] {
            eprintln!("producing {series} UsageStats for {children} children to {topic}");
            peer(
                &self.script,
                &[
                    "distinct",
                    &bootstrap,
                    &registry,
                    topic,
                    usage.to_str().context("schema path")?,
                    &series.to_string(),
                    &children.to_string(),
                ],
            )?;
            let tag = if children == 1 { "one" } else { "many" };
            let u = self.ursa_row(&[], tag, &bootstrap, &registry, &[topic], &by_child, series)?;
            let p = peer(
                &self.script,
                &[
                    "job",
                    &bootstrap,
                    &registry,
                    &by_child.display().to_string(),
                    &series.to_string(),
                    topic,
                ],
            )?;
            memory.push((u.peak_mib, p["peak_rss_mib"].as_f64()));
        }

        let instructions = if std::env::var_os("URSA_BENCH_NO_CALLGRIND").is_some() {
            "Instructions per event: not measured (URSA_BENCH_NO_CALLGRIND is set).".to_owned()
        } else {
            self.instructions(&bootstrap, &registry, &shipped)?
        };

        let mut out = String::new();
        writeln!(
            out,
            "{n} Avro events over {} topics ({:.0} bytes per value on average), {PARTITIONS} partitions each, Apache Kafka 4.4 (local KRaft JVM); machine before: {machine_before}; after: {}\n",
            TOPICS.len(),
            bytes,
            machine()
        )?;
        writeln!(
            out,
            "| consumer | events | seconds | events/s | CPU s | events/CPU-s | peak RSS MiB | measured |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|")?;
        write_row(&mut out, &ursa_row)?;
        write_row(&mut out, &py_row)?;
        let per_series = |(with, without): (Option<f64>, Option<f64>)| {
            with.zip(without)
                .map(|(a, b)| (a - b) * 1024.0 * 1024.0 / series as f64)
        };
        let ursa_bytes = per_series((memory[0].0, memory[1].0));
        let py_bytes = per_series((memory[0].1, memory[1].1));
        writeln!(
            out,
            "\nMemory of {series} live series (peak RSS with them − with one series, same events): ursa {} MiB − {} MiB = {} bytes per series; Python {} MiB − {} MiB = {} bytes per series.",
            crate::bench_runtime::fmt_opt(memory[0].0, 0),
            crate::bench_runtime::fmt_opt(memory[1].0, 0),
            crate::bench_runtime::fmt_opt(ursa_bytes, 0),
            crate::bench_runtime::fmt_opt(memory[0].1, 0),
            crate::bench_runtime::fmt_opt(memory[1].1, 0),
            crate::bench_runtime::fmt_opt(py_bytes, 0),
        )?;
        writeln!(out, "\n{instructions}")?;
        let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
        writeln!(out, "\n| goal | result |\n|---|---|")?;
        match (ursa_row.per_cpu(), py_row.per_cpu()) {
            (Some(a), Some(b)) => writeln!(
                out,
                "| (a) ≥ 10× (b) events per CPU-second | {}: {:.2}× |",
                verdict(a / b >= 10.0),
                a / b
            )?,
            _ => writeln!(
                out,
                "| (a) ≥ 10× (b) events per CPU-second | not measured |"
            )?,
        }
        match ursa_bytes {
            Some(b) => writeln!(
                out,
                "| under 300 bytes per live series | {}: {b:.0} bytes |",
                verdict(b < 300.0)
            )?,
            None => writeln!(out, "| under 300 bytes per live series | not measured |")?,
        }
        writeln!(
            out,
            "| (a) / (b) events/s | {:.2}× |",
            ursa_row.rate() / py_row.rate()
        )?;
        println!("{out}");
        Ok(ExitCode::SUCCESS)
    }

    /// `ursa run` with the metrics sink on `topics` until its group committed `n` records, started by `wrapper`
    /// if not empty (e.g. `valgrind`).
    #[allow(clippy::too_many_arguments)]
    fn ursa_row(
        &self,
        wrapper: &[String],
        tag: &str,
        bootstrap: &str,
        registry: &str,
        topics: &[&str],
        definitions: &Path,
        n: u64,
    ) -> Result<Measure> {
        let name = format!("bench-metrics-{tag}-{}", std::process::id());
        let worker = self.work.join("worker.toml");
        std::fs::write(
            &worker,
            format!(
                "drain_deadline = \"30s\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n"
            ),
        )?;
        let connector = self.work.join(format!("metrics-{tag}.toml"));
        std::fs::write(
            &connector,
            format!(
                "name = \"{name}\"\n\"connector.class\" = \"metrics\"\ntopics = \"{}\"\n\
                 \"key.converter\" = \"string\"\n\"value.converter\" = \"avro\"\n\
                 \"value.converter.schema.registry.url\" = \"{registry}\"\n\
                 \"offset.flush.interval.ms\" = \"200\"\n\
                 \"metrics.definitions.file\" = \"{}\"\n\"metrics.listen\" = \"127.0.0.1:{}\"\n",
                topics.join(","),
                definitions.display(),
                free_port()?
            ),
        )?;
        let mut wait_args = vec![
            "wait".to_owned(),
            bootstrap.to_owned(),
            format!("connect-{name}"),
            n.to_string(),
        ];
        wait_args.extend(topics.iter().map(|t| (*t).to_owned()));
        let mut watcher = Command::new(python())
            .arg(&self.script)
            .args(&wait_args)
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the offsets watcher")?;
        let watch_out = watcher.stdout.take().context("watcher stdout")?;
        let _watcher = Proc(watcher);
        let log = std::fs::File::create(self.work.join(format!("ursa-{tag}.log")))?;
        let ticks = clock_ticks();
        let start = Instant::now();
        // URSA_BENCH_PERF=FILE profiles the main run's worker with `perf record` (its CPU figures then are perf's).
        let mut command = if wrapper.is_empty() {
            ursa_command(self.ursa, tag == "all")
        } else {
            wrapped(wrapper, self.ursa)
        };
        let child = command
            .arg("run")
            .arg(&worker)
            .arg(&connector)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting ursa run")?;
        let mut child = Proc(child);
        let pid = child.0.id();
        let mut line = String::new();
        BufReader::new(watch_out).read_line(&mut line)?;
        let seconds = start.elapsed().as_secs_f64();
        let (cpu, peak) = (cpu_of(pid, ticks), peak_of(pid));
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let _ = child.0.wait();
        if line.trim() != "reached" {
            bail!(
                "{tag}: the group never committed {n} records (log in {})",
                self.work.display()
            );
        }
        Ok(Measure {
            name: format!("(a) `ursa run`, metrics ({tag}): shipped definitions, 1 task"),
            records: n,
            seconds,
            cpu_seconds: cpu,
            peak_mib: peak,
            note: "process start to N committed".into(),
        })
    }
}
