//! Test certificates made with `openssl`: a CA and a server certificate it signed, for the TLS listeners of the
//! suite's own servers (PostgreSQL, Apache Kafka).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::process::{CommandExt as _, SETUP_TIMEOUT};

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output_within(SETUP_TIMEOUT)
        .context("running openssl (install it: apt-get install -y openssl)")?;
    if !out.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Makes, in `dir`, a CA (`<name>.pem`, P-256) and a server certificate it signed for `san` (`<name>-server.crt`
/// and `.key`; e.g. `DNS:localhost,IP:127.0.0.1`); returns the CA's path.
pub fn make_ca(dir: &Path, name: &str, san: &str) -> Result<PathBuf> {
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
    let subject = format!("/CN=ursa test CA {name}");
    openssl(
        dir,
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout", &ca_key, "-out", &ca, "-days", "2", "-subj", &subject,
            ],
        ]
        .concat(),
    )?;
    openssl(
        dir,
        &[
            &["req"],
            &ec[..],
            &["-keyout", &key, "-out", &csr, "-subj", "/CN=ursa-test-db"],
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
    )?;
    Ok(dir.join(ca))
}
