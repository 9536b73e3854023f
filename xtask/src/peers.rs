//! The Java peers of the tests (Apache Kafka, Kafka Connect, Apicurio Registry, Avro Java's checker): fetched once
//! from Maven Central by `mvn -f tests/peers/pom.xml package` into `target/peers/`, skipped while the stamp there
//! matches the Maven project's files (Maven's own cache in `~/.m2` makes a fresh clone's fetch a copy).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

fn answers(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Every file of the Maven project, sorted, for the stamp.
fn project_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            project_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

fn stamp(project: &Path) -> Result<String> {
    let mut files = Vec::new();
    project_files(project, &mut files)?;
    let mut h = DefaultHasher::new();
    for f in &files {
        f.strip_prefix(project).unwrap_or(f).hash(&mut h);
        std::fs::read(f)?.hash(&mut h);
    }
    Ok(format!("{:016x}\n", h.finish()))
}

/// Fetches the Java peers unless they are fresh; `Ok(false)` when `java` or `mvn` does not answer here (the
/// tests then run on nisshi, the Java-free broker).
pub fn ensure_java_peers() -> Result<bool> {
    if !answers("java", "-version") || !answers("mvn", "--version") {
        eprintln!("java or mvn does not answer: the tests run on nisshi, without the Java peers");
        return Ok(false);
    }
    let root = crate::codegen::root();
    let project = root.join("tests/peers");
    let peers = root.join("target/peers");
    let want = stamp(&project)?;
    let stamp_file = peers.join(".stamp");
    if std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(want.as_str()) {
        return Ok(true);
    }
    eprintln!(
        "fetching the Java test peers (Apache Kafka, Kafka Connect, Apicurio Registry, Avro) into {}",
        peers.display()
    );
    // A clean copy: jars of an older pinned version must not stay on a classpath.
    for dir in ["kafka", "connect", "apicurio", "avro-compat", "build"] {
        let _ = std::fs::remove_dir_all(peers.join(dir));
    }
    let status = Command::new("mvn")
        .args(["-B", "-q", "-f"])
        .arg(project.join("pom.xml"))
        .arg("package")
        .status()
        .context("running mvn")?;
    if !status.success() {
        bail!(
            "`mvn -B -f tests/peers/pom.xml package` failed ({status}): Maven Central must be reachable"
        );
    }
    for expected in [
        "kafka/lib",
        "connect/lib",
        "connect/plugins/connect-file",
        "apicurio/quarkus-run.jar",
        "avro-compat/lib",
    ] {
        if !peers.join(expected).exists() {
            bail!(
                "`mvn -f tests/peers/pom.xml package` left no {}",
                peers.join(expected).display()
            );
        }
    }
    std::fs::write(&stamp_file, want)?;
    Ok(true)
}
