//! The `metrics` sink: applies each record to every metric whose topics and filter it matches, serves the
//! store on its own `/metrics` listener, and removes idle series on a timer (not on scrape, so memory stays
//! bounded when nothing scrapes).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::task::AbortHandle;
use ursa_avro::value::{Parts, Wanted};
use ursa_connect::{
    BoxFuture, Conversion, Offsets, Outcome, Sink, SinkContext, SinkError, SinkRecord,
    TopicPartition,
};

use crate::checkpoint::{Checkpoints, decode, encode};
use crate::config::{MetricDef, MetricsConfig, SampleTime};
use crate::exposition::{OPENMETRICS_TEXT, PROMETHEUS_TEXT, render, render_stamped};
use crate::extract::{Path, Root, View};
use crate::remote_write::{RemoteWrite, samples};
use crate::series::Store;

type Shared = Arc<Mutex<Store>>;

/// The `metrics` sink.
pub struct MetricsSink {
    store: Shared,
    defs: Vec<Arc<MetricDef>>,
    checkpoints: Option<Checkpoints>,
    remote: Option<RemoteWrite>,
    /// Remote-write samples carry each series' event time.
    stamped: bool,
    /// The generation each partition was opened with (its checkpoints are written under it).
    generations: Mutex<std::collections::HashMap<TopicPartition, u64>>,
    topic_ready: tokio::sync::OnceCell<()>,
    listen: Option<String>,
    listener: OnceLock<Option<std::net::SocketAddr>>,
    tasks: Mutex<Vec<AbortHandle>>,
    /// The parts of an Avro value the definitions read (labels, values, filters, event time): only those are
    /// decoded.
    wanted: Wanted,
}

/// What the definitions (and an event-time field) read of a record's value; binds each path into it to its
/// [`Path::chain`] (definitions shared with others are copied first).
fn bind(config: &mut MetricsConfig) -> Wanted {
    fn each(config: &mut MetricsConfig, mut f: impl FnMut(&mut Path)) {
        for d in &mut config.metrics {
            let d = Arc::make_mut(d);
            d.labels.iter_mut().for_each(|l| f(&mut l.path));
            d.value.iter_mut().for_each(&mut f);
            d.filter.paths_mut().for_each(&mut f);
        }
        if let SampleTime::Field(p) = &mut config.sample_time {
            f(p);
        }
    }
    let mut w = Wanted::new();
    each(config, |p| {
        if p.root == Root::Value {
            w.add(&p.segments);
        }
    });
    each(config, |p| {
        if p.root == Root::Value {
            p.chain = w.chain(&p.segments);
        }
    });
    w
}

fn lock(store: &Shared) -> Result<MutexGuard<'_, Store>, SinkError> {
    store
        .lock()
        .map_err(|_| SinkError::permanent("metrics store lock poisoned"))
}

