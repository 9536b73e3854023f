//! A client for any Confluent-compatible schema registry: Basic or Bearer auth, an extra CA, per-attempt
//! timeouts, retries of transient failures with exponential backoff and jitter, and an in-memory cache of
//! schemas by id (ids are immutable).

mod config;
mod error;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use config::{Auth, ClientConfig, RetryPolicy};
pub use error::ClientError;

use crate::types::{
    CompatibilityLevel, Reference, RegisteredSchema, SchemaInfo, VersionId, parse_level,
};
use error::snippet;

const ACCEPT_VALUE: &str =
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json";
const CONTENT_TYPE_VALUE: &str = "application/vnd.schemaregistry.v1+json";

/// A schema fetched by id, cached.
#[derive(Debug)]
struct Cached {
    text: Arc<str>,
    info: Arc<SchemaInfo>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    retries: RetryPolicy,
    cache: RwLock<HashMap<u32, Cached>>,
}

/// A registry client; cheap to clone (clones share the connection pool and the cache).
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.inner.base.as_str())
            .field("auth", &self.inner.auth)
            .field("retries", &self.inner.retries)
            .finish()
    }
}

/// An answer: status, `Retry-After`, body.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

#[derive(Serialize)]
struct SchemaBody<'a> {
    schema: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    references: &'a [Reference],
}

#[derive(Deserialize)]
struct IdBody {
    id: u32,
}

#[derive(Deserialize)]
struct LookupBody {
    id: u32,
    version: u32,
}

#[derive(Deserialize)]
struct CompatibilityBody {
    is_compatible: bool,
    #[serde(default)]
    messages: Vec<String>,
}

#[derive(Deserialize)]
struct LevelBody {
    #[serde(rename = "compatibilityLevel", alias = "compatibility")]
    level: String,
}

