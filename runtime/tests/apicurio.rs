//! A third-party registry: Apicurio Registry 3.x through its Confluent-compatible API (`/apis/ccompat/v7`), with
//! `ursa schema register` and `schema check --against registry`, the runtime's Avro converter and `ursa run`,
//! and Python confluent-kafka's AvroSerializer/AvroDeserializer (against the dev registry too). Where Apicurio
//! answers differently from Confluent (whose behaviour the dev registry follows), the test asserts Apicurio's
//! answer and says what Confluent does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use ursa::connect::convert::{ConvertError, Converter, ConverterKind};
use ursa_avro::schema::{Attrs, Loc, Schema, SchemaKind, SchemaSet};
use ursa_avro::{AvroRecord, ConfluentDecoder, Decimal, encode as e, wire};
use ursa_events::com::teddy::common::{ChildRef, DeviceRef, EventMetadata};
use ursa_events::com::teddy::conversation::{Emotion, InputModality, MessageReceived};
use ursa_registry::{
    ClientConfig, ClientError, CompatibilityLevel, Reference, RegistryClient, RetryPolicy, Server,
    ServerConfig, VersionId,
};
use ursa_testkit::{
    APICURIO_GLOBAL_COMPATIBILITY, Apicurio, Kafka, WorkerProcess, create_topic, unique_name,
    wait_until,
};

// ---- helpers ----

mod cli_support;
use cli_support::{catalog_copy, text, ursa};

fn client(url: &str) -> Arc<RegistryClient> {
    let mut config = ClientConfig::new(url);
    config.timeout = Duration::from_secs(10);
    config.retries = RetryPolicy::none();
    Arc::new(RegistryClient::new(config).unwrap())
}

/// A unique Avro namespace segment (`n` and 16 hex digits).
fn unique_namespace() -> String {
    let name = unique_name("n");
    format!("n{}", name.rsplit('-').next().unwrap())
}

/// `GET url`: the status and the JSON body.
async fn get_json(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The end of the shared Apicurio Registry's log, for a failure that involves it.
fn apicurio_log() -> String {
    let service = Apicurio::shared().service();
    format!(
        "the end of Apicurio Registry's log ({}):\n{}",
        service.log_path().display(),
        service.log_tail(40)
    )
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs a script of `tests/python/` with `args` (and `stdin`), failing with the fix when Python or its
/// packages are missing; returns the JSON lines it printed.
fn python_script(script: &str, args: &[&str], stdin: Option<&str>) -> Vec<Value> {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = ursa_testkit::output_within(
        Command::new(python()).arg(&path).args(args),
        stdin.map(str::as_bytes),
        ursa_testkit::PEER_TIMEOUT,
    )
    .unwrap_or_else(|e| {
        panic!(
            "{script}: {e:#} (python3 missing? run `cargo xtask test`, which installs the Python peers)\n{}",
            apicurio_log()
        )
    });
    assert!(
        out.status.success(),
        "{script} failed (missing package? `cargo xtask test` or `python3 -m pip install \"confluent-kafka[avro,schemaregistry]==2.16.1\"`):\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        apicurio_log()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{script}: {l:?}: {e}")))
        .collect()
}

/// `subject -> (id, version)` from the `= subject: unchanged (id N, version V)` lines of a register plan.
fn unchanged_ids(plan: &str) -> BTreeMap<String, (u32, u32)> {
    plan.lines()
        .filter_map(|l| {
            let (subject, rest) = l.strip_prefix("  = ")?.split_once(": unchanged (id ")?;
            let (id, rest) = rest.split_once(", version ")?;
            let version = rest.split(')').next()?;
            Some((
                subject.to_owned(),
                (id.parse().ok()?, version.parse().ok()?),
            ))
        })
        .collect()
}

/// `subject -> level` from the `~ subject: compatibility unset -> LEVEL` lines of a register plan.
fn levels_to_set(plan: &str) -> BTreeMap<String, String> {
    plan.lines()
        .filter_map(|l| {
            let (subject, rest) = l.strip_prefix("  ~ ")?.split_once(": compatibility ")?;
            let (_, level) = rest.split_once(" -> ")?;
            Some((subject.to_owned(), level.to_owned()))
        })
        .collect()
}

// ---- the registry itself ----

