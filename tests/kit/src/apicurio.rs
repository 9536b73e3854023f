//! Apicurio Registry 3.x for tests: the Quarkus application `cargo xtask test` fetches from Maven Central into
//! `target/peers/apicurio`, run as a [`Service`] on free loopback ports with in-memory storage (H2), the global
//! compatibility rule BACKWARD and canonical hashing in its Confluent-compatible API (`/apis/ccompat/v7`).
//!
//! Apicurio Registry 3.3 is built for Java 21: it runs on the first Java 21+ of `$URSA_APICURIO_JAVA`, the
//! kit's [`java`](crate::java) and `/usr/lib/jvm/*/bin/java`. `$URSA_TEST_APICURIO_JAVA_OPTS` replaces the JVM
//! options (a small heap by default).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::peers::{java, peer};
use crate::process::{CommandExt as _, SETUP_TIMEOUT};
use crate::service::Service;
use crate::{free_port, unique_name, wait_until};

/// The global compatibility rule every test registry starts with (Confluent's default level; Apicurio's own
/// default is no rule, which its ccompat API reports as `NONE`).
pub const APICURIO_GLOBAL_COMPATIBILITY: &str = "BACKWARD";

/// How long a JVM on a busy 2-core machine may take to start Quarkus and create its database.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// The Java major version Apicurio Registry 3.3 needs.
const MIN_JAVA: u32 = 21;

/// A running Apicurio Registry. Its JVM stops when the handle drops or the test process exits.
pub struct Apicurio {
    url: String,
    ccompat: String,
    management: String,
    service: Service,
}

impl Apicurio {
    /// The registry shared by every test of this process (started on first use). Tests sharing it use
    /// unique subject names.
    pub fn shared() -> &'static Apicurio {
        static SHARED: OnceLock<Apicurio> = OnceLock::new();
        SHARED.get_or_init(|| match Apicurio::start() {
            Ok(a) => a,
            Err(e) => {
                // Straight to the process's stderr: the test harness would swallow a captured `eprintln!`
                // when the process exits.
                let _ = writeln!(
                    std::io::stderr(),
                    "cannot start Apicurio Registry for the tests: {e:#}"
                );
                std::process::exit(101)
            }
        })
    }

    /// Starts a fresh, empty registry and waits until its ccompat API and its readiness check answer.
    pub fn start() -> Result<Apicurio> {
        let jar = peer("apicurio")?.join("quarkus-run.jar");
        if !jar.is_file() {
            bail!(
                "Apicurio Registry is not fetched ({} is missing): run `{}`",
                jar.display(),
                crate::FETCH_PEERS
            );
        }
        let java = apicurio_java()?;
        let (port, management) = (free_port()?, free_port()?);
        let dir = std::env::temp_dir().join(unique_name("ursa-apicurio"));
        std::fs::create_dir_all(&dir)?;
        let java_opts = std::env::var("URSA_TEST_APICURIO_JAVA_OPTS").unwrap_or_else(|_| {
            "-Xms64m -Xmx320m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true"
                .into()
        });
        let mut args: Vec<String> = java_opts.split_whitespace().map(str::to_owned).collect();
        let db = unique_name("ursa").replace('-', "_");
        let props: &[(&str, String)] = &[
            ("quarkus.http.host", "127.0.0.1".into()),
            ("quarkus.http.port", port.to_string()),
            // The health and metrics interface (9000 by default): a port of its own, so registries coexist.
            ("quarkus.management.host", "127.0.0.1".into()),
            ("quarkus.management.port", management.to_string()),
            // In-memory storage, said explicitly (it is also 3.x's default): SQL on an H2 in-memory database.
            ("apicurio.storage.kind", "sql".into()),
            ("apicurio.storage.sql.kind", "h2".into()),
            ("apicurio.datasource.url", format!("jdbc:h2:mem:{db}")),
            ("apicurio.datasource.jdbc.initial-size", "2".into()),
            ("apicurio.datasource.jdbc.min-size", "2".into()),
            ("apicurio.datasource.jdbc.max-size", "20".into()),
            // Default global rules are `apicurio.rules.global.<rule type>`.
            (
                "apicurio.rules.global.compatibility",
                APICURIO_GLOBAL_COMPATIBILITY.into(),
            ),
            ("apicurio.ccompat.use-canonical-hash", "true".into()),
            // One line a request in its log, so a failure's log tail shows which requests it got and answered.
            ("quarkus.http.access-log.enabled", "true".into()),
            ("java.io.tmpdir", dir.display().to_string()),
            (
                "apicurio.storage.snapshot.location",
                dir.display().to_string(),
            ),
        ];
        args.extend(props.iter().map(|(k, v)| format!("-D{k}={v}")));
        args.extend(["-jar".into(), jar.display().to_string()]);
        let service = Service::spawn(
            "Apicurio Registry",
            &java,
            &args,
            &[],
            &dir.join("apicurio.log"),
            Some(&dir),
        )?;
        let url = format!("http://127.0.0.1:{port}");
        let registry = Apicurio {
            ccompat: format!("{url}/apis/ccompat/v7"),
            url,
            management: format!("127.0.0.1:{management}"),
            service,
        };
        if let Err(e) = registry.wait_ready() {
            let tail = registry.service.log_tail(40);
            return Err(e.context(format!(
                "Apicurio Registry ({}) did not come up; the end of its log ({}):\n{tail}",
                java.display(),
                registry.service.log_path().display()
            )));
        }
        Ok(registry)
    }

    fn wait_ready(&self) -> Result<()> {
        let addr = self.url.trim_start_matches("http://").to_owned();
        let ready = wait_until("Apicurio Registry's ccompat API", START_TIMEOUT, || {
            if !self.service.is_running() {
                return Some(false);
            }
            if http_status(&addr, "/apis/ccompat/v7/subjects")? != 200 {
                return None;
            }
            (http_status(&self.management, "/health/ready")? == 200).then_some(true)
        })?;
        if !ready {
            bail!("the Apicurio Registry JVM exited");
        }
        Ok(())
    }

    /// `http://127.0.0.1:PORT`, the root of every API.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `http://127.0.0.1:PORT/apis/ccompat/v7`: the Confluent Schema Registry–compatible API, the URL a
    /// Confluent client is given.
    pub fn ccompat_url(&self) -> &str {
        &self.ccompat
    }

    /// `http://127.0.0.1:PORT/apis/registry/v3`: Apicurio's own API (admin rules, config properties).
    pub fn core_url(&self) -> String {
        format!("{}/apis/registry/v3", self.url)
    }

    /// The JVM (its log for failure messages).
    pub fn service(&self) -> &Service {
        &self.service
    }
}

