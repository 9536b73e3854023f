//! Webhooks against a receiver that verifies every delivery with the `standardwebhooks` package (the Standard
//! Webhooks reference library): signatures verify during a secret rotation (two `v1` signatures) and with a
//! `v1a` one alongside, a resend keeps its `webhook-id`, a wrong secret is refused, a 503 is a retry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ursa_connector_notify::testing as support;

use std::time::Duration;

use base64::Engine as _;
use ursa_connector_notify::channels::webhook::{Webhook, WebhookConfig};
use ursa_connector_notify::channels::{Address, Message, SendResult};
use ursa_connector_notify::rules::{Priority, Rendered};
use ursa_testkit::wait_until;

fn message(url: &str, key: &str) -> Message {
    Message {
        key: key.into(),
        to: Address::Webhook(url.into()),
        content: Rendered {
            title: Some("Milestone".into()),
            text: Some("100 words!".into()),
            ..Rendered::default()
        },
        priority: Priority::Normal,
        event_id: "e-1".into(),
        rule: "milestones".into(),
        ack_url: None,
        status_callback: None,
    }
}

fn hook(secrets: Vec<String>, signing_key: Option<String>) -> Webhook {
    Webhook::new(&WebhookConfig {
        url: None,
        secrets,
        signing_key,
        timeout: Duration::from_secs(5),
        ca_file: None,
    })
    .unwrap()
}

#[tokio::test]
async fn the_reference_library_verifies_every_delivery() {
    let secret = support::webhook_secret();
    let receiver = support::Receiver::start(&secret, 1).unwrap();
    let old = support::webhook_secret();
    let seed = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let w = hook(vec![old, secret.clone()], Some(format!("whsk_{seed}")));
    let m = message(&receiver.url(), "e-1/g-1/webhook//0");
    let body = Webhook::body(
        &m,
        "g-1",
        &serde_json::json!({"milestone_code": "vocab.first_100_words"}),
    );
    // The first delivery gets 503: a retry.
    let r = w.send(&m, body.clone()).await;
    assert!(matches!(r, SendResult::Retry { .. }), "{r:?}");
    let r = w.send(&m, body.clone()).await;
    assert!(matches!(r, SendResult::Sent { .. }), "{r:?}");
    let d = wait_until("two deliveries", Duration::from_secs(10), || {
        let d = receiver.deliveries();
        (d.len() == 2).then_some(d)
    })
    .unwrap();
    assert!(d.iter().all(|x| x["verified"] == true), "{d:?}");
    assert_eq!(d[0]["id"], d[1]["id"], "a resend keeps its webhook-id");
    let sig = d[1]["signature"].as_str().unwrap();
    assert_eq!(sig.split(' ').filter(|s| s.starts_with("v1,")).count(), 2);
    assert_eq!(sig.split(' ').filter(|s| s.starts_with("v1a,")).count(), 1);
    let payload: serde_json::Value = serde_json::from_str(d[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(payload["type"], "notification.milestones");
    assert_eq!(payload["data"]["guardian_id"], "g-1");
    // A receiver that does not know the secret refuses it: permanent.
    let stranger = hook(vec![support::webhook_secret()], None);
    let r = stranger
        .send(&message(&receiver.url(), "other"), body)
        .await;
    assert!(matches!(r, SendResult::Permanent { .. }), "{r:?}");
    assert_eq!(receiver.deliveries().last().unwrap()["verified"], false);
}
