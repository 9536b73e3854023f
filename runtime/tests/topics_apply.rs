//! `ursa topics apply` against a real broker: creates topics with their partitions and configs, shows the
//! diff, is idempotent, changes configs, refuses to shrink, and `--dry-run` changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use ursa::topics::Admin;
use ursa_testkit::{Kafka, unique_name};

mod cli_support;
use cli_support::text;

fn ursa(args: &[&str]) -> Output {
    cli_support::ursa(Path::new("."), args)
}

fn catalog(
    dir: &std::path::Path,
    a: &str,
    b: &str,
    a_partitions: u32,
    b_retention: &str,
) -> String {
    let path = dir.join("topics.toml");
    std::fs::write(
        &path,
        format!(
            "[defaults]\nretention = \"1d\"\n[topics.\"{a}\"]\nvalue = \"x.A\"\npartitions = {a_partitions}\n[topics.\"{b}\"]\nvalue = \"x.B\"\nretention = \"{b_retention}\"\ncleanup_policy = \"compact,delete\"\n[topics.\"{b}\".config]\n\"max.message.bytes\" = \"2000000\"\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// The topics once the broker's metadata shows all of `names` (polled for up to 30 s).
async fn described(admin: &Admin, names: &[String]) -> Vec<ursa::topics::ExistingTopic> {
    described_when(admin, names, |t| t.len() == names.len()).await
}

/// The topics `names` once `ready` holds for them (polled for up to 30 s; the last answer after that).
async fn described_when(
    admin: &Admin,
    names: &[String],
    ready: impl Fn(&[ursa::topics::ExistingTopic]) -> bool,
) -> Vec<ursa::topics::ExistingTopic> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let topics = admin.describe(names).await.unwrap();
        if ready(&topics) || std::time::Instant::now() > deadline {
            return topics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn applies_the_catalog_to_a_real_broker() {
    // Apache Kafka whatever the backend: IncrementalAlterConfigs and CreatePartitions as a real broker does them.
    let kafka = Kafka::apache();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (unique_name("apply-a"), unique_name("apply-b"));
    let cat = catalog(dir.path(), &a, &b, 6, "infinite");
    let bootstrap = kafka.bootstrap();

    let dry = ursa(&[
        "topics",
        "apply",
        "--dry-run",
        "--bootstrap-servers",
        bootstrap,
        "--catalog",
        &cat,
    ]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        text(&dry).contains(&format!("+ create topic {a} (partitions 6")),
        "{}",
        text(&dry)
    );
    let admin = Admin::new(bootstrap, Duration::from_secs(10)).unwrap();
    assert!(
        admin
            .describe(&[a.clone(), b.clone()])
            .await
            .unwrap()
            .is_empty(),
        "dry run created topics"
    );

    let out = ursa(&[
        "topics",
        "apply",
        "--bootstrap-servers",
        bootstrap,
        "--catalog",
        &cat,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // CreateTopics returns once the controller has the topics; the broker's metadata follows a moment later.
    let topics = described(&admin, &[a.clone(), b.clone()]).await;
    assert_eq!(topics.len(), 2, "{topics:?}");
    let ta = topics.iter().find(|t| t.name == a).unwrap();
    let tb = topics.iter().find(|t| t.name == b).unwrap();
    assert_eq!(ta.partitions, 6);
    assert_eq!(
        ta.effective.get("retention.ms").map(String::as_str),
        Some("86400000")
    );
    assert_eq!(
        tb.effective.get("retention.ms").map(String::as_str),
        Some("-1")
    );
    assert_eq!(
        tb.effective.get("cleanup.policy").map(String::as_str),
        Some("compact,delete")
    );
    assert_eq!(
        tb.effective.get("max.message.bytes").map(String::as_str),
        Some("2000000")
    );

    let again = ursa(&[
        "topics",
        "apply",
        "--bootstrap-servers",
        bootstrap,
        "--catalog",
        &cat,
    ]);
    assert!(
        again.status.success() && text(&again).contains("topics are up to date"),
        "{}",
        text(&again)
    );

    // A config change is shown and applied; fewer partitions are refused, not applied.
    let cat = catalog(dir.path(), &a, &b, 2, "30d");
    let out = ursa(&[
        "topics",
        "apply",
        "--bootstrap-servers",
        bootstrap,
        "--catalog",
        &cat,
    ]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains(&format!(
            "! topic {a}: has 6 partitions, the catalog says 2"
        )),
        "{shown}"
    );
    assert!(shown.contains("retention.ms: -1 -> 2592000000"), "{shown}");
    let tb = admin
        .describe(std::slice::from_ref(&b))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        tb.effective.get("retention.ms").map(String::as_str),
        Some("2592000000")
    );
    assert_eq!(
        tb.effective.get("max.message.bytes").map(String::as_str),
        Some("2000000"),
        "other overrides kept"
    );
    let ta = admin
        .describe(std::slice::from_ref(&a))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(ta.partitions, 6);

    // More partitions are added (CreatePartitions), and only the changed config key is altered.
    let cat = catalog(dir.path(), &a, &b, 9, "30d");
    let out = ursa(&[
        "topics",
        "apply",
        "--bootstrap-servers",
        bootstrap,
        "--catalog",
        &cat,
    ]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains(&format!("~ topic {a}: partitions 6 -> 9")),
        "{shown}"
    );
    let ta = described_when(&admin, std::slice::from_ref(&a), |t| {
        t.first().is_some_and(|t| t.partitions == 9)
    })
    .await
    .remove(0);
    assert_eq!(ta.partitions, 9);
}

#[test]
fn bad_input_exits_2_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topics.toml");
    std::fs::write(&path, "[topics.x]\nvalue = \"a.B\"\npartitons = 3\n").unwrap();
    let out = ursa(&[
        "topics",
        "apply",
        "--bootstrap-servers",
        "127.0.0.1:1",
        "--catalog",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("partitons"), "{}", text(&out));
    let out = ursa(&[
        "topics",
        "apply",
        "--bootstrap-servers",
        "127.0.0.1:1",
        "--timeout",
        "2s",
        "--catalog",
        "../schemas/topics.toml",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("cannot read topics from 127.0.0.1:1"),
        "{}",
        text(&out)
    );
}
