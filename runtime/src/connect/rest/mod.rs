//! The worker's HTTP layer: Apache Kafka Connect's REST API over [`ConnectApi`], so existing Connect tooling
//! (clients, CLIs, operators) can manage ursa connectors, plus `GET /health` and `GET /metrics`.
//!
//! Listens on `127.0.0.1:8083` by default. With a token configured, every request except `GET /health` must
//! carry `Authorization: Bearer <token>`. Whatever the auth, request bodies must be JSON, cross-origin
//! state-changing requests are refused, the `Host` is checked on loopback listeners ([`guard`]), and secret
//! references in submitted configs must be allowed by [`RestConfig::references`].

mod auth;
mod error;
mod guard;
mod handlers;
mod http;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::api::ConnectApi;
use super::config::ReferencePolicy;

/// Where the REST API listens and how it authenticates.
#[derive(Clone)]
pub struct RestConfig {
    /// The address to listen on (port 0 picks a free port; see [`RestServer::local_addr`]).
    pub listen: SocketAddr,
    /// When set, every request except `GET /health` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Which `${env:…}` and `${file:…}` references a submitted config may hold (none by default).
    pub references: ReferencePolicy,
    /// Host names accepted besides loopback ones (`localhost`, `127.0.0.1`, `[::1]`): checked on a loopback
    /// listener, and on any listener once set (DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

impl RestConfig {
    /// Kafka Connect's default port.
    pub const DEFAULT_PORT: u16 = 8083;

    /// On `127.0.0.1` and a free port, without auth (for tests).
    pub fn ephemeral() -> Self {
        RestConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..RestConfig::default()
        }
    }
}

impl Default for RestConfig {
    /// `127.0.0.1:8083`, without auth.
    fn default() -> Self {
        RestConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], Self::DEFAULT_PORT)),
            token: None,
            references: ReferencePolicy::default(),
            allowed_hosts: Vec::new(),
        }
    }
}

impl std::fmt::Debug for RestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "[hidden]"))
            .field("references", &self.references)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) api: Arc<dyn ConnectApi>,
    /// The references a submitted config may hold.
    pub(crate) references: Arc<ReferencePolicy>,
}

/// A bound, not yet serving REST server: lets a caller learn the address before serving.
pub struct RestServer {
    listener: TcpListener,
    addr: SocketAddr,
    token: Option<Arc<str>>,
    guard: Arc<guard::Guard>,
    state: AppState,
}

impl std::fmt::Debug for RestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestServer")
            .field("addr", &self.addr)
            .field("auth", &self.token.is_some())
            .finish()
    }
}

impl RestServer {
    /// Binds the listen address. An empty token is refused (it would let anyone in).
    pub async fn bind(
        config: RestConfig,
        api: Arc<dyn ConnectApi>,
    ) -> Result<RestServer, std::io::Error> {
        if config.token.as_deref().is_some_and(str::is_empty) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the REST API token must not be empty",
            ));
        }
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen))
        })?;
        let addr = listener.local_addr()?;
        if config.token.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(%addr, "REST API listening on a non-loopback address without a token");
        }
        tracing::info!(%addr, auth = config.token.is_some(), "REST API listening");
        Ok(RestServer {
            listener,
            addr,
            token: config.token.map(Arc::from),
            guard: Arc::new(guard::Guard::new(
                addr.ip().is_loopback(),
                &config.allowed_hosts,
            )),
            state: AppState {
                api,
                references: Arc::new(config.references),
            },
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{local_addr}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = routes::app(self.state, self.token, self.guard);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Serves on a background task until [`RunningRestServer::stop`] (or the handle is dropped).
    pub fn spawn(self) -> RunningRestServer {
        let addr = self.addr;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async move {
            let _ = rx.await;
        }));
        RunningRestServer {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }
}

/// A REST server serving on a background task.
#[derive(Debug)]
pub struct RunningRestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningRestServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{local_addr}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes in-flight requests and waits for the server to end.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningRestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
