//! `--command-config FILE`: extra Kafka client properties for the admin and DLQ commands, as Kafka's own CLI
//! tools take them (a `key=value` properties file), with values that may be secret references
//! (`${env:VAR}`, `${file:/path:key}`) resolved here and never printed.

use std::path::Path;

use rdkafka::ClientConfig;

use crate::connect::config::Secret;

/// Reads `path` and returns its properties with secrets resolved; errors say `file:line`.
pub fn load(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        let Some((key, value)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            return Err(format!("{at}: expected key=value"));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(format!("{at}: the key is empty"));
        }
        if key == "bootstrap.servers" {
            return Err(format!(
                "{at}: bootstrap.servers belongs in --bootstrap-servers"
            ));
        }
        let mut secret = Secret::parse(value);
        secret.resolve().map_err(|e| format!("{at}: {key}: {e}"))?;
        out.push((
            key.to_owned(),
            secret.expose().unwrap_or_default().to_owned(),
        ));
    }
    Ok(out)
}

/// A client config with `bootstrap.servers` and the properties of `command_config`, if given.
pub fn client_config(
    bootstrap_servers: &str,
    command_config: Option<&Path>,
) -> Result<ClientConfig, String> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap_servers);
    if let Some(path) = command_config {
        for (k, v) in load(path)? {
            c.set(k, v);
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_properties_resolves_secrets_and_points_at_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("kafka.secret");
        std::fs::write(&secret, "password=s3cret\n").unwrap();
        let props = dir.path().join("client.properties");
        std::fs::write(
            &props,
            format!(
                "# SASL\nsecurity.protocol=SASL_SSL\nsasl.password=${{file:{}:password}}\n\n",
                secret.display()
            ),
        )
        .unwrap();
        assert_eq!(
            load(&props).unwrap(),
            vec![
                ("security.protocol".to_owned(), "SASL_SSL".to_owned()),
                ("sasl.password".to_owned(), "s3cret".to_owned())
            ]
        );
        std::fs::write(&props, "a=1\nnot a property\n").unwrap();
        let e = load(&props).unwrap_err();
        assert!(
            e.ends_with("client.properties:2: expected key=value"),
            "{e}"
        );
        std::fs::write(&props, "sasl.password=${env:URSA_TEST_NOT_SET_ANYWHERE}\n").unwrap();
        let e = load(&props).unwrap_err();
        assert!(e.contains(":1: sasl.password: environment variable"), "{e}");
    }
}