impl RegistryClient {
    /// A client for `config.url`.
    pub fn new(config: ClientConfig) -> Result<RegistryClient, ClientError> {
        let mut base = Url::parse(config.url.trim()).map_err(|e| {
            ClientError::Config(format!(
                "registry URL {:?}: {e}",
                config::redact_url(&config.url)
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::Config(format!(
                "registry URL {:?} is not http or https",
                base.as_str()
            )));
        }
        let mut auth = config.auth.clone();
        if !base.username().is_empty() || base.password().is_some() {
            if auth == Auth::None {
                auth = Auth::Basic {
                    user: percent_decode(base.username()),
                    password: percent_decode(base.password().unwrap_or("")),
                };
            }
            let _ = base.set_username("");
            let _ = base.set_password(None);
        }
        if base.cannot_be_a_base() {
            return Err(ClientError::Config(format!(
                "registry URL {:?} cannot be a base URL",
                base.as_str()
            )));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)));
        if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                ClientError::Config(format!("CA certificate file {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientError::Config(format!("CA certificate file {}: {e}", path.display()))
            })?;
            if certs.is_empty() {
                return Err(ClientError::Config(format!(
                    "CA certificate file {} holds no PEM certificate",
                    path.display()
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                retries: config.retries,
                cache: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// The registry's base URL (without credentials).
    pub fn url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// The schema text with global id `id` (cached).
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<str>, ClientError> {
        if let Some(c) = self.cached(id) {
            return Ok(c.0);
        }
        self.fetch_by_id(id).await.map(|c| c.0)
    }

    /// The schema with global id `id`, with its type and references (cached).
    pub async fn schema_info_by_id(&self, id: u32) -> Result<Arc<SchemaInfo>, ClientError> {
        if let Some(c) = self.cached(id) {
            return Ok(c.1);
        }
        self.fetch_by_id(id).await.map(|c| c.1)
    }

    fn cached(&self, id: u32) -> Option<(Arc<str>, Arc<SchemaInfo>)> {
        let cache = self.inner.cache.read().unwrap_or_else(|e| e.into_inner());
        cache
            .get(&id)
            .map(|c| (Arc::clone(&c.text), Arc::clone(&c.info)))
    }

    async fn fetch_by_id(&self, id: u32) -> Result<(Arc<str>, Arc<SchemaInfo>), ClientError> {
        let url = self.url_for(&["schemas", "ids", &id.to_string()], &[])?;
        let info: SchemaInfo = self.call(Method::GET, url, None).await?;
        let text: Arc<str> = Arc::from(info.schema.as_str());
        let info = Arc::new(info);
        let mut cache = self.inner.cache.write().unwrap_or_else(|e| e.into_inner());
        let c = cache.entry(id).or_insert(Cached { text, info });
        Ok((Arc::clone(&c.text), Arc::clone(&c.info)))
    }

    /// Registers `schema` (with `references`) under `subject`; returns its global id (the existing one if
    /// the schema is already registered).
    pub async fn register(
        &self,
        subject: &str,
        schema: &str,
        references: &[Reference],
    ) -> Result<u32, ClientError> {
        let url = self.url_for(&["subjects", subject, "versions"], &[])?;
        let body = schema_body(schema, references)?;
        let r: IdBody = self.call(Method::POST, url, Some(body)).await?;
        Ok(r.id)
    }

    /// The (id, version) of `schema` under `subject`, or `None` if it is not registered there.
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &str,
        references: &[Reference],
    ) -> Result<Option<(u32, u32)>, ClientError> {
        let url = self.url_for(&["subjects", subject], &[])?;
        let body = schema_body(schema, references)?;
        match self.call::<LookupBody>(Method::POST, url, Some(body)).await {
            Ok(r) => Ok(Some((r.id, r.version))),
            Err(ClientError::SubjectNotFound { .. } | ClientError::SchemaNotFound { .. }) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The (non-deleted) versions of `subject`.
    pub async fn versions(&self, subject: &str) -> Result<Vec<u32>, ClientError> {
        let url = self.url_for(&["subjects", subject, "versions"], &[])?;
        self.call(Method::GET, url, None).await
    }

    /// A version of `subject`.
    pub async fn version(
        &self,
        subject: &str,
        version: impl Into<VersionId>,
    ) -> Result<RegisteredSchema, ClientError> {
        let v = version.into().to_string();
        let url = self.url_for(&["subjects", subject, "versions", &v], &[])?;
        self.call(Method::GET, url, None).await
    }

    /// The subjects with at least one non-deleted version.
    pub async fn subjects(&self) -> Result<Vec<String>, ClientError> {
        let url = self.url_for(&["subjects"], &[])?;
        self.call(Method::GET, url, None).await
    }

    /// Whether `schema` is compatible with `subject`'s `version` (`None`: with the versions a registration
    /// would be checked against, per the subject's level); with `verbose`, the registry's messages.
    pub async fn test_compatibility(
        &self,
        subject: &str,
        version: Option<VersionId>,
        schema: &str,
        references: &[Reference],
        verbose: bool,
    ) -> Result<(bool, Vec<String>), ClientError> {
        let v = version.map(|v| v.to_string());
        let mut path = vec!["compatibility", "subjects", subject, "versions"];
        if let Some(v) = &v {
            path.push(v);
        }
        let query: &[(&str, &str)] = if verbose { &[("verbose", "true")] } else { &[] };
        let url = self.url_for(&path, query)?;
        let body = schema_body(schema, references)?;
        let r: CompatibilityBody = self.call(Method::POST, url, Some(body)).await?;
        Ok((r.is_compatible, r.messages))
    }

    /// Sets the compatibility level of `subject` (`None`: the global level); returns the level set.
    pub async fn set_config(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<CompatibilityLevel, ClientError> {
        let url = match subject {
            Some(s) => self.url_for(&["config", s], &[])?,
            None => self.url_for(&["config"], &[])?,
        };
        let body = serde_json::to_vec(&serde_json::json!({ "compatibility": level.as_str() }))
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let r: LevelBody = self.call(Method::PUT, url.clone(), Some(body)).await?;
        level_from(&r.level, &url)
    }

    /// The compatibility level in force for `subject` (its own, else the global one), or the global level.
    pub async fn get_config(
        &self,
        subject: Option<&str>,
    ) -> Result<CompatibilityLevel, ClientError> {
        let url = match subject {
            Some(s) => self.url_for(&["config", s], &[("defaultToGlobal", "true")])?,
            None => self.url_for(&["config"], &[])?,
        };
        let r: LevelBody = self.call(Method::GET, url.clone(), None).await?;
        level_from(&r.level, &url)
    }

    /// Deletes `subject` (soft, or `permanent` after a soft delete); returns the versions deleted.
    pub async fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<u32>, ClientError> {
        let query: &[(&str, &str)] = if permanent {
            &[("permanent", "true")]
        } else {
            &[]
        };
        let url = self.url_for(&["subjects", subject], query)?;
        self.call(Method::DELETE, url, None).await
    }

    // ---- plumbing ----

    fn url_for(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, ClientError> {
        let mut url = self.inner.base.clone();
        {
            let mut segs = url
                .path_segments_mut()
                .map_err(|()| ClientError::Config("registry URL cannot be a base".into()))?;
            segs.pop_if_empty();
            for s in segments {
                segs.push(s);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Sends with retries and decodes a 2xx JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let answer = self.send(method, &url, body).await?;
        serde_json::from_slice(&answer.body).map_err(|e| ClientError::Protocol {
            status: answer.status,
            problem: format!("{url}: the body is not the expected JSON ({e})"),
            snippet: snippet(&answer.body),
        })
    }

    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let policy = self.inner.retries;
        let mut retry = 0u32;
        loop {
            let (err, retry_after) = match self.attempt(method.clone(), url, body.clone()).await {
                Ok(a) if (200..300).contains(&a.status) => return Ok(a),
                Ok(a) => (ClientError::from_response(a.status, &a.body), a.retry_after),
                Err(e) => (e, None),
            };
            if !err.is_retriable() || retry >= policy.max_retries {
                return Err(err);
            }
            let wait = retry_after
                .map(|d| d.min(policy.max_backoff))
                .unwrap_or_else(|| policy.backoff(retry));
            tracing::debug!(%url, error = %err, retry = retry + 1, ?wait, "retrying a schema registry request");
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    async fn attempt(
        &self,
        method: Method,
        url: &Url,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let mut req = self
            .inner
            .http
            .request(method, url.clone())
            .header(ACCEPT, HeaderValue::from_static(ACCEPT_VALUE));
        if let Some(body) = body {
            req = req
                .header(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_VALUE))
                .body(body);
        }
        req = match &self.inner.auth {
            Auth::None => req,
            Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
            Auth::Bearer { token } => req.bearer_auth(token),
        };
        let transport = |e: reqwest::Error| {
            let url = url.to_string();
            if e.is_timeout() {
                ClientError::Timeout { url }
            } else if e.is_connect() {
                ClientError::Connect { url, source: e }
            } else {
                ClientError::Transport { url, source: e }
            }
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.bytes().await.map_err(transport)?.to_vec();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

fn schema_body(schema: &str, references: &[Reference]) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(&SchemaBody { schema, references })
        .map_err(|e| ClientError::Config(format!("cannot serialize the request: {e}")))
}

fn level_from(s: &str, url: &Url) -> Result<CompatibilityLevel, ClientError> {
    parse_level(s).ok_or_else(|| ClientError::Protocol {
        status: 200,
        problem: format!("{url}: unknown compatibility level"),
        snippet: s.to_owned(),
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
