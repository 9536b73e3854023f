//! TLS to a real PostgreSQL (a private cluster with `ssl = on` and a certificate from a CA made here):
//! `require` encrypts without checking, `verify-ca` checks the chain, `verify-full` the chain and the host name —
//! and each refuses what it must.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use anyhow::Result;
use ursa_connector_audit::connect::{Database, SslMode};
use ursa_testkit::{Postgres, make_ca};

async fn encrypted(db: &Database) -> Result<bool> {
    let client = db.connect().await?;
    Ok(client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?
        .get(0))
}

#[tokio::test]
async fn sslmodes_check_what_libpq_checks() -> Result<()> {
    // A cluster of our own: its configuration changes here touch no other test.
    let pg = Postgres::start()?;
    let dir = tempfile::tempdir()?;
    make_ca(dir.path(), "good", "DNS:localhost,IP:127.0.0.1")?;
    make_ca(dir.path(), "other", "DNS:localhost,IP:127.0.0.1")?;
    make_ca(dir.path(), "misnamed", "DNS:db.example")?;
    pg.serve_tls(dir.path(), "good").await?;

    let url = pg.url();
    let good = dir.path().join("good.pem");
    let other = dir.path().join("other.pem");
    let parse =
        |mode, ca: Option<&Path>| Database::parse(url, Some(mode), ca).map_err(anyhow::Error::msg);
    assert!(
        encrypted(&parse(SslMode::Require, None)?).await?,
        "require: encrypted, unchecked"
    );
    assert!(encrypted(&parse(SslMode::VerifyCa, Some(&good))?).await?);
    assert!(encrypted(&parse(SslMode::VerifyFull, Some(&good))?).await?);
    assert!(
        encrypted(&parse(SslMode::Prefer, None)?).await?,
        "prefer takes TLS when offered"
    );
    assert!(!encrypted(&parse(SslMode::Disable, None)?).await?);
    // The URL's own sslmode and sslrootcert.
    let in_url = Database::parse(
        &format!("{url}?sslmode=verify-full&sslrootcert={}", good.display()),
        None,
        None,
    )
    .map_err(anyhow::Error::msg)?;
    assert!(encrypted(&in_url).await?);
    // Another CA: refused by verify-ca and verify-full (and by require given that CA, as libpq does).
    for mode in [SslMode::VerifyCa, SslMode::VerifyFull, SslMode::Require] {
        let e = encrypted(&parse(mode, Some(&other))?)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.to_lowercase().contains("certificate"), "{mode:?}: {e}");
    }

    // A certificate of the right CA for another host: verify-ca accepts it, verify-full does not.
    pg.serve_tls(dir.path(), "misnamed").await?;
    let misnamed = dir.path().join("misnamed.pem");
    assert!(encrypted(&parse(SslMode::VerifyCa, Some(&misnamed))?).await?);
    let e = encrypted(&parse(SslMode::VerifyFull, Some(&misnamed))?)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.to_lowercase().contains("not valid for name") || e.contains("NotValidForName"),
        "{e}"
    );
    Ok(())
}
