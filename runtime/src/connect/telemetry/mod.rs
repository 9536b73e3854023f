//! Telemetry of the runtime: typed events that log (`tracing`) and count (`prometheus-client`) together.
//!
//! Every [`Telemetry`] method is one event: it bumps the matching `ursa_*` series and emits one log event
//! (`debug` for per-record events, `warn` for failures, DLQ and skips, `info` for task lifecycle).
//! Labels are bounded: connector, topic, stage, kind and state, plus partition on the lag gauge only;
//! offsets, keys and error messages go to the logs, never to labels. Distinct topics are capped
//! ([`DEFAULT_SERIES_CAP`]); beyond the cap they are folded into the topic `_other`.

pub mod logging;
mod metrics;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use logging::init_logging;
pub use metrics::{CONTENT_TYPE, DEFAULT_SERIES_CAP, OTHER_TOPIC, TASK_STATES};

use metrics::Metrics;

/// The metrics and logs of one worker; cheap to clone (clones share one registry).
#[derive(Clone)]
pub struct Telemetry {
    metrics: Arc<Metrics>,
    /// The sinks' own metrics (`ursa_plugin_*`), by connector.
    sinks: Arc<std::sync::Mutex<std::collections::BTreeMap<String, ursa_connect::SinkMetrics>>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("series_cap", &self.metrics.cap())
            .finish_non_exhaustive()
    }
}

/// Where a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Converting the key.
    KeyConverter,
    /// Converting the value.
    ValueConverter,
    /// Delivering to the sink.
    TaskPut,
}

impl Stage {
    /// Every stage, in label order.
    pub const ALL: [Stage; 3] = [Stage::KeyConverter, Stage::ValueConverter, Stage::TaskPut];