async fn scrape(State(store): State<Shared>, headers: HeaderMap) -> Response {
    let om = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let text = match store.lock() {
        Ok(s) => render(&s, om),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let ct = if om {
        OPENMETRICS_TEXT
    } else {
        PROMETHEUS_TEXT
    };
    ([(header::CONTENT_TYPE, ct)], text).into_response()
}

impl MetricsSink {
    /// Starts the sink and its expiry timer (the listener is bound by the first `open`, or by
    /// [`MetricsSink::listen`]). Needs a tokio runtime.
    pub fn start(
        mut config: MetricsConfig,
        context: SinkContext,
    ) -> Result<MetricsSink, SinkError> {
        let wanted = bind(&mut config);
        let checkpoints = match &config.checkpoint {
            Some(c) => Some(Checkpoints::new(c.clone(), context.connector())?),
            None => None,
        };
        let store: Shared = Arc::new(Mutex::new(
            Store::new(&config.metrics, config.idle).with_time(config.sample_time.clone()),
        ));
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| SinkError::permanent("the metrics sink needs a tokio runtime"))?;
        let mut tasks = Vec::new();
        let expiring = Arc::clone(&store);
        let interval = config.interval;
        tasks.push(
            handle
                .spawn(async move {
                    let mut tick = tokio::time::interval(interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        if let Ok(mut s) = expiring.lock() {
                            s.expire();
                        }
                    }
                })
                .abort_handle(),
        );
        Ok(MetricsSink {
            store,
            defs: config.metrics.clone(),
            checkpoints,
            remote: match &config.remote_write {
                Some((url, batch, timeout)) => Some(RemoteWrite::new(url, *batch, *timeout)?),
                None => None,
            },
            stamped: config.sample_time != SampleTime::Processing,
            generations: Mutex::default(),
            topic_ready: tokio::sync::OnceCell::new(),
            listen: config.listen.clone(),
            listener: OnceLock::new(),
            tasks: Mutex::new(tasks),
            wanted,
        })
    }

    /// Binds the listener, once: on the first `open`, not when the sink is built, so a sink built only to
    /// check its config or health (`ursa validate --connect`) does not take the port of a running one.
    pub fn listen(&self) -> Result<Option<std::net::SocketAddr>, SinkError> {
        if let Some(addr) = self.listener.get() {
            return Ok(*addr);
        }
        let Some(listen) = &self.listen else {
            let _ = self.listener.set(None);
            return Ok(None);
        };
        let mut tasks = self
            .tasks
            .lock()
            .map_err(|_| SinkError::permanent("metrics sink lock poisoned"))?;
        if let Some(addr) = self.listener.get() {
            return Ok(*addr);
        }
        let std = std::net::TcpListener::bind(listen).map_err(|e| {
            SinkError::retriable(format!("metrics.listen: cannot listen on {listen}: {e}"))
        })?;
        std.set_nonblocking(true)
            .map_err(|e| SinkError::permanent(format!("metrics.listen: {e}")))?;
        let addr = std.local_addr().ok();
        let app = Router::new()
            .route("/metrics", get(scrape))
            .with_state(Arc::clone(&self.store));
        let listener = tokio::net::TcpListener::from_std(std)
            .map_err(|e| SinkError::permanent(format!("metrics.listen: {e}")))?;
        tasks.push(
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            })
            .abort_handle(),
        );
        let _ = self.listener.set(addr);
        Ok(addr)
    }

    async fn push(&self) -> Result<(), SinkError> {
        let Some(rw) = &self.remote else {
            return Ok(());
        };
        let all = samples(&render_stamped(&*lock(&self.store)?, false, self.stamped));
        rw.push(&all).await
    }

    /// Where the listener listens, once it does.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.get().copied().flatten()
    }

    fn abort_tasks(&self) {
        if let Ok(tasks) = self.tasks.lock() {
            for t in tasks.iter() {
                t.abort();
            }
        }
    }

    /// The exposition now (OpenMetrics when `openmetrics`).
    pub fn render(&self, openmetrics: bool) -> Result<String, SinkError> {
        Ok(render(&*lock(&self.store)?, openmetrics))
    }
}

impl Drop for MetricsSink {
    fn drop(&mut self) {
        self.abort_tasks();
    }
}

impl Sink for MetricsSink {
    /// Values are decoded by the sink, only as far as the definitions read them (see [`Wanted`]).
    fn conversion(&self) -> Conversion {
        Conversion::OnDemand
    }

