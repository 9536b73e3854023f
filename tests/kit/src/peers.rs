//! Where the Java peers live: `target/peers/`, filled once from Maven Central by `cargo xtask test`
//! (`tests/peers/pom.xml`), and the `java` that runs them.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Result, bail};

/// The command that fetches the Java peers.
pub const FETCH_PEERS: &str = "cargo xtask test (or: mvn -B -f tests/peers/pom.xml package)";

/// `target/peers` (or `$URSA_PEERS_DIR`).
pub fn peers_dir() -> PathBuf {
    std::env::var_os("URSA_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/peers"))
}

/// `target/peers/<name>`, failing with the fix when it has not been fetched.
pub fn peer(name: &str) -> Result<PathBuf> {
    let dir = peers_dir().join(name);
    if !dir.is_dir() {
        bail!(
            "the Java peer `{name}` is not fetched ({} is missing): run `{FETCH_PEERS}`",
            dir.display()
        );
    }
    Ok(dir)
}

/// The classpath `target/peers/<name>/lib/*`.
pub fn classpath(name: &str) -> Result<String> {
    Ok(format!("{}/lib/*", peer(name)?.display()))
}

/// The `java` to run (`$JAVA`, else `$JAVA_HOME/bin/java`, else `java` on the PATH), checked once.
pub fn java() -> Result<PathBuf> {
    static JAVA: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    JAVA.get_or_init(|| {
        let java = std::env::var_os("JAVA")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("JAVA_HOME").map(|h| PathBuf::from(h).join("bin/java")))
            .unwrap_or_else(|| PathBuf::from("java"));
        match Command::new(&java)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(s) if s.success() => Ok(java),
            _ => Err(format!(
                "`{}` does not run: install Java 17+ (e.g. `apt-get install -y openjdk-17-jre-headless`)",
                java.display()
            )),
        }
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Whether the Java peers can run here (`java` answers and `target/peers/kafka` is fetched).
pub fn java_peers_available() -> bool {
    java().is_ok() && peers_dir().join("kafka/lib").is_dir()
}