    /// Kafka Connect's stage name (`__connect.errors.stage`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::TaskPut => "TASK_PUT",
        }
    }

    fn index(self) -> usize {
        match self {
            Stage::KeyConverter => 0,
            Stage::ValueConverter => 1,
            Stage::TaskPut => 2,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Telemetry {
    /// A fresh registry with the default series cap.
    pub fn new() -> Self {
        Self::with_series_cap(DEFAULT_SERIES_CAP)
    }

    /// A fresh registry that keeps at most `cap` distinct (connector, topic) series, and as many
    /// `ursa_records_failed_total` and `ursa_consumer_lag` series.
    pub fn with_series_cap(cap: usize) -> Self {
        Self {
            metrics: Arc::new(Metrics::new(cap)),
            sinks: Arc::default(),
        }
    }

    /// A record was read from Kafka.
    pub fn record_read(&self, connector: &str, topic: &str, bytes: usize) {
        self.records_read(connector, topic, 1, bytes as u64);
    }

    /// `records` records of `bytes` in all were read (the consumer counts a few before telling).
    pub fn records_read(&self, connector: &str, topic: &str, records: u64, bytes: u64) {
        self.metrics.with_topic(connector, topic, |_, t| {
            t.read.inc_by(records);
            t.bytes.inc_by(bytes);
        });
        tracing::debug!(connector, topic, records, bytes, "records read");
    }

    /// Records were delivered; `latency` is the sink call's duration.
    pub fn delivered(&self, connector: &str, topic: &str, count: usize, latency: Duration) {
        self.metrics.with_topic(connector, topic, |c, t| {
            t.delivered.inc_by(count as u64);
            c.sink_latency.observe(latency.as_secs_f64());
        });
        tracing::debug!(connector, topic, count, latency = ?latency, "records delivered");
    }

    /// A record failed at `stage` (before tolerance is applied).
    pub fn failed(
        &self,
        connector: &str,
        topic: &str,
        stage: Stage,
        permanent: bool,
        reason: &str,
    ) {
        self.metrics
            .failed(connector, topic, stage.index(), usize::from(!permanent));
        tracing::warn!(
            connector,
            topic,
            stage = stage.as_str(),
            permanent,
            reason,
            "record failed"
        );
    }

    /// Records are retried.
    pub fn retried(&self, connector: &str, topic: &str, count: usize) {
        self.metrics.with_topic(connector, topic, |_, t| {
            t.retried.inc_by(count as u64);
        });
        tracing::debug!(connector, topic, count, "records retried");
    }

    /// A record went to the DLQ.
    pub fn dead_lettered(&self, connector: &str, topic: &str) {
        self.metrics.with_topic(connector, topic, |_, t| {
            t.dead_lettered.inc();
        });
        tracing::warn!(connector, topic, "record sent to the dead letter queue");
    }

    /// A record was skipped under errors.tolerance=all without a DLQ.
    pub fn skipped(&self, connector: &str, topic: &str) {
        self.metrics.with_topic(connector, topic, |_, t| {
            t.skipped.inc();
        });
        tracing::warn!(
            connector,
            topic,
            "record skipped (errors.tolerance=all, no DLQ)"
        );
    }

    /// One sink call's batch size.
    pub fn batch(&self, connector: &str, size: usize) {
        self.metrics.with_connector(connector, |c| {
            c.batch_size.observe(size as f64);
        });
        tracing::debug!(connector, size, "sink batch");
    }

    /// End-to-end lags of delivered records (now minus each one's timestamp).
    pub fn end_to_end(&self, connector: &str, lags: &[Duration]) {
        if lags.is_empty() {
            return;
        }
        self.metrics.with_connector(connector, |c| {
            for lag in lags {
                c.end_to_end.observe(lag.as_secs_f64());
            }
        });
        tracing::debug!(connector, records = lags.len(), max = ?lags.iter().max(), "end-to-end lag");
    }

    /// Consumer lag of a partition (high watermark minus next offset).
    pub fn consumer_lag(&self, connector: &str, topic: &str, partition: i32, lag: i64) {
        self.metrics.consumer_lag(connector, topic, partition, lag);
        tracing::debug!(connector, topic, partition, lag, "consumer lag");
    }

    /// Task `task` of a connector changed state (RUNNING, PAUSED, STOPPED, FAILED, …); case-insensitive,
    /// one of [`TASK_STATES`]. The task's gauge of the new state becomes 1 and its others 0.
    pub fn task_state(&self, connector: &str, task: u32, state: &str) {
        match TASK_STATES
            .iter()
            .position(|s| s.eq_ignore_ascii_case(state))
        {
            Some(index) => {
                self.metrics.task_state(connector, task, index);
                tracing::info!(
                    connector,
                    task,
                    state = TASK_STATES[index],
                    "task state changed"
                );
            }
            None => tracing::warn!(connector, task, state, "unknown task state; not counted"),
        }
    }

    /// A task restarted: by itself after a failure, or on request (REST restart).
    pub fn task_restarted(&self, connector: &str) {
        self.metrics.with_connector(connector, |c| {
            c.restarts.inc();
        });
        tracing::info!(connector, "task restarted");
    }

    /// Offsets were committed.
    pub fn committed(&self, connector: &str, partitions: usize) {
        self.metrics.with_connector(connector, |c| {
            c.commits.inc();
        });
        tracing::debug!(connector, partitions, "offsets committed");
    }

    /// A partition was opened at `resumed`: the group had committed `committed`, the sink had acknowledged
    /// `acknowledged` (when it tells). Records between the resume point and what the sink acknowledged are
    /// delivered again; logged once per partition.
    pub fn resumed(
        &self,
        connector: &str,
        partition: &str,
        resumed: Option<i64>,
        committed: Option<i64>,
        acknowledged: Option<i64>,
    ) {
        let behind = match (acknowledged, resumed) {
            (Some(a), Some(r)) => Some((a - r).max(0)),
            _ => None,
        };
        self.metrics.with_connector(connector, |c| {
            c.resumes.inc();
            if let Some(b) = behind {
                c.redelivered.inc_by(b as u64);
            }
        });
        let show = |o: Option<i64>| o.map_or_else(|| "unknown".to_owned(), |o| o.to_string());
        tracing::info!(
            connector,
            partition,
            resumed_at = %resumed.map_or_else(|| "the reset policy (nothing committed)".to_owned(), |o| o.to_string()),
            committed = %show(committed),
            sink_acknowledged = %show(acknowledged),
            behind_sink = %show(behind),
            "partition resumed"
        );
    }

    /// Drops a task's state series: the task left this worker (a placement change), the connector did not.
    pub fn remove_task(&self, connector: &str, task: u32) {
        self.metrics.remove_task(connector, task);
        tracing::info!(connector, task, "task left this worker");
    }

    /// Drops every series of a deleted connector; returns whether it had any.
    pub fn remove_connector(&self, connector: &str) -> bool {
        if let Ok(mut s) = self.sinks.lock() {
            s.remove(connector);
        }
        let removed = self.metrics.remove_connector(connector);
        tracing::info!(connector, removed, "connector metrics removed");
        removed
    }

    /// Renders a connector's sink metrics with the worker's (replacing those of its previous run).
    pub fn add_sink_metrics(&self, connector: &str, metrics: ursa_connect::SinkMetrics) {
        if let Ok(mut s) = self.sinks.lock() {
            s.insert(connector.to_owned(), metrics);
        }
    }

    /// The OpenMetrics text exposition (serve it with [`CONTENT_TYPE`]): the worker's families, then the
    /// sinks' own.
    pub fn render(&self) -> String {
        let mut text = self.metrics.render();
        if let Ok(sinks) = self.sinks.lock()
            && !sinks.is_empty()
            && let Some(body) = text.strip_suffix("# EOF\n")
        {
            let mut out = body.to_owned();
            for m in sinks.values() {
                out.push_str(&m.render());
            }
            out.push_str("# EOF\n");
            text = out;
        }
        text
    }
}
