//! `cargo xtask bench SUITE`: benchmarks compared with peers in the same run.
//!
//! `codegen`: decode and encode of generated event types (`schemas/benches/codegen.rs`, criterion) against
//! apache-avro through `Value` (a), apache-avro's serde path with a pre-parsed schema (b), both in the same
//! criterion run, and Python fastavro (c, `schemas/bench/fastavro_peer.py`) on the very bytes the bench
//! wrote. Prints ns/op, the ratios peer/generated and the goals (informational: a missed goal does not
//! fail the command, a failing benchmark does).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use serde_json::Value;

#[path = "bench_publish.rs"]
mod bench_publish;

/// Arguments of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Args {
    /// The suite: `codegen`, `schema-check`, `registry`, `runtime`, `commit-interval`, `audit`, `notify`, `metrics` or `publish`.
    suite: String,
    /// Keep the working directory (datum bytes, schemas, criterion estimates) and print its path.
    #[arg(long)]
    keep: bool,
    /// Extra arguments for the criterion bench binary, after `--` (e.g. `-- --quick`).
    #[arg(last = true)]
    criterion: Vec<String>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    match args.suite.as_str() {
        "codegen" => codegen(args),
        "schema-check" => crate::bench_governance::schema_check(),
        "registry" => crate::bench_governance::registry(),
        "runtime" => crate::bench_runtime::run(),
        "commit-interval" => crate::bench_runtime::commit_interval(),
        "audit" => crate::bench_audit::run(),
        "notify" => crate::bench_notify::run(),
        "metrics" => crate::bench_metrics::run(),
        "publish" => bench_publish::run(),
        other => {
            bail!(
                "unknown benchmark suite `{other}` (known: codegen, schema-check, registry, runtime, commit-interval, audit, notify, metrics, publish)"
            )
        }
    }
}

/// The events of the `codegen` bench: (bench name, generated type).
const EVENTS: &[(&str, &str)] = &[
    (
        "message_received",
        "com::teddy::conversation::MessageReceived",
    ),
    ("usage_stats", "com::teddy::analytics::UsageStats"),
];
const OPS: &[&str] = &["decode", "encode"];
/// Criterion ids of the Rust implementations, in table order: generated, (a), (b).
const RUST_IMPLS: &[&str] = &["generated", "apache_avro_value", "apache_avro_serde"];
/// Goals on decode: peer / generated at least this much, per peer column (a) = 0, (c) = 2.
const DECODE_GOALS: &[(usize, &str, f64)] =
    &[(0, "(a) apache-avro Value", 5.0), (2, "(c) fastavro", 10.0)];

fn codegen(args: &Args) -> Result<ExitCode> {
    crate::test::ensure_python_packages()?;
    let root = crate::codegen::root();
    let work = std::env::temp_dir().join(format!("ursa-bench-codegen-{}", std::process::id()));
    let result = codegen_in(args, &root, &work);
    if args.keep {
        eprintln!("working directory kept: {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn codegen_in(args: &Args, root: &Path, work: &Path) -> Result<ExitCode> {
    let data = work.join("data");
    let criterion_home = work.join("criterion");
    for dir in [&data, &criterion_home] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    // 1. The Rust side: criterion, writing its estimates and the datum bytes into `work`.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "bench",
        "-p",
        "ursa-events",
        "--bench",
        "codegen",
        "--",
        "--noplot",
    ])
    .args(&args.criterion)
    .env("CRITERION_HOME", &criterion_home)
    .env("URSA_BENCH_DATA_DIR", &data)
    .current_dir(root);
    let status = cmd
        .status()
        .with_context(|| format!("running {cargo} bench"))?;
    if !status.success() {
        bail!("`cargo bench -p ursa-events --bench codegen` failed ({status})");
    }

    // 2. The Python peer on the same bytes.
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = root.join("schemas/bench/fastavro_peer.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(&data)
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !output.status.success() {
        bail!("{} failed ({})", script.display(), output.status);
    }
    let peer: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("parsing the output of {}", script.display()))?;

    // 3. The table.
    let report = report(&criterion_home, &data, &peer)?;
    println!("\n{report}");
    Ok(ExitCode::SUCCESS)
}

