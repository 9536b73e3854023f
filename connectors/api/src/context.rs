//! What a running sink knows about where it runs, and how it talks back to the runtime: its connector and
//! task names, a metrics registry with bounded labels, a clock tests can pause (tokio's), and requests to
//! pause or resume partitions or to commit early.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use crate::record::TopicPartition;

/// What a sink asks of the runtime; acted on by the consumer loop, in order, as soon as it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Stop fetching these partitions (e.g. a destination asked to slow down). Their records in flight still
    /// finish.
    Pause(Vec<TopicPartition>),
    /// Fetch these partitions again.
    Resume(Vec<TopicPartition>),
    /// Flush and commit now rather than at the next `offset.flush.interval.ms`.
    Commit,
}

/// The context of one running sink. Cheap to clone.
#[derive(Clone)]
pub struct SinkContext {
    inner: Arc<Inner>,
}

struct Inner {
    connector: String,
    task: String,
    metrics: SinkMetrics,
    requests: Option<mpsc::UnboundedSender<Request>>,
}

impl std::fmt::Debug for SinkContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkContext")
            .field("connector", &self.inner.connector)
            .field("task", &self.inner.task)
            .finish_non_exhaustive()
    }
}

impl SinkContext {
    /// A context for task `task` of `connector`; the runtime reads the requests from the receiver.
    pub fn new(
        connector: impl Into<String>,
        task: impl Into<String>,
        metrics: SinkMetrics,
    ) -> (SinkContext, mpsc::UnboundedReceiver<Request>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let ctx = SinkContext {
            inner: Arc::new(Inner {
                connector: connector.into(),
                task: task.into(),
                metrics,
                requests: Some(tx),
            }),
        };
        (ctx, rx)
    }

    /// A context whose requests go nowhere (a sink built only to check its config or health).
    pub fn detached(connector: impl Into<String>) -> SinkContext {
        let connector = connector.into();
        SinkContext {
            inner: Arc::new(Inner {
                metrics: SinkMetrics::new(&connector, SinkMetrics::DEFAULT_CAP),
                task: format!("{connector}-0"),
                connector,
                requests: None,
            }),
        }
    }

    /// The connector's name.
    pub fn connector(&self) -> &str {
        &self.inner.connector
    }

    /// The task's name (`<connector>-<n>`, as Kafka Connect's task ids).
    pub fn task(&self) -> &str {
        &self.inner.task
    }

    /// The sink's metrics (rendered with the runtime's at `GET /metrics`).
    pub fn metrics(&self) -> &SinkMetrics {
        &self.inner.metrics
    }

    /// Now, on tokio's clock: paused and advanced by hand in tests (`#[tokio::test(start_paused = true)]`).
    pub fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    /// Sleeps on tokio's clock.
    pub async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    /// Asks the runtime to stop fetching `partitions`.
    pub fn pause(&self, partitions: &[TopicPartition]) {
        self.send(Request::Pause(partitions.to_vec()));
    }

    /// Asks the runtime to fetch `partitions` again.
    pub fn resume(&self, partitions: &[TopicPartition]) {
        self.send(Request::Resume(partitions.to_vec()));
    }

    /// Asks the runtime to flush and commit now.
    pub fn request_commit(&self) {
        self.send(Request::Commit);
    }

    fn send(&self, r: Request) {
        if let Some(tx) = &self.inner.requests {
            let _ = tx.send(r);
        }
    }
}

/// A sink's own metrics: families named `ursa_plugin_<name>` with the constant label `connector`, and labelled
/// families whose distinct label values are capped (past the cap they fold into `_other`), so a sink
/// labelling by recipient or provider cannot grow the exposition without bound.
#[derive(Clone)]
pub struct SinkMetrics {
    registry: Arc<Mutex<Registry>>,
    cap: usize,
}

impl std::fmt::Debug for SinkMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkMetrics")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

/// The label value of every label set past a family's cap.
pub const OTHER: &str = "_other";

impl SinkMetrics {
    /// Distinct label values kept per labelled family by default.
    pub const DEFAULT_CAP: usize = 100;

    /// An empty registry for `connector`, capping labelled families at `cap` values.
    pub fn new(connector: &str, cap: usize) -> SinkMetrics {
        let registry = Registry::with_prefix_and_labels(
            "ursa_plugin",
            [(Cow::Borrowed("connector"), Cow::Owned(connector.to_owned()))].into_iter(),
        );
        SinkMetrics {
            registry: Arc::new(Mutex::new(registry)),
            cap: cap.max(1),
        }
    }

    fn register(&self, name: &str, help: &str, metric: impl prometheus_client::registry::Metric) {
        if let Ok(mut r) = self.registry.lock() {
            r.register(name, help, metric);
        }
    }