impl std::fmt::Debug for Apicurio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apicurio")
            .field("url", &self.url)
            .field("pid", &self.service.pid())
            .finish()
    }
}

/// The major version `java -version` reports (`"25.0.3"` → 25, `"1.8.0_402"` → 8).
fn java_major(java: &Path) -> Option<u32> {
    let out = Command::new(java)
        .arg("-version")
        .output_within(SETUP_TIMEOUT)
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let version = text.split('"').nth(1)?;
    let mut parts = version.split(['.', '_', '-', '+']);
    match parts.next()?.parse().ok()? {
        1 => parts.next()?.parse().ok(),
        n => Some(n),
    }
}

/// A Java 21+ for Apicurio: `$URSA_APICURIO_JAVA`, else the kit's `java` if new enough, else the newest
/// `/usr/lib/jvm/*/bin/java` that is.
fn apicurio_java() -> Result<PathBuf> {
    static JAVA: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    JAVA.get_or_init(|| {
        if let Some(j) = std::env::var_os("URSA_APICURIO_JAVA") {
            let j = PathBuf::from(j);
            return match java_major(&j) {
                Some(v) if v >= MIN_JAVA => Ok(j),
                v => Err(format!(
                    "URSA_APICURIO_JAVA={} is Java {}: Apicurio Registry 3.3 needs Java {MIN_JAVA}+",
                    j.display(),
                    v.map_or_else(|| "of an unknown version".to_owned(), |v| v.to_string())
                )),
            };
        }
        let mut seen = Vec::new();
        if let Ok(j) = java() {
            match java_major(&j) {
                Some(v) if v >= MIN_JAVA => return Ok(j),
                v => seen.push(format!("{} (Java {})", j.display(), v.unwrap_or(0))),
            }
        }
        let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/jvm")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin/java"))
            .filter(|p| p.is_file())
            .filter_map(|p| java_major(&p).map(|v| (v, p)))
            .collect();
        candidates.sort();
        if let Some((_, j)) = candidates.iter().rev().find(|(v, _)| *v >= MIN_JAVA) {
            return Ok(j.clone());
        }
        seen.extend(candidates.iter().map(|(v, p)| format!("{} (Java {v})", p.display())));
        Err(format!(
            "Apicurio Registry 3.3 needs Java {MIN_JAVA}+ and none was found (seen: {}): install one (e.g. Temurin \
             {MIN_JAVA} under /usr/lib/jvm) or set URSA_APICURIO_JAVA to its `java`",
            if seen.is_empty() { "none".to_owned() } else { seen.join(", ") }
        ))
    })
    .clone()
    .map_err(anyhow::Error::msg)
    .context("choosing the Java for Apicurio Registry")
}

/// The status of `GET path` over HTTP/1.0, or None if the server does not answer.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}
