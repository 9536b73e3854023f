//! `ursa dlq replay`: re-publishes dead-lettered records to their original topic (or another), with the
//! original key, value, headers (the error context headers removed) and timestamp, selected by connector, offset
//! or failure-time range, and header filters.
//!
//! A failure-time range is found with ListOffsets by timestamp (DLQ records are stamped with their failure time,
//! see [`super::dlq`]), so only the records from the first one at or after the start are read; records in the
//! range are still checked against their failure-time header.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// A bound of the replayed range: an offset, or a failure time (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A DLQ offset (per partition).
    Offset(i64),
    /// A failure time (`__ursa.errors.last.failure.ms`, else the record timestamp).
    TimeMs(i64),
}

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only records dead-lettered by this connector.
    pub connector: Option<String>,
    /// Inclusive lower bound.
    pub from: Option<Bound>,
    /// Exclusive upper bound.
    pub to: Option<Bound>,
    /// Header values that must match (`__connect.errors.stage=VALUE_CONVERTER`, …).
    pub filters: Vec<(String, String)>,
    /// Publish here instead of each record's original topic.
    pub target_topic: Option<String>,
}

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Records read from the DLQ.
    pub read: usize,
    /// Records re-published, per destination topic.
    pub published: BTreeMap<String, usize>,
}

fn header<'a>(m: &'a impl Message, key: &str) -> Option<&'a [u8]> {
    m.headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
}

fn is_context(key: &str) -> bool {
    key.starts_with("__connect.errors.") || key.starts_with("__ursa.errors.")
}

/// Reads the DLQ topic from its beginning to its current end and re-publishes the selected records (or only
/// counts them with `dry_run`).
pub async fn replay(
    kafka: &ClientConfig,
    dlq_topic: &str,
    sel: &Selection,
    dry_run: bool,
) -> Result<Report, String> {
    let consumer: BaseConsumer = kafka
        .clone()
        .set(
            "group.id",
            format!("ursa-dlq-replay-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| e.to_string())?;
    let md = tokio::task::block_in_place(|| {
        consumer.fetch_metadata(Some(dlq_topic), Duration::from_secs(10))
    })
    .map_err(|e| e.to_string())?;
    let topic = md
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .ok_or_else(|| format!("DLQ topic {dlq_topic} does not exist"))?;
    let partitions: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    let by_time = |t: i64| -> Result<BTreeMap<i32, Option<i64>>, String> {
        let mut q = TopicPartitionList::new();
        for p in &partitions {
            q.add_partition_offset(dlq_topic, *p, Offset::Offset(t))
                .map_err(|e| e.to_string())?;
        }
        let found =
            tokio::task::block_in_place(|| consumer.offsets_for_times(q, Duration::from_secs(10)))
                .map_err(|e| format!("ListOffsets by timestamp on {dlq_topic}: {e}"))?;
        Ok(found
            .elements()
            .iter()
            .map(|e| {
                let o = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None, // no record at or after t
                };
                (e.partition(), o)
            })
            .collect())
    };
    let starts_at = match sel.from {
        Some(Bound::TimeMs(t)) => Some(by_time(t)?),
        _ => None,
    };
    let ends_at = match sel.to {
        Some(Bound::TimeMs(t)) => Some(by_time(t)?),
        _ => None,
    };
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in topic.partitions() {
        let (low, mut high) = tokio::task::block_in_place(|| {
            consumer.fetch_watermarks(dlq_topic, p.id(), Duration::from_secs(10))
        })
        .map_err(|e| e.to_string())?;
        if let Some(Some(end)) = ends_at.as_ref().and_then(|m| m.get(&p.id())) {
            high = high.min(*end);
        }
        let start = match (sel.from, &starts_at) {
            (Some(Bound::Offset(o)), _) => o.max(low),
            (_, Some(found)) => match found.get(&p.id()) {
                Some(Some(o)) => (*o).max(low),
                _ => high, // nothing at or after the start time
            },
            _ => low,
        };
        if start < high {
            ends.insert(p.id(), high);
            tpl.add_partition_offset(dlq_topic, p.id(), Offset::Offset(start))
                .map_err(|e| e.to_string())?;
        }
    }
    let producer: FutureProducer = kafka
        .clone()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .map_err(|e| e.to_string())?;
    let mut report = Report::default();
    if tpl.count() == 0 {
        return Ok(report);
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut remaining = ends.clone();
    while !remaining.is_empty() {
        let Some(m) = tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(500)))
        else {
            continue;
        };
        let m = m.map_err(|e| e.to_string())?;
        let (p, o) = (m.partition(), m.offset());
        if let Some(end) = remaining.get(&p)
            && o + 1 >= *end
        {
            remaining.remove(&p);
        }
        if ends.get(&p).is_some_and(|end| o >= *end) {
            continue;
        }
        report.read += 1;
        if let Some(Bound::Offset(to)) = sel.to
            && o >= to
        {
            continue;
        }
        let failed_at = header(&m, "__ursa.errors.last.failure.ms")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok())
            .or_else(|| m.timestamp().to_millis());
        if let (Some(Bound::TimeMs(from)), Some(t)) = (sel.from, failed_at)
            && t < from
        {
            continue;
        }
        if let (Some(Bound::TimeMs(to)), Some(t)) = (sel.to, failed_at)
            && t >= to
        {
            continue;
        }
        if let Some(c) = &sel.connector
            && header(&m, "__connect.errors.connector.name") != Some(c.as_bytes())
        {
            continue;
        }
        if !sel
            .filters
            .iter()
            .all(|(k, v)| header(&m, k) == Some(v.as_bytes()))
        {
            continue;
        }
        let destination = match (&sel.target_topic, header(&m, "__connect.errors.topic")) {
            (Some(t), _) => t.clone(),
            (None, Some(t)) => String::from_utf8_lossy(t).into_owned(),
            (None, None) => {
                return Err(format!(
                    "record {p}@{o} has no __connect.errors.topic header; use --target-topic"
                ));
            }
        };
        if !dry_run {
            let mut headers = OwnedHeaders::new();
            if let Some(hs) = m.headers() {
                for h in hs.iter().filter(|h| !is_context(h.key)) {
                    headers = headers.insert(Header {
                        key: h.key,
                        value: h.value,
                    });
                }
            }
            let mut r: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&destination).headers(headers);
            if let Some(k) = m.key() {
                r = r.key(k);
            }
            if let Some(v) = m.payload() {
                r = r.payload(v);
            }
            if let Some(ts) = header(&m, super::dlq::ORIGINAL_TIMESTAMP)
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok())
            {
                r = r.timestamp(ts);
            }
            producer
                .send(r, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| format!("publishing to {destination}: {e}"))?;
        }
        *report.published.entry(destination).or_default() += 1;
    }
    Ok(report)
}
