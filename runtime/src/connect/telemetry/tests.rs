//! Tests of [`super::Telemetry`]: counts in the rendered exposition, caps, removal, states and logs.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Stage, Telemetry, init_logging};
use crate::connect::config::worker::LogFormat;

fn has(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[track_caller]
fn assert_has(text: &str, line: &str) {
    assert!(has(text, line), "missing `{line}` in:\n{text}");
}

#[test]
fn every_event_counts() {
    let t = Telemetry::new();
    t.record_read("c", "orders", 10);
    t.record_read("c", "orders", 20);
    t.delivered("c", "orders", 2, Duration::from_millis(250));
    t.failed("c", "orders", Stage::ValueConverter, true, "bad magic byte");
    t.failed("c", "orders", Stage::TaskPut, false, "timeout");
    t.failed("c", "orders", Stage::TaskPut, false, "timeout");
    t.retried("c", "orders", 3);
    t.dead_lettered("c", "orders");
    t.skipped("c", "orders");
    t.batch("c", 2);
    t.end_to_end("c", &[Duration::from_secs(3)]);
    t.consumer_lag("c", "orders", 4, 17);
    t.consumer_lag("c", "orders", 4, 12);
    t.task_restarted("c");
    t.committed("c", 3);
    t.committed("c", 1);
    let text = t.render();
    for line in [
        "# TYPE ursa_records_read counter",
        r#"ursa_records_read_total{connector="c",topic="orders"} 2"#,
        r#"ursa_bytes_read_total{connector="c",topic="orders"} 30"#,
        r#"ursa_records_delivered_total{connector="c",topic="orders"} 2"#,
        r#"ursa_records_failed_total{connector="c",topic="orders",stage="VALUE_CONVERTER",kind="permanent"} 1"#,
        r#"ursa_records_failed_total{connector="c",topic="orders",stage="TASK_PUT",kind="retriable"} 2"#,
        r#"ursa_records_retried_total{connector="c",topic="orders"} 3"#,
        r#"ursa_records_dead_lettered_total{connector="c",topic="orders"} 1"#,
        r#"ursa_records_skipped_total{connector="c",topic="orders"} 1"#,
        "# TYPE ursa_sink_latency_seconds histogram",
        "# UNIT ursa_sink_latency_seconds seconds",
        r#"ursa_sink_latency_seconds_sum{connector="c"} 0.25"#,
        r#"ursa_sink_latency_seconds_count{connector="c"} 1"#,
        r#"ursa_sink_latency_seconds_bucket{le="0.256",connector="c"} 1"#,
        r#"ursa_sink_latency_seconds_bucket{le="0.128",connector="c"} 0"#,
        r#"ursa_batch_size_sum{connector="c"} 2.0"#,
        r#"ursa_batch_size_count{connector="c"} 1"#,
        r#"ursa_end_to_end_lag_seconds_sum{connector="c"} 3.0"#,
        r#"ursa_end_to_end_lag_seconds_count{connector="c"} 1"#,
        "# TYPE ursa_consumer_lag gauge",
        r#"ursa_consumer_lag{connector="c",topic="orders",partition="4"} 12"#,
        r#"ursa_task_restarts_total{connector="c"} 1"#,
        r#"ursa_offset_commits_total{connector="c"} 2"#,
    ] {
        assert_has(&text, line);
    }
    // Untouched failure slots are not rendered; the exposition is complete.
    assert!(!text.contains(r#"stage="KEY_CONVERTER""#), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn resumes_count_and_redelivery_counts_only_what_the_sink_tells() {
    let t = Telemetry::new();
    // The sink keeps no offsets: the group's commit is the resume point, re-delivery unknown.
    t.resumed("c", "orders-0", Some(100), Some(100), None);
    // Nothing committed yet.
    t.resumed("c", "orders-1", None, None, None);
    // The sink had acknowledged 130 but the partition resumed at 100: 30 records again.
    t.resumed("c", "orders-2", Some(100), Some(100), Some(130));
    // Resuming past what the sink acknowledged re-delivers nothing.
    t.resumed("c", "orders-3", Some(50), Some(40), Some(50));
    let text = t.render();
    assert_has(&text, r#"ursa_partition_resumes_total{connector="c"} 4"#);
    assert_has(&text, r#"ursa_redelivered_records_total{connector="c"} 30"#);
    assert!(t.remove_connector("c"));
    let text = t.render();
    assert!(!text.contains("ursa_partition_resumes_total{"), "{text}");
}

#[test]
fn clones_share_one_registry() {
    let t = Telemetry::default();
    let u = t.clone();
    t.record_read("c", "a", 1);
    u.record_read("c", "a", 1);
    assert_has(
        &u.render(),
        r#"ursa_records_read_total{connector="c",topic="a"} 2"#,
    );
}

#[test]
fn topics_past_the_cap_fold_into_other() {
    let t = Telemetry::with_series_cap(3);
    for topic in ["t0", "t1", "t2", "t3", "t4", "t5"] {
        t.record_read("c", topic, 1);
    }
    t.record_read("c", "t0", 1);
    t.record_read("c", "t4", 1);
    t.delivered("c", "t5", 4, Duration::from_millis(1));
    t.consumer_lag("c", "t4", 0, 9);
    let text = t.render();
    assert_has(
        &text,
        r#"ursa_records_read_total{connector="c",topic="t0"} 2"#,
    );
    assert_has(
        &text,
        r#"ursa_records_read_total{connector="c",topic="t2"} 1"#,
    );
    assert_has(
        &text,
        r#"ursa_records_read_total{connector="c",topic="_other"} 4"#,
    );
    assert_has(
        &text,
        r#"ursa_records_delivered_total{connector="c",topic="_other"} 4"#,
    );
    for folded in ["t3", "t4", "t5"] {
        assert!(!text.contains(&format!(r#"topic="{folded}""#)), "{text}");
    }
    // A gauge cannot be folded: lag of a folded topic is dropped.
    assert!(!text.contains("ursa_consumer_lag{"), "{text}");
}

#[test]
fn failures_and_lags_past_the_cap() {
    let t = Telemetry::with_series_cap(2);
    t.failed("c", "a", Stage::KeyConverter, true, "x");
    t.failed("c", "a", Stage::ValueConverter, true, "x");
    t.failed("c", "a", Stage::TaskPut, true, "x");
    t.failed("c", "a", Stage::TaskPut, true, "x");
    let text = t.render();
    assert_has(
        &text,
        r#"ursa_records_failed_total{connector="c",topic="a",stage="KEY_CONVERTER",kind="permanent"} 1"#,
    );
    assert_has(
        &text,
        r#"ursa_records_failed_total{connector="c",topic="_other",stage="TASK_PUT",kind="permanent"} 2"#,
    );
    assert!(!text.contains(r#"topic="a",stage="TASK_PUT""#), "{text}");

    t.consumer_lag("c", "a", 0, 1);
    t.consumer_lag("c", "a", 1, 2);
    t.consumer_lag("c", "a", 2, 3);
    t.consumer_lag("c", "a", 1, 5);
    let text = t.render();
    assert_has(
        &text,
        r#"ursa_consumer_lag{connector="c",topic="a",partition="0"} 1"#,
    );
    assert_has(
        &text,
        r#"ursa_consumer_lag{connector="c",topic="a",partition="1"} 5"#,
    );
    assert!(!text.contains(r#"partition="2""#), "{text}");
}

#[test]
fn remove_connector_drops_its_series_and_frees_the_cap() {
    let t = Telemetry::with_series_cap(2);
    t.record_read("gone", "a", 1);
    t.record_read("gone", "b", 1);
    t.failed("gone", "a", Stage::TaskPut, false, "x");
    t.consumer_lag("gone", "a", 0, 3);
    t.task_state("gone", 0, "RUNNING");
    t.batch("gone", 1);
    t.record_read("kept", "z", 1);
    assert_has(
        &t.render(),
        r#"ursa_records_read_total{connector="kept",topic="_other"} 1"#,
    );

    assert!(t.remove_connector("gone"));
    assert!(!t.remove_connector("gone"));
    assert!(!t.remove_connector("never"));
    let text = t.render();
    assert!(!text.contains(r#"connector="gone""#), "{text}");
    assert_has(
        &text,
        r#"ursa_records_read_total{connector="kept",topic="_other"} 1"#,
    );

    t.record_read("kept", "y", 1);
    assert_has(
        &t.render(),
        r#"ursa_records_read_total{connector="kept",topic="y"} 1"#,
    );
}

#[test]
fn task_state_flips() {
    let t = Telemetry::new();
    t.task_state("c", 0, "RUNNING");
    let text = t.render();
    assert_has(
        &text,
        r#"ursa_task_state{connector="c",task="0",state="RUNNING"} 1"#,
    );
    for state in ["UNASSIGNED", "PAUSED", "STOPPED", "FAILED", "RESTARTING"] {
        assert_has(
            &text,
            &format!(r#"ursa_task_state{{connector="c",task="0",state="{state}"}} 0"#),
        );
    }
    t.task_state("c", 0, "paused");
    t.task_state("c", 0, "NOT_A_STATE");
    let text = t.render();
    assert_has(
        &text,
        r#"ursa_task_state{connector="c",task="0",state="RUNNING"} 0"#,
    );
    assert_has(
        &text,
        r#"ursa_task_state{connector="c",task="0",state="PAUSED"} 1"#,
    );
    assert!(!text.contains("NOT_A_STATE"), "{text}");
}

/// With `tasks.max` > 1 each task has its own state series: one FAILED task is not hidden by a RUNNING one.
#[test]
fn each_task_has_its_own_state() {
    let t = Telemetry::new();
    t.task_state("c", 0, "RUNNING");
    t.task_state("c", 1, "RUNNING");
    t.task_state("c", 1, "FAILED");
    let text = t.render();
    assert_has(
        &text,
        r#"ursa_task_state{connector="c",task="0",state="RUNNING"} 1"#,
    );
    assert_has(
        &text,
        r#"ursa_task_state{connector="c",task="1",state="RUNNING"} 0"#,
    );
    assert_has(
        &text,
        r#"ursa_task_state{connector="c",task="1",state="FAILED"} 1"#,
    );
    assert_has(
        &text,
        r#"ursa_task_state{connector="c",task="0",state="FAILED"} 0"#,
    );
    // Removing the connector removes every task's series.
    t.remove_connector("c");
    assert!(!t.render().contains("ursa_task_state{"), "{}", t.render());
}

#[test]
fn concurrent_counting_is_exact() {
    let t = Telemetry::with_series_cap(1000);
    std::thread::scope(|s| {
        for i in 0..4 {
            let t = t.clone();
            s.spawn(move || {
                for n in 0..1000 {
                    t.record_read("c", &format!("t{}", n % 8), 1);
                    if n % 100 == 0 {
                        t.failed("c", "t0", Stage::TaskPut, i % 2 == 0, "x");
                    }
                }
            });
        }
    });
    let text = t.render();
    assert_has(
        &text,
        r#"ursa_records_read_total{connector="c",topic="t0"} 500"#,
    );
    assert_has(
        &text,
        r#"ursa_records_read_total{connector="c",topic="t7"} 500"#,
    );
    assert_has(
        &text,
        r#"ursa_records_failed_total{connector="c",topic="t0",stage="TASK_PUT",kind="retriable"} 20"#,
    );
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

fn emit(t: &Telemetry) {
    t.record_read("c", "orders", 10);
    t.failed(
        "c",
        "orders",
        Stage::KeyConverter,
        false,
        "schema 42 not found",
    );
    t.dead_lettered("c", "orders");
    t.skipped("c", "orders");
    t.task_state("c", 0, "FAILED");
    t.task_restarted("c");
}

#[test]
fn events_log_with_fields_at_their_level() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .without_time()
        .finish();
    let t = Telemetry::new();
    tracing::subscriber::with_default(subscriber, || {
        // Other threads may register these callsites while this thread-local subscriber is the only one,
        // caching "never": register them all here, then re-derive their cached interest.
        emit(&Telemetry::new());
        tracing::callsite::rebuild_interest_cache();
        capture.0.lock().unwrap().clear();
        emit(&t);
    });
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 5, "{logs}");
    assert!(lines[0].contains(" WARN "), "{logs}");
    for field in [
        "connector=\"c\"",
        "topic=\"orders\"",
        "stage=\"KEY_CONVERTER\"",
        "permanent=false",
        "reason=\"schema 42 not found\"",
    ] {
        assert!(lines[0].contains(field), "{field} in {logs}");
    }
    assert!(
        lines[1].contains(" WARN ") && lines[1].contains("topic=\"orders\""),
        "{logs}"
    );
    assert!(lines[2].contains(" WARN "), "{logs}");
    assert!(
        lines[3].contains(" INFO ") && lines[3].contains("state=\"FAILED\""),
        "{logs}"
    );
    assert!(lines[4].contains(" INFO "), "{logs}");
    assert!(!logs.contains("record read"), "debug is filtered: {logs}");
}

#[test]
fn init_logging_is_idempotent() {
    init_logging(LogFormat::Json, Some("off"));
    init_logging(LogFormat::Text, Some("info"));
    init_logging(LogFormat::Text, Some("=[not a filter"));
    init_logging(LogFormat::Json, None);
}