/// The kit starts Apicurio as asked: BACKWARD as the global rule, canonical hashing in the ccompat API, an
/// in-memory H2 database.
#[tokio::test(flavor = "multi_thread")]
async fn the_test_registry_is_configured_as_asked() {
    let apicurio = Apicurio::shared();
    assert!(
        apicurio.ccompat_url().starts_with("http://127.0.0.1:")
            && apicurio.ccompat_url().ends_with("/apis/ccompat/v7"),
        "{}",
        apicurio.ccompat_url()
    );
    // Apicurio has no global rule by default, which its ccompat API reports as `NONE` (Confluent's default
    // is BACKWARD): the kit sets the rule `apicurio.rules.global.compatibility`.
    assert_eq!(APICURIO_GLOBAL_COMPATIBILITY, "BACKWARD");
    let c = client(apicurio.ccompat_url());
    assert_eq!(
        c.get_config(None).await.unwrap(),
        CompatibilityLevel::Backward
    );
    let (status, rule) = get_json(&format!(
        "{}/admin/rules/COMPATIBILITY",
        apicurio.core_url()
    ))
    .await;
    assert_eq!(
        (status, &rule["config"]),
        (200, &json!("BACKWARD")),
        "{rule}"
    );
    let (status, prop) = get_json(&format!(
        "{}/admin/config/properties/apicurio.ccompat.use-canonical-hash",
        apicurio.core_url()
    ))
    .await;
    assert_eq!((status, &prop["value"]), (200, &json!("true")), "{prop}");
    let log = std::fs::read_to_string(apicurio.service().log_path()).unwrap();
    assert!(
        log.contains("Database type: h2"),
        "expected the in-memory H2 store; log:\n{}",
        apicurio.service().log_tail(30)
    );
    // A reformatted schema (key order, whitespace, `{"type": "string"}` for `"string"`) is the same schema.
    let subject = unique_name("canonical");
    let ns = unique_namespace();
    let v1 = format!(
        r#"{{"type":"record","name":"W","namespace":"{ns}","fields":[{{"name":"a","type":"string"}}]}}"#
    );
    let id = c.register(&subject, &v1, &[]).await.unwrap();
    let reformatted = format!(
        r#"{{ "fields": [ {{"type": {{"type": "string"}}, "name": "a"}} ], "name": "W", "namespace": "{ns}", "type": "record" }}"#
    );
    assert_eq!(
        c.lookup(&subject, &reformatted, &[]).await.unwrap(),
        Some((id, 1))
    );
    assert_eq!(c.register(&subject, &reformatted, &[]).await.unwrap(), id);
    assert_eq!(c.versions(&subject).await.unwrap(), vec![1]);
}

// ---- ursa schema register / check ----

