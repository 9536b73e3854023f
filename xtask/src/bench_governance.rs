//! `cargo xtask bench schema-check` and `cargo xtask bench registry`: the schema governance benchmarks.
//!
//! - `schema-check`: a throwaway git repository with the catalog and 50 compatible historical versions of
//!   every record, every subject at FULL_TRANSITIVE (the worst case: every version checked both ways); times
//!   `ursa schema check --against git:main` (release build). Goal: under 2 s.
//! - `registry`: the dev registry (release build) with the catalog registered, loaded by `wrk` with 32
//!   connections on schema-by-id lookups. Goal: at least 5,000 lookups/s; p99 latency recorded.

use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::bench_runtime::release_ursa;
use anyhow::{Context, Result, bail};

const VERSIONS: usize = 50;

fn run_ok(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let p = e?.path();
        let dest = to.join(p.file_name().context("file name")?);
        if p.is_dir() {
            copy_dir(&p, &dest)?;
        } else {
            std::fs::copy(&p, &dest)?;
        }
    }
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    run_ok(
        Command::new("git")
            .args([
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.com",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(dir),
        "git",
    )
    .map(|_| ())
}

/// Adds an optional field `bench_v{n}` to every top-level record of the schema folder.
fn evolve(avro: &Path, n: usize) -> Result<()> {
    for e in walk(avro)? {
        let text = std::fs::read_to_string(&e)?;
        let mut doc: serde_json::Value = serde_json::from_str(&text)?;
        if doc["type"] == "record"
            && let Some(fields) = doc["fields"].as_array_mut()
        {
            fields.push(serde_json::json!({
                "name": format!("bench_v{n}"),
                "type": ["null", "string"],
                "default": null,
                "doc": format!("Added in benchmark version {n}."),
            }));
            std::fs::write(&e, serde_json::to_string_pretty(&doc)?)?;
        }
    }
    Ok(())
}

fn walk(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else if p.extension().is_some_and(|x| x == "avsc") {
            out.push(p);
        }
    }
    Ok(out)
}

pub fn schema_check() -> Result<ExitCode> {
    let root = crate::codegen::root();
    let ursa = release_ursa(&root)?;
    let dir = std::env::temp_dir().join(format!("ursa-bench-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root.join("schemas/avro"), &dir.join("schemas/avro"))?;
    // Every subject FULL_TRANSITIVE: every historical version is checked, both ways.
    let catalog = std::fs::read_to_string(root.join("schemas/topics.toml"))?;
    let catalog: String = catalog
        .lines()
        .filter(|l| !l.trim_start().starts_with("compatibility"))
        .map(|l| {
            if l.trim() == "[defaults]" {
                "[defaults]\ncompatibility = \"FULL_TRANSITIVE\"".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("schemas/topics.toml"), catalog)?;
    git(&dir, &["init", "-q", "-b", "main"])?;
    eprintln!(
        "building a history of {VERSIONS} versions per subject in {}",
        dir.display()
    );
    for n in 1..=VERSIONS {
        if n > 1 {
            evolve(&dir.join("schemas/avro"), n)?;
        }
        git(&dir, &["add", "-A"])?;
        git(&dir, &["commit", "-q", "-m", &format!("version {n}")])?;
    }
    evolve(&dir.join("schemas/avro"), VERSIONS + 1)?;
    let mut times = Vec::new();
    let mut summary = String::new();
    for _ in 0..5 {
        let start = Instant::now();
        let out = Command::new(&ursa)
            .args(["schema", "check", "--against", "git:main"])
            .current_dir(&dir)
            .output()?;
        times.push(start.elapsed());
        if !out.status.success() {
            bail!(
                "schema check failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        summary = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned();
    }
    times.sort();
    let median = times[times.len() / 2];
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "schema check --against git:main, {VERSIONS} versions per subject, FULL_TRANSITIVE: {summary}"
    );
    println!(
        "  runs: {}",
        times
            .iter()
            .map(|t| format!("{:.3}s", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  median {:.3}s, best {:.3}s — goal under 2 s: {}",
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        if median < Duration::from_secs(2) {
            "PASS"
        } else {
            "MISS"
        }
    );
    Ok(ExitCode::SUCCESS)
}

struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn parse_wrk(out: &str, key: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let l = l.trim();
        l.strip_prefix(key).map(|rest| rest.trim().to_owned())
    })
}

pub fn registry() -> Result<ExitCode> {
    let root = crate::codegen::root();
    let ursa = release_ursa(&root)?;
    if !Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok_and(|o| !o.stdout.is_empty() || !o.stderr.is_empty())
    {
        run_ok(
            Command::new("sh").args([
                "-c",
                "apt-get install -y -qq wrk || (apt-get update -qq && apt-get install -y -qq wrk)",
            ]),
            "apt-get install wrk",
        )?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let child = Command::new(&ursa)
        .args([
            "registry",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .spawn()?;
    let _guard = Registry(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the registry did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    run_ok(
        Command::new(&ursa)
            .args(["schema", "register", "--registry-url", &url])
            .current_dir(&root),
        "schema register",
    )?;
    let target = format!("{url}/schemas/ids/7");
    let out = run_ok(
        Command::new("wrk").args(["-t2", "-c32", "-d10s", "--latency", &target]),
        "wrk",
    )?;
    let rps: f64 = parse_wrk(&out, "Requests/sec:")
        .and_then(|s| s.parse().ok())
        .context("wrk printed no Requests/sec")?;
    let p99 = parse_wrk(&out, "99%").unwrap_or_else(|| "?".into());
    let p50 = parse_wrk(&out, "50%").unwrap_or_else(|| "?".into());
    println!(
        "dev registry, GET /schemas/ids/{{id}}, 32 connections (wrk -t2 -c32 -d10s), client and server on this machine:"
    );
    println!(
        "  {rps:.0} lookups/s, p50 {p50}, p99 {p99} — goal at least 5,000/s: {}",
        if rps >= 5000.0 { "PASS" } else { "MISS" }
    );
    Ok(ExitCode::SUCCESS)
}
