//! The sink with every peer on loopback and its ledger in PostgreSQL: a critical safety violation reaches SMS
//! and push, escalates to email when nobody acknowledges, and the signed link stops it; quiet hours hold
//! `high` and let `immediate` through; digests go out once; Twilio's 429 Retry-After is honoured without
//! holding the partition; FCM's UNREGISTERED quarantines the token (re-checked, not deleted) and falls back
//! to email; SMTP down for a while means retries, then delivery; a redelivered record sends nothing twice, and
//! a send cut off mid-way is never repeated on a provider that does not dedupe; an acknowledgement event
//! stops an escalation as the link does; a guardian's preferences order the channels and turn routine
//! categories off (never safety); a dedupe window notifies once per key; Twilio's signed status callbacks
//! reach the ledger (30003 tries again later), in any order and even before the send is recorded, and forged
//! ones are refused; a batch handled at once keeps directory changes between the events around them; the
//! sink's metrics count all of it; a bad rule is a positioned validation error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ursa_connector_notify::testing as support;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fcm::{FcmScript, FcmServer};
use support::twilio::{ACCOUNT_SID, AUTH_TOKEN, Fake, Script};
use ursa_connect::testing::json_record;
use ursa_connect::{
    Outcome, Sink, SinkContext, SinkMetrics, SinkPlugin, SinkRecord, TopicPartition,
};
use ursa_connector_notify::NotifyPlugin;
use ursa_connector_notify::config::build_sink;
use ursa_connector_notify::sink::NotifySink;
use ursa_testkit::{Postgres, TestDatabase, free_port};

const RULES: &str = r#"
default_locale = "en"

[digest]
every = "3s"
channels = ["email"]
[digest.templates.email.en]
subject = "Your digest ({{ items | length }})"
text = "{% for i in items %}- {{ i.title }}\n{% endfor %}"
html = "<ul>{% for i in items %}<li>{{ i.title }}</li>{% endfor %}</ul>"

[[rule]]
name = "safety-critical"
topic = "child.safety-violation"
when = ["severity in [high, critical]"]
priority = "immediate"
category = "safety"
channels = ["sms", "push", "email"]
fanout = 2
escalation = { every = "2s", max = 2 }
[rule.templates.sms.en]
text = "Safety alert ({{ severity }}, {{ category }}). Acknowledge: {{ notification.ack_url }}"
[rule.templates.push.en]
title = "Safety alert"
body = "{{ category }} ({{ severity }})"
[rule.templates.email.en]
subject = "Safety alert: {{ category }}"
text = "What was said: {{ excerpt }}. Acknowledge: {{ notification.ack_url }}"
html = "<p>What was said: {{ excerpt }}</p><p><a href='{{ notification.ack_url }}'>Acknowledge</a></p>"

[[rule]]
name = "safety-medium"
topic = "child.safety-violation"
when = ["severity == medium"]
priority = "high"
category = "safety"
channels = ["push", "email"]
[rule.templates.push.en]
title = "Safety notice"
body = "{{ category }}"
[rule.templates.email.en]
subject = "Safety notice: {{ category }}"
text = "{{ category }}"

[[rule]]
name = "milestones"
topic = "child.milestone-achieved"
priority = "digest"
category = "milestones"
channels = ["email"]
[rule.templates.email.en]
subject = "{{ title }}"
text = "{{ title }}"

[[rule]]
name = "usage"
topic = "analytics.usage-stats"
priority = "normal"
category = "usage"
channels = ["webhook", "email"]
dedupe_window = "10m"
dedupe_key = "{{ child.child_id }}"
[rule.templates.email.en]
subject = "Usage"
text = "{{ message_count }} messages"
"#;

/// Polls an async check until it returns `Some` (the async form of `ursa_testkit::wait_until`).
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

struct Fx {
    db: TestDatabase,
    pg: tokio_postgres::Client,
    _dir: tempfile::TempDir,
    tls: support::Tls,
    smtp: Option<support::Smtp>,
    smtp_port: u16,
    twilio: Fake,
    fcm: FcmServer,
    receiver: support::Receiver,
    http_port: u16,
    sink: Arc<NotifySink>,
    metrics: SinkMetrics,
    offset: i64,
    /// The sink's config, to build another sink of it.
    parsed: ursa_connect::config::Parsed,
}

const HOUSEHOLD: &str = "7d4f7c1e-9a83-4c55-8f2c-31f1b0c0a001";
const CHILD: &str = "0b6c5d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e";
const PHONE: &str = "+15005550100";
const EMAIL: &str = "parent@family.example";
const DEVICE: &str = "fcm-device-token-0001";

