//! Avro values are counted from the parts the definitions want (decoded straight from the datum, strings
//! borrowed): the same records as Avro and as their JSON form give the same exposition, over labels of nested
//! and union fields, enum symbols, union branches, map keys and array indexes, filters of every kind, values
//! of ints, longs and floats, two writer schemas in one batch, and a malformed datum.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::{Value, json};
use ursa_avro::schema::SchemaSet;
use ursa_connect::testing::{avro_record, json_record};
use ursa_connect::{AvroWriter, Outcome, Sink, SinkContext, SinkPlugin};
use ursa_connector_metrics::{MetricsPlugin, MetricsSink};

const SCHEMA: &str = r#"{"type":"record","name":"Evt","fields":[
    {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["STARTED","ENDED","Other_Kind"]}},
    {"name":"device","type":["null",{"type":"record","name":"Device","fields":[
        {"name":"model","type":"string"},
        {"name":"firmware","type":["null","string"]}]}]},
    {"name":"latency_ms","type":"long"},
    {"name":"score","type":"float"},
    {"name":"tokens","type":["null","int"]},
    {"name":"opt","type":["null","string","long","boolean"]},
    {"name":"tags","type":{"type":"array","items":"string"}},
    {"name":"attrs","type":{"type":"map","values":"string"}},
    {"name":"flag","type":"boolean"},
    {"name":"note","type":"string"}]}"#;

/// A second writer schema without `device`, `tokens` and `opt`: its records follow the first one's in a batch,
/// so the parts the first filled must not show through.
const SLIM: &str = r#"{"type":"record","name":"Evt","fields":[
    {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["STARTED","ENDED","Other_Kind"]}},
    {"name":"latency_ms","type":"long"},
    {"name":"score","type":"float"},
    {"name":"tags","type":{"type":"array","items":"string"}},
    {"name":"attrs","type":{"type":"map","values":"string"}},
    {"name":"flag","type":"boolean"},
    {"name":"note","type":"string"}]}"#;

const DEFS: &str = r#"
[[metric]]
name = "events"
help = "Events by kind, model, firmware, first tag, an attribute and the branch of opt"
type = "counter"
labels = { kind = { path = "kind", normalise = ["snake"] }, model = { path = "device.model", normalise = ["trim", "lower"], max_length = 6 }, firmware = "device.firmware", tag = "tags.0", region = "attrs.region", opt = { path = "opt", branch = true } }
label_order = ["kind", "model", "firmware", "tag", "region", "opt"]

[[metric]]
name = "opt_values"
help = "The value of opt, whatever its branch"
type = "counter"
labels = { opt = "opt" }

[[metric]]
name = "latency_seconds"
help = "Latency of flagged events"
type = "histogram"
value = "latency_ms"
scale = 0.001
buckets = [0.1, 0.5, 1.0]
filter = [{ path = "flag", equals = true }, { path = "kind", in = ["STARTED", "ENDED"] }]
labels = { model = "device.model" }

[[metric]]
name = "tokens"
help = "Tokens of events with a known device and a good score"
type = "gauge"
mode = "sum"
value = "tokens"
filter = [{ path = "device", exists = true }, { path = "score", ge = 0.5 }, { path = "note", matches = "n[0-9]+" }, { path = "attrs.region", not_in = ["eu"] }]

[[metric]]
name = "scores"
help = "Sum of scores"
type = "gauge"
mode = "sum"
value = "score"
"#;

/// A small deterministic generator (xorshift), so every run checks the same varied events.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[(self.next() % of.len() as u64) as usize]
    }
}

