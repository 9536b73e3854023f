//! The `notify` sink end to end: `ursa run` on the real broker with the ledger in a real PostgreSQL and every
//! provider on loopback (aiosmtpd with STARTTLS, a Standard Webhooks receiver verifying with the reference
//! library, a Twilio fake checking the form API, an FCM server checking its OAuth2 grant). A critical safety
//! alert reaches SMS and push at once, escalates to email, and its signed link stops the escalation; routine
//! news goes out as one digest across a `kill -9`; and while workers are `kill -9`ed during a stream of sends,
//! the peers see nothing twice and nothing goes missing except what the ledger marks ambiguous. The catalog's own
//! Avro events, published with `ursa-publish` (registered in the dev registry, topics under a prefix), build the
//! directory, raise the alert, and an `AlertAcknowledged` on the acknowledgement topic stops its escalation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use ursa_connector_notify::db::Db;
use ursa_connector_notify::testing::fcm::FcmServer;
use ursa_connector_notify::testing::twilio::{ACCOUNT_SID, AUTH_TOKEN, Fake};
use ursa_connector_notify::testing::{Receiver, Smtp, Tls, webhook_secret};
use ursa_testkit::{
    Kafka, Postgres, TestDatabase, WorkerProcess, create_topic, free_port, unique_name,
};

/// Polls `f` until it gives a value or `timeout` passes (waiting on a condition, not a fixed sleep).
async fn until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const HOUSEHOLD: &str = "7d4f7c1e-9a83-4c55-8f2c-31f1b0c0a001";
const CHILD: &str = "0b6c5d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e";
const PHONE: &str = "+15005550100";
const DEVICE: &str = "fcm-device-token-e2e";

struct Topics {
    /// The prefix of every topic (`ursa-publish`'s `topic_prefix`).
    prefix: String,
    safety: String,
    milestones: String,
    usage: String,
    guardians: String,
    registered: String,
    acks: String,
    audit: String,
}

/// How the test's events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Values {
    /// JSON, with the JSON converter.
    Json,
    /// The catalog's Avro (Confluent framing, keys too), with the Avro converter and the dev registry.
    Avro,
}

