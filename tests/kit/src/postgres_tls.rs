//! TLS for a private PostgreSQL cluster in tests: a CA made with `openssl` and a server certificate it signed,
//! installed in the cluster's data directory and served after a configuration reload.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::Postgres;

impl Postgres {
    /// Serves TLS with the server certificate `name` made by [`crate::make_ca`] in `dir`: copies it into the data
    /// directory (owned by the server's user, the key private), turns `ssl` on and reloads, and returns once a
    /// new session sees that certificate configured. Only for a cluster of the test's own
    /// ([`Postgres::start`]): it changes the server's configuration.
    pub async fn serve_tls(&self, dir: &Path, name: &str) -> Result<()> {
        let client = self.connect().await?;
        let data: String = client.query_one("SHOW data_directory", &[]).await?.get(0);
        let owner = std::fs::metadata(&data)?;
        let crt = Path::new(&data).join(format!("ursa-{name}.crt"));
        let key = Path::new(&data).join(format!("ursa-{name}.key"));
        std::fs::copy(dir.join(format!("{name}-server.crt")), &crt)?;
        std::fs::copy(dir.join(format!("{name}-server.key")), &key)?;
        for f in [&crt, &key] {
            std::os::unix::fs::chown(f, Some(owner.uid()), Some(owner.gid()))?;
        }
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        let crt = crt.display().to_string();
        // One statement at a time: ALTER SYSTEM cannot run in a (multi-statement) transaction.
        for sql in [
            "ALTER SYSTEM SET ssl = on".to_owned(),
            format!("ALTER SYSTEM SET ssl_cert_file = '{crt}'"),
            format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
            "SELECT pg_reload_conf()".to_owned(),
        ] {
            client.batch_execute(&sql).await?;
        }
        // The postmaster applies the reload on its own time; sessions started after it see the new settings.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let c = self.connect().await?;
            let row = c
                .query_one(
                    "SELECT current_setting('ssl'), current_setting('ssl_cert_file')",
                    &[],
                )
                .await?;
            if row.get::<_, String>(0) == "on" && row.get::<_, String>(1) == crt {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("PostgreSQL did not take the {name} certificate within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
