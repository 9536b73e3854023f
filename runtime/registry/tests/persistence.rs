//! The data file: everything acknowledged survives a restart; a torn last line is ignored; corruption is not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;

use common::{Raw, start_with, user_v1, user_v2};
use serde_json::json;
use ursa_registry::{Error, Server, ServerConfig};

fn config(path: &std::path::Path) -> ServerConfig {
    ServerConfig {
        data: Some(path.to_owned()),
        ..ServerConfig::ephemeral()
    }
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("registry.jsonl");

    let server = start_with(config(&path)).await;
    let raw = Raw::new(&server.url());
    let id1 = raw.register("users-value", &user_v1()).await;
    // Acknowledged means on disk: the line is there while the server still runs.
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("users-value") && text.ends_with('\n'),
        "{text}"
    );

    let id2 = raw.register("users-value", &user_v2()).await;
    raw.register("other-value", &user_v1()).await;
    raw.register(
        "gone",
        &json!({"type": "enum", "name": "E", "symbols": ["A"]}),
    )
    .await;
    raw.put("/config", json!({"compatibility": "FULL"})).await;
    raw.put("/config/users-value", json!({"compatibility": "NONE"}))
        .await;
    raw.put("/mode/other-value", json!({"mode": "READONLY"}))
        .await;
    raw.delete("/subjects/users-value/versions/1").await;
    raw.delete("/subjects/gone").await;
    raw.delete("/subjects/gone?permanent=true").await;
    server.stop().await.unwrap();

    let server = start_with(config(&path)).await;
    let raw = Raw::new(&server.url());
    assert_eq!(
        raw.get("/subjects").await.body,
        json!(["other-value", "users-value"])
    );
    assert_eq!(
        raw.get("/subjects/users-value/versions").await.body,
        json!([2])
    );
    assert_eq!(
        raw.get("/subjects/users-value/versions?deleted=true")
            .await
            .body,
        json!([1, 2])
    );
    let latest = raw.get("/subjects/users-value/versions/latest").await;
    assert_eq!(latest.body["id"].as_u64(), Some(id2));
    assert_eq!(
        raw.get(&format!("/schemas/ids/{id1}/subjects")).await.body,
        json!(["other-value"])
    );
    assert_eq!(
        raw.get("/config").await.body,
        json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(
        raw.get("/config/users-value").await.body,
        json!({"compatibilityLevel": "NONE"})
    );
    assert_eq!(
        raw.get("/mode/other-value").await.body,
        json!({"mode": "READONLY"})
    );
    assert_eq!(
        raw.get("/subjects?deleted=true")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Ids continue after the replayed ones (the permanently deleted enum's id is not reused).
    let next = raw
        .register("new", &json!({"type": "fixed", "name": "F", "size": 4}))
        .await;
    assert_eq!(next, 4);
    // Idempotent across restarts.
    assert_eq!(raw.register("users-value", &user_v2()).await, id2);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_torn_last_line_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.jsonl");
    let server = start_with(config(&path)).await;
    let raw = Raw::new(&server.url());
    let id = raw.register("s", &user_v1()).await;
    server.stop().await.unwrap();

    // A crash in the middle of writing the next record.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(br#"{"op":"register","subject":"s","version":2,"id":2,"sch"#)
        .unwrap();
    drop(f);

    let server = start_with(config(&path)).await;
    let raw = Raw::new(&server.url());
    assert_eq!(raw.get("/subjects/s/versions").await.body, json!([1]));
    assert_eq!(raw.get(&format!("/schemas/ids/{id}")).await.status, 200);
    // Writing goes on from a clean line, and the next restart reads it back.
    assert_eq!(raw.register("s", &user_v2()).await, 2);
    server.stop().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");

    let server = start_with(config(&path)).await;
    let raw = Raw::new(&server.url());
    assert_eq!(raw.get("/subjects/s/versions").await.body, json!([1, 2]));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_corrupt_line_in_the_middle_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.jsonl");
    std::fs::write(
        &path,
        "{\"op\":\"config\",\"compatibility\":\"FULL\"}\nthis is not json\n{\"op\":\"config\",\"compatibility\":\"NONE\"}\n",
    )
    .unwrap();
    match Server::bind(config(&path)).await {
        Err(Error::Corrupt { line, .. }) => assert_eq!(line, 2),
        other => panic!("expected a corrupt-file error, got {other:?}"),
    }
}

/// Confluent's data-contract fields: `metadata` and `ruleSet` given at registration are stored (across a
/// restart) and returned by every read; they are part of the schema's identity (other metadata: a new
/// version and id); a registration without them inherits the previous version's; a lookup without them
/// finds the schema whatever its metadata.
#[tokio::test]
async fn metadata_and_rule_sets_are_stored_and_returned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.jsonl");
    let metadata =
        json!({"properties": {"owner": "safety-team", "sla": "gold"}, "tags": {"Toy.id": ["PII"]}});
    let rule_set = json!({"domainRules": [{"name": "id-positive", "kind": "CONDITION", "mode": "WRITE",
        "type": "CEL", "expr": "message.id > 0"}]});
    let server = start_with(config(&path)).await;
    let raw = Raw::new(&server.url());
    let with = |schema: &serde_json::Value, metadata: &serde_json::Value| json!({ "schema": schema.to_string(), "metadata": metadata, "ruleSet": rule_set });
    let first = raw
        .post("/subjects/toys-value/versions", with(&user_v1(), &metadata))
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    let id = first.body["id"].as_u64().unwrap();
    // The same schema and metadata: the same version.
    let again = raw
        .post("/subjects/toys-value/versions", with(&user_v1(), &metadata))
        .await;
    assert_eq!(again.body["id"].as_u64(), Some(id));
    // Other metadata: a new version, a new id.
    let other = json!({"properties": {"owner": "another-team"}});
    let changed = raw
        .post("/subjects/toys-value/versions", with(&user_v1(), &other))
        .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    let id2 = changed.body["id"].as_u64().unwrap();
    assert_ne!(id2, id);
    // No metadata: inherited from the latest version, so this is v3 with `other`'s metadata, and not new.
    let inherited = raw.register("toys-value", &user_v1()).await;
    assert_eq!(inherited, id2);
    assert_eq!(
        raw.get("/subjects/toys-value/versions").await.body,
        json!([1, 2])
    );
    server.stop().await.unwrap();

    let server = start_with(config(&path)).await;
    let raw = Raw::new(&server.url());
    let v1 = raw.get("/subjects/toys-value/versions/1").await;
    assert_eq!(v1.body["metadata"], metadata, "{v1:?}");
    assert_eq!(v1.body["ruleSet"], rule_set, "{v1:?}");
    let by_id = raw.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(by_id.body["metadata"], metadata, "{by_id:?}");
    assert_eq!(by_id.body["ruleSet"], rule_set, "{by_id:?}");
    let v2 = raw.get("/subjects/toys-value/versions/latest").await;
    assert_eq!(v2.body["metadata"], other, "{v2:?}");
    let listed = raw.get("/schemas?subjectPrefix=toys").await;
    assert_eq!(listed.body[0]["metadata"], metadata, "{listed:?}");
    // Lookups: with metadata, that version; without, the latest version of the schema.
    let found = raw
        .post("/subjects/toys-value", with(&user_v1(), &metadata))
        .await;
    assert_eq!(found.body["version"], 1, "{found:?}");
    assert_eq!(found.body["metadata"], metadata, "{found:?}");
    let found = raw
        .post(
            "/subjects/toys-value",
            json!({ "schema": user_v1().to_string() }),
        )
        .await;
    assert_eq!(found.body["version"], 2, "{found:?}");
    server.stop().await.unwrap();
}
