//! The shipped Grafana dashboard against the shipped definitions: every metric a dashboard query names
//! (other than the runtime's own `ursa_*` families, checked against a running worker in
//! `runtime/tests/metrics_run.rs`) is in the exposition of the shipped definitions fed one event per topic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use ursa_connect::testing::json_record;
use ursa_connector_metrics::exposition::render;
use ursa_connector_metrics::parse_definitions;
use ursa_connector_metrics::series::Store;

/// The metric names in the queries of a Grafana dashboard (tokens followed by a selector, a range or
/// a closing parenthesis, once `by (…)` groups and legend templates are removed).
pub fn dashboard_metrics(dashboard: &serde_json::Value) -> BTreeSet<String> {
    let by = regex::Regex::new(r"\b(by|without)\s*\([^)]*\)").unwrap();
    let name = regex::Regex::new(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[\[{)]").unwrap();
    let mut out = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = by.replace_all(t["expr"].as_str().unwrap(), "");
            for c in name.captures_iter(&expr) {
                out.insert(c[1].to_owned());
            }
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn every_dashboard_query_names_an_exposed_metric() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{dir}/definitions/analytics.toml")).unwrap();
    let defs = parse_definitions("analytics.toml", &text, 10_000, 1_000).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/dashboards/ursa-metrics.json")).unwrap(),
    )
    .unwrap();
    let events = [
        (
            "conversation.started",
            json!({"device": {"firmware_version": "1.2"}, "trigger": "VOICE", "persona": "Bear"}),
        ),
        (
            "child.safety-violation",
            json!({"severity": "HIGH", "category": "SELF_HARM", "action_taken": "BLOCKED", "guardian_notified": true, "confidence": 0.93}),
        ),
        (
            "response.generated",
            json!({"model_name": "teddy-7b", "latency_ms": 420, "completion_tokens": 31, "safety_filtered": true, "safety_filter_category": null}),
        ),
        (
            "emotion.detected",
            json!({"emotion": "HAPPY", "source": "VOICE", "confidence": 0.8}),
        ),
        (
            "analytics.engagement-metrics",
            json!({"engagement_score": 0.6, "trend": "UP"}),
        ),
        (
            "analytics.usage-stats",
            json!({"message_count": 12, "talk_time_ms": 90000}),
        ),
    ];
    let mut store = Store::new(&defs, Duration::from_secs(60));
    for (i, (topic, value)) in events.into_iter().enumerate() {
        let r = json_record(topic, 0, i as i64, value);
        let v = r.value_json().unwrap().clone();
        store.apply(&r, Some(&v));
    }
    let exposition = render(&store, false);
    let exposed: BTreeSet<&str> = exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let names = dashboard_metrics(&dashboard);
    assert!(names.len() > 15, "{names:?}");
    for n in [
        "response_latency_seconds_bucket",
        "safety_violations_total",
        "ursa_task_state",
    ] {
        assert!(names.contains(n), "{n} not found in the queries: {names:?}");
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !n.starts_with("ursa_") || n.starts_with("ursa_metrics_"))
        .filter(|n| !exposed.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "not exposed: {missing:?}\n{exposition}");
}
