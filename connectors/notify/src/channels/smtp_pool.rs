//! The email channel's SMTP connections: lettre's SMTP client on sockets opened here with `TCP_NODELAY`, kept
//! in a small pool of idle sessions.
//!
//! lettre 0.11 leaves Nagle's algorithm on (its upstream fix, lettre#1159, is in no release this workspace can
//! use) and writes a message's body and its `<CRLF>.<CRLF>` terminator as two writes before it reads the reply:
//! Nagle holds the terminator until the server acknowledges the body, and servers delay that ACK by about
//! 40 ms, so every message waited 40 ms (`cargo xtask bench notify` measured 113 notifications/s where the
//! Python peer's smtplib, one write, did 700). Opening the socket here also bounds the connect by the
//! configured timeout and keeps each phase's errors apart: nothing was sent when connecting fails, while a
//! timeout after DATA may have been accepted.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Idle sessions kept for reuse (a batch sends up to `notify.concurrency` emails at once: fewer kept would close
/// and reopen sessions on every batch).
const MAX_IDLE: usize = 32;
/// An idle session older than this is checked with NOOP before it is used.
const CHECK_AFTER: Duration = Duration::from_secs(30);

/// How sessions are protected.
pub enum Protection {
    /// Plain (loopback only; checked by the channel's setup).
    None,
    /// STARTTLS after the greeting, required.
    StartTls(TlsParameters),
    /// TLS from the first byte.
    Implicit(tokio_native_tls::TlsConnector),
}

/// Why a send did not get a reply.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// No session could be opened (connect, TLS, greeting, EHLO, STARTTLS, AUTH): nothing was sent.
    #[error("connecting: {0}")]
    Connect(String),
    /// The server's reply, or a failure during the transaction.
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// No reply within the timeout after the transaction began: the message may have been accepted.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
}

/// The pool.
pub struct Pool {
    host: String,
    port: u16,
    protection: Protection,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool for one server (no connection yet); `timeout` bounds each step.
    pub fn new(
        host: String,
        port: u16,
        protection: Protection,
        credentials: Option<Credentials>,
        timeout: Duration,
    ) -> Pool {
        Pool {
            host,
            port,
            protection,
            credentials,
            hello: ClientId::default(),
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    async fn bounded<T, E: fmt::Display>(
        &self,
        step: &str,
        f: impl Future<Output = Result<T, E>>,
    ) -> Result<T, SmtpError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(SmtpError::Connect(format!("{step}: {e}"))),
            Err(_) => Err(SmtpError::Connect(format!(
                "{step}: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// A lettre step of the session's set-up: a server's reply (a 535 to AUTH, say) stays an SMTP error to
    /// classify; anything else means no session.
    async fn step<T>(
        &self,
        step: &str,
        f: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, SmtpError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_permanent() || e.is_transient() => Err(SmtpError::Smtp(e)),
            Ok(Err(e)) => Err(SmtpError::Connect(format!("{step}: {e}"))),
            Err(_) => Err(SmtpError::Connect(format!(
                "{step}: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// A new session: connected, greeted, protected and authenticated.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let tcp = self
            .bounded(
                "connect",
                TcpStream::connect((self.host.as_str(), self.port)),
            )
            .await?;
        tcp.set_nodelay(true)
            .map_err(|e| SmtpError::Connect(format!("TCP_NODELAY: {e}")))?;
        let stream: Box<dyn AsyncTokioStream> = match &self.protection {
            Protection::Implicit(tls) => {
                let peer = tcp
                    .peer_addr()
                    .map_err(|e| SmtpError::Connect(e.to_string()))?;
                let tls = self
                    .bounded("TLS handshake", tls.connect(&self.host, tcp))
                    .await?;
                Box::new(TlsTcp { inner: tls, peer })
            }
            _ => Box::new(tcp),
        };
        let mut conn = self
            .step(
                "greeting and EHLO",
                AsyncSmtpConnection::connect_with_transport(stream, &self.hello),
            )
            .await?;
        if let Protection::StartTls(params) = &self.protection {
            if !conn.can_starttls() {
                return Err(SmtpError::Connect(
                    "the server does not offer STARTTLS, which is required".into(),
                ));
            }
            self.step("STARTTLS", conn.starttls(params.clone(), &self.hello))
                .await?;
        }
        if let Some(c) = &self.credentials {
            self.step("AUTH", conn.auth(&[Mechanism::Plain, Mechanism::Login], c))
                .await?;
        }
        Ok(conn)
    }

    /// An idle session still answering, or a new one.
    async fn session(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        loop {
            let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
            let Some((mut conn, since)) = idle else {
                return self.connect().await;
            };
            if conn.has_broken() {
                continue;
            }
            if since.elapsed() < CHECK_AFTER
                || tokio::time::timeout(self.timeout, conn.test_connected())
                    .await
                    .unwrap_or(false)
            {
                return Ok(conn);
            }
        }
    }

    fn keep(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push((conn, Instant::now()));
        }
    }

    /// Sends one message (`bytes`, formatted) in one transaction.
    pub async fn send(&self, envelope: &Envelope, bytes: &[u8]) -> Result<Response, SmtpError> {
        let mut conn = self.session().await?;
        // MAIL, RCPT, DATA and the message each wait for a reply: bounded as a whole.
        match tokio::time::timeout(self.timeout * 3, conn.send(envelope, bytes)).await {
            Ok(Ok(r)) => {
                self.keep(conn);
                Ok(r)
            }
            Ok(Err(e)) => {
                // A refused message leaves the session usable (lettre resets it); a broken one is dropped.
                if !conn.has_broken() && (e.is_permanent() || e.is_transient()) {
                    self.keep(conn);
                }
                Err(SmtpError::Smtp(e))
            }
            Err(_) => Err(SmtpError::Timeout(self.timeout * 3)),
        }
    }

    /// Whether the server answers NOOP (a new session each time: a health check should see a restart).
    pub async fn check(&self) -> Result<bool, SmtpError> {
        let mut conn = self.connect().await?;
        let ok = tokio::time::timeout(self.timeout, conn.test_connected())
            .await
            .unwrap_or(false);
        self.keep(conn);
        Ok(ok)
    }
}

/// An implicit-TLS socket as lettre's stream.
struct TlsTcp {
    inner: tokio_native_tls::TlsStream<TcpStream>,
    peer: SocketAddr,
}

impl fmt::Debug for TlsTcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTcp").field("peer", &self.peer).finish()
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

impl AsyncRead for TlsTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