    /// A counter `ursa_plugin_<name>_total`.
    pub fn counter(&self, name: &str, help: &str) -> Counter {
        let c = Counter::default();
        self.register(name, help, c.clone());
        c
    }

    /// A gauge `ursa_plugin_<name>`.
    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        let g = Gauge::default();
        self.register(name, help, g.clone());
        g
    }

    /// A histogram `ursa_plugin_<name>` with these bucket bounds.
    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let h = Histogram::new(buckets.iter().copied());
        self.register(name, help, h.clone());
        h
    }

    /// Counters `ursa_plugin_<name>_total{<label>="…"}` with at most the registry's cap of distinct values.
    pub fn counters(&self, name: &str, help: &str, label: &'static str) -> BoundedCounters {
        self.labelled_counters(name, help, &[label])
    }

    /// Counters `ursa_plugin_<name>_total{<labels[0]>="…",…}` with at most the registry's cap of distinct label
    /// sets (past it, every label of a new set is [`OTHER`]).
    pub fn labelled_counters(
        &self,
        name: &str,
        help: &str,
        labels: &[&'static str],
    ) -> BoundedCounters {
        let family = Family::<Vec<(&'static str, String)>, Counter>::default();
        self.register(name, help, family.clone());
        BoundedCounters {
            family,
            labels: labels.to_vec(),
            cap: self.cap,
            seen: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// The OpenMetrics text of these metrics, without the closing `# EOF` (so it can follow the runtime's).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode_registry(&mut out, &r);
        }
        out
    }
}

/// A counter family with one label whose distinct values are capped.
#[derive(Clone)]
pub struct BoundedCounters {
    family: Family<Vec<(&'static str, String)>, Counter>,
    labels: Vec<&'static str>,
    cap: usize,
    seen: Arc<Mutex<HashSet<Vec<String>>>>,
}

impl std::fmt::Debug for BoundedCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedCounters")
            .field("labels", &self.labels)
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl BoundedCounters {
    /// The counter of `value` (or of [`OTHER`] once the cap is reached by other values), for a one-label
    /// family.
    pub fn get(&self, value: &str) -> Counter {
        self.get_set(&[value])
    }

    /// The counter of one label set, values in the family's label order (all [`OTHER`] once the cap is reached
    /// by other sets; a missing value is empty).
    pub fn get_set(&self, values: &[&str]) -> Counter {
        let set: Vec<String> = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, _)| values.get(i).copied().unwrap_or_default().to_owned())
            .collect();
        let admitted = match self.seen.lock() {
            Ok(mut seen) => {
                if seen.contains(&set) {
                    true
                } else if seen.len() < self.cap {
                    seen.insert(set.clone());
                    true
                } else {
                    false
                }
            }
            Err(_) => false,
        };
        let key: Vec<(&'static str, String)> = self
            .labels
            .iter()
            .zip(set)
            .map(|(l, v)| (*l, if admitted { v } else { OTHER.to_owned() }))
            .collect();
        self.family.get_or_create(&key).clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn labels_are_bounded_and_requests_reach_the_runtime() {
        let m = SinkMetrics::new("alerts", 2);
        let sent = m.counters("sent", "Notifications sent", "provider");
        for p in ["a", "b", "c", "d", "a"] {
            sent.get(p).inc();
        }
        let text = m.render();
        assert!(
            text.contains("ursa_plugin_sent_total{connector=\"alerts\",provider=\"a\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("connector=\"alerts\",provider=\"_other\"} 2"),
            "{text}"
        );
        assert!(!text.contains("provider=\"c\""), "{text}");
        let (ctx, mut rx) = SinkContext::new("alerts", "alerts-0", m);
        ctx.pause(&[TopicPartition::new("t", 1)]);
        ctx.request_commit();
        assert_eq!(
            rx.try_recv().unwrap(),
            Request::Pause(vec![TopicPartition::new("t", 1)])
        );
        assert_eq!(rx.try_recv().unwrap(), Request::Commit);
        assert_eq!(ctx.task(), "alerts-0");
    }

    #[test]
    fn label_sets_are_bounded_as_a_whole() {
        let m = SinkMetrics::new("alerts", 2);
        let attempts = m.labelled_counters("attempts", "Sends", &["channel", "outcome"]);
        attempts.get_set(&["sms", "sent"]).inc();
        attempts.get_set(&["sms", "sent"]).inc();
        attempts.get_set(&["push", "retry"]).inc();
        attempts.get_set(&["email", "sent"]).inc();
        let text = m.render();
        assert!(
            text.contains("ursa_plugin_attempts_total{connector=\"alerts\",channel=\"sms\",outcome=\"sent\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("channel=\"_other\",outcome=\"_other\"} 1"),
            "{text}"
        );
        assert!(!text.contains("email"), "{text}");
    }
}
