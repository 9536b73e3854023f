//! Peers for the notification tests, all on loopback: a real SMTP server (aiosmtpd, STARTTLS on a test CA),
//! a webhook receiver verifying with the `standardwebhooks` package, Stoplight Prism validating against
//! Twilio's OpenAPI description, and local FCM and APNs servers that check what they receive as Google's and
//! Apple's documentation say. A missing peer fails with the command that installs it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod apns;
pub mod fcm;
pub mod twilio;

use std::ffi::OsStr;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use ursa_testkit::{Service, free_port, wait_until};

/// What installs the peers.
pub const INSTALL: &str = "cargo xtask test (it installs the Python and npm test peers)";

/// The Python the tests use.
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Fails with the install command unless `module` imports.
pub fn require_python(module: &str) -> Result<()> {
    let ok = Command::new(python())
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        bail!("the Python module `{module}` is missing: run `{INSTALL}`");
    }
    Ok(())
}

/// A peer script of this crate's tests.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// The workspace's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// Waits until something listens on `port`.
pub fn wait_port(port: u16, service: &Service) -> Result<()> {
    wait_until(
        &format!("{} on port {port}", service.name()),
        Duration::from_secs(30),
        || {
            if !service.is_running() {
                return Some(false);
            }
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| true)
        },
    )
    .and_then(|up| {
        if up {
            Ok(())
        } else {
            bail!("{} exited: {}", service.name(), service.log_tail(30))
        }
    })
}

/// A test CA and a server certificate for `localhost` and `127.0.0.1`, made with openssl.
pub struct Tls {
    /// The folder of the files.
    pub dir: tempfile::TempDir,
    /// The CA certificate (PEM), for clients.
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// The server key (PKCS#8 PEM).
    pub key: PathBuf,
}

impl Tls {
    /// Makes it.
    pub fn new() -> Result<Tls> {
        let dir = tempfile::tempdir()?;
        let p = |n: &str| dir.path().join(n);
        let run = |args: &[&str]| -> Result<()> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .context("running openssl (apt-get install -y openssl)")?;
            if !out.status.success() {
                bail!(
                    "openssl {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(())
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=ursa notify test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "req.csr",
            "-subj",
            "/CN=localhost",
        ])?;
        std::fs::write(
            p("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )?;
        run(&[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ])?;
        // PKCS#8, which every consumer reads.
        run(&[
            "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-out", "key8.pem",
        ])?;
        Ok(Tls {
            ca: p("ca.pem"),
            cert: p("cert.pem"),
            key: p("key8.pem"),
            dir,
        })
    }
}

/// The SMTP peer.
pub struct Smtp {
    /// The process (killed on drop).
    pub service: Service,
    /// The port it listens on (loopback).
    pub port: u16,
    /// Where it writes what it received.
    pub out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Smtp {
    /// Starts aiosmtpd on `port` (a free one when `None`), STARTTLS and AUTH required; the first
    /// `fail_first` messages get 451.
    pub fn start(
        tls: &Tls,
        user: &str,
        password: &str,
        port: Option<u16>,
        fail_first: u32,
    ) -> Result<Smtp> {
        Smtp::spawn(tls, user, password, port, fail_first, false)
    }

    /// Starts aiosmtpd speaking TLS from the first byte (port 465 style), AUTH required.
    pub fn start_implicit(tls: &Tls, user: &str, password: &str) -> Result<Smtp> {
        Smtp::spawn(tls, user, password, None, 0, true)
    }

    fn spawn(
        tls: &Tls,
        user: &str,
        password: &str,
        port: Option<u16>,
        fail_first: u32,
        implicit: bool,
    ) -> Result<Smtp> {
        require_python("aiosmtpd")?;
        let port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("mail");
        std::fs::create_dir_all(&out)?;
        let fail = fail_first.to_string();
        let service = Service::spawn(
            "aiosmtpd",
            python(),
            [
                script("smtp_server.py").as_os_str(),
                OsStr::new(&port.to_string()),
                out.as_os_str(),
                tls.cert.as_os_str(),
                tls.key.as_os_str(),
                OsStr::new(user),
                OsStr::new(password),
            ],
            &[
                ("SMTP_FAIL_FIRST", OsStr::new(&fail)),
                (
                    "SMTP_IMPLICIT_TLS",
                    OsStr::new(if implicit { "1" } else { "0" }),
                ),
            ],
            &dir.path().join("smtp.log"),
            None,
        )?;
        wait_port(port, &service)?;
        Ok(Smtp {
            service,
            port,
            out,
            _dir: dir,
        })
    }

    /// Every message received, in order.
    pub fn messages(&self) -> Vec<Value> {
        read_json_dir(&self.out)
    }
}

/// The JSON files of a folder, in name order.
pub fn read_json_dir(dir: &Path) -> Vec<Value> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.retain(|p| p.extension() == Some(OsStr::new("json")));
    names.sort();
    names
        .iter()
        .filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
        .collect()
}

/// The webhook peer.
pub struct Receiver {
    /// The process (killed on drop).
    pub service: Service,
    /// The port it listens on (loopback).
    pub port: u16,
    /// Where it writes what it received.
    pub out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// Starts the receiver for `secret`; the first `fail_first` verified deliveries get 503.
    pub fn start(secret: &str, fail_first: u32) -> Result<Receiver> {
        require_python("standardwebhooks")?;
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("deliveries.jsonl");
        let fail = fail_first.to_string();
        let service = Service::spawn(
            "webhook receiver",
            python(),
            [
                script("webhook_receiver.py").as_os_str(),
                OsStr::new(&port.to_string()),
                OsStr::new(secret),
                out.as_os_str(),
            ],
            &[("WEBHOOK_FAIL_FIRST", OsStr::new(&fail))],
            &dir.path().join("receiver.log"),
            None,
        )?;
        wait_port(port, &service)?;
        Ok(Receiver {
            service,
            port,
            out,
            _dir: dir,
        })
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    /// Every delivery, in order.
    pub fn deliveries(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// A `whsec_` secret of random bytes.
pub fn webhook_secret() -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = crate::channels::jwt::uuid(None)
        .bytes()
        .chain(crate::channels::jwt::uuid(None).bytes())
        .take(32)
        .collect();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}