    fn put<'a>(
        &'a self,
        records: &'a [SinkRecord],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, SinkError>> {
        Box::pin(async move {
            // No await while the store is locked: a dropped call leaves whole records applied or not.
            let mut store = lock(&self.store)?;
            let now = store.now();
            let mut parts = Parts::new();
            let mut outcomes = Vec::with_capacity(records.len());
            for r in records {
                // For Avro, only the parts the definitions want; otherwise the JSON form.
                let value = match r.value.parts_wanted(&self.wanted, &mut parts) {
                    Some(decoded) => decoded.map(|()| View::Parts(&parts)),
                    None => r.value_json().map(View::Json),
                };
                outcomes.push(match value {
                    Ok(v) => {
                        store.apply_at(r, Some(v), now);
                        Outcome::Delivered
                    }
                    Err(e) => {
                        store.apply_at(r, None, now);
                        Outcome::Permanent {
                            reason: e.to_string(),
                            detail: Some(e.class_name().to_owned()),
                        }
                    }
                });
            }
            Ok(outcomes)
        })
    }

    fn open<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
        generation: u64,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.listen()?;
            let mut restored = crate::checkpoint::Loaded::default();
            if let Some(cp) = &self.checkpoints {
                self.topic_ready
                    .get_or_try_init(|| cp.ensure_topic())
                    .await?;
                restored = cp.load(partitions).await?;
                // Older generations' checkpoints are history now (a zombie's late write among them).
                cp.forget(&restored.stale).await?;
            }
            if let Ok(mut g) = self.generations.lock() {
                for tp in partitions {
                    g.insert(tp.clone(), generation);
                }
            }
            let mut store = lock(&self.store)?;
            for tp in partitions {
                let part = restored.latest.get(tp).and_then(|v| decode(&self.defs, v));
                store.open(tp.clone(), part);
            }
            Ok(())
        })
    }

    fn starting_offsets<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<Offsets, SinkError>> {
        Box::pin(async move {
            let mut out = Offsets::new();
            if self.checkpoints.is_some() {
                let store = lock(&self.store)?;
                for tp in partitions {
                    if let Some(next) = store.part(tp).and_then(|p| p.saved) {
                        out.insert(tp.clone(), next);
                    }
                }
            }
            Ok(out)
        })
    }

    fn flush<'a>(&'a self, done: &'a Offsets) -> BoxFuture<'a, Result<Offsets, SinkError>> {
        Box::pin(async move {
            let Some(cp) = &self.checkpoints else {
                self.push().await?;
                return Ok(done.clone());
            };
            // Snapshot under the lock, write without it; a snapshot counts as saved only if the partition
            // did not change meanwhile (its version), so a dropped or failed flush leaves it dirty.
            let snapshots: Vec<(TopicPartition, u64, i64, String)> = {
                let store = lock(&self.store)?;
                let mut snapshots = Vec::new();
                for (tp, p) in store.parts().filter(|(_, p)| p.dirty) {
                    let Some(next) = p.next else { continue };
                    let Some(text) = encode(&store, tp, next) else {
                        continue;
                    };
                    let text = text.map_err(|e| {
                        SinkError::permanent(format!("metrics checkpoint of {tp}: {e}"))
                    })?;
                    snapshots.push((tp.clone(), p.version, next, text));
                }
                snapshots
            };
            for (tp, _, _, v) in &snapshots {
                let generation = self
                    .generations
                    .lock()
                    .ok()
                    .and_then(|g| g.get(tp).copied())
                    .unwrap_or(0);
                cp.save(tp, generation, v).await?;
            }
            // With push, nothing is committed before the receiver acknowledged (the checkpoint written
            // above holds the counts, so a crash now loses nothing either).
            self.push().await?;
            let mut store = lock(&self.store)?;
            for (tp, version, next, _) in snapshots {
                if let Some(p) = store.part_mut(&tp) {
                    p.saved = Some(next);
                    if p.version == version {
                        p.dirty = false;
                    }
                }
            }
            Ok(done
                .iter()
                .filter_map(|(tp, d)| {
                    let saved = store.part(tp).and_then(|p| p.saved)?;
                    Some((tp.clone(), saved.min(*d)))
                })
                .collect())
        })
    }

    fn close<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            if let Ok(mut g) = self.generations.lock() {
                for tp in partitions {
                    g.remove(tp);
                }
            }
            let mut store = lock(&self.store)?;
            for tp in partitions {
                store.close(tp);
            }
            Ok(())
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move { lock(&self.store).map(|_| ()) })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.abort_tasks() })
    }
}
