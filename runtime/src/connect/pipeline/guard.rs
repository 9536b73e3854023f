//! Calling a sink safely: every call under a deadline, panics caught (a panicking sink fails its connector
//! instead of leaving a partition stuck), and retriable failures of `open`, `starting_offsets` and `close`
//! retried within the deadline.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::connect::retry::{RetryPolicy, random};
use crate::connect::sink::SinkError;
use ursa_connect::BoxFuture;

/// A boxed future whose panics become errors.
pub struct CatchUnwind<'a, T>(pub BoxFuture<'a, T>);

impl<T> Future for CatchUnwind<'_, T> {
    type Output = Result<T, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match catch_unwind(AssertUnwindSafe(|| this.0.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic_message(panic.as_ref()))),
        }
    }
}

/// The text of a panic payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Why a sink call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// The sink answered an error.
    Sink(SinkError),
    /// The call did not finish before its deadline (and was dropped).
    Timeout(Duration),
    /// The sink panicked.
    Panic(String),
}

impl CallError {
    /// Whether trying again may help.
    pub fn is_retriable(&self) -> bool {
        match self {
            CallError::Sink(e) => e.is_retriable(),
            CallError::Timeout(_) => true,
            CallError::Panic(_) => false,
        }
    }

    /// The delay the destination asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Sink(e) => e.retry_after,
            _ => None,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Sink(e) => write!(
                f,
                "{e} ({})",
                if e.retriable {
                    "retriable"
                } else {
                    "permanent"
                }
            ),
            CallError::Timeout(d) => write!(f, "no answer within its deadline of {d:?}"),
            CallError::Panic(m) => write!(f, "the sink panicked: {m}"),
        }
    }
}

/// One call under a deadline, panics caught.
pub async fn call<T>(
    timeout: Duration,
    fut: BoxFuture<'_, Result<T, SinkError>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, CatchUnwind(fut)).await {
        Err(_) => Err(CallError::Timeout(timeout)),
        Ok(Err(panic)) => Err(CallError::Panic(panic)),
        Ok(Ok(Err(e))) => Err(CallError::Sink(e)),
        Ok(Ok(Ok(v))) => Ok(v),
    }
}

/// Calls `f` until it succeeds, fails permanently, or `deadline` passes (retriable failures retried with
/// `policy`'s delays).
pub async fn call_retrying<'a, T>(
    deadline: Duration,
    policy: &RetryPolicy,
    mut f: impl FnMut() -> BoxFuture<'a, Result<T, SinkError>>,
) -> Result<T, CallError> {
    let until = Instant::now() + deadline;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let left = until.saturating_duration_since(Instant::now());
        match call(left, f()).await {
            Ok(v) => return Ok(v),
            Err(CallError::Timeout(_)) => return Err(CallError::Timeout(deadline)),
            Err(e) if !e.is_retriable() => return Err(e),
            Err(e) => {
                let wait = policy.delay(attempt, e.retry_after(), random());
                if Instant::now() + wait >= until {
                    return Err(e);
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}
