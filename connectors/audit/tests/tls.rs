//! TLS to a real PostgreSQL (a private cluster with `ssl = on` and a certificate from a CA made here):
//! `require` encrypts without checking, `verify-ca` checks the chain, `verify-full` the chain and the host name —
//! and each refuses what it must.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ursa_connector_audit::connect::{Database, SslMode};
use ursa_testkit::{Postgres, wait_until};

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl (install it: apt-get install -y openssl)")?;
    if !out.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A CA (`<name>.pem`) and, signed by it, a server certificate for `san` (`<name>-server.crt`, `.key`).
fn make_ca(dir: &Path, name: &str, san: &str) -> Result<()> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_key = format!("{name}.key");
    let ca = format!("{name}.pem");
    let key = format!("{name}-server.key");
    let csr = format!("{name}-server.csr");
    let crt = format!("{name}-server.crt");
    let ext = format!("{name}-san.ext");
    openssl(
        dir,
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                &ca_key,
                "-out",
                &ca,
                "-days",
                "2",
                "-subj",
                "/CN=ursa audit test CA",
            ],
        ]
        .concat(),
    )?;
    openssl(
        dir,
        &[
            &["req"],
            &ec[..],
            &["-keyout", &key, "-out", &csr, "-subj", "/CN=audit-db"],
        ]
        .concat(),
    )?;
    std::fs::write(dir.join(&ext), format!("subjectAltName={san}\n"))?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    )
}

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
    let admin =
        Database::parse(pg.url(), Some(SslMode::Disable), None).map_err(anyhow::Error::msg)?;
    let client = admin.connect().await?;
    let data: String = client.query_one("SHOW data_directory", &[]).await?.get(0);
    let owner = std::fs::metadata(&data)?;
    let install = |name: &str| -> Result<(String, String)> {
        let crt = Path::new(&data).join(format!("ursa-{name}.crt"));
        let key = Path::new(&data).join(format!("ursa-{name}.key"));
        std::fs::copy(dir.path().join(format!("{name}-server.crt")), &crt)?;
        std::fs::copy(dir.path().join(format!("{name}-server.key")), &key)?;
        for f in [&crt, &key] {
            std::os::unix::fs::chown(f, Some(owner.uid()), Some(owner.gid()))?;
        }
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok((crt.display().to_string(), key.display().to_string()))
    };
    let serve = |(crt, key): (String, String)| {
        let client = &client;
        async move {
            // One statement at a time: ALTER SYSTEM cannot run in a (multi-statement) transaction.
            for sql in [
                "ALTER SYSTEM SET ssl = on".to_owned(),
                format!("ALTER SYSTEM SET ssl_cert_file = '{crt}'"),
                format!("ALTER SYSTEM SET ssl_key_file = '{key}'"),
                "SELECT pg_reload_conf()".to_owned(),
            ] {
                client.batch_execute(&sql).await?;
            }
            anyhow::Ok(())
        }
    };
    let wait_for_cert = |name: &'static str| {
        let url = pg.url().to_owned();
        let ca = dir.path().join(format!("{name}.pem"));
        wait_until(
            &format!("PostgreSQL serving the {name} certificate"),
            Duration::from_secs(30),
            move || {
                let url = url.clone();
                let ca = ca.clone();
                std::thread::spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?
                        .block_on(async {
                            let db =
                                Database::parse(&url, Some(SslMode::VerifyCa), Some(&ca)).ok()?;
                            encrypted(&db).await.ok().filter(|e| *e)
                        })
                })
                .join()
                .ok()
                .flatten()
            },
        )
    };
    serve(install("good")?).await?;
    wait_for_cert("good")?;

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
    serve(install("misnamed")?).await?;
    wait_for_cert("misnamed")?;
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
    drop(client);
    Ok(())
}
