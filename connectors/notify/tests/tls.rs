//! TLS to the ledger's PostgreSQL: a private cluster serving a certificate from a CA made here. The sink's
//! `notify.database.sslmode` and `notify.database.sslrootcert` keys (or the URL's own) verify it, the tables are
//! made and used over TLS, a server signed by another CA is refused, and `verify-full` without a CA is a
//! validation error on its key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use anyhow::Result;
use ursa_connect::SinkPlugin;
use ursa_connect::postgres::{Database, SslMode};
use ursa_connector_notify::NotifyPlugin;
use ursa_connector_notify::db::Db;
use ursa_testkit::{Postgres, make_ca};

async fn encrypted(db: &Db) -> Result<bool> {
    let c = db.get().await?;
    let ssl: bool = c
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?
        .get(0);
    c.release();
    Ok(ssl)
}

fn validate(extra: &[(&str, String)], rules: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let mut raw: BTreeMap<String, String> = [
        ("notify.rules.file", rules.display().to_string()),
        ("notify.webhook.url", "http://127.0.0.1:9/hooks".into()),
        (
            "notify.webhook.secrets",
            "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        raw.insert((*k).to_owned(), v.clone());
    }
    // A bad value is refused by the keys' parse, the rest by the plugin's checks: both name the key.
    match ursa_connect::config::parse(&NotifyPlugin.keys(), &[], &raw) {
        Ok(parsed) => NotifyPlugin.validate(&parsed).into_iter().collect(),
        Err(errors) => errors.into_iter().collect(),
    }
}

#[tokio::test]
async fn the_ledger_uses_verified_tls_and_refuses_another_ca() -> Result<()> {
    // A cluster of our own: its configuration changes touch no other test.
    let pg = Postgres::start()?;
    let dir = tempfile::tempdir()?;
    let good = make_ca(dir.path(), "good", "DNS:localhost,IP:127.0.0.1")?;
    let other = make_ca(dir.path(), "other", "DNS:localhost,IP:127.0.0.1")?;
    pg.serve_tls(dir.path(), "good").await?;

    let verified = Db::with(
        Database::parse(pg.url(), Some(SslMode::VerifyFull), Some(&good))
            .map_err(anyhow::Error::msg)?,
        2,
    );
    verified.migrate().await?;
    assert!(encrypted(&verified).await?, "verify-full: encrypted");
    let c = verified.get().await?;
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'notify_ledger'",
            &[],
        )
        .await?
        .get(0);
    c.release();
    assert_eq!(tables, 1, "the ledger was made over TLS");
    // The URL's own sslmode and sslrootcert.
    let in_url = Db::new(
        &format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            pg.url(),
            good.display()
        ),
        1,
    )?;
    assert!(encrypted(&in_url).await?);
    // `disable` stays in plain text (the server allows both).
    let plain = Db::new(&format!("{}?sslmode=disable", pg.url()), 1)?;
    assert!(!encrypted(&plain).await?);
    // Another CA's server certificate: no connection, and the error says why.
    let wrong = Db::with(
        Database::parse(pg.url(), Some(SslMode::VerifyFull), Some(&other))
            .map_err(anyhow::Error::msg)?,
        1,
    );
    let e = wrong.get().await.err().expect("refused").to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert!(!e.contains("password"), "{e}");

    // Through the plugin's keys: verify-full without a CA is an error on the key that says so.
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"usage\"\ntopic = \"analytics.usage-stats\"\npriority = \"normal\"\ncategory = \"usage\"\nchannels = [\"webhook\"]\n",
    )?;
    let url = ("notify.database.url", pg.url().to_owned());
    let errors = validate(
        &[
            url.clone(),
            ("notify.database.sslmode", "verify-full".into()),
        ],
        &rules,
    );
    assert!(
        errors
            .get("notify.database.sslrootcert")
            .is_some_and(|e| e.iter().any(|m| m.contains("needs a CA file"))),
        "{errors:?}"
    );
    let errors = validate(
        &[
            url.clone(),
            ("notify.database.sslmode", "verify-full".into()),
            ("notify.database.sslrootcert", good.display().to_string()),
        ],
        &rules,
    );
    assert!(errors.is_empty(), "{errors:?}");
    let errors = validate(
        &[url, ("notify.database.sslmode", "sometimes".into())],
        &rules,
    );
    assert!(errors.contains_key("notify.database.sslmode"), "{errors:?}");
    Ok(())
}
