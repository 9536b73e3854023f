//! Batching across partitions with linger, for sinks whose destination wants few large writes (a remote
//! write endpoint, a bulk insert): every partition's `put` submits its items to one shared [`Batcher`], which
//! sends them together once `max_records` or `max_bytes` is reached or `linger` has passed since the first
//! item of the batch, and hands each `put` the results of its own items.
//!
//! Cancel-safety: the write runs in its own task, so a `put` cancelled by its deadline does not cancel the
//! write of other partitions' items; its own items may still be written (at least once: the runtime retries
//! them).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::BoxFuture;
use crate::outcome::SinkError;

/// When a batch is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Items that send a batch at once.
    pub max_records: usize,
    /// Bytes that send a batch at once.
    pub max_bytes: usize,
    /// The longest an item waits for others.
    pub linger: Duration,
}

/// Writes one batch; returns one result per item, in order.
pub type WriteBatch<T, R> =
    Arc<dyn Fn(Vec<T>) -> BoxFuture<'static, Result<Vec<R>, SinkError>> + Send + Sync>;

type Reply<R> = oneshot::Sender<Result<Vec<R>, SinkError>>;

struct Open<T, R> {
    items: Vec<T>,
    bytes: usize,
    /// Each submitter's share of `items`: how many, and where to send their results.
    shares: Vec<(usize, Reply<R>)>,
    started: Instant,
}

struct State<T, R> {
    /// The batch being filled; its number.
    open: Option<Open<T, R>>,
    number: u64,
}

/// A batch shared by the partitions of a sink.
pub struct Batcher<T, R> {
    config: BatchConfig,
    write: WriteBatch<T, R>,
    state: Mutex<State<T, R>>,
}

impl<T, R> std::fmt::Debug for Batcher<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// A batcher that sends batches with `write`.
    pub fn new(config: BatchConfig, write: WriteBatch<T, R>) -> Batcher<T, R> {
        Batcher {
            config,
            write,
            state: Mutex::new(State {
                open: None,
                number: 0,
            }),
        }
    }

    /// Adds `items` (with their size in bytes) to the open batch and waits for their results. The batch is
    /// sent when it is full or when `linger` has passed since it opened.
    pub async fn submit(&self, items: Vec<(T, usize)>) -> Result<Vec<R>, SinkError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = oneshot::channel();
        let (number, deadline, full) = {
            let mut state = self
                .state
                .lock()
                .map_err(|_| SinkError::permanent("batch lock poisoned"))?;
            let open = state.open.get_or_insert_with(|| Open {
                items: Vec::new(),
                bytes: 0,
                shares: Vec::new(),
                started: Instant::now(),
            });
            let n = items.len();
            for (item, size) in items {
                open.items.push(item);
                open.bytes += size;
            }
            open.shares.push((n, tx));
            let full =
                open.items.len() >= self.config.max_records || open.bytes >= self.config.max_bytes;
            let deadline = open.started + self.config.linger;
            let number = state.number;
            if full {
                self.send(&mut state);
            }
            (number, deadline, full)
        };
        let mut rx = rx;
        if !full {
            tokio::select! {
                r = &mut rx => return r.unwrap_or_else(|_| Err(SinkError::retriable("the batch write was lost"))),
                () = tokio::time::sleep_until(deadline) => {
                    if let Ok(mut state) = self.state.lock()
                        && state.number == number
                    {
                        self.send(&mut state);
                    }
                }
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(SinkError::retriable("the batch write was lost")))
    }

    /// Sends the open batch (in its own task) and starts the next.
    fn send(&self, state: &mut State<T, R>) {
        let Some(open) = state.open.take() else {
            return;
        };
        state.number += 1;
        let write = Arc::clone(&self.write);
        tokio::spawn(async move {
            let total = open.items.len();
            let result = write(open.items).await;
            match result {
                Ok(results) if results.len() == total => {
                    let mut results = results.into_iter();
                    for (n, reply) in open.shares {
                        let _ = reply.send(Ok(results.by_ref().take(n).collect()));
                    }
                }
                Ok(results) => {
                    let e = SinkError::permanent(format!(
                        "the batch write returned {} results for {total} items",
                        results.len()
                    ));
                    for (_, reply) in open.shares {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
                Err(e) => {
                    for (_, reply) in open.shares {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    type Log = Arc<Mutex<Vec<(Vec<u32>, Instant)>>>;

    fn batcher(config: BatchConfig, log: Log) -> Arc<Batcher<u32, u32>> {
        Arc::new(Batcher::new(
            config,
            Arc::new(move |items: Vec<u32>| {
                let log = Arc::clone(&log);
                Box::pin(async move {
                    log.lock().unwrap().push((items.clone(), Instant::now()));
                    Ok(items.iter().map(|i| i * 10).collect())
                })
            }),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn partitions_share_a_batch_sent_when_full_or_after_the_linger() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let b = batcher(
            BatchConfig {
                max_records: 5,
                max_bytes: 1000,
                linger: Duration::from_millis(50),
            },
            Arc::clone(&log),
        );
        let start = Instant::now();
        // Two partitions fill one batch: sent at once, each gets its own results.
        let (a, c) = tokio::join!(
            b.submit(vec![(1, 1), (2, 1)]),
            b.submit(vec![(3, 1), (4, 1), (5, 1)])
        );
        assert_eq!(a.unwrap(), vec![10, 20]);
        assert_eq!(c.unwrap(), vec![30, 40, 50]);
        assert_eq!(log.lock().unwrap()[0], (vec![1, 2, 3, 4, 5], start));
        // A lone item waits for the linger.
        assert_eq!(b.submit(vec![(6, 1)]).await.unwrap(), vec![60]);
        assert_eq!(
            log.lock().unwrap()[1],
            (vec![6], start + Duration::from_millis(50))
        );
        // Bytes send too.
        let big = b.submit(vec![(7, 2000)]).await.unwrap();
        assert_eq!(big, vec![70]);
        assert_eq!(log.lock().unwrap()[2].1, start + Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_write_fails_every_share() {
        let b: Batcher<u32, u32> = Batcher::new(
            BatchConfig {
                max_records: 2,
                max_bytes: 1000,
                linger: Duration::from_millis(5),
            },
            Arc::new(|_| Box::pin(async { Err(SinkError::retriable("down")) })),
        );
        let (x, y) = tokio::join!(b.submit(vec![(1, 1)]), b.submit(vec![(2, 1)]));
        assert_eq!(x.unwrap_err(), SinkError::retriable("down"));
        assert!(y.unwrap_err().is_retriable());
    }
}