/// One event in Avro's JSON encoding (unions as `{"branch": value}`).
fn event(rng: &mut Rng) -> Value {
    let device = match rng.next() % 3 {
        0 => Value::Null,
        n => {
            let firmware = if n == 1 {
                Value::Null
            } else {
                json!({"string": rng.pick(&["1.2", " 1.3 ", "2.0-RC"])})
            };
            json!({"Device": {"model": rng.pick(&[" TB-2 Pro", "tb2", "Größe", "bear-light-xl"]), "firmware": firmware}})
        }
    };
    let opt = match rng.next() % 4 {
        0 => Value::Null,
        1 => json!({"string": rng.pick(&["a", "B c"])}),
        2 => json!({"long": (rng.next() % 5) as i64 - 2}),
        _ => json!({"boolean": rng.next() % 2 == 0}),
    };
    let tags: Vec<&str> = (0..rng.next() % 3)
        .map(|_| rng.pick(&["x", "y z"]))
        .collect();
    let mut attrs = serde_json::Map::new();
    for k in ["region", "other"] {
        if rng.next() % 2 == 0 {
            attrs.insert(k.into(), json!(rng.pick(&["eu", "us", "apac"])));
        }
    }
    let score = [0.25, 0.5, 0.93, 1.5][(rng.next() % 4) as usize];
    json!({
        "kind": rng.pick(&["STARTED", "ENDED", "Other_Kind"]),
        "device": device,
        "latency_ms": (rng.next() % 1500) as i64,
        "score": score,
        "tokens": if rng.next() % 3 == 0 { Value::Null } else { json!({"int": (rng.next() % 100) as i64}) },
        "opt": opt,
        "tags": tags,
        "attrs": attrs,
        "flag": rng.next() % 2 == 0,
        "note": rng.pick(&["n1", "n22", "x", ""]),
    })
}

fn sink() -> MetricsSink {
    let raw = [
        ("metrics.definitions", DEFS),
        ("metrics.listen", ""),
        ("metrics.expiry.idle", "1h"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let parsed = ursa_connect::config::parse(&MetricsPlugin.keys(), &[], &raw).unwrap();
    MetricsSink::start(
        MetricsPlugin::config(&parsed).unwrap(),
        SinkContext::detached("m"),
    )
    .unwrap()
}

#[tokio::test]
async fn avro_parts_count_as_the_json_form() {
    let writers = [(7, SCHEMA), (8, SLIM)].map(|(id, text)| {
        (
            SchemaSet::parse_str(text).unwrap(),
            Arc::new(AvroWriter::parse(id, text).unwrap()),
        )
    });
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut avro, mut json) = (Vec::new(), Vec::new());
    for i in 0..600 {
        let (set, writer) = &writers[usize::from(i % 3 == 2)];
        let mut framed = vec![0, 0, 0, 0, writer.id() as u8];
        let mut e = event(&mut rng);
        if writer.id() == 8 {
            for gone in ["device", "tokens", "opt"] {
                e.as_object_mut().unwrap().remove(gone);
            }
        }
        ursa_avro::avro_json::decode_datum(set, set.last_root(), &e, &mut framed).unwrap();
        // The JSON form the sink reads of a JSON record: the whole datum decoded.
        let value = ursa_avro::value::decode_json(set, set.last_root(), &framed[5..]).unwrap();
        if i == 300 {
            // A malformed datum: dead-lettered by the Avro sink, never counted.
            let cut = framed[..framed.len() - 1].to_vec();
            avro.push(avro_record("t", 0, i, writer, cut));
        } else {
            avro.push(avro_record("t", 0, i, writer, framed));
            json.push(json_record("t", 0, i, value));
        }
    }
    let (from_avro, from_json) = (sink(), sink());
    let out = from_avro.put(&avro).await.unwrap();
    let bad: Vec<(usize, &Outcome)> = out
        .iter()
        .enumerate()
        .filter(|(_, o)| **o != Outcome::Delivered)
        .collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].0, 300);
    assert!(
        matches!(bad[0].1, Outcome::Permanent { detail: Some(d), .. } if d.contains("MalformedAvro")),
        "{bad:?}"
    );
    let out = from_json.put(&json).await.unwrap();
    assert!(out.iter().all(|o| *o == Outcome::Delivered));
    let (a, j) = (
        from_avro.render(false).unwrap(),
        from_json.render(false).unwrap(),
    );
    assert_eq!(a, j);
    // The exposition is not trivially equal: every kind of label and filter took part.
    for line in [
        "opt=\"boolean\"",
        "opt=\"long\"",
        "opt=\"string\"",
        "opt=\"null\"",
        "kind=\"other_kind\"",
        "model=\"größe\"",
        "model=\"bear-l\"",
        "firmware=\"2.0-RC\"",
        "firmware=\" 1.3 \"",
        "firmware=\"none\"",
        "model=\"none\",firmware=\"none\"",
        "tag=\"y z\"",
        "region=\"apac\"",
        "opt_values_total{opt=\"-2\"}",
        "opt_values_total{opt=\"true\"}",
        "opt_values_total{opt=\"B c\"}",
        "latency_seconds_bucket{model=\"tb2\",le=\"0.5\"}",
        "\ntokens ",
        "\nscores ",
    ] {
        assert!(a.contains(line), "{line} in\n{a}");
    }
}