#[tokio::test(flavor = "multi_thread")]
async fn registers_the_catalog_on_apicurio_with_references_levels_and_idempotence() {
    // A registry of its own: the catalog's subjects have fixed names, and the ids are asserted exactly.
    let apicurio = tokio::task::spawn_blocking(Apicurio::start)
        .await
        .unwrap()
        .unwrap();
    let url = apicurio.ccompat_url().to_owned();
    let dev = Server::bind(ServerConfig::ephemeral())
        .await
        .unwrap()
        .spawn();
    let dev_url = dev.url();
    let (_keep, dir) = catalog_copy();
    let run = |args: &[&str]| {
        let mut all = vec!["schema"];
        all.extend_from_slice(args);
        ursa(&dir, &all)
    };

    // The plan against an empty Apicurio is the plan against an empty dev registry.
    let dry = run(&["register", "--dry-run", "--registry-url", &url]);
    assert!(dry.status.success(), "{}", text(&dry));
    let plan = String::from_utf8_lossy(&dry.stdout).into_owned();
    let dev_dry = run(&["register", "--dry-run", "--registry-url", &dev_url]);
    assert_eq!(plan, String::from_utf8_lossy(&dev_dry.stdout));
    assert!(
        plan.contains("+ com.teddy.common.EventMetadata: new version"),
        "{plan}"
    );
    assert!(
        plan.contains("+ child.safety-violation-value: new version (references com.teddy.child.Severity, com.teddy.child.ViolationCategory, com.teddy.common.ChildRef, com.teddy.common.DeviceRef, com.teddy.common.EventMetadata, com.teddy.common.Sha256)"),
        "{plan}"
    );
    assert!(plan.contains("dry run: nothing applied"), "{plan}");
    let levels = levels_to_set(&plan);
    let n = levels.len();
    assert!(n > 30, "{plan}");
    assert!(
        plan.starts_with(&format!(
            "plan: {n} new version(s), 0 unchanged, {n} compatibility level(s) to set"
        )),
        "{plan}"
    );
    let c = client(&url);
    assert!(
        c.subjects().await.unwrap().is_empty(),
        "dry run registered something"
    );

    let first = run(&["register", "--registry-url", &url]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains(&format!("applied {} change(s)", 2 * n)),
        "{}",
        text(&first)
    );
    let subjects: BTreeSet<String> = c.subjects().await.unwrap().into_iter().collect();
    assert_eq!(
        subjects,
        levels.keys().cloned().collect::<BTreeSet<_>>(),
        "every planned subject, no more"
    );
    // References for the types of other files: the shared envelope is a subject of its own, not inlined.
    let v = c
        .version("child.safety-violation-value", VersionId::Latest)
        .await
        .unwrap();
    assert!(
        v.references
            .iter()
            .any(|r| r.name == "com.teddy.common.EventMetadata"
                && r.subject == "com.teddy.common.EventMetadata"
                && r.version == 1),
        "{v:?}"
    );
    assert_eq!(v.references.len(), 6, "{v:?}");
    assert!(
        !v.schema
            .contains("\"name\":\"com.teddy.common.EventMetadata\""),
        "{}",
        v.schema
    );
    // Every subject has the level the catalog gives it (Apicurio stores it as the artifact's rule).
    for (subject, level) in &levels {
        assert_eq!(
            c.get_config(Some(subject)).await.unwrap().as_str(),
            level,
            "{subject}"
        );
    }
    assert_eq!(
        levels["child.safety-violation-value"], "FULL_TRANSITIVE",
        "from schemas/topics.toml"
    );

    // Idempotent: the second run registers nothing and sets nothing.
    let second = run(&["register", "--registry-url", &url]);
    assert!(second.status.success(), "{}", text(&second));
    let again = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(
        again.starts_with(&format!(
            "plan: 0 new version(s), {n} unchanged, 0 compatibility level(s) to set"
        )),
        "{again}"
    );
    assert!(again.contains("applied 0 change(s)"), "{again}");
    let ids = unchanged_ids(&again);
    assert_eq!(ids.len(), n, "{again}");
    assert!(ids.values().all(|&(_, version)| version == 1), "{again}");

    // The ids, compared with the dev registry given the same catalog.
    let dev_first = run(&["register", "--registry-url", &dev_url]);
    assert!(dev_first.status.success(), "{}", text(&dev_first));
    let dev_again = run(&["register", "--dry-run", "--registry-url", &dev_url]);
    let dev_ids = unchanged_ids(&String::from_utf8_lossy(&dev_again.stdout));
    assert_eq!(dev_ids.len(), n);
    let distinct = |ids: &BTreeMap<String, (u32, u32)>| {
        ids.values().map(|&(id, _)| id).collect::<BTreeSet<u32>>()
    };
    // Both: one id per distinct schema (every `string` key subject shares the id of `"string"`), the same
    // partition of subjects by id.
    let keys: BTreeSet<u32> = ids
        .iter()
        .filter(|(s, _)| s.ends_with("-key"))
        .map(|(_, &(id, _))| id)
        .collect();
    assert_eq!(keys.len(), 1, "{again}");
    let same_partition = |a: &BTreeMap<String, (u32, u32)>, b: &BTreeMap<String, (u32, u32)>| {
        a.keys()
            .all(|x| a.keys().all(|y| (a[x].0 == a[y].0) == (b[x].0 == b[y].0)))
    };
    assert!(same_partition(&ids, &dev_ids));
    let d = distinct(&dev_ids).len() as u32;
    assert!(d < n as u32);
    // Confluent (and the dev registry): ids are dense, 1..=number of distinct schemas.
    assert_eq!(distinct(&dev_ids), (1..=d).collect::<BTreeSet<u32>>());
    // Apicurio: ids are content ids drawn from a sequence that also advances when a registration finds its
    // content already stored (a `string` key under a new subject), so there are gaps: the last id is the
    // number of registrations, not of distinct schemas.
    let apicurio_ids = distinct(&ids);
    assert_eq!(apicurio_ids.len() as u32, d);
    assert_eq!(apicurio_ids.first(), Some(&1));
    assert_eq!(apicurio_ids.last(), Some(&(n as u32)), "{again}");

    // A doc-only change. Confluent (and the dev registry) register it as a new version; Apicurio's ccompat
    // lookup matches schemas by a canonical form without docs, so it is the registered version already and
    // `register` has nothing to do (the registry keeps the old doc).
    let file = dir.join("schemas/avro/com/teddy/child/SafetyViolation.avsc");
    let body = std::fs::read_to_string(&file).unwrap();
    let redoc = body.replacen(
        "Unsafe content was detected",
        "Unsafe content has been detected",
        1,
    );
    assert_ne!(body, redoc);
    std::fs::write(&file, &redoc).unwrap();
    let dev_doc = run(&["register", "--dry-run", "--registry-url", &dev_url]);
    assert!(
        text(&dev_doc).contains("+ child.safety-violation-value: new version"),
        "{}",
        text(&dev_doc)
    );
    let apicurio_doc = run(&["register", "--registry-url", &url]);
    assert!(apicurio_doc.status.success(), "{}", text(&apicurio_doc));
    assert!(
        text(&apicurio_doc).starts_with("plan: 0 new version(s)"),
        "{}",
        text(&apicurio_doc)
    );
    assert!(
        c.version("child.safety-violation-value", VersionId::Latest)
            .await
            .unwrap()
            .schema
            .contains("Unsafe content was detected")
    );

    // Checking against Apicurio: clean (a doc change is compatible).
    let check = run(&["check", "--against", "registry", "--registry-url", &url]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains(&format!("{n} subject(s) checked, 0 failed")),
        "{}",
        text(&check)
    );

    // A breaking change in a FULL_TRANSITIVE subject: caught by check, rejected by Apicurio's rule.
    let broken = redoc.replacen(
        "\"fields\": [",
        "\"fields\": [\n    {\"name\": \"reviewer\", \"type\": \"string\", \"doc\": \"who\"},",
        1,
    );
    assert_ne!(redoc, broken);
    std::fs::write(&file, broken).unwrap();
    let check = run(&[
        "check",
        "--against",
        "registry",
        "--registry-url",
        &url,
        "--format",
        "json",
    ]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    let report: Value = serde_json::from_slice(&check.stdout).unwrap();
    let bad: Vec<&Value> = report["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["is_compatible"] == false)
        .collect();
    assert_eq!(bad.len(), 1, "{report}");
    assert_eq!(bad[0]["subject"], "child.safety-violation-value");
    let reg = run(&["register", "--registry-url", &url]);
    assert_eq!(reg.status.code(), Some(1), "{}", text(&reg));
    assert!(
        text(&reg)
            .contains("child.safety-violation-value rejected by the registry as incompatible"),
        "{}",
        text(&reg)
    );
    // The same 409 as Confluent, with Apicurio's own message (Confluent's lists Avro's errorType entries).
    assert!(
        text(&reg).contains("Incompatible artifact"),
        "{}",
        text(&reg)
    );
    assert_eq!(
        c.versions("child.safety-violation-value").await.unwrap(),
        vec![1]
    );
    dev.stop().await.unwrap();
}

const ALERT_V1: &str = r#"{"type": "record", "name": "Alert", "namespace": "NS.alerts", "doc": "d",
  "fields": [{"name": "id", "type": "string", "doc": "d"},
             {"name": "meta", "type": "NS.common.Meta", "doc": "d"}]}"#;
const ALERT_V2: &str = r#"{"type": "record", "name": "Alert", "namespace": "NS.alerts", "doc": "d",
  "fields": [{"name": "id", "type": "string", "doc": "d"},
             {"name": "meta", "type": "NS.common.Meta", "doc": "d"},
             {"name": "level", "type": "int", "default": 0, "doc": "d"}]}"#;
