//! Connecting to PostgreSQL (feature `postgres`), for the sinks that keep state there (the audit store, the
//! notification ledger): the URL (a secret), `sslmode` as libpq reads it, and TLS through rustls (on `ring`).
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default) | if the server offers it | not checked (as libpq) |
//! | `require` | always | not checked, unless a CA file is given (then as `verify-ca`, as libpq) |
//! | `verify-ca` | always | signed by the CA file's certificates |
//! | `verify-full` | always | signed by the CA, and issued for the host connected to |
//!
//! `sslmode` and `sslrootcert` may be given in the URL's query (`?sslmode=verify-full&sslrootcert=/ca.pem`) or as
//! the sink's keys, which win.
//!
//! (Moved here from the audit sink so that every sink connects the same way.)

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::{Config, NoTls};

/// The PostgreSQL client.
pub use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How TLS is used (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, certificate not checked.
    Prefer,
    /// TLS always, certificate not checked (unless a CA file is given).
    Require,
    /// TLS always, certificate signed by the CA.
    VerifyCa,
    /// TLS always, certificate signed by the CA and naming the host.
    VerifyFull,
}

impl SslMode {
    /// The `sslmode` names.
    pub const NAMES: [&'static str; 5] =
        ["disable", "prefer", "require", "verify-ca", "verify-full"];
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(format!("unknown sslmode {other:?}")),
        })
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Database {
    config: Config,
    ssl: SslMode,
    root_cert: Option<PathBuf>,
    shown: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Database {
    /// Parses a `postgres://` URL (or a `key=value` connection string); `ssl` and `root_cert` override what it
    /// says.
    pub fn parse(
        url: &str,
        ssl: Option<SslMode>,
        root_cert: Option<&Path>,
    ) -> Result<Database, String> {
        let (rest, url_ssl, url_root) = strip_ssl_params(url)?;
        let mut config = Config::from_str(&rest)
            .map_err(|e| format!("cannot parse the PostgreSQL URL {}: {e}", redact(url)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("ursa");
        let ssl = ssl.or(url_ssl).unwrap_or(SslMode::Prefer);
        let root_cert = root_cert.map(Path::to_owned).or(url_root);
        if matches!(ssl, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
            return Err(format!(
                "sslmode={} needs a CA file (sslrootcert)",
                match ssl {
                    SslMode::VerifyCa => "verify-ca",
                    _ => "verify-full",
                }
            ));
        }
        config.ssl_mode(match ssl {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            _ => PgSslMode::Require,
        });
        Ok(Database {
            config,
            ssl,
            root_cert,
            shown: redact(url),
        })
    }

    /// Names the client to the server (`application_name`, shown in `pg_stat_activity`).
    pub fn named(mut self, application: &str) -> Database {
        self.config.application_name(application);
        self
    }

    /// The URL with its password hidden.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The TLS mode.
    pub fn ssl(&self) -> SslMode {
        self.ssl
    }

    /// Connects; the connection runs on a task of the current runtime until the client drops.
    pub async fn connect(&self) -> Result<Client, ConnectError> {
        match self.ssl {
            SslMode::Disable => {
                let (client, conn) = self.config.connect(NoTls).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(client)
            }
            mode => {
                let tls = MakeRustlsConnect::new(tls_config(mode, self.root_cert.as_deref())?);
                let (client, conn) = self.config.connect(tls).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(client)
            }
        }
    }
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server refused or could not be reached.
    #[error("{}", chain(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The TLS setup is wrong (the CA file).
    #[error("TLS: {0}")]
    Tls(String),
}

/// An error with its causes, `outer: inner: …` (the client library's message alone says only "error performing
/// TLS handshake").
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut at = e.source();
    while let Some(cause) = at {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        at = cause.source();
    }
    s
}

/// Removes `sslmode` and `sslrootcert` from a URL's query (the client library knows only some modes).
fn strip_ssl_params(url: &str) -> Result<(String, Option<SslMode>, Option<PathBuf>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None, None));
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Ok((url.to_owned(), None, None));
    }
    let mut ssl = None;
    let mut root = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => ssl = Some(v.parse::<SslMode>()?),
            Some(("sslrootcert", v)) => root = Some(PathBuf::from(percent_decode(v))),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, ssl, root))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.contains("password") {
            "[connection string hidden]".into()
        } else {
            url.to_owned()
        };
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{}", &rest[end..])
        }
        _ => url.to_owned(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(mode: SslMode, root_cert: Option<&Path>) -> Result<ClientConfig, ConnectError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Tls(e.to_string()))?;
    let roots = match root_cert {
        Some(path) => Some(load_roots(path)?),
        None => None,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| ConnectError::Tls(e.to_string()))?
        }
        (SslMode::Require | SslMode::VerifyCa, Some(roots)) => Arc::new(IgnoreHostname(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| ConnectError::Tls(e.to_string()))?,
        )),
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(ConnectError::Tls("no CA file (sslrootcert)".into()));
        }
        _ => Arc::new(NoVerify(provider.signature_verification_algorithms)),
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn load_roots(path: &Path) -> Result<RootCertStore, ConnectError> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ConnectError::Tls(format!("reading {}: {e}", path.display())))?;
    for cert in certs {
        let cert =
            cert.map_err(|e| ConnectError::Tls(format!("reading {}: {e}", path.display())))?;
        roots
            .add(cert)
            .map_err(|e| ConnectError::Tls(format!("{}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(ConnectError::Tls(format!(
            "{} holds no certificate",
            path.display()
        )));
    }
    Ok(roots)
}

/// `sslmode=require` without a CA: encrypted, the server not authenticated (libpq's behaviour).
#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the CA; the name in the certificate is not checked.
#[derive(Debug)]
struct IgnoreHostname(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for IgnoreHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn ssl_parameters_come_from_the_url_or_the_keys() {
        let db = Database::parse(
            "postgres://u:secret@h:5/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
            None,
            None,
        )
        .unwrap();
        assert_eq!(db.ssl(), SslMode::VerifyFull);
        assert_eq!(db.root_cert.as_deref(), Some(Path::new("/tmp/ca.pem")));
        assert_eq!(
            db.shown(),
            "postgres://u:***@h:5/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x"
        );
        let db = Database::parse(
            "postgres://u@h/db?sslmode=require",
            Some(SslMode::Disable),
            None,
        )
        .unwrap();
        assert_eq!(db.ssl(), SslMode::Disable);
        assert!(
            Database::parse("postgres://u@h/db?sslmode=verify-ca", None, None)
                .unwrap_err()
                .contains("CA file")
        );
        assert!(Database::parse("postgres://u@h/db?sslmode=bogus", None, None).is_err());
        assert_eq!(
            Database::parse("postgres://u@h/db", None, None)
                .unwrap()
                .ssl(),
            SslMode::Prefer
        );
    }
}