impl Fx {
    async fn new(extra: &[(&str, &str)], start_smtp: bool) -> Fx {
        let db = Postgres::shared().database().unwrap();
        let (pg, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.toml");
        std::fs::write(&rules, RULES).unwrap();
        let tls = support::Tls::new().unwrap();
        let smtp_port = free_port().unwrap();
        let smtp = start_smtp
            .then(|| support::Smtp::start(&tls, "bear", "honey", Some(smtp_port), 0).unwrap());
        let twilio = Fake::start().await.unwrap();
        let fcm = FcmServer::start().await.unwrap();
        let secret = support::webhook_secret();
        let receiver = support::Receiver::start(&secret, 0).unwrap();
        let http_port = free_port().unwrap();
        let mut raw: BTreeMap<String, String> = [
            ("notify.rules.file", rules.to_str().unwrap().to_owned()),
            ("notify.database.url", db.url().to_owned()),
            ("notify.email.host", "127.0.0.1".to_owned()),
            ("notify.email.port", smtp_port.to_string()),
            ("notify.email.username", "bear".into()),
            ("notify.email.password", "honey".into()),
            ("notify.email.from", "alerts@teddy.example".into()),
            ("notify.email.ca.file", tls.ca.to_str().unwrap().to_owned()),
            ("notify.email.timeout", "5s".into()),
            ("notify.sms.base.url", twilio.url()),
            ("notify.sms.account.sid", ACCOUNT_SID.into()),
            ("notify.sms.auth.token", AUTH_TOKEN.into()),
            ("notify.sms.from", "+15005550006".into()),
            ("notify.sms.timeout", "1s".into()),
            ("notify.fcm.service.account", fcm.service_account.clone()),
            ("notify.fcm.base.url", fcm.url()),
            ("notify.webhook.url", receiver.url()),
            ("notify.webhook.secrets", secret),
            ("notify.http.listen", format!("127.0.0.1:{http_port}")),
            (
                "notify.http.public.url",
                format!("http://127.0.0.1:{http_port}"),
            ),
            ("notify.ack.secret", "ack-secret".into()),
            ("notify.scheduler.interval", "100ms".into()),
            ("notify.retry.max.delay", "2s".into()),
            ("notify.lease", "3s".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in extra {
            raw.insert((*k).to_owned(), (*v).to_owned());
        }
        let parsed = ursa_connect::config::parse(&NotifyPlugin.keys(), &[], &raw).unwrap();
        let errors = NotifyPlugin.validate(&parsed);
        assert!(errors.is_empty(), "{errors:?}");
        let metrics = SinkMetrics::new("alerts", 100);
        let (context, _requests) = SinkContext::new("alerts", "alerts-0", metrics.clone());
        let sink = Arc::new(build_sink(&parsed, context).unwrap());
        let topics = [
            "child.safety-violation",
            "child.milestone-achieved",
            "analytics.usage-stats",
            "guardian.contact-updated",
            "child.registered",
            "guardian.alert-acknowledged",
        ];
        let tps: Vec<TopicPartition> = topics.iter().map(|t| TopicPartition::new(*t, 0)).collect();
        sink.open(&tps, 1).await.unwrap();
        let mut fx = Fx {
            db,
            pg,
            _dir: dir,
            tls,
            smtp,
            smtp_port,
            twilio,
            fcm,
            receiver,
            http_port,
            sink,
            metrics,
            offset: 0,
            parsed,
        };
        fx.put(
            "guardian.contact-updated",
            json!({
                "guardian_id": HOUSEHOLD, "household_id": HOUSEHOLD, "email": EMAIL, "phone": PHONE,
                "time_zone": "Europe/Paris", "locale": "en-GB",
                "devices": [{"token": DEVICE, "platform": "fcm"}],
            }),
        )
        .await;
        fx
    }

    async fn put(&mut self, topic: &str, value: Value) -> Outcome {
        self.offset += 1;
        let r = json_record(topic, 0, self.offset, value);
        self.put_records(&[r]).await.remove(0)
    }

    async fn put_records(&self, records: &[SinkRecord]) -> Vec<Outcome> {
        self.sink.put(records).await.unwrap()
    }

    async fn query(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.pg.query(sql, &[]).await.unwrap()
    }

    async fn states(&self, event: &str) -> Vec<(String, String)> {
        self.pg
            .query(
                "SELECT channel, state FROM notify_ledger WHERE event_id = $1 ORDER BY channel, round",
                &[&event],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    /// The value of the sample of `family` whose labels contain `label` (0 when there is none).
    fn metric(&self, family: &str, label: &str) -> f64 {
        self.metrics
            .render()
            .lines()
            .filter(|l| l.starts_with(family) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn emails(&self) -> Vec<Value> {
        self.smtp.as_ref().map(|s| s.messages()).unwrap_or_default()
    }
}

fn violation(id: &str, severity: &str) -> Value {
    json!({
        "metadata": {"event_id": id, "occurred_at": 1_767_225_600_000i64, "producer": "safety-detector", "schema_version": 1},
        "violation_id": id,
        "child": {"child_id": CHILD, "household_id": HOUSEHOLD},
        "device": {"device_id": "bear-1", "firmware_version": "1.0"},
        "conversation_id": "5e0c1a3f-2b4d-4e6f-8a9b-0c1d2e3f4a5b",
        "severity": severity,
        "category": "SELF_HARM",
        "excerpt": "I want to hurt myself",
        "detected_at": 1_767_225_600_000i64,
        "detector_model": "guard-1",
        "confidence": 0.97,
        "risk_score": "95.0000",
        "action_taken": "GUARDIAN_NOTIFIED",
        "guardian_notified": true
    })
}

fn uuid() -> String {
    ursa_connector_notify::channels::jwt::uuid(None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_critical_alert_escalates_until_acknowledged() {
    let mut fx = Fx::new(&[], true).await;
    let id = uuid();
    let t0 = Instant::now();
    assert_eq!(
        fx.put("child.safety-violation", violation(&id, "CRITICAL"))
            .await,
        Outcome::Delivered
    );
    // SMS and push at once; nothing private on either.
    let sms = fx.twilio.received_for(PHONE);
    assert_eq!(sms.len(), 1);
    let body = &sms[0].form["Body"];
    assert!(
        body.contains("CRITICAL") && !body.contains("hurt"),
        "{body}"
    );
    assert_eq!(fx.fcm.delivered_to(DEVICE), 1);
    assert!(!fx.fcm.delivered()[0].to_string().contains("hurt"));
    assert_eq!(
        fx.states(&id).await,
        vec![
            ("push".into(), "sent".into()),
            ("sms".into(), "sent".into())
        ]
    );
    // Nobody acknowledges: after `every`, email (the next channel), with the excerpt (email is private).
    let mail = eventually("the escalation email", Duration::from_secs(15), || async {
        fx.emails().into_iter().next()
    })
    .await;
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "not before the escalation interval"
    );
    assert!(
        mail["text"]
            .as_str()
            .unwrap()
            .contains("I want to hurt myself")
    );
    // The signed link acknowledges; a forged one does not.
    let link = body
        .split("Acknowledge: ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{}/ack?", fx.http_port)),
        "{link}"
    );
    let http = reqwest::Client::new();
    let forged = link.replace("&s=", "&s=x");
    assert_eq!(
        http.get(&forged).send().await.unwrap().status().as_u16(),
        403
    );
    let r = http.get(&link).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    let row = &fx
        .query(&format!(
            "SELECT state, due_at FROM notify_escalation WHERE event_id = '{id}'"
        ))
        .await[0];
    assert_eq!(row.get::<_, String>(0), "acked");
    // Past the next step's time, a scheduler pass sends nothing more.
    let due: i64 = row.get(1);
    eventually("the next step's time", Duration::from_secs(10), || async {
        (jiff::Timestamp::now().as_millisecond() > due + 500).then_some(())
    })
    .await;
    fx.sink.core().run_scheduler().await.unwrap();
    assert_eq!(
        fx.twilio.received_for(PHONE).len(),
        1,
        "no SMS after the acknowledgement"
    );
    assert_eq!(fx.emails().len(), 1);
    // Audit records of each attempt, the escalation and the acknowledgement, without PII.
    let outbox: Vec<String> = fx
        .query("SELECT record::text FROM notify_outbox ORDER BY id")
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    let actions: Vec<Value> = outbox
        .iter()
        .map(|r| serde_json::from_str::<Value>(r).unwrap()["action"].clone())
        .collect();
    for a in [
        "notification.sent",
        "notification.escalated",
        "notification.acknowledged",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    let all = outbox.join("\n");
    assert!(
        !all.contains(PHONE)
            && !all.contains(EMAIL)
            && !all.contains("hurt")
            && !all.contains(DEVICE),
        "{all}"
    );
    // A redelivered record sends nothing again.
    let again = json_record("child.safety-violation", 0, 1, violation(&id, "CRITICAL"));
    assert_eq!(fx.put_records(&[again]).await, vec![Outcome::Delivered]);
    assert_eq!(
        (
            fx.twilio.received_for(PHONE).len(),
            fx.fcm.delivered_to(DEVICE)
        ),
        (1, 1)
    );
    let metrics = fx.sink.core().settings().connector.clone();
    assert_eq!(metrics, "alerts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_listen_port_in_use_fails_open_as_retriable_until_it_is_free() {
    let fx = Fx::new(&[], false).await;
    // A second sink of the same config: the first one holds `notify.http.listen`'s port, so the second
    // cannot serve acknowledgement links or Twilio's callbacks, and must not run as if it could.
    let metrics = SinkMetrics::new("alerts-b", 100);
    let (context, _requests) = SinkContext::new("alerts-b", "alerts-b-0", metrics);
    let second = build_sink(&fx.parsed, context).unwrap();
    let tps = [TopicPartition::new("child.safety-violation", 0)];
    let err = second
        .open(&tps, 2)
        .await
        .expect_err("opening with the listen port taken must fail");
    assert!(err.is_retriable(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("notify.http.listen") && text.contains(&fx.http_port.to_string()),
        "the error names the setting and the address: {text}"
    );
    // Once the first sink stops, the port is free and the next open serves on it.
    fx.sink.stop().await;
    second.open(&tps, 3).await.unwrap();
    let url = format!("http://127.0.0.1:{}/", fx.http_port);
    let answered = reqwest::get(&url).await;
    assert!(
        answered.is_ok(),
        "the second sink serves on {url}: {answered:?}"
    );
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quiet_hours_hold_high_and_let_immediate_through() {
    let mut fx = Fx::new(&[], true).await;
    // Quiet hours around now, in the guardian's zone (Paris).
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::get("Europe/Paris").unwrap());
    let start = now
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap();
    let end = now
        .checked_add(jiff::SignedDuration::from_hours(2))
        .unwrap();
    fx.put(
        "guardian.contact-updated",
        json!({"guardian_id": HOUSEHOLD, "household_id": HOUSEHOLD,
               "quiet_hours": {"start": start.strftime("%H:%M").to_string(), "end": end.strftime("%H:%M").to_string()}}),
    )
    .await;
    let high = uuid();
    assert_eq!(
        fx.put("child.safety-violation", violation(&high, "MEDIUM"))
            .await,
        Outcome::Delivered
    );
    assert_eq!(fx.states(&high).await, vec![("push".into(), "held".into())]);
    let until: i64 = fx
        .query(&format!(
            "SELECT not_before FROM notify_ledger WHERE event_id = '{high}'"
        ))
        .await[0]
        .get(0);
    let expected = end.timestamp().as_second() / 60 * 60;
    assert!(
        (until / 1000 - expected).abs() <= 60,
        "held until the end of quiet hours: {until} vs {expected}"
    );
    assert_eq!(fx.fcm.delivered_to(DEVICE), 0);
    // Immediate goes through at once.
    let critical = uuid();
    fx.put("child.safety-violation", violation(&critical, "CRITICAL"))
        .await;
    assert_eq!(fx.fcm.delivered_to(DEVICE), 1);
    assert_eq!(fx.twilio.received_for(PHONE).len(), 1);
    // When quiet hours end (moved to now here), the held one goes out.
    fx.pg
        .execute(
            "UPDATE notify_ledger SET not_before = 0 WHERE event_id = $1",
            &[&high],
        )
        .await
        .unwrap();
    eventually("the held push", Duration::from_secs(10), || async {
        (fx.fcm.delivered_to(DEVICE) == 2).then_some(())
    })
    .await;
    // FCM answered before the ledger recorded it: wait for the record, then check it.
    eventually(
        "the held push recorded",
        Duration::from_secs(10),
        || async {
            (fx.states(&high).await != vec![("push".to_owned(), "pending".to_owned())])
                .then_some(())
        },
    )
    .await;
    assert_eq!(fx.states(&high).await, vec![("push".into(), "sent".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digests_collect_routine_news_and_go_out_once() {
    let mut fx = Fx::new(&[], true).await;
    let ids: Vec<String> = (0..3).map(|_| uuid()).collect();
    for (i, id) in ids.iter().enumerate() {
        let ev = json!({
            "metadata": {"event_id": id, "occurred_at": 0, "producer": "p", "schema_version": 1},
            "child": {"child_id": CHILD, "household_id": HOUSEHOLD},
            "milestone_code": format!("m{i}"), "category": "LANGUAGE", "title": format!("Milestone {i}"),
            "achieved_at": 0, "age_band": "EARLY_CHILDHOOD_5_7", "evidence_excerpt": "secret words", "streak_days": 1,
        });
        assert_eq!(
            fx.put("child.milestone-achieved", ev).await,
            Outcome::Delivered
        );
    }
    assert!(fx.emails().is_empty(), "routine news waits for the digest");
    let mail = eventually("the digest", Duration::from_secs(20), || async {
        fx.emails().into_iter().next()
    })
    .await;
    assert_eq!(mail["subject"], "Your digest (3)");
    let text = mail["text"].as_str().unwrap();
    assert!(
        text.contains("Milestone 0") && text.contains("Milestone 2"),
        "{text}"
    );
    // Redelivered items and more scheduler passes send no second digest.
    for (i, id) in ids.iter().enumerate() {
        let ev = json!({"metadata": {"event_id": id}, "child": {"child_id": CHILD, "household_id": HOUSEHOLD}, "title": format!("Milestone {i}")});
        fx.put_records(&[json_record("child.milestone-achieved", 0, i as i64 + 1, ev)])
            .await;
    }
    for _ in 0..3 {
        fx.sink.core().run_scheduler().await.unwrap();
    }
    let included: i64 = fx
        .query("SELECT count(*) FROM notify_ledger WHERE channel = 'digest' AND state = 'included'")
        .await[0]
        .get(0);
    assert_eq!(included, 3);
    assert_eq!(fx.emails().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twilio_429_retry_after_is_honoured_without_holding_the_partition() {
    let mut fx = Fx::new(&[], true).await;
    fx.twilio
        .script(PHONE, Script::TooMany { secs: 2, times: 1 });
    let id = uuid();
    let t = Instant::now();
    assert_eq!(
        fx.put("child.safety-violation", violation(&id, "HIGH"))
            .await,
        Outcome::Delivered
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the record is done at once: the retry waits in the ledger"
    );
    assert!(
        fx.states(&id)
            .await
            .contains(&("sms".into(), "retry".into()))
    );
    let sent = eventually(
        "the SMS after Retry-After",
        Duration::from_secs(15),
        || async {
            let r = fx.twilio.received_for(PHONE);
            (r.len() == 2).then_some(r)
        },
    )
    .await;
    let gap = sent[1].at - sent[0].at;
    assert!(
        gap >= Duration::from_secs(2),
        "sent again after {gap:?}, before Retry-After"
    );
    assert_eq!(sent[1].status, 201);
    eventually("sent", Duration::from_secs(5), || async {
        fx.states(&id)
            .await
            .contains(&("sms".into(), "sent".into()))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fcm_unregistered_quarantines_the_token_and_falls_back() {
    let mut fx = Fx::new(&[("notify.push.recheck.after", "1s")], true).await;
    fx.fcm.script(DEVICE, FcmScript::Unregistered, 1);
    let id = uuid();
    assert_eq!(
        fx.put("child.safety-violation", violation(&id, "MEDIUM"))
            .await,
        Outcome::Delivered
    );
    let device = &fx.query("SELECT state, token FROM notify_device").await[0];
    assert_eq!(device.get::<_, String>(0), "quarantined");
    assert_eq!(device.get::<_, String>(1), DEVICE, "kept, not deleted");
    let mail = eventually("the fallback email", Duration::from_secs(10), || async {
        fx.emails().into_iter().next()
    })
    .await;
    assert_eq!(mail["subject"], "Safety notice: SELF_HARM");
    assert_eq!(
        fx.states(&id).await,
        vec![
            ("email".into(), "sent".into()),
            ("push".into(), "failed".into())
        ]
    );
    // The re-check (a validate-only send) finds the token valid again.
    eventually("the re-check", Duration::from_secs(15), || async {
        let s: String = fx.query("SELECT state FROM notify_device").await[0].get(0);
        (s == "active").then_some(())
    })
    .await;
    assert_eq!(fx.fcm.validated(), vec![DEVICE.to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smtp_down_for_a_while_retries_then_delivers() {
    let mut fx = Fx::new(&[], false).await;
    // A guardian reachable only by email.
    fx.put("guardian.contact-updated", json!({"guardian_id": HOUSEHOLD, "household_id": HOUSEHOLD, "devices": [{"token": DEVICE, "platform": "fcm", "active": false}]}))
        .await;
    let id = uuid();
    assert_eq!(
        fx.put("child.safety-violation", violation(&id, "MEDIUM"))
            .await,
        Outcome::Delivered
    );
    assert_eq!(fx.states(&id).await, vec![("email".into(), "retry".into())]);
    eventually(
        "a second failed attempt",
        Duration::from_secs(10),
        || async {
            let a: i32 = fx
                .query(&format!(
                    "SELECT attempts FROM notify_ledger WHERE event_id = '{id}'"
                ))
                .await[0]
                .get(0);
            (a >= 2).then_some(())
        },
    )
    .await;
    fx.smtp = Some(support::Smtp::start(&fx.tls, "bear", "honey", Some(fx.smtp_port), 0).unwrap());
    let mail = eventually(
        "the email once SMTP is back",
        Duration::from_secs(20),
        || async { fx.emails().into_iter().next() },
    )
    .await;
    assert_eq!(mail["subject"], "Safety notice: SELF_HARM");
    eventually("sent", Duration::from_secs(5), || async {
        (fx.states(&id).await == vec![("email".to_owned(), "sent".to_owned())]).then_some(())
    })
    .await;
    assert_eq!(fx.emails().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_send_cut_off_mid_way_is_not_repeated_and_escalates_instead() {
    let mut fx = Fx::new(&[], true).await;
    let id = uuid();
    // A worker died during the SMS send: its pending entry is in the ledger, the record comes again.
    fx.pg
        .execute(
            "INSERT INTO notify_ledger (event_id, guardian_id, channel, target, round, state, claimed_by, rule, priority, step, created_at, updated_at)
             VALUES ($1, $2, 'sms', '', 0, 'pending', 'put:dead-worker', 'safety-critical', 'immediate', 0, 0, 0)",
            &[&id, &HOUSEHOLD],
        )
        .await
        .unwrap();
    assert_eq!(
        fx.put("child.safety-violation", violation(&id, "CRITICAL"))
            .await,
        Outcome::Delivered
    );
    assert_eq!(
        fx.twilio.received_for(PHONE).len(),
        0,
        "the SMS may have gone: never sent twice"
    );
    let states = fx.states(&id).await;
    assert!(
        states.contains(&("sms".into(), "ambiguous".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("push".into(), "sent".into())),
        "{states:?}"
    );
    // …and the alert escalates on the next channel now, rather than after `every`.
    let mail = eventually("the escalation email", Duration::from_secs(10), || async {
        fx.emails().into_iter().next()
    })
    .await;
    assert!(
        mail["subject"]
            .as_str()
            .unwrap()
            .starts_with("Safety alert")
    );
    // A webhook cut off mid-way is sent again with the same webhook-id: receivers dedupe on it.
    let usage = uuid();
    fx.pg
        .execute(
            "INSERT INTO notify_ledger (event_id, guardian_id, channel, target, round, state, claimed_by, rule, priority, step, created_at, updated_at)
             VALUES ($1, $2, 'webhook', '', 0, 'pending', 'put:dead-worker', 'usage', 'normal', 0, 0, 0)",
            &[&usage, &HOUSEHOLD],
        )
        .await
        .unwrap();
    let ev = json!({"metadata": {"event_id": usage}, "child": {"child_id": CHILD, "household_id": HOUSEHOLD}, "message_count": 12});
    assert_eq!(
        fx.put("analytics.usage-stats", ev).await,
        Outcome::Delivered
    );
    let d = eventually("the webhook", Duration::from_secs(10), || async {
        let d = fx.receiver.deliveries();
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(d[0]["verified"], true);
    assert_eq!(
        fx.states(&usage).await,
        vec![("webhook".into(), "sent".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_nobody_can_be_reached_for_is_dead_lettered_with_the_responses() {
    let mut fx = Fx::new(&[], true).await;
    fx.twilio.script(PHONE, Script::Refuse(21211));
    fx.fcm.script(DEVICE, FcmScript::InvalidArgument, 5);
    // No email address: SMS and push fail for good, and nothing else reaches them.
    fx.pg
        .execute("UPDATE notify_guardian SET email = NULL", &[])
        .await
        .unwrap();
    let id = uuid();
    let out = fx
        .put("child.safety-violation", violation(&id, "CRITICAL"))
        .await;
    let Outcome::Permanent {
        detail: Some(detail),
        ..
    } = &out
    else {
        panic!("{out:?}")
    };
    assert!(
        detail.contains("21211") && detail.contains("INVALID_ARGUMENT"),
        "{detail}"
    );
    assert!(!detail.contains(PHONE), "{detail}");
    // Other records of the partition are not held back.
    let other = uuid();
    fx.twilio
        .script(PHONE, Script::TooMany { secs: 0, times: 0 });
    fx.pg
        .execute("UPDATE notify_guardian SET email = $1", &[&EMAIL])
        .await
        .unwrap();
    assert_eq!(
        fx.put("child.safety-violation", violation(&other, "MEDIUM"))
            .await,
        Outcome::Delivered
    );
    drop(fx.db);
}

/// The audit actions in the outbox, in order.
async fn audit_actions(fx: &Fx) -> Vec<Value> {
    fx.query("SELECT record::text FROM notify_outbox ORDER BY id")
        .await
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.get::<_, String>(0)).unwrap())
        .collect()
}

fn usage(id: &str, child: &str) -> Value {
    json!({"metadata": {"event_id": id}, "child": {"child_id": child, "household_id": HOUSEHOLD}, "message_count": 12})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_acknowledgement_event_on_the_ack_topic_stops_the_escalation() {
    let mut fx = Fx::new(&[("notify.ack.topic", "guardian.alert-acknowledged")], true).await;
    let id = uuid();
    assert_eq!(
        fx.put("child.safety-violation", violation(&id, "CRITICAL"))
            .await,
        Outcome::Delivered
    );
    assert_eq!(fx.twilio.received_for(PHONE).len(), 1);
    let ack = json!({
        "metadata": {"event_id": uuid(), "occurred_at": 1_767_225_600_000i64, "producer": "guardian-app", "schema_version": 1},
        "event_id": id, "guardian_id": HOUSEHOLD, "household_id": HOUSEHOLD, "via": "APP",
    });
    assert_eq!(
        fx.put("guardian.alert-acknowledged", ack.clone()).await,
        Outcome::Delivered
    );
    let row = &fx
        .query(&format!(
            "SELECT state, due_at FROM notify_escalation WHERE event_id = '{id}'"
        ))
        .await[0];
    assert_eq!(row.get::<_, String>(0), "acked");
    // The same acknowledgement again (a redelivery, or a second tap) changes nothing and is counted once.
    assert_eq!(
        fx.put("guardian.alert-acknowledged", ack).await,
        Outcome::Delivered
    );
    assert_eq!(
        fx.metric("ursa_plugin_notify_events_total", "kind=\"acknowledged\""),
        1.0
    );
    // Past the next step's time, a scheduler pass escalates nothing.
    let due: i64 = row.get(1);
    eventually("the next step's time", Duration::from_secs(10), || async {
        (jiff::Timestamp::now().as_millisecond() > due + 500).then_some(())
    })
    .await;
    fx.sink.core().run_scheduler().await.unwrap();
    assert!(
        fx.emails().is_empty(),
        "no escalation email after the acknowledgement"
    );
    assert_eq!(fx.twilio.received_for(PHONE).len(), 1);
    let acks: Vec<Value> = audit_actions(&fx)
        .await
        .into_iter()
        .filter(|a| a["action"] == "notification.acknowledged")
        .collect();
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert!(acks[0].to_string().contains("topic"), "{}", acks[0]);
    // An acknowledgement that names no event is a per-record failure (to the DLQ), not a stalled partition.
    let bad = fx
        .put(
            "guardian.alert-acknowledged",
            json!({"guardian_id": HOUSEHOLD}),
        )
        .await;
    assert!(matches!(bad, Outcome::Permanent { .. }), "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn preferences_order_the_channels_and_turn_routine_categories_off() {
    let mut fx = Fx::new(&[], true).await;
    fx.put(
        "guardian.contact-updated",
        json!({"guardian_id": HOUSEHOLD, "household_id": HOUSEHOLD, "preferences": {
            "safety": {"enabled": false, "channels": ["email"]},
            "milestones": {"enabled": false},
            "usage": {"channels": ["sms", "email"]},
        }}),
    )
    .await;
    // Safety cannot be turned off; a `high` notice goes by the preferred channel first (email, not push).
    let medium = uuid();
    assert_eq!(
        fx.put("child.safety-violation", violation(&medium, "MEDIUM"))
            .await,
        Outcome::Delivered
    );
    assert_eq!(
        fx.states(&medium).await,
        vec![("email".into(), "sent".into())]
    );
    assert_eq!(fx.fcm.delivered_to(DEVICE), 0);
    let mail = eventually("the notice", Duration::from_secs(10), || async {
        fx.emails().into_iter().next()
    })
    .await;
    assert_eq!(mail["subject"], "Safety notice: SELF_HARM");
    // `immediate` keeps the rule's order: SMS and push at once.
    let critical = uuid();
    fx.put("child.safety-violation", violation(&critical, "CRITICAL"))
        .await;
    assert_eq!(
        fx.states(&critical).await,
        vec![
            ("push".into(), "sent".into()),
            ("sms".into(), "sent".into())
        ]
    );
    // Usage: the preferred channel the rule allows (email), before the rule's first (webhook); SMS, which the
    // rule does not list, is never used.
    let u = uuid();
    assert_eq!(
        fx.put("analytics.usage-stats", usage(&u, CHILD)).await,
        Outcome::Delivered
    );
    eventually("the usage email", Duration::from_secs(10), || async {
        fx.emails()
            .iter()
            .any(|m| m["subject"] == "Usage")
            .then_some(())
    })
    .await;
    assert_eq!(fx.states(&u).await, vec![("email".into(), "sent".into())]);
    assert!(fx.receiver.deliveries().is_empty());
    assert_eq!(
        fx.twilio.received_for(PHONE).len(),
        1,
        "only the critical SMS"
    );
    // Milestones are off: no digest item, counted as suppressed.
    let m = uuid();
    let ev = json!({"metadata": {"event_id": m}, "child": {"child_id": CHILD, "household_id": HOUSEHOLD}, "title": "First words"});
    assert_eq!(
        fx.put("child.milestone-achieved", ev).await,
        Outcome::Delivered
    );
    assert!(fx.states(&m).await.is_empty());
    assert_eq!(
        fx.metric(
            "ursa_plugin_notify_events_total",
            "kind=\"suppressed_preference\""
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dedupe_window_notifies_once_per_key_and_reopens_when_it_ends() {
    let mut fx = Fx::new(&[], true).await;
    let (a, b, c) = (uuid(), uuid(), uuid());
    let before = jiff::Timestamp::now().as_millisecond();
    assert_eq!(
        fx.put("analytics.usage-stats", usage(&a, CHILD)).await,
        Outcome::Delivered
    );
    eventually("the first webhook", Duration::from_secs(10), || async {
        (fx.receiver.deliveries().len() == 1).then_some(())
    })
    .await;
    // Same key (the child) within the window: suppressed, recorded, audited; a redelivery counts once.
    assert_eq!(
        fx.put("analytics.usage-stats", usage(&b, CHILD)).await,
        Outcome::Delivered
    );
    let again = json_record("analytics.usage-stats", 0, fx.offset, usage(&b, CHILD));
    assert_eq!(fx.put_records(&[again]).await, vec![Outcome::Delivered]);
    assert_eq!(
        fx.states(&b).await,
        vec![("dedupe".into(), "suppressed".into())]
    );
    assert_eq!(
        fx.metric(
            "ursa_plugin_notify_events_total",
            "kind=\"suppressed_dedupe\""
        ),
        1.0
    );
    let suppressed = audit_actions(&fx)
        .await
        .iter()
        .filter(|x| x["action"] == "notification.suppressed")
        .count();
    assert_eq!(suppressed, 1);
    // The window is the rule's 10 minutes from the first event.
    let until: i64 = fx.query("SELECT until_at FROM notify_dedupe").await[0].get(0);
    let window = until - before;
    assert!(
        (600_000..630_000).contains(&window),
        "the window: {window} ms"
    );
    // Another child has a window of its own.
    let other = uuid();
    fx.put(
        "analytics.usage-stats",
        usage(&other, "9a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
    )
    .await;
    // Once the window has ended (moved to now here), the key notifies again.
    fx.pg
        .execute("UPDATE notify_dedupe SET until_at = 0", &[])
        .await
        .unwrap();
    assert_eq!(
        fx.put("analytics.usage-stats", usage(&c, CHILD)).await,
        Outcome::Delivered
    );
    eventually("three webhooks", Duration::from_secs(10), || async {
        (fx.receiver.deliveries().len() == 3).then_some(())
    })
    .await;
    assert_eq!(fx.states(&c).await, vec![("webhook".into(), "sent".into())]);
    assert_eq!(
        fx.metric(
            "ursa_plugin_notify_attempts_total",
            "channel=\"webhook\",provider=\"webhook\",outcome=\"sent\""
        ),
        3.0
    );
    assert!(
        fx.metrics
            .render()
            .contains("ursa_plugin_notify_send_seconds_webhook_count"),
        "the latency histogram"
    );
}

/// The SMS ledger entry of an event: state, response, reason, not_before, provider message id.
async fn sms_row(pg: &tokio_postgres::Client, id: &str) -> tokio_postgres::Row {
    pg.query_one(
        "SELECT state, response, reason, not_before, provider_message_id FROM notify_ledger
         WHERE event_id = $1 AND channel = 'sms'",
        &[&id],
    )
    .await
    .unwrap()
}

/// The event's SMS is due again about five minutes after `before`, for Twilio's 30003.
async fn assert_retried_after_30003(pg: &tokio_postgres::Client, id: &str, before: i64) {
    let row = sms_row(pg, id).await;
    assert_eq!(row.get::<_, String>(0), "retry");
    assert!(row.get::<_, Option<String>>(2).unwrap().contains("30003"));
    let due = row.get::<_, Option<i64>>(3).unwrap();
    assert!(
        (before + 240_000..before + 360_000).contains(&due),
        "about five minutes on: {due} vs {before}"
    );
}

/// Posts a status callback to the sink's HTTP server with `signature`; what it answered.
async fn post_status(fx: &Fx, signature: &str, params: &[(String, String)]) -> u16 {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/twilio/status", fx.http_port))
        .header("x-twilio-signature", signature)
        .form(params)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The provider response the ledger holds for an event's SMS.
async fn sms_response(fx: &Fx, id: &str) -> Option<String> {
    sms_row(&fx.pg, id).await.get(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twilio_status_callbacks_reach_the_ledger_and_forged_ones_are_refused() {
    let mut fx = Fx::new(&[], true).await;
    // Delivered: Twilio calls back `sent`, then `delivered`; the ledger keeps the last status.
    let a = uuid();
    assert_eq!(
        fx.put("child.safety-violation", violation(&a, "HIGH"))
            .await,
        Outcome::Delivered
    );
    let sent = fx.twilio.received_for(PHONE);
    assert_eq!(
        sent[0].form["StatusCallback"],
        format!("http://127.0.0.1:{}/twilio/status", fx.http_port)
    );
    eventually("two callbacks", Duration::from_secs(10), || async {
        (fx.twilio.callbacks().len() == 2).then_some(())
    })
    .await;
    let callbacks = fx.twilio.callbacks();
    assert!(callbacks.iter().all(|c| c.answer == 204), "{callbacks:?}");
    let row = sms_row(&fx.pg, &a).await;
    assert_eq!(row.get::<_, String>(0), "sent");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("status delivered")
    );
    assert_eq!(
        row.get::<_, Option<String>>(4).as_deref(),
        Some(callbacks[0].sid.as_str())
    );
    // Undelivered with 30003 (unreachable handset): the entry is tried again later, not given up.
    fx.twilio.deliver_as(PHONE, "undelivered", Some("30003"));
    let b = uuid();
    fx.put("child.safety-violation", violation(&b, "HIGH"))
        .await;
    let before = jiff::Timestamp::now().as_millisecond();
    eventually(
        "the undelivered callback",
        Duration::from_secs(10),
        || async { (fx.twilio.callbacks().len() == 4).then_some(()) },
    )
    .await;
    assert_retried_after_30003(&fx.pg, &b, before).await;
    // A callback that Twilio did not sign (or signed for another body) is refused and changes nothing.
    let forged = [
        ("MessageSid".to_owned(), callbacks[0].sid.clone()),
        ("MessageStatus".to_owned(), "failed".to_owned()),
    ];
    assert_eq!(post_status(&fx, "bm90IGEgc2lnbmF0dXJl", &forged).await, 403);
    assert_eq!(
        sms_response(&fx, &a).await.as_deref(),
        Some("status delivered")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_twilio_status_that_arrives_before_the_api_answer_is_kept_and_applied() {
    let mut fx = Fx::new(&[], true).await;
    // The carrier is quicker than the API's answer: both callbacks reach the sink before it knows the sid.
    fx.twilio.call_back_before_answering(true);
    let a = uuid();
    assert_eq!(
        fx.put("child.safety-violation", violation(&a, "HIGH"))
            .await,
        Outcome::Delivered
    );
    let callbacks = fx.twilio.callbacks();
    assert_eq!(callbacks.len(), 2, "{callbacks:?}");
    assert!(callbacks.iter().all(|c| c.answer == 204), "{callbacks:?}");
    let row = sms_row(&fx.pg, &a).await;
    assert_eq!(row.get::<_, String>(0), "sent");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("status delivered"),
        "the final status, though it came before the send was recorded"
    );
    // Twilio does not promise the order of callbacks: a `sent` after `delivered` changes nothing.
    let url = format!("http://127.0.0.1:{}/twilio/status", fx.http_port);
    let params: Vec<(String, String)> = [
        ("AccountSid", ACCOUNT_SID),
        ("MessageSid", callbacks[0].sid.as_str()),
        ("MessageStatus", "sent"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let signature =
        ursa_connector_notify::channels::sms::callback_signature(AUTH_TOKEN, &url, &params);
    assert_eq!(post_status(&fx, &signature, &params).await, 204);
    assert_eq!(
        sms_response(&fx, &a).await.as_deref(),
        Some("status delivered")
    );
    // 30003 that early still schedules the retry.
    fx.twilio.deliver_as(PHONE, "undelivered", Some("30003"));
    let b = uuid();
    let before = jiff::Timestamp::now().as_millisecond();
    fx.put("child.safety-violation", violation(&b, "HIGH"))
        .await;
    assert_retried_after_30003(&fx.pg, &b, before).await;
    // Nothing is left waiting for a message the ledger knows; one it never learns is forgotten after a day.
    let waiting = async || -> Vec<String> {
        fx.pg
            .query("SELECT message_id FROM notify_provider_status", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    assert_eq!(waiting().await, Vec::<String>::new());
    let day = 86_400_000;
    fx.pg
        .execute(
            "INSERT INTO notify_provider_status (message_id, status, received_at) VALUES
               ('SMold', 'delivered', $1), ('SMnew', 'delivered', $2)",
            &[&(before - day - 1_000), &(before - day + 60_000)],
        )
        .await
        .unwrap();
    fx.sink.core().expire_statuses().await.unwrap();
    assert_eq!(waiting().await, vec!["SMnew".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_keeps_directory_changes_between_the_events_around_them() {
    let mut fx = Fx::new(&[], true).await;
    const NEW_PHONE: &str = "+15005550199";
    let (a, b, c) = (uuid(), uuid(), uuid());
    let mut records = Vec::new();
    for (topic, value) in [
        ("child.safety-violation", violation(&a, "HIGH")),
        ("child.safety-violation", violation(&b, "HIGH")),
        (
            "guardian.contact-updated",
            json!({"guardian_id": HOUSEHOLD, "household_id": HOUSEHOLD, "phone": NEW_PHONE}),
        ),
        ("child.safety-violation", violation(&c, "HIGH")),
    ] {
        fx.offset += 1;
        records.push(json_record(topic, 0, fx.offset, value));
    }
    // Handled at once where they may be, but the phone number changes between b and c, as it does in the topic.
    let outcomes = fx.put_records(&records).await;
    assert!(
        outcomes.iter().all(|o| *o == Outcome::Delivered),
        "{outcomes:?}"
    );
    let bodies = |to: &str| -> Vec<String> {
        fx.twilio
            .received_for(to)
            .into_iter()
            .map(|r| r.form["Body"].clone())
            .collect()
    };
    let old = bodies(PHONE);
    let new = bodies(NEW_PHONE);
    assert!(
        [&a, &b]
            .iter()
            .all(|id| old.iter().any(|m| m.contains(id.as_str()))),
        "a and b to the old number: {old:?}"
    );
    assert!(
        new.iter().any(|m| m.contains(&c)),
        "c to the new one: {new:?}"
    );
    assert!(!old.iter().any(|m| m.contains(&c)), "{old:?}");
    assert!(
        !new.iter().any(|m| m.contains(&a) || m.contains(&b)),
        "{new:?}"
    );
}

#[test]
fn bad_rules_and_templates_are_validation_errors_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    let bad = RULES
        .replace("text = \"{{ category }}\"\n", "text = \"{{ category \"\n")
        .replace("priority = \"digest\"", "priority = \"someday\"");
    std::fs::write(&path, bad).unwrap();
    let raw: BTreeMap<String, String> = [
        ("notify.rules.file", path.to_str().unwrap()),
        ("notify.database.url", "postgres://u@127.0.0.1/db"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let parsed = ursa_connect::config::parse(&NotifyPlugin.keys(), &[], &raw).unwrap();
    let errors = NotifyPlugin.validate(&parsed);
    let rules = &errors["notify.rules.file"];
    let file = path.to_str().unwrap();
    assert!(
        rules
            .iter()
            .any(|e| e.starts_with(&format!("{file}:43:")) && e.contains("does not compile")),
        "{rules:?}"
    );
    assert!(
        rules
            .iter()
            .any(|e| e.starts_with(&format!("{file}:48:")) && e.contains("unknown priority")),
        "{rules:?}"
    );
    // The channels the rules use must be configured.
    std::fs::write(&path, RULES).unwrap();
    let errors = NotifyPlugin.validate(&parsed);
    assert!(
        errors["notify.sms.account.sid"][0].contains("sms is not configured"),
        "{errors:?}"
    );
    assert!(
        errors["notify.email.host"][0].contains("email is not configured"),
        "{errors:?}"
    );
}