/// Drops the default of `level`: BACKWARD-compatible with V2 (the field exists there), not with V1.
const ALERT_V3: &str = r#"{"type": "record", "name": "Alert", "namespace": "NS.alerts", "doc": "d",
  "fields": [{"name": "id", "type": "string", "doc": "d"},
             {"name": "meta", "type": "NS.common.Meta", "doc": "d"},
             {"name": "level", "type": "int", "doc": "d"}]}"#;
const META: &str = r#"{"type": "record", "name": "Meta", "namespace": "NS.common", "doc": "d",
  "fields": [{"name": "source", "type": "string", "doc": "d"}]}"#;

/// A small catalog in `dir`: topic `topic` with Alert (referencing Meta, defined in another file) as value.
fn write_alerts(dir: &Path, ns: &str, topic: &str, alert: &str, level: &str) {
    let alerts = dir.join(format!("schemas/avro/{ns}/alerts"));
    let common = dir.join(format!("schemas/avro/{ns}/common"));
    std::fs::create_dir_all(&alerts).unwrap();
    std::fs::create_dir_all(&common).unwrap();
    std::fs::write(alerts.join("Alert.avsc"), alert.replace("NS", ns)).unwrap();
    std::fs::write(common.join("Meta.avsc"), META.replace("NS", ns)).unwrap();
    std::fs::write(
        dir.join("schemas/topics.toml"),
        format!(
            "[topics.\"{topic}\"]\nkey = \"string\"\nvalue = \"{ns}.alerts.Alert\"\ncompatibility = \"{level}\"\n"
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn check_against_apicurio_passes_compatible_and_reports_incompatible_changes() {
    let apicurio = Apicurio::shared();
    let url = apicurio.ccompat_url();
    let c = client(url);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ns = unique_namespace();
    let topic = unique_name("alerts");
    let value = format!("{topic}-value");
    let level = "BACKWARD_TRANSITIVE";

    write_alerts(d, &ns, &topic, ALERT_V1, level);
    // Subjects Apicurio does not have yet (40401 for their versions) are new: nothing to check against.
    let check = ursa(
        d,
        &[
            "schema",
            "check",
            "--against",
            "registry",
            "--registry-url",
            url,
        ],
    );
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(
        text(&check).contains(&format!("ok: {value} ({level}: new subject)")),
        "{}",
        text(&check)
    );
    let reg = ursa(d, &["schema", "register", "--registry-url", url]);
    assert!(reg.status.success(), "{}", text(&reg));
    assert!(
        text(&reg).contains(&format!(
            "+ {value}: new version (references {ns}.common.Meta)"
        )),
        "{}",
        text(&reg)
    );
    assert_eq!(
        c.get_config(Some(&value)).await.unwrap(),
        CompatibilityLevel::BackwardTransitive
    );

    // V2 adds a field with a default: compatible.
    write_alerts(d, &ns, &topic, ALERT_V2, level);
    let check = ursa(
        d,
        &[
            "schema",
            "check",
            "--against",
            "registry",
            "--registry-url",
            url,
        ],
    );
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(
        text(&check).contains(&format!(
            "ok: {value} ({level} against the registry's latest version)"
        )),
        "{}",
        text(&check)
    );
    let reg = ursa(d, &["schema", "register", "--registry-url", url]);
    assert!(reg.status.success(), "{}", text(&reg));
    assert_eq!(c.versions(&value).await.unwrap(), vec![1, 2]);

    // V3 drops the default: fine against V2, not against V1, and the level is transitive.
    write_alerts(d, &ns, &topic, ALERT_V3, level);
    let check = ursa(
        d,
        &[
            "schema",
            "check",
            "--against",
            "registry",
            "--registry-url",
            url,
            "--format",
            "json",
        ],
    );
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    let report: Value = serde_json::from_slice(&check.stdout).unwrap();
    let subjects = report["subjects"].as_array().unwrap();
    let v = subjects.iter().find(|s| s["subject"] == value).unwrap();
    assert_eq!(v["is_compatible"], false, "{v}");
    assert_eq!(
        v["against"],
        format!("{level} against 2 registry versions"),
        "{v}"
    );
    let m = &v["messages"][0];
    assert_eq!(m["kind"], "READER_FIELD_MISSING_DEFAULT_VALUE", "{m}");
    assert_eq!(
        m["file"],
        format!("schemas/avro/{ns}/alerts/Alert.avsc"),
        "{m}"
    );
    assert!(
        m["location"].as_str().unwrap().starts_with("/fields/2"),
        "{m}"
    );
    let key = subjects
        .iter()
        .find(|s| s["subject"] == format!("{topic}-key"))
        .unwrap();
    assert_eq!(key["is_compatible"], true);

    // Apicurio's rule agrees: the registration is refused, nothing changes.
    let reg = ursa(d, &["schema", "register", "--registry-url", url]);
    assert_eq!(reg.status.code(), Some(1), "{}", text(&reg));
    assert!(
        text(&reg).contains(&format!("{value} rejected by the registry as incompatible")),
        "{}",
        text(&reg)
    );
    assert_eq!(c.versions(&value).await.unwrap(), vec![1, 2]);
}

// ---- the runtime's converter and `ursa run` ----

const CURRENCY: &str =
    r#"{"type":"enum","name":"Currency","namespace":"com.acme","symbols":["EUR","USD"]}"#;
const MONEY: &str = r#"{"type":"record","name":"Money","namespace":"com.acme","fields":[
    {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
    {"name":"currency","type":"com.acme.Currency"}
]}"#;
const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[
    {"name":"id","type":{"type":"string","logicalType":"uuid"}},
    {"name":"total","type":"com.acme.Money"},
    {"name":"placed_at","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"note","type":["null","string"],"default":null}
]}"#;

fn reference(name: &str, subject: &str, version: i32) -> Reference {
    Reference {
        name: name.into(),
        subject: subject.into(),
        version,
    }
}

fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    wire::write_header(&mut buf, id);
    buf.extend_from_slice(datum);
    buf
}

#[tokio::test(flavor = "multi_thread")]
async fn the_avro_converter_reads_schemas_and_references_from_apicurio() {
    let apicurio = Apicurio::shared();
    let c = client(apicurio.ccompat_url());
    let prefix = unique_name("acme");
    let (currency, money, orders) = (
        format!("{prefix}-currency"),
        format!("{prefix}-money"),
        format!("{prefix}-orders-value"),
    );
    c.register(&currency, CURRENCY, &[]).await.unwrap();
    c.register(
        &money,
        MONEY,
        &[reference("com.acme.Currency", &currency, 1)],
    )
    .await
    .unwrap();
    let id = c
        .register(&orders, ORDER, &[reference("com.acme.Money", &money, 1)])
        .await
        .unwrap();
    // Apicurio's ccompat API serves the references as Confluent's do.
    let info = c.schema_info_by_id(id).await.unwrap();
    assert_eq!(
        info.references,
        vec![reference("com.acme.Money", &money, 1)]
    );

    let mut datum = Vec::new();
    e::string(&mut datum, "0b9c2f6e-4d1a-4c8e-9f3a-2b7d5e1c0a94");
    e::bytes(&mut datum, Decimal::from_i128(123_456, 2).unscaled_bytes());
    e::enum_index(&mut datum, 1);
    e::long(&mut datum, 1_760_000_000_123);
    e::union_index(&mut datum, 1);
    e::string(&mut datum, "gift");
    let converter = Converter::new(ConverterKind::Avro, Some(Arc::clone(&c))).unwrap();
    let converted = converter
        .convert("orders", Some(&framed(id, &datum)))
        .await
        .unwrap();
    assert_eq!(converted.schema_id, Some(id));
    assert_eq!(
        converted.json,
        json!({
            "id": "0b9c2f6e-4d1a-4c8e-9f3a-2b7d5e1c0a94",
            "total": {"amount": "1234.56", "currency": "USD"},
            "placed_at": "2025-10-09T08:53:20.123Z",
            "note": "gift"
        })
    );

    // A generated type registered with its common records as references, decoded into that type.
    let value = message();
    let (id, _) = register_with_references(&c, &prefix).await;
    let converted = converter
        .convert("messages", Some(&value.to_confluent(id).unwrap()))
        .await
        .unwrap();
    assert_eq!(
        converted.decode_as::<MessageReceived>().unwrap(),
        Some(value)
    );

    // An id Apicurio does not have: 40403 as from Confluent, so a permanent error.
    let e = converter
        .convert("orders", Some(&framed(2_000_000_000, &datum)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ConvertError::UnknownSchemaId {
                id: 2_000_000_000,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_retriable());
}

fn message() -> MessageReceived {
    use ursa_avro::logical::uuid_from_str;
    let uuid = |s: &str| uuid_from_str(s).unwrap();
    MessageReceived {
        metadata: EventMetadata {
            event_id: uuid("6f1c1f0e-8a52-4b1e-9d56-0c3f7b8a2e11"),
            occurred_at: ursa_avro::Timestamp::from_millis(1_760_000_000_123),
            correlation_id: Some(uuid("a3d9e4b2-1c7f-4e8a-b6d5-9f2e0c1b3a47")),
            causation_id: None,
            producer: "conversation-engine".into(),
            schema_version: 3,
            trace_parent: None,
        },
        message_id: uuid("0b9c2f6e-4d1a-4c8e-9f3a-2b7d5e1c0a94"),
        conversation_id: uuid("5e7a2c91-3b4d-4f60-8e1a-7c9b0d2f4a68"),
        child: ChildRef {
            child_id: uuid("c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"),
            household_id: uuid("f0e1d2c3-b4a5-4968-8776-5a4b3c2d1e0f"),
        },
        device: DeviceRef {
            device_id: "TB2-0042-A7F3-19C8".into(),
            firmware_version: "3.14.2".into(),
        },
        sequence_number: 17,
        text: "Tell me a story about a dinosaur".into(),
        modality: InputModality::Voice,
        detected_emotion: Some(Emotion::Curiosity),
        audio_duration_ms: Some(4_250),
        asr_confidence: Some(0.93),
        captured_at: ursa_avro::Timestamp::from_micros(1_759_999_995_810_606),
    }
}

/// Registers `MessageReceived` the way a Confluent producer with schema references would: the common records
/// under subjects of their own (`PREFIX-<name>`), the event under `PREFIX-messages-value` referencing them.
/// Returns the event's id and subject.
async fn register_with_references(c: &RegistryClient, prefix: &str) -> (u32, String) {
    let set: &SchemaSet = MessageReceived::schema().unwrap();
    let mut refs = Vec::new();
    let mut external = Vec::new();
    for name in [
        "com.teddy.common.EventMetadata",
        "com.teddy.common.ChildRef",
        "com.teddy.common.DeviceRef",
    ] {
        let named = set.lookup(name).unwrap();
        let node = Schema {
            kind: SchemaKind::Named(named),
            logical: None,
            attrs: Attrs::new(),
            loc: Loc::default(),
        };
        let subject = format!("{prefix}-{name}");
        c.register(&subject, &set.full_json(&node).to_string(), &[])
            .await
            .unwrap();
        refs.push(reference(name, &subject, 1));
        external.push(named);
    }
    let text = set
        .json_with_references(set.last_root(), &external)
        .to_string();
    assert!(
        !text.contains("\"household_id\""),
        "referenced, not inlined"
    );
    let subject = format!("{prefix}-messages-value");
    let id = c.register(&subject, &text, &refs).await.unwrap();
    (id, subject)
}

/// Python confluent-kafka produces `MessageReceived` events serialized against Apicurio; `ursa run` decodes
/// them with the avro converter (schemas fetched from Apicurio) into the file sink.
#[tokio::test(flavor = "multi_thread")]
async fn confluent_kafka_avro_through_apicurio_to_the_file_sink() {
    const COUNT: usize = 40;
    let kafka = Kafka::shared();
    let apicurio = Apicurio::shared();
    let url = apicurio.ccompat_url();
    let topic = unique_name("apicurio-messages");
    create_topic(kafka, &topic, 2).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema_file = dir.path().join("MessageReceived.avsc");
    std::fs::write(&schema_file, MessageReceived::SCHEMA).unwrap();
    let sent = tokio::task::spawn_blocking({
        let (bootstrap, url, topic, schema_file) = (
            kafka.bootstrap().to_owned(),
            url.to_owned(),
            topic.clone(),
            schema_file.clone(),
        );
        move || {
            python_script(
                "produce_avro.py",
                &[
                    &bootstrap,
                    &url,
                    &topic,
                    schema_file.to_str().unwrap(),
                    &COUNT.to_string(),
                ],
                None,
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(sent.len(), COUNT);
    // The serializer registered the schema under the topic's value subject in Apicurio.
    let c = client(url);
    let registered = c
        .version(&format!("{topic}-value"), VersionId::Latest)
        .await
        .unwrap();
    assert_eq!(registered.version, 1);

    let file = dir.path().join("events.jsonl");
    let worker = dir.path().join("worker.toml");
    std::fs::write(
        &worker,
        format!(
            "drain_deadline = \"10s\"\n[kafka]\nbootstrap_servers = \"{}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n",
            kafka.bootstrap()
        ),
    )
    .unwrap();
    let connector = dir.path().join("events.toml");
    std::fs::write(
        &connector,
        format!(
            "name = \"{}\"\n\"connector.class\" = \"file\"\ntopics = \"{topic}\"\nfile = \"{}\"\n\"key.converter\" = \"string\"\n\"value.converter\" = \"avro\"\n\"value.converter.schema.registry.url\" = \"{url}\"\n\"offset.flush.interval.ms\" = \"200\"\n",
            unique_name("apicurio-file"),
            file.display(),
        ),
    )
    .unwrap();
    let mut child = WorkerProcess::start(
        env!("CARGO_BIN_EXE_ursa"),
        &[worker.to_str().unwrap(), connector.to_str().unwrap()],
    )
    .unwrap();
    let lines = |path: &Path| -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let got = wait_until(
        &format!("{COUNT} records in the file"),
        Duration::from_secs(60),
        || {
            let l = lines(&file);
            (l.len() >= COUNT).then_some(l)
        },
    )
    .unwrap();
    assert_eq!(got.len(), COUNT, "each record once");
    let mut keys = Vec::new();
    for line in &got {
        assert_eq!(line["topic"], topic.as_str());
        let index: usize = line["key"].as_str().unwrap().parse().unwrap();
        keys.push(index);
        let value = &line["value"];
        assert_eq!(value["sequence_number"], sent[index]["sequence_number"]);
        assert_eq!(value["text"], sent[index]["text"]);
        assert!(
            value["message_id"].as_str().unwrap().len() == 36,
            "a UUID as its text: {value}"
        );
    }
    keys.sort_unstable();
    assert_eq!(keys, (0..COUNT).collect::<Vec<_>>());
    assert!(
        child.terminate().unwrap(),
        "the worker did not exit 0 on SIGTERM"
    );
}

// ---- Python confluent-kafka against both registries ----

#[tokio::test(flavor = "multi_thread")]
async fn confluent_kafka_serializer_and_deserializer_on_the_dev_registry_and_apicurio() {
    let dev = Server::bind(ServerConfig::ephemeral())
        .await
        .unwrap()
        .spawn();
    let apicurio = Apicurio::shared();
    let dir = tempfile::tempdir().unwrap();
    let schema_file = dir.path().join("MessageReceived.avsc");
    std::fs::write(&schema_file, MessageReceived::SCHEMA).unwrap();
    for (name, url) in [
        ("the dev registry", dev.url()),
        ("Apicurio", apicurio.ccompat_url().to_owned()),
    ] {
        let c = client(&url);
        // 1. AvroSerializer (auto-registering) → ursa's generated type; AvroDeserializer round-trips.
        let topic = unique_name("py-serde");
        let out = tokio::task::spawn_blocking({
            let (url, topic, schema_file) = (url.clone(), topic.clone(), schema_file.clone());
            move || {
                python_script(
                    "avro_serde_apicurio.py",
                    &[
                        "serialize",
                        &url,
                        &topic,
                        schema_file.to_str().unwrap(),
                        "5",
                    ],
                    None,
                )
            }
        })
        .await
        .unwrap();
        let (latest, records) = out.split_last().unwrap();
        assert_eq!(records.len(), 5, "{name}");
        let subject = format!("{topic}-value");
        assert_eq!(latest["subject"], subject.as_str(), "{name}");
        assert_eq!(latest["version"], 1, "{name}");
        let id = u32::try_from(latest["id"].as_u64().unwrap()).unwrap();
        // The id the client sees is the registry's id for the schema (on Apicurio, its content id).
        assert_eq!(
            c.lookup(&subject, MessageReceived::SCHEMA, &[])
                .await
                .unwrap(),
            Some((id, 1)),
            "{name}"
        );
        let decoder = ConfluentDecoder::<MessageReceived>::new();
        decoder
            .register(id, &c.schema_by_id(id).await.unwrap())
            .unwrap();
        for r in records {
            assert_eq!(r["roundtrip"], true, "{name}: {r}");
            let payload = (0..r["payload"].as_str().unwrap().len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&r["payload"].as_str().unwrap()[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>();
            assert_eq!(payload[0], 0, "{name}: the magic byte");
            assert_eq!(
                u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]),
                id,
                "{name}: the schema id, 4 bytes big-endian"
            );
            let event = decoder
                .decode(&payload, |_| Err("registered above".into()))
                .unwrap();
            assert_eq!(
                i64::from(event.sequence_number),
                r["sequence_number"].as_i64().unwrap(),
                "{name}"
            );
            assert_eq!(event.text, r["text"].as_str().unwrap(), "{name}");
        }

        // 2. ursa's encoding of a schema with references → AvroDeserializer, which fetches the writer schema
        // and the referenced subjects' versions from the registry.
        let (id, _) = register_with_references(&c, &unique_name("py-refs")).await;
        let value = message();
        let hex: String = value
            .to_confluent(id)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let decoded = tokio::task::spawn_blocking({
            let url = url.clone();
            move || {
                python_script(
                    "avro_serde_apicurio.py",
                    &["deserialize", &url, "messages"],
                    Some(&format!("{hex}\n")),
                )
            }
        })
        .await
        .unwrap();
        assert_eq!(decoded.len(), 1, "{name}");
        let d = &decoded[0];
        assert_eq!(d["text"], "Tell me a story about a dinosaur", "{name}");
        assert_eq!(d["sequence_number"], 17, "{name}");
        assert_eq!(d["modality"], "VOICE", "{name}");
        assert_eq!(
            d["child"]["household_id"], "f0e1d2c3-b4a5-4968-8776-5a4b3c2d1e0f",
            "{name}"
        );
        assert_eq!(
            d["metadata"]["event_id"], "6f1c1f0e-8a52-4b1e-9d56-0c3f7b8a2e11",
            "{name}"
        );
        assert_eq!(
            d["captured_at"], "2025-10-09T08:53:15.810606+00:00",
            "{name}"
        );
    }
    dev.stop().await.unwrap();
}

// ---- where Apicurio's ccompat API differs from Confluent's ----

/// The same questions to the dev registry (which answers like Confluent) and to Apicurio.
#[tokio::test(flavor = "multi_thread")]
async fn where_apicurio_answers_differently_from_confluent() {
    let dev_server = Server::bind(ServerConfig::ephemeral())
        .await
        .unwrap()
        .spawn();
    let dev_url = dev_server.url();
    let apicurio = Apicurio::shared();
    let dev = client(&dev_url);
    let api = client(apicurio.ccompat_url());
    let ns = unique_namespace();
    let v1 = format!(
        r#"{{"type":"record","name":"P","namespace":"{ns}","fields":[{{"name":"a","type":"string"}}]}}"#
    );
    let v1_doc = format!(
        r#"{{"type":"record","name":"P","namespace":"{ns}","doc":"now documented","fields":[{{"name":"a","type":"string"}}]}}"#
    );
    let v1_spaced = format!(
        r#"{{ "type": "record", "name": "P", "namespace": "{ns}", "fields": [ {{ "name": "a", "type": "string" }} ] }}"#
    );
    let breaking = format!(
        r#"{{"type":"record","name":"P","namespace":"{ns}","fields":[{{"name":"a","type":"string"}},{{"name":"b","type":"int"}}]}}"#
    );
    let subject = unique_name("diff");
    let other = unique_name("diff-other");
    let unknown = unique_name("diff-unknown");
    let dev_id = dev.register(&subject, &v1, &[]).await.unwrap();
    let api_id = api.register(&subject, &v1, &[]).await.unwrap();

    // The level of a subject that does not exist: Confluent falls back to the global level with
    // `defaultToGlobal=true`; Apicurio answers 40401 (subject not found) either way.
    assert_eq!(
        dev.get_config(Some(&unknown)).await.unwrap(),
        CompatibilityLevel::Backward
    );
    let e = api.get_config(Some(&unknown)).await.unwrap_err();
    assert!(matches!(e, ClientError::SubjectNotFound { .. }), "{e:?}");

    // The level of an existing subject without one of its own, without `defaultToGlobal`: Confluent answers
    // 40408; Apicurio gives the global level.
    let (status, body) = get_json(&format!("{dev_url}/config/{subject}")).await;
    assert_eq!(
        (status, &body["error_code"]),
        (404, &json!(40408)),
        "{body}"
    );
    let (status, body) = get_json(&format!("{}/config/{subject}", apicurio.ccompat_url())).await;
    assert_eq!(
        (status, &body["compatibilityLevel"]),
        (200, &json!("BACKWARD")),
        "{body}"
    );

    // A compatibility test with `verbose=true`: Confluent explains; Apicurio gives the verdict only.
    let (ok, messages) = dev
        .test_compatibility(&subject, Some(VersionId::Latest), &breaking, &[], true)
        .await
        .unwrap();
    assert!(!ok);
    assert!(
        messages
            .iter()
            .any(|m| m.contains("READER_FIELD_MISSING_DEFAULT_VALUE")),
        "{messages:?}"
    );
    let (ok, messages) = api
        .test_compatibility(&subject, Some(VersionId::Latest), &breaking, &[], true)
        .await
        .unwrap();
    assert!(!ok);
    assert!(messages.is_empty(), "{messages:?}");

    // Registering it: HTTP 409 / error code 409 from both, with each registry's own message.
    for (c, expected) in [
        (&dev, "READER_FIELD_MISSING_DEFAULT_VALUE"),
        (&api, "Incompatible artifact"),
    ] {
        match c.register(&subject, &breaking, &[]).await {
            Err(ClientError::Incompatible { message }) => {
                assert!(message.contains(expected), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    // A doc-only change: a new schema for Confluent (lookup misses, registering makes version 2 with a new
    // id); for Apicurio the same schema (its lookup matches by a canonical form without docs).
    assert_eq!(dev.lookup(&subject, &v1_doc, &[]).await.unwrap(), None);
    let dev_doc_id = dev.register(&subject, &v1_doc, &[]).await.unwrap();
    assert_ne!(dev_doc_id, dev_id);
    assert_eq!(dev.versions(&subject).await.unwrap(), vec![1, 2]);
    assert_eq!(
        api.lookup(&subject, &v1_doc, &[]).await.unwrap(),
        Some((api_id, 1))
    );
    assert_eq!(api.register(&subject, &v1_doc, &[]).await.unwrap(), api_id);
    assert_eq!(api.versions(&subject).await.unwrap(), vec![1]);

    // The same schema under another subject: the same id from both. Reformatted text under another
    // subject: Confluent parses and finds the same schema (same id); Apicurio's content ids are by the text
    // as sent, canonical hashing notwithstanding, so it is new content with a new id.
    assert_eq!(dev.register(&other, &v1, &[]).await.unwrap(), dev_id);
    assert_eq!(api.register(&other, &v1, &[]).await.unwrap(), api_id);
    let third = unique_name("diff-third");
    assert_eq!(dev.register(&third, &v1_spaced, &[]).await.unwrap(), dev_id);
    assert_ne!(api.register(&third, &v1_spaced, &[]).await.unwrap(), api_id);

    // Where they agree: the error codes of a missing schema id, a missing version, an invalid schema and an
    // invalid level.
    for (c, url) in [(&dev, dev_url.as_str()), (&api, apicurio.ccompat_url())] {
        let e = c.schema_by_id(2_000_000_000).await.unwrap_err();
        assert_eq!(e.error_code(), Some(40403), "{url}: {e:?}");
        let e = c.version(&subject, 99u32).await.unwrap_err();
        assert_eq!(e.error_code(), Some(40402), "{url}: {e:?}");
        let e = c
            .register(&unique_name("diff-bad"), r#"{"type":"record"}"#, &[])
            .await
            .unwrap_err();
        assert_eq!(e.error_code(), Some(42201), "{url}: {e:?}");
        let r = reqwest::Client::new()
            .put(format!("{url}/config/{subject}"))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(r#"{"compatibility":"SIDEWAYS"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 422, "{url}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error_code"], 42203, "{url}: {body}");
    }
    dev_server.stop().await.unwrap();
}
