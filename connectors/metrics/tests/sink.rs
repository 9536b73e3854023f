//! The metrics sink through the SDK's harness and its own API: counting, labels, the per-metric cardinality
//! guard, idle expiry on a timer while nothing scrapes, and definition errors with positions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::json;
use ursa_connect::testing::{Harness, advance, json_record};
use ursa_connect::{Outcome, SinkContext, SinkPlugin};
use ursa_connector_metrics::{MetricsPlugin, MetricsSink, parse_definitions};

const DEFS: &str = r#"
[[metric]]
name = "conversations_started_total"
help = "Conversations started"
type = "counter"
filter = [{ path = "kind", equals = "started" }]
labels = { model = { path = "device.model", normalise = ["trim", "snake"] }, band = "child.age_band" }
label_order = ["model", "band"]
max_series = 3
max_label_values = 10

[[metric]]
name = "response_latency_seconds"
help = "Response latency"
unit = "seconds"
type = "histogram"
value = "latency_ms"
scale = 0.001
buckets = [0.1, 0.5, 1.0]

[[metric]]
name = "tokens"
help = "Tokens used"
type = "gauge"
mode = "sum"
value = "tokens"
"#;

fn parsed(extra: &[(&str, &str)]) -> ursa_connect::Parsed {
    let mut raw: std::collections::BTreeMap<String, String> = [
        ("metrics.definitions", DEFS),
        ("metrics.listen", ""),
        ("metrics.expiry.idle", "10s"),
        ("metrics.expiry.interval", "1s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        raw.insert((*k).to_owned(), (*v).to_owned());
    }
    ursa_connect::config::parse(&MetricsPlugin.keys(), &[], &raw).unwrap()
}

fn event(i: i64, model: &str, band: &str) -> ursa_connect::SinkRecord {
    json_record(
        "conversations",
        0,
        i,
        json!({"kind": "started", "device": {"model": model}, "child": {"age_band": band},
               "latency_ms": 120 + i * 100, "tokens": 10}),
    )
}

#[tokio::test(start_paused = true)]
async fn counts_folds_and_expires() {
    let cfg = MetricsPlugin::config(&parsed(&[])).unwrap();
    let sink = MetricsSink::start(cfg, SinkContext::detached("m")).unwrap();
    use ursa_connect::Sink;
    let records: Vec<_> = (0..6)
        .map(|i| {
            event(
                i,
                [" TB-2 Pro", "tb2", "TB-2 pro", "x1", "x2", "x3"][i as usize],
                "5-7",
            )
        })
        .chain([json_record("conversations", 0, 6, json!({"kind": "ended"}))])
        .collect();
    let out = sink.put(&records).await.unwrap();
    assert!(out.iter().all(|o| *o == Outcome::Delivered));
    let text = sink.render(false).unwrap();
    assert!(
        text.contains("conversations_started_total{model=\"tb_2_pro\",band=\"5-7\"} 2\n"),
        "{text}"
    );
    assert!(text.contains("conversations_started_total{model=\"tb2\",band=\"5-7\"} 1\n"));
    // max_series = 3: x2 and x3 are folded (x1 took the third slot).
    assert!(
        text.contains(
            "conversations_started_total{model=\"__overflow__\",band=\"__overflow__\"} 2\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("ursa_metrics_overflow_folded_total{metric=\"conversations_started\"} 2\n")
    );
    // The other metrics' guards are their own: the latency histogram took every record.
    assert!(
        text.contains("response_latency_seconds_count 6\n"),
        "{text}"
    );
    assert!(
        text.contains("response_latency_seconds_bucket{le=\"0.5\"} 4\n"),
        "{text}"
    );
    assert!(text.contains("tokens 60\n"), "{text}");
    assert!(text.contains("ursa_metrics_invalid_values_total{metric=\"tokens\"} 1\n"));
    let om = sink.render(true).unwrap();
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# UNIT response_latency_seconds seconds\n"));
    assert!(om.contains("# TYPE conversations_started counter\n"));

    // Idle expiry runs on its timer, with nothing scraping.
    advance(Duration::from_secs(5)).await;
    sink.put(&[event(7, "tb2", "5-7")]).await.unwrap();
    advance(Duration::from_secs(7)).await;
    tokio::task::yield_now().await;
    advance(Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    let text = sink.render(false).unwrap();
    assert!(!text.contains("model=\"tb_2_pro\""), "{text}");
    assert!(!text.contains("model=\"__overflow__\""), "{text}");
    assert!(text.contains("conversations_started_total{model=\"tb2\",band=\"5-7\"} 2\n"));
    assert!(
        text.contains("ursa_metrics_series{metric=\"conversations_started\"} 1\n"),
        "{text}"
    );
    // Expired slots are free again.
    sink.put(&[event(8, "x3", "5-7")]).await.unwrap();
    let text = sink.render(false).unwrap();
    assert!(text.contains("{model=\"x3\",band=\"5-7\"} 1\n"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn runs_under_the_harness() {
    let mut h = Harness::build(
        &MetricsPlugin,
        &[("metrics.definitions", DEFS), ("metrics.listen", "")],
    )
    .unwrap();
    h.open(&[("conversations", 0)]).await.unwrap();
    let out = h
        .put(&[event(0, "a", "b"), event(1, "a", "b")])
        .await
        .unwrap();
    assert_eq!(out, vec![Outcome::Delivered, Outcome::Delivered]);
    let flushed = h.flush().await.unwrap();
    assert_eq!(flushed.values().copied().collect::<Vec<_>>(), vec![2]);
    h.close(&[("conversations", 0)]).await.unwrap();
    h.stop().await.unwrap();
}

#[test]
fn definition_errors_have_positions() {
    let bad = "[[metric]]\nname = \"a\"\ntype = \"summary\"\n\n[[metric]]\nname = \"b_seconds\"\nunit = \"bytes\"\ntype = \"histogram\"\nvalue = \"x\"\nbuckets = [2.0, 1.0]\n";
    let e = parse_definitions("defs.toml", bad, 10, 10).unwrap_err();
    let text: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|t| t.starts_with("defs.toml:3:8: type \"summary\"")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with("defs.toml:7:8: unit \"bytes\"")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with("defs.toml:10:11: buckets")),
        "{text:?}"
    );
    let e = parse_definitions(
        "d",
        "[[metric]]\nname = \"a\"\ntype = \"counter\"\nlabel = 3\n",
        1,
        1,
    )
    .unwrap_err();
    assert_eq!(e[0].line, 4, "{e:?}");
    let errors = MetricsPlugin.validate(&parsed(&[("metrics.definitions", "x = ")]));
    assert!(
        errors["metrics.definitions"][0].starts_with("metrics.definitions:1:"),
        "{errors:?}"
    );
}

#[test]
fn shipped_definitions_are_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/definitions/analytics.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let defs = parse_definitions(path, &text, 10_000, 1_000).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert!(defs.iter().any(|d| d.name == "safety_violations"));
    assert!(defs.iter().any(|d| d.name == "response_latency_seconds"));
}

#[tokio::test(start_paused = true)]
async fn checkpointed_contributions_restore_skip_replays_and_leave_on_close() {
    use ursa_connect::TopicPartition;
    use ursa_connector_metrics::checkpoint::{decode, encode};
    use ursa_connector_metrics::series::Store;
    let defs = parse_definitions("d", DEFS, 10, 10).unwrap();
    let tp0 = TopicPartition::new("conversations", 0);
    let tp1 = TopicPartition::new("conversations", 1);
    let mut a = Store::new(&defs, Duration::from_secs(3600));
    a.open(tp0.clone(), None);
    a.open(tp1.clone(), None);
    let on = |store: &mut Store, p: i32, i: i64| {
        let mut r = event(i, "tb2", "5-7");
        r.partition = p;
        let v = r.value_json().unwrap().clone();
        store.apply(&r, Some(&v))
    };
    for i in 0..5 {
        assert!(on(&mut a, 0, i));
        assert!(on(&mut a, 1, i));
    }
    assert!(
        !on(&mut a, 0, 3),
        "a redelivered record is not counted again"
    );
    let total = |s: &Store| match &s.metrics[0].series.values().next().unwrap().value {
        ursa_connector_metrics::series::SeriesValue::Scalar(v) => *v,
        _ => panic!(),
    };
    assert_eq!(total(&a), 10.0);
    // Partition 0's checkpoint restored elsewhere: its 5 counts move, its offset resumes after them.
    let p0 = encode(&a, &tp0, 5).unwrap().unwrap();
    let p0 = serde_json::from_str(&p0).unwrap();
    a.close(&tp0);
    assert_eq!(total(&a), 5.0);
    let mut b = Store::new(&defs, Duration::from_secs(3600));
    b.open(tp0.clone(), decode(&defs, &p0));
    assert_eq!(total(&b), 5.0);
    assert_eq!(b.part(&tp0).unwrap().saved, Some(5));
    assert!(!on(&mut b, 0, 4));
    assert!(on(&mut b, 0, 5));
    assert_eq!(total(&b), 6.0);
}

/// Every series' exposed sample values of a store, by series key: a counter's total; a gauge's value; a
/// histogram's count and sum.
fn totals(
    store: &ursa_connector_metrics::series::Store,
) -> std::collections::BTreeMap<String, Vec<f64>> {
    use ursa_connector_metrics::series::SeriesValue;
    let mut out = std::collections::BTreeMap::new();
    for m in &store.metrics {
        for (k, s) in m
            .series
            .iter()
            .map(|(k, s)| (k.to_string(), s))
            .chain(m.overflow.iter().map(|s| ("__overflow__".to_owned(), s)))
        {
            let v = match &s.value {
                SeriesValue::Scalar(v) => vec![*v],
                SeriesValue::Hist(h) => vec![h.count as f64, h.sum],
            };
            // Sums in another order differ in the last bits.
            let v: Vec<f64> = v.iter().map(|x| (x * 1e6).round() / 1e6).collect();
            // Series left with nothing (their partitions closed) are the same as absent ones.
            if v.iter().any(|x| *x != 0.0) {
                out.insert(format!("{}/{k}", m.def.name), v);
            }
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn contributions_of_several_partitions_to_one_series_move_exactly() {
    use ursa_connect::TopicPartition;
    use ursa_connector_metrics::checkpoint::{decode, encode};
    use ursa_connector_metrics::series::Store;
    // Room for every label set: which ones the guard folds depends on the order they come in.
    let defs = parse_definitions(
        "d",
        &DEFS.replace("max_series = 3", "max_series = 100"),
        10,
        10,
    )
    .unwrap();
    let tps: Vec<TopicPartition> = (0..3)
        .map(|p| TopicPartition::new("conversations", p))
        .collect();
    let mut next = [0i64; 3];
    let feed = |store: &mut Store, p: usize, n: i64, next: &mut [i64; 3]| {
        for _ in 0..n {
            let i = next[p];
            let models = ["tb1", "tb2", "tb3", "tb4"];
            let mut r = event(i, models[(i as usize + p) % 4], ["5-7", "8-10"][p % 2]);
            r.partition = p as i32;
            r.offset = i;
            let v = r.value_json().unwrap().clone();
            assert!(store.apply(&r, Some(&v)));
            next[p] += 1;
        }
    };
    // Each partition alone, in a store of its own: what its contributions must add up to.
    let alone = |p: usize, n: i64| {
        let mut s = Store::new(&defs, Duration::from_secs(3600));
        let mut next = [0i64; 3];
        feed(&mut s, p, n, &mut next);
        totals(&s)
    };
    let sum = |parts: &[&std::collections::BTreeMap<String, Vec<f64>>]| {
        let mut out: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        for t in parts {
            for (k, v) in *t {
                let e = out.entry(k.clone()).or_insert_with(|| vec![0.0; v.len()]);
                for (a, b) in e.iter_mut().zip(v) {
                    *a = ((*a + b) * 1e6).round() / 1e6;
                }
            }
        }
        out
    };
    let mut a = Store::new(&defs, Duration::from_secs(3600));
    for tp in &tps {
        a.open(tp.clone(), None);
    }
    // Interleaved, so series are shared between partitions.
    for _ in 0..3 {
        for p in 0..3 {
            feed(&mut a, p, 2, &mut next);
        }
    }
    let only = [alone(0, 6), alone(1, 6), alone(2, 6)];
    assert_eq!(totals(&a), sum(&[&only[0], &only[1], &only[2]]));
    // Each partition's checkpoint holds exactly its own share.
    let saved: Vec<serde_json::Value> = tps
        .iter()
        .map(|tp| serde_json::from_str(&encode(&a, tp, 6).unwrap().unwrap()).unwrap())
        .collect();
    for (p, tp) in tps.iter().enumerate() {
        let mut b = Store::new(&defs, Duration::from_secs(3600));
        b.open(tp.clone(), decode(&defs, &saved[p]));
        assert_eq!(totals(&b), only[p], "partition {p} restored alone");
    }
    // Partitions leave one by one; what stays is the others' share, exactly.
    a.close(&tps[1]);
    assert_eq!(totals(&a), sum(&[&only[0], &only[2]]));
    a.close(&tps[0]);
    assert_eq!(totals(&a), only[2]);
    // The one left counts on, and its checkpoint still holds all of its share.
    feed(&mut a, 2, 4, &mut next);
    let two = alone(2, 10);
    assert_eq!(totals(&a), two);
    let mut b = Store::new(&defs, Duration::from_secs(3600));
    let cp = serde_json::from_str(&encode(&a, &tps[2], 10).unwrap().unwrap()).unwrap();
    b.open(tps[2].clone(), decode(&defs, &cp));
    assert_eq!(totals(&b), two);
    // A closed partition comes back from its checkpoint, and its replayed records are not counted again.
    a.open(tps[1].clone(), decode(&defs, &saved[1]));
    assert_eq!(totals(&a), sum(&[&only[1], &two]));
    let mut r = event(3, "tb1", "8-10");
    r.partition = 1;
    let v = r.value_json().unwrap().clone();
    assert!(
        !a.apply(&r, Some(&v)),
        "offset 3 is before the checkpoint's 6"
    );
    assert!(
        encode(&a, &tps[0], 6).is_none(),
        "a closed partition has no checkpoint"
    );
}
