//! `ursa validate` and `ursa connectors describe`: the shipped example configs are valid; bad configs exit 2
//! with an error per key; every config key is documented.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn ursa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ursa"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn shipped_configs_are_valid() {
    let out = ursa(&[
        "validate",
        "config/worker.toml",
        "config/safety-alerts-file.toml",
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn bad_configs_exit_2_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let connector = dir.path().join("bad.toml");
    std::fs::write(&connector, "name = \"x\"\n\"connector.class\" = \"file\"\ntopics = \"t\"\nfiel = \"/tmp/x\"\n\"errors.tolerance\" = \"sometimes\"\n").unwrap();
    let out = ursa(&[
        "validate",
        "config/worker.toml",
        connector.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("fiel: unknown configuration (did you mean `file`?)"),
        "{t}"
    );
    assert!(
        t.contains("errors.tolerance: expected one of none, all"),
        "{t}"
    );
    assert!(t.contains("file: missing required configuration"), "{t}");
    let worker = dir.path().join("worker.toml");
    std::fs::write(
        &worker,
        "[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n[rest]\nlisten = \"nowhere\"\n",
    )
    .unwrap();
    let out = ursa(&["validate", worker.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("rest.listen") || text(&out).contains("invalid socket address"),
        "{}",
        text(&out)
    );
    std::fs::write(&connector, "name = \"x\"\n\"connector.class\" = \"file\"\ntopics = \"t\"\nfile = \"/tmp/x\"\n\"value.converter.basic.auth.password\" = \"${env:URSA_SURELY_UNSET_VARIABLE}\"\n").unwrap();
    let out = ursa(&[
        "validate",
        "config/worker.toml",
        connector.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("URSA_SURELY_UNSET_VARIABLE is not set"),
        "{}",
        text(&out)
    );
}

#[test]
fn describe_documents_every_key() {
    let out = ursa(&["connectors", "describe", "file"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    for key in [
        "file",
        "file.fsync",
        "topics",
        "errors.tolerance",
        "errors.deadletterqueue.topic.name",
        "value.converter",
        "restart.auto.enable",
    ] {
        assert!(t.contains(key), "{key} not described:\n{t}");
    }
    let out = ursa(&["connectors", "describe", "nope"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn validate_connect_checks_reachability() {
    let kafka = ursa_testkit::Kafka::shared();
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let worker = dir.path().join("worker.toml");
    let connector = dir.path().join("c.toml");
    std::fs::write(
        &connector,
        format!(
            "name = \"c\"\n\"connector.class\" = \"file\"\ntopics = \"t\"\nfile = \"{}\"\n",
            dir.path().join("out.jsonl").display()
        ),
    )
    .unwrap();
    std::fs::write(
        &worker,
        format!("[kafka]\nbootstrap_servers = \"{}\"\n", kafka.bootstrap()),
    )
    .unwrap();
    let out = ursa(&[
        "validate",
        worker.to_str().unwrap(),
        connector.to_str().unwrap(),
        "--connect",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ok: Kafka at") && text(&out).contains("file sink reachable"),
        "{}",
        text(&out)
    );
    // An unreachable registry fails the check (exit 1) and says which.
    std::fs::write(&worker, format!("[kafka]\nbootstrap_servers = \"{}\"\n[registry]\nurl = \"http://{closed}\"\ntimeout = \"1s\"\n", kafka.bootstrap())).unwrap();
    let out = ursa(&[
        "validate",
        worker.to_str().unwrap(),
        connector.to_str().unwrap(),
        "--connect",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("error: registry at http://{closed}")),
        "{}",
        text(&out)
    );
}