/// Mean point estimate (ns) of a criterion benchmark, if it ran.
fn criterion_mean(home: &Path, group: &str, id: &str) -> Result<Option<f64>> {
    let path: PathBuf = [
        home,
        Path::new(group),
        Path::new(id),
        Path::new("new/estimates.json"),
    ]
    .iter()
    .collect();
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let json: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(json.pointer("/mean/point_estimate").and_then(Value::as_f64))
}

fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        Some(ns) if ns >= 1_000.0 => format!("{ns:.0}"),
        Some(ns) => format!("{ns:.1}"),
        None => "-".into(),
    }
}

fn ratio(peer: Option<f64>, generated: Option<f64>) -> Option<f64> {
    match (peer, generated) {
        (Some(p), Some(g)) if g > 0.0 => Some(p / g),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.1}×"))
}

fn report(criterion_home: &Path, data: &Path, peer: &Value) -> Result<String> {
    let mut out = String::new();
    let fastavro = peer
        .get("fastavro_version")
        .and_then(Value::as_str)
        .unwrap_or("?");
    writeln!(
        out,
        "ns/op (criterion mean for Rust, median of 7 runs for fastavro {fastavro}); ratio = peer / generated, higher is better for generated"
    )?;
    writeln!(
        out,
        "(a) apache-avro from_avro_datum → Value → from_value / to_value → to_avro_datum; (b) apache-avro serde with pre-parsed schema (decode: GenericSingleObjectReader → from_value; encode: write_avro_datum_ref); (c) fastavro schemaless_reader/schemaless_writer\n"
    )?;
    writeln!(
        out,
        "| event | bytes | op | generated | (a) | (b) | (c) | (a)/gen | (b)/gen | (c)/gen |"
    )?;
    writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")?;
    let mut goals = Vec::new();
    let mut notes = Vec::new();
    for (event, ty) in EVENTS {
        let size = std::fs::metadata(data.join(format!("{event}.bin")))
            .map(|m| m.len().to_string())
            .unwrap_or_else(|_| "?".into());
        let py = peer.pointer(&format!("/events/{event}"));
        if py
            .and_then(|p| p.get("roundtrip_identical"))
            .and_then(Value::as_bool)
            == Some(false)
        {
            notes.push(format!(
                "note: fastavro re-encoded {event} to different bytes than the generated code"
            ));
        }
        for op in OPS {
            let group = format!("{event}_{op}");
            let mut ns = Vec::with_capacity(4);
            for id in RUST_IMPLS {
                ns.push(criterion_mean(criterion_home, &group, id)?);
            }
            ns.push(
                py.and_then(|p| p.get(format!("{op}_ns")))
                    .and_then(Value::as_f64),
            );
            let generated = ns.first().copied().flatten();
            let peers: Vec<Option<f64>> = ns.iter().skip(1).map(|p| ratio(*p, generated)).collect();
            writeln!(
                out,
                "| `{event}` | {size} | {op} | {} | {} | {} | {} | {} | {} | {} |",
                fmt_ns(generated),
                fmt_ns(ns.get(1).copied().flatten()),
                fmt_ns(ns.get(2).copied().flatten()),
                fmt_ns(ns.get(3).copied().flatten()),
                fmt_ratio(peers.first().copied().flatten()),
                fmt_ratio(peers.get(1).copied().flatten()),
                fmt_ratio(peers.get(2).copied().flatten()),
            )?;
            if *op == "decode" {
                for (column, name, goal) in DECODE_GOALS {
                    let r = peers.get(*column).copied().flatten();
                    let verdict = match r {
                        Some(r) if r >= *goal => "PASS",
                        Some(_) => "MISS",
                        None => "n/a ",
                    };
                    goals.push(format!(
                        "{verdict}  {ty} decode ≥{goal}× faster than {name}: {}",
                        fmt_ratio(r)
                    ));
                }
            }
        }
    }
    writeln!(out, "\nGoals (informational):")?;
    for g in goals {
        writeln!(out, "  {g}")?;
    }
    for n in notes {
        writeln!(out, "{n}")?;
    }
    Ok(out)
}
