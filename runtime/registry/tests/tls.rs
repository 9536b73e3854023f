//! The registry client over TLS with a custom CA: a registry behind a self-signed certificate is reachable
//! when its CA is given, and refused otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use ursa_registry::{ClientConfig, RegistryClient, RetryPolicy};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn custom_ca_is_trusted_and_required() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed for this test: apt-get install openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/tls_server.py");
    let mut child = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(script)
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    let mut port = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let _server = Server(child);
    let url = format!("https://127.0.0.1:{}", port.trim());

    let mut with_ca = ClientConfig::new(&url);
    with_ca.ca_cert = Some(cert.clone());
    let client = RegistryClient::new(with_ca).unwrap();
    assert_eq!(
        client.subjects().await.unwrap(),
        vec!["from-tls".to_owned()]
    );

    let mut without = ClientConfig::new(&url);
    without.retries = RetryPolicy::none();
    let err = RegistryClient::new(without)
        .unwrap()
        .subjects()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("certificate verify failed"),
        "{err}"
    );

    let mut missing = ClientConfig::new(&url);
    missing.ca_cert = Some(dir.path().join("nope.pem"));
    assert!(
        RegistryClient::new(missing).is_err(),
        "an unreadable CA file is a configuration error"
    );
}