fn rules(t: &Topics) -> String {
    format!(
        r#"
[digest]
every = "4s"
channels = ["email"]
[digest.templates.email.en]
subject = "Digest ({{{{ items | length }}}})"
text = "{{% for i in items %}}{{{{ i.event_id }}}};{{% endfor %}}"

[[rule]]
name = "critical"
topic = "{safety}"
when = ["severity == critical"]
priority = "immediate"
category = "safety"
channels = ["sms", "push", "email"]
fanout = 2
escalation = {{ every = "2s", max = 2 }}
[rule.templates.sms.en]
text = "ALERT {{{{ severity }}}} {{{{ notification.event_id }}}} {{{{ notification.ack_url }}}}"
[rule.templates.push.en]
title = "Safety alert"
body = "{{{{ notification.event_id }}}}"
[rule.templates.email.en]
subject = "Safety alert {{{{ notification.event_id }}}}"
text = "{{{{ excerpt }}}}"

[[rule]]
name = "high"
topic = "{safety}"
when = ["severity == high"]
priority = "immediate"
category = "safety"
channels = ["sms"]
[rule.templates.sms.en]
text = "HIGH {{{{ notification.event_id }}}}"

[[rule]]
name = "milestones"
topic = "{milestones}"
priority = "digest"
category = "milestones"
channels = ["email"]
[rule.templates.email.en]
subject = "{{{{ title }}}}"
text = "{{{{ title }}}}"

[[rule]]
name = "usage"
topic = "{usage}"
priority = "normal"
category = "usage"
channels = ["webhook"]
"#,
        safety = t.safety,
        milestones = t.milestones,
        usage = t.usage
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    db: TestDatabase,
    topics: Topics,
    worker: PathBuf,
    connector: PathBuf,
    _tls: Tls,
    smtp: Smtp,
    twilio: Fake,
    fcm: FcmServer,
    receiver: Receiver,
    producer: FutureProducer,
    registry: ursa_registry::RunningServer,
}

async fn setup(values: Values) -> Setup {
    let kafka = Kafka::shared();
    let p = format!("{}.", unique_name("notify"));
    let topics = Topics {
        safety: format!("{p}child.safety-violation"),
        milestones: format!("{p}child.milestone-achieved"),
        usage: format!("{p}analytics.usage-stats"),
        guardians: format!("{p}guardian.contact-updated"),
        registered: format!("{p}child.registered"),
        acks: format!("{p}guardian.alert-acknowledged"),
        audit: format!("{p}system.audit-log"),
        prefix: p,
    };
    for (t, n) in [
        (&topics.safety, 3),
        (&topics.milestones, 3),
        (&topics.usage, 3),
        (&topics.guardians, 1),
        (&topics.registered, 1),
        (&topics.acks, 1),
        (&topics.audit, 1),
    ] {
        create_topic(kafka, t, n).await.unwrap();
    }
    let registry = ursa_registry::Server::bind(ursa_registry::ServerConfig::ephemeral())
        .await
        .unwrap()
        .spawn();
    let db = Postgres::shared().database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tls = Tls::new().unwrap();
    let smtp = Smtp::start(&tls, "bear", "honey", None, 0).unwrap();
    let twilio = Fake::start().await.unwrap();
    let fcm = FcmServer::start().await.unwrap();
    let secret = webhook_secret();
    let receiver = Receiver::start(&secret, 0).unwrap();
    let rules_file = dir.path().join("rules.toml");
    std::fs::write(&rules_file, rules(&topics)).unwrap();
    // Credentials reach the worker as ${file:…} references, never in its config.
    let secrets = dir.path().join("secrets.properties");
    std::fs::write(
        &secrets,
        format!(
            "db={}\nsms={AUTH_TOKEN}\nsmtp=honey\nwebhook={secret}\nack=e2e-ack-secret\n",
            db.url()
        ),
    )
    .unwrap();
    let sa = dir.path().join("fcm.json");
    std::fs::write(&sa, &fcm.service_account).unwrap();
    let worker = dir.path().join("worker.toml");
    std::fs::write(
        &worker,
        format!(
            "drain_deadline = \"10s\"\n[kafka]\nbootstrap_servers = \"{}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n",
            kafka.bootstrap()
        ),
    )
    .unwrap();
    let http = free_port().unwrap();
    let s = secrets.display();
    let mut config: BTreeMap<&str, String> = [
        ("name", unique_name("alerts")),
        ("connector.class", "notify".into()),
        (
            "topics",
            [
                &topics.safety,
                &topics.milestones,
                &topics.usage,
                &topics.guardians,
                &topics.registered,
                &topics.acks,
            ]
            .map(String::as_str)
            .join(","),
        ),
        ("key.converter", "string".into()),
        ("value.converter", "json".into()),
        ("offset.flush.interval.ms", "500".into()),
        ("consumer.override.session.timeout.ms", "6000".into()),
        ("consumer.override.heartbeat.interval.ms", "500".into()),
        ("notify.rules.file", rules_file.display().to_string()),
        ("notify.database.url", format!("${{file:{s}:db}}")),
        ("notify.directory.guardian.topic", topics.guardians.clone()),
        (
            "notify.directory.topics",
            format!("{},{}", topics.guardians, topics.registered),
        ),
        ("notify.ack.topic", topics.acks.clone()),
        ("notify.email.host", "127.0.0.1".into()),
        ("notify.email.port", smtp.port.to_string()),
        ("notify.email.username", "bear".into()),
        ("notify.email.password", format!("${{file:{s}:smtp}}")),
        ("notify.email.from", "alerts@teddy.example".into()),
        ("notify.email.ca.file", tls.ca.display().to_string()),
        ("notify.sms.base.url", twilio.url()),
        ("notify.sms.account.sid", ACCOUNT_SID.into()),
        ("notify.sms.auth.token", format!("${{file:{s}:sms}}")),
        ("notify.sms.from", "+15005550006".into()),
        ("notify.sms.per.recipient.hourly", "0".into()),
        (
            "notify.fcm.service.account",
            format!("${{file:{}}}", sa.display()),
        ),
        ("notify.fcm.base.url", fcm.url()),
        ("notify.webhook.url", receiver.url()),
        ("notify.webhook.secrets", format!("${{file:{s}:webhook}}")),
        ("notify.http.listen", format!("127.0.0.1:{http}")),
        ("notify.http.public.url", format!("http://127.0.0.1:{http}")),
        ("notify.ack.secret", format!("${{file:{s}:ack}}")),
        ("notify.scheduler.interval", "200ms".into()),
        ("notify.lease", "3s".into()),
        ("notify.retry.max.delay", "2s".into()),
        (
            "notify.audit.bootstrap.servers",
            kafka.bootstrap().to_owned(),
        ),
        ("notify.audit.topic", topics.audit.clone()),
        (
            "notify.audit.schema.registry.url",
            registry.url().to_owned(),
        ),
    ]
    .into_iter()
    .collect();
    if values == Values::Avro {
        for k in ["key.converter", "value.converter"] {
            config.insert(k, "avro".into());
        }
        for k in [
            "key.converter.schema.registry.url",
            "value.converter.schema.registry.url",
        ] {
            config.insert(k, registry.url().to_owned());
        }
    }
    let connector = dir.path().join("notify.toml");
    let text: String = config
        .iter()
        .map(|(k, v)| format!("\"{k}\" = {}\n", toml_string(v)))
        .collect();
    std::fs::write(&connector, text).unwrap();
    let producer: FutureProducer = kafka
        .config()
        .set("linger.ms", "2")
        .set("acks", "all")
        .create()
        .unwrap();
    Setup {
        _dir: dir,
        db,
        topics,
        worker,
        connector,
        _tls: tls,
        smtp,
        twilio,
        fcm,
        receiver,
        producer,
        registry,
    }
}

fn toml_string(v: &str) -> String {
    serde_json::to_string(v).unwrap()
}

impl Setup {
    fn start(&self) -> WorkerProcess {
        WorkerProcess::start(
            env!("CARGO_BIN_EXE_ursa"),
            &[
                self.worker.to_str().unwrap(),
                self.connector.to_str().unwrap(),
            ],
        )
        .unwrap()
    }

    async fn produce(&self, topic: &str, key: &str, value: &Value) {
        let text = value.to_string();
        self.producer
            .send(
                FutureRecord::to(topic).key(key).payload(&text),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
    }

    async fn db(&self) -> Db {
        Db::new(self.db.url(), 2).unwrap()
    }

    async fn count(&self, db: &Db, sql: &str) -> i64 {
        let c = db.get().await.unwrap();
        let n = c
            .client()
            .query_one(sql, &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(-1);
        c.release();
        n
    }
}

fn violation(id: &str, severity: &str) -> Value {
    json!({
        "metadata": {"event_id": id, "occurred_at": 0, "producer": "detector", "schema_version": 1},
        "violation_id": id,
        "child": {"child_id": CHILD, "household_id": HOUSEHOLD},
        "severity": severity, "category": "SELF_HARM", "excerpt": "something worrying",
        "confidence": 0.9,
    })
}

/// The events whose entries the ledger marks ambiguous (a send cut off mid-way, never repeated).
async fn ambiguous(db: &Db) -> BTreeSet<String> {
    let c = db.get().await.unwrap();
    let rows = c
        .client()
        .query(
            "SELECT event_id FROM notify_ledger WHERE state = 'ambiguous'",
            &[],
        )
        .await
        .unwrap();
    c.release();
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

fn uuid() -> String {
    ursa_connector_notify::channels::jwt::uuid(None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerts_escalate_digests_go_out_once_and_kill_9_sends_nothing_twice() {
    let s = setup(Values::Json).await;
    let db = s.db().await;
    let mut worker = s.start();
    s.produce(
        &s.topics.guardians,
        HOUSEHOLD,
        &json!({"guardian_id": HOUSEHOLD, "household_id": HOUSEHOLD, "email": "parent@family.example", "phone": PHONE,
                "time_zone": "UTC", "devices": [{"token": DEVICE, "platform": "fcm"}]}),
    )
    .await;
    until(
        "the guardian in the directory",
        Duration::from_secs(60),
        || async {
            (s.count(&db, "SELECT count(*) FROM notify_guardian").await == 1).then_some(())
        },
    )
    .await;

    // A critical alert: SMS and push at once, email when nobody acknowledges, then the link stops it.
    let critical = uuid();
    let t0 = Instant::now();
    s.produce(&s.topics.safety, CHILD, &violation(&critical, "CRITICAL"))
        .await;
    let sms = until("the SMS", Duration::from_secs(30), || async {
        s.twilio
            .received_for(PHONE)
            .into_iter()
            .find(|r| r.form["Body"].contains(&critical))
    })
    .await;
    until("the push", Duration::from_secs(10), || async {
        (s.fcm.delivered_to(DEVICE) >= 1).then_some(())
    })
    .await;
    let latency = t0.elapsed();
    until("the escalation email", Duration::from_secs(30), || async {
        s.smtp
            .messages()
            .into_iter()
            .find(|m| m["subject"].as_str().is_some_and(|x| x.contains(&critical)))
    })
    .await;
    let link = sms.form["Body"].split(' ').next_back().unwrap().to_owned();
    let r = reqwest::get(&link).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    until("the acknowledgement", Duration::from_secs(10), || async {
        let n = s.count(&db, &format!("SELECT count(*) FROM notify_escalation WHERE event_id = '{critical}' AND state = 'acked'")).await;
        (n == 1).then_some(())
    })
    .await;

    // Routine news: three milestones, a kill -9 before the digest window closes, one digest after.
    let milestones: Vec<String> = (0..3).map(|_| uuid()).collect();
    for (i, id) in milestones.iter().enumerate() {
        let ev = json!({"metadata": {"event_id": id}, "child": {"child_id": CHILD, "household_id": HOUSEHOLD}, "title": format!("Milestone {i}")});
        s.produce(&s.topics.milestones, CHILD, &ev).await;
    }
    until("the digest items", Duration::from_secs(30), || async {
        (s.count(
            &db,
            "SELECT count(*) FROM notify_ledger WHERE channel = 'digest'",
        )
        .await
            == 3)
            .then_some(())
    })
    .await;
    worker.child.kill().unwrap();
    let _ = worker.child.wait();
    worker = s.start();
    let digest = until("the digest", Duration::from_secs(60), || async {
        s.smtp
            .messages()
            .into_iter()
            .find(|m| m["subject"] == "Digest (3)")
    })
    .await;
    for id in &milestones {
        assert!(digest["text"].as_str().unwrap().contains(id.as_str()));
    }

    // A stream of sends while workers are killed: 30 SMS alerts and 30 webhooks.
    let high: Vec<String> = (0..30).map(|_| uuid()).collect();
    let usage: Vec<String> = (0..30).map(|_| uuid()).collect();
    let mut kills = 0;
    for (i, (h, u)) in high.iter().zip(&usage).enumerate() {
        s.produce(&s.topics.safety, &format!("child-{i}"), &json!({"metadata": {"event_id": h}, "child": {"child_id": CHILD, "household_id": HOUSEHOLD}, "severity": "HIGH"})).await;
        s.produce(&s.topics.usage, &format!("child-{i}"), &json!({"metadata": {"event_id": u}, "child": {"child_id": CHILD, "household_id": HOUSEHOLD}, "message_count": i})).await;
        if i % 10 == 9 && kills < 2 {
            // Wait until this batch is being delivered, then kill the worker in the middle of it.
            until("deliveries under way", Duration::from_secs(60), || async {
                (s.receiver.deliveries().len() >= i / 2).then_some(())
            })
            .await;
            worker.child.kill().unwrap();
            let _ = worker.child.wait();
            kills += 1;
            worker = s.start();
        }
    }
    let sms_ids = |twilio: &Fake| -> Vec<String> {
        twilio
            .received_for(PHONE)
            .iter()
            .filter(|r| r.status == 201)
            .filter_map(|r| r.form["Body"].strip_prefix("HIGH ").map(str::to_owned))
            .collect()
    };
    until(
        "every webhook and every SMS (or its ambiguous entry)",
        Duration::from_secs(120),
        || async {
            let hooks: BTreeSet<String> = s
                .receiver
                .deliveries()
                .iter()
                .filter(|d| d["verified"] == true)
                .filter_map(|d| serde_json::from_str::<Value>(d["body"].as_str()?).ok())
                .filter_map(|b| b["data"]["event_id"].as_str().map(str::to_owned))
                .collect();
            let amb = ambiguous(&db).await;
            let sent: BTreeSet<String> = sms_ids(&s.twilio).into_iter().collect();
            let all_sms = high.iter().all(|h| sent.contains(h) || amb.contains(h));
            (usage.iter().all(|u| hooks.contains(u)) && all_sms).then_some(())
        },
    )
    .await;
    // Nothing twice: one SMS per alert; webhooks may be resent with their id (receivers dedupe on it), never
    // under a second id.
    let ids = sms_ids(&s.twilio);
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), distinct.len(), "an SMS was sent twice: {ids:?}");
    let mut by_event: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in s
        .receiver
        .deliveries()
        .iter()
        .filter(|d| d["verified"] == true)
    {
        let body: Value = serde_json::from_str(d["body"].as_str().unwrap()).unwrap();
        by_event
            .entry(body["data"]["event_id"].as_str().unwrap().to_owned())
            .or_default()
            .insert(d["id"].as_str().unwrap().to_owned());
    }
    assert!(
        by_event.values().all(|ids| ids.len() == 1),
        "a webhook went out under two ids: {by_event:?}"
    );
    let amb = ambiguous(&db).await;
    let missing: Vec<&String> = high.iter().filter(|h| !distinct.contains(h)).collect();
    assert!(
        missing.iter().all(|m| amb.contains(*m)),
        "missing without an ambiguous entry: {missing:?}"
    );
    eprintln!(
        "notify e2e: first alert on SMS and push after {latency:?}; {kills} kills; {} ambiguous SMS (not resent)",
        missing.len()
    );
    // Every attempt, escalation and acknowledgement is an AuditLog event on the audit topic, without PII.
    let consumer: rdkafka::consumer::BaseConsumer = Kafka::shared()
        .config()
        .set("group.id", unique_name("audit-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    rdkafka::consumer::Consumer::subscribe(&consumer, &[&s.topics.audit]).unwrap();
    let mut actions = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(actions.contains("notification.acknowledged")
        && actions.contains("notification.escalated")
        && actions.contains("notification.sent"))
    {
        assert!(Instant::now() < deadline, "audit records: {actions:?}");
        let Some(Ok(m)) = tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(500)))
        else {
            continue;
        };
        let bytes = rdkafka::Message::payload(&m).unwrap();
        assert!(
            !String::from_utf8_lossy(bytes).contains(PHONE)
                && !String::from_utf8_lossy(bytes).contains("parent@")
        );
        let event =
            <ursa_events::com::teddy::system::AuditLog as ursa_avro::AvroRecord>::from_avro_datum(
                &bytes[5..],
            )
            .unwrap();
        actions.insert(event.action);
    }
    // The digest still went out once.
    assert_eq!(
        s.smtp
            .messages()
            .iter()
            .filter(|m| m["subject"] == "Digest (3)")
            .count(),
        1
    );
    worker.terminate().unwrap();
}

/// A column of the household's primary guardian in the directory (`None` before the sink made its tables).
async fn guardian(db: &Db, column: &str) -> Option<String> {
    let c = db.get().await.unwrap();
    let v = c
        .client()
        .query_opt(
            &format!("SELECT {column} FROM notify_guardian WHERE guardian_id = $1"),
            &[&HOUSEHOLD],
        )
        .await
        .ok()
        .flatten()
        .and_then(|r| r.get::<_, Option<String>>(0));
    c.release();
    v
}

/// The metadata of a new event from `producer`.
fn metadata(producer: &str) -> ursa_events::com::teddy::common::EventMetadata {
    ursa_events::com::teddy::common::EventMetadata {
        event_id: ursa_publish::demo::uuid(),
        occurred_at: ursa_publish::demo::now(),
        correlation_id: None,
        causation_id: None,
        producer: producer.to_owned(),
        schema_version: 1,
        trace_parent: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_avro_events_build_the_directory_raise_the_alert_and_an_ack_event_stops_it() {
    use ursa_avro::uuid::Uuid;
    use ursa_events::com::teddy::child::{
        ChildRegistered, ConsentFlags, RegistrationChannel, Severity,
    };
    use ursa_events::com::teddy::common::{AgeBand, ChildRef, Locale};
    use ursa_events::com::teddy::guardian::{
        AckChannel, AlertAcknowledged, GuardianContactUpdated, PushDevice, PushPlatform,
    };
    use ursa_publish::{Publisher, PublisherConfig, SchemaIdPolicy};

    let s = setup(Values::Avro).await;
    let db = s.db().await;
    let mut worker = s.start();
    let mut config =
        PublisherConfig::new(Kafka::shared().bootstrap(), s.registry.url(), "notify-e2e");
    config.topic_prefix = s.topics.prefix.clone();
    config.schema_ids = SchemaIdPolicy::AutoRegister;
    config.delivery_timeout = Some(Duration::from_secs(30));
    let publisher = Publisher::new(config).unwrap();
    let household = Uuid::parse_str(HOUSEHOLD).unwrap();
    let child = ChildRef {
        child_id: Uuid::parse_str(CHILD).unwrap(),
        household_id: household,
    };
    // The registration makes the household's primary guardian (email, locale and time zone from nested records).
    publisher
        .publish(&ChildRegistered {
            metadata: metadata("onboarding"),
            child: child.clone(),
            first_name: "Robin".into(),
            birth_date: ursa_avro::chrono::NaiveDate::from_ymd_opt(2019, 4, 2)
                .unwrap()
                .into(),
            age_band: AgeBand::default(),
            guardian_email: "parent@family.example".into(),
            guardian_phone: None,
            locale: Locale {
                language_tag: "en-GB".into(),
                time_zone: "Europe/London".into(),
            },
            consent: ConsentFlags {
                data_processing: true,
                voice_retention: false,
                analytics: false,
                marketing: false,
                policy_version: "2026-01".into(),
                consented_at: ursa_publish::demo::now(),
            },
            device: None,
            channel: RegistrationChannel::MobileApp,
        })
        .await
        .unwrap();
    until(
        "the registration in the directory",
        Duration::from_secs(60),
        || async {
            (guardian(&db, "time_zone").await.as_deref() == Some("Europe/London")).then_some(())
        },
    )
    .await;
    // A contact update adds the phone and a push device, and leaves the email alone (null: unchanged).
    publisher
        .publish(&GuardianContactUpdated {
            metadata: metadata("guardian-app"),
            guardian_id: household,
            household_id: household,
            removed: false,
            email: None,
            phone: Some(PHONE.into()),
            webhook_url: None,
            locale: None,
            time_zone: None,
            quiet_hours: None,
            preferences: None,
            devices: vec![PushDevice {
                token: DEVICE.into(),
                platform: PushPlatform::Fcm,
                active: true,
            }],
        })
        .await
        .unwrap();
    until(
        "the contact update in the directory",
        Duration::from_secs(60),
        || async {
            (guardian(&db, "phone").await.as_deref() == Some(PHONE)
                && s.count(
                    &db,
                    "SELECT count(*) FROM notify_device WHERE state = 'active'",
                )
                .await
                    == 1)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        guardian(&db, "email").await.as_deref(),
        Some("parent@family.example")
    );

    // A critical violation: SMS and push at once (the enum reaches the template), email on escalation (with the
    // excerpt: email may carry PII, SMS may not).
    let mut violation = ursa_publish::demo::safety_violation(child.child_id, "a worrying excerpt");
    violation.child = child.clone();
    violation.severity = Severity::Critical;
    let id = violation.metadata.event_id.to_string();
    publisher.publish(&violation).await.unwrap();
    let sms = until("the SMS", Duration::from_secs(30), || async {
        s.twilio
            .received_for(PHONE)
            .into_iter()
            .find(|r| r.form["Body"].contains(&id))
    })
    .await;
    assert!(
        sms.form["Body"].starts_with("ALERT CRITICAL "),
        "{}",
        sms.form["Body"]
    );
    assert!(!sms.form["Body"].contains("worrying"));
    until("the push", Duration::from_secs(10), || async {
        (s.fcm.delivered_to(DEVICE) >= 1).then_some(())
    })
    .await;
    let email = until("the escalation email", Duration::from_secs(30), || async {
        s.smtp
            .messages()
            .into_iter()
            .find(|m| m["subject"].as_str().is_some_and(|x| x.contains(&id)))
    })
    .await;
    assert_eq!(email["to"], json!(["parent@family.example"]), "{email}");
    assert!(
        email["text"]
            .as_str()
            .unwrap()
            .contains("a worrying excerpt"),
        "{email}"
    );

    // The guardian acknowledges in the app: the event on the acknowledgement topic stops the escalation.
    publisher
        .publish(&AlertAcknowledged {
            metadata: metadata("guardian-app"),
            event_id: violation.metadata.event_id,
            guardian_id: household,
            household_id: household,
            via: AckChannel::App,
        })
        .await
        .unwrap();
    until("the acknowledgement", Duration::from_secs(30), || async {
        let n = s
            .count(
                &db,
                &format!(
                    "SELECT count(*) FROM notify_escalation WHERE event_id = '{id}' AND state = 'acked'"
                ),
            )
            .await;
        (n == 1).then_some(())
    })
    .await;
    publisher.shutdown(Duration::from_secs(10)).await.unwrap();
    worker.terminate().unwrap();
}
