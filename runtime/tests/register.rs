//! `ursa schema register` and `schema check --against registry` end to end against the dev registry, and
//! registries that fail: unreachable, slow, 5xx, 401/403, garbage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ursa_registry::{ClientConfig, RegistryClient, Server, ServerConfig, VersionId};

mod cli_support;
use cli_support::{catalog_copy, text, ursa};

#[tokio::test(flavor = "multi_thread")]
async fn registers_the_catalog_with_references_idempotently() {
    let server = Server::bind(ServerConfig::ephemeral())
        .await
        .unwrap()
        .spawn();
    let url = server.url();
    let (_keep, dir) = catalog_copy();
    let run = |args: &[&str]| {
        let mut all = vec!["schema"];
        all.extend_from_slice(args);
        ursa(&dir, &all)
    };

    let dry = run(&["register", "--dry-run", "--registry-url", &url]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        text(&dry).contains("+ com.teddy.common.EventMetadata: new version"),
        "{}",
        text(&dry)
    );
    assert!(text(&dry).contains("dry run: nothing applied"));
    let client = RegistryClient::new(ClientConfig::new(&url)).unwrap();
    assert!(
        client.subjects().await.unwrap().is_empty(),
        "dry run registered something"
    );

    let first = run(&["register", "--registry-url", &url]);
    assert!(first.status.success(), "{}", text(&first));
    let subjects = client.subjects().await.unwrap();
    assert!(
        subjects.contains(&"child.safety-violation-value".to_owned()),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"com.teddy.common.EventMetadata".to_owned()),
        "{subjects:?}"
    );
    // The value schema uses a Confluent reference for the shared envelope instead of inlining it.
    let v = client
        .version("child.safety-violation-value", VersionId::Latest)
        .await
        .unwrap();
    assert!(
        v.references
            .iter()
            .any(|r| r.subject == "com.teddy.common.EventMetadata" && r.version == 1),
        "{v:?}"
    );
    assert!(
        !v.schema
            .contains("\"name\":\"com.teddy.common.EventMetadata\""),
        "{}",
        v.schema
    );
    assert_eq!(
        client
            .get_config(Some("child.safety-violation-value"))
            .await
            .unwrap(),
        ursa_registry::CompatibilityLevel::FullTransitive
    );

    let second = run(&["register", "--registry-url", &url]);
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains("plan: 0 new version(s)"),
        "{}",
        text(&second)
    );
    assert!(
        text(&second).contains("0 compatibility level(s) to set"),
        "{}",
        text(&second)
    );

    // Checking against the registry: clean now.
    let check = run(&["check", "--against", "registry", "--registry-url", &url]);
    assert!(check.status.success(), "{}", text(&check));

    // A breaking change (a new field without default in a FULL_TRANSITIVE subject) is caught by check and
    // rejected by the registry, with a report of what was applied.
    let file = dir.join("schemas/avro/com/teddy/child/SafetyViolation.avsc");
    let body = std::fs::read_to_string(&file).unwrap();
    let broken = body.replacen(
        "\"fields\": [",
        "\"fields\": [\n    {\"name\": \"reviewer\", \"type\": \"string\", \"doc\": \"who\"},",
        1,
    );
    assert_ne!(body, broken);
    std::fs::write(&file, broken).unwrap();
    let check = run(&[
        "check",
        "--against",
        "registry",
        "--registry-url",
        &url,
        "--format",
        "json",
    ]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    let json: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let bad: Vec<&serde_json::Value> = json["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["is_compatible"] == false)
        .collect();
    assert_eq!(bad.len(), 1, "{json}");
    assert_eq!(bad[0]["subject"], "child.safety-violation-value");
    let reg = run(&["register", "--registry-url", &url]);
    assert_eq!(reg.status.code(), Some(1), "{}", text(&reg));
    assert!(
        text(&reg)
            .contains("child.safety-violation-value rejected by the registry as incompatible"),
        "{}",
        text(&reg)
    );
    assert_eq!(
        client
            .versions("child.safety-violation-value")
            .await
            .unwrap(),
        vec![1]
    );
    server.stop().await.unwrap();
}

/// A registry that answers every request with `status` and `body`, or never answers when `status` is 0.
async fn fake_registry(status: u16, body: &'static str) -> String {
    use axum::http::StatusCode;
    let app = axum::Router::new().fallback(move || async move {
        if status == 0 {
            std::future::pending::<()>().await;
        }
        (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_registries_give_clear_errors() {
    let (_keep, dir) = catalog_copy();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let cases = [
        (closed, "registry http://127.0.0.1"),
        (fake_registry(0, "").await, "timed out"),
        (
            fake_registry(503, r#"{"error_code":50003,"message":"forwarding failed"}"#).await,
            "50003",
        ),
        (
            fake_registry(401, r#"{"error_code":401,"message":"Unauthorized"}"#).await,
            "401",
        ),
        (
            fake_registry(403, r#"{"error_code":40301,"message":"forbidden"}"#).await,
            "403",
        ),
        (
            fake_registry(200, "<html>not json</html>").await,
            "not json",
        ),
    ];
    for (url, expected) in cases {
        for cmd in [
            [
                "schema",
                "register",
                "--registry-url",
                &url,
                "--registry-timeout",
                "1s",
            ]
            .map(String::from)
            .to_vec(),
            [
                "schema",
                "check",
                "--against",
                "registry",
                "--registry-url",
                &url,
                "--registry-timeout",
                "1s",
            ]
            .map(String::from)
            .to_vec(),
        ] {
            let out = tokio::task::spawn_blocking({
                let dir = dir.clone();
                move || ursa(&dir, &cmd.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .await
            .unwrap();
            assert_eq!(out.status.code(), Some(2), "{url}: {}", text(&out));
            assert!(
                text(&out).to_lowercase().contains(&expected.to_lowercase()),
                "{url}: expected {expected:?} in {}",
                text(&out)
            );
        }
    }
}
