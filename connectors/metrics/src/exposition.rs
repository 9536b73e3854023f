//! The exposition: the store as Prometheus text (0.0.4) or OpenMetrics 1.0 text, written by hand.
//!
//! Not through `prometheus-client` (the crate the runtime's own metrics use): its families are typed by a
//! static label-set type, keep every label set as owned `String` pairs (several hundred bytes per series),
//! and have no idle expiry or overflow folding; the store here needs label names chosen at run time, about
//! 100 bytes per series and both formats from the same data.

use std::fmt::Write;

use crate::config::{MetricKind, OVERFLOW};
use crate::series::{MetricSeries, NO_EVENT, SEP, Series, SeriesValue, Store};

/// The content type of Prometheus text.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of OpenMetrics text.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn escape(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

fn labels(out: &mut String, names: &[&str], values: &[&str], extra: Option<(&str, &str)>) {
    if names.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (n, v) in names.iter().zip(values).map(|(n, v)| (*n, *v)).chain(extra) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(n);
        out.push_str("=\"");
        escape(out, v);
        out.push('"');
    }
    out.push('}');
}

fn header(out: &mut String, family: &str, kind: &str, unit: Option<&str>, help: &str, om: bool) {
    let help = escape_help(help);
    if om {
        let _ = writeln!(out, "# TYPE {family} {kind}");
        if let Some(u) = unit {
            let _ = writeln!(out, "# UNIT {family} {u}");
        }
        let _ = writeln!(out, "# HELP {family} {help}");
    } else {
        let _ = writeln!(out, "# HELP {family} {help}");
        let _ = writeln!(out, "# TYPE {family} {kind}");
    }
}

/// Ends a sample line: ` <timestamp>` when `stamped` and the series has an event time, then the newline.
fn end(out: &mut String, s: &Series, stamped: bool) {
    if stamped && s.event != NO_EVENT {
        let _ = write!(out, " {}", s.event);
    }
    out.push('\n');
}

fn series_lines(
    out: &mut String,
    m: &MetricSeries,
    names: &[&str],
    values: &[&str],
    s: &Series,
    stamped: bool,
) {
    let name = &m.def.name;
    match (&m.def.kind, &s.value) {
        (MetricKind::Counter, SeriesValue::Scalar(v)) => {
            out.push_str(name);
            out.push_str("_total");
            labels(out, names, values, None);
            out.push(' ');
            number(out, *v);
            end(out, s, stamped);
        }
        (MetricKind::Gauge { .. }, SeriesValue::Scalar(v)) => {
            out.push_str(name);
            labels(out, names, values, None);
            out.push(' ');
            number(out, *v);
            end(out, s, stamped);
        }
        (MetricKind::Histogram { buckets }, SeriesValue::Hist(h)) => {
            let mut cumulative = 0;
            for (i, c) in h.counts.iter().enumerate() {
                cumulative += c;
                let le = buckets
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), |b| format!("{b:?}"));
                let _ = write!(out, "{name}_bucket");
                labels(out, names, values, Some(("le", &le)));
                let _ = write!(out, " {cumulative}");
                end(out, s, stamped);
            }
            let _ = write!(out, "{name}_sum");
            labels(out, names, values, None);
            out.push(' ');
            number(out, h.sum);
            end(out, s, stamped);
            let _ = write!(out, "{name}_count");
            labels(out, names, values, None);
            let _ = write!(out, " {}", h.count);
            end(out, s, stamped);
        }
        _ => {}
    }
}

fn guard_family(
    out: &mut String,
    store: &Store,
    om: bool,
    family: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&MetricSeries) -> f64,
) {
    let shown = if om || kind != "counter" {
        family.to_owned()
    } else {
        format!("{family}_total")
    };
    header(out, &shown, kind, None, help, om);
    for m in &store.metrics {
        out.push_str(family);
        if kind == "counter" {
            out.push_str("_total");
        }
        labels(out, &[], &[], Some(("metric", &m.def.name)));
        out.push(' ');
        number(out, value(m));
        out.push('\n');
    }
}

/// The store as text: OpenMetrics (ending with `# EOF`) when `openmetrics`, else Prometheus text 0.0.4.
pub fn render(store: &Store, openmetrics: bool) -> String {
    render_stamped(store, openmetrics, false)
}

/// As [`render`]; with `stamped`, each sample of a series with an event time carries it (ms), as Prometheus
/// text allows: what remote write pushes with event time on.
pub fn render_stamped(store: &Store, openmetrics: bool, stamped: bool) -> String {
    let om = openmetrics;
    let mut out = String::with_capacity(4096 + store.live() * 64);
    for m in &store.metrics {
        let def = &m.def;
        let kind = match def.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge { .. } => "gauge",
            MetricKind::Histogram { .. } => "histogram",
        };
        let family = if !om && matches!(def.kind, MetricKind::Counter) {
            format!("{}_total", def.name)
        } else {
            def.name.clone()
        };
        header(&mut out, &family, kind, def.unit.as_deref(), &def.help, om);
        let names: Vec<&str> = def.labels.iter().map(|l| l.name.as_str()).collect();
        let mut keys: Vec<&crate::series::Key> = m.series.keys().collect();
        keys.sort_unstable();
        let mut values: Vec<&str> = Vec::with_capacity(names.len());
        for key in keys {
            let Some(s) = m.series.get(key) else { continue };
            values.clear();
            if !names.is_empty() {
                values.extend(key.split(SEP));
            }
            series_lines(&mut out, m, &names, &values, s, stamped);
        }
        if let Some(s) = &m.overflow {
            let values = vec![OVERFLOW; names.len()];
            series_lines(&mut out, m, &names, &values, s, stamped);
        }
    }
    guard_family(
        &mut out,
        store,
        om,
        "ursa_metrics_series",
        "gauge",
        "Live series of each metric (the __overflow__ series included).",
        |m| (m.series.len() + usize::from(m.overflow.is_some())) as f64,
    );
    guard_family(
        &mut out,
        store,
        om,
        "ursa_metrics_overflow_folded",
        "counter",
        "Updates folded into a metric's __overflow__ series by its cardinality guard.",
        |m| m.folded as f64,
    );
    guard_family(
        &mut out,
        store,
        om,
        "ursa_metrics_expired_series",
        "counter",
        "Series removed after being idle.",
        |m| m.expired as f64,
    );
    guard_family(
        &mut out,
        store,
        om,
        "ursa_metrics_invalid_values",
        "counter",
        "Records a metric matched whose value field was missing or unusable (not counted).",
        |m| m.invalid as f64,
    );
    if om {
        out.push_str("# EOF\n");
    }
    out
}
