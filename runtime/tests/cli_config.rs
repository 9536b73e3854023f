//! `ursa validate` and `ursa connectors describe`: the shipped example configs are valid; bad configs exit 2
//! with an error per key; every config key is documented. `ursa run`'s log levels change at run time through
//! `/admin/loggers`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use ursa_testkit::CommandExt;

fn ursa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ursa"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output_within(ursa_testkit::PEER_TIMEOUT)
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

/// One HTTP/1.0 request to `addr` (`host:port`): the status and the body (a JSON body when `body` is set).
fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let body = body.unwrap_or("");
    let content_type = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/json\r\n".to_owned()
    };
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        code,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// Issue 8 (14): `PUT /admin/loggers/{logger}` changes what a running `ursa run` logs (tracing-subscriber's
/// reload layer), and `GET /admin/loggers[/{logger}]` shows the levels as Kafka Connect does.
#[test]
fn admin_loggers_change_the_log_filter_at_run_time() {
    use std::io::{BufRead, BufReader};
    use std::time::Duration;

    let kafka = ursa_testkit::Kafka::shared();
    let dir = tempfile::tempdir().unwrap();
    let worker = dir.path().join("worker.toml");
    std::fs::write(
        &worker,
        format!(
            "[kafka]\nbootstrap_servers = \"{}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"warn\"\n",
            kafka.bootstrap()
        ),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ursa"))
        .args(["run", worker.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(child);
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    let addr = url.trim_start_matches("http://").to_owned();
    let get = |path: &str| http(&addr, "GET", path, None);
    let put = |path: &str, body: &str| http(&addr, "PUT", path, Some(body));
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();

    assert_eq!(get("/health").0, 200);
    assert_eq!(get("/admin/loggers"), (200, serde_json::json!({})));
    let (code, root) = get("/admin/loggers/root");
    assert_eq!(code, 200, "{root}");
    assert_eq!(root["level"], "WARN", "{root}");
    assert_eq!(get("/admin/loggers/no.such.logger").0, 404);
    assert!(!logged().contains("REST request"), "{}", logged());

    assert_eq!(
        put("/admin/loggers/ursa", r#"{"level": "DEBUG"}"#),
        (200, serde_json::json!(["ursa"]))
    );
    ursa_testkit::wait_until(
        "a debug line after the change",
        Duration::from_secs(30),
        || {
            assert_eq!(get("/health").0, 200);
            logged()
                .lines()
                .any(|l| l.contains("DEBUG") && l.contains("path=/health"))
                .then_some(())
        },
    )
    .unwrap();
    let (_, loggers) = get("/admin/loggers");
    assert_eq!(loggers["ursa"]["level"], "DEBUG", "{loggers}");
    assert!(
        loggers["ursa"]["last_modified"].as_i64().unwrap() > 0,
        "{loggers}"
    );
    assert_eq!(put("/admin/loggers/ursa", r#"{"level": "LOUD"}"#).0, 400);
    assert_eq!(put("/admin/loggers/ursa", "{}").0, 400);
}

/// A connector's own checks (here the metrics sink's definitions) run in `ursa validate`, with their positions,
/// not only when the connector starts.
#[test]
fn validate_runs_the_connectors_own_checks() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs.toml");
    std::fs::write(&defs, "[[metric]]\nname = \"a\"\ntype = \"summary\"\n").unwrap();
    let connector = dir.path().join("metrics.toml");
    std::fs::write(
        &connector,
        format!(
            "name = \"m\"\n\"connector.class\" = \"metrics\"\ntopics = \"t\"\n\"metrics.definitions.file\" = \"{}\"\n",
            defs.display()
        ),
    )
    .unwrap();
    let out = ursa(&[
        "validate",
        "config/worker.toml",
        connector.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("defs.toml:3:8: type \"summary\""),
        "{}",
        text(&out)
    );
}
