//! Push against local servers that speak FCM HTTP v1 (with its OAuth2 token endpoint) and APNs (HTTP/2 over
//! TLS) as their documentation says and check what they receive: the access token is exchanged once and
//! reused, the APNs provider token is made once and reused, every documented error is classified.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ursa_connector_notify::testing as support;

use std::time::Duration;

use support::apns::{ApnsScript, ApnsServer, KEY_ID, TEAM_ID, TOPIC};
use support::fcm::{FcmScript, FcmServer};
use ursa_connector_notify::channels::push_apns::{Apns, ApnsConfig};
use ursa_connector_notify::channels::push_fcm::{Fcm, FcmConfig};
use ursa_connector_notify::channels::{Address, Message, SendResult};
use ursa_connector_notify::rules::{Priority, Rendered};

fn message(to: Address, key: &str, priority: Priority) -> Message {
    Message {
        key: key.into(),
        to,
        content: Rendered {
            title: Some("Safety alert".into()),
            body: Some("Please check in with your child.".into()),
            ..Rendered::default()
        },
        priority,
        event_id: "4b7c2a52-6a9e-4d0e-9c4e-0d9a3c1f7e11".into(),
        rule: "safety".into(),
        ack_url: Some("https://notify.example.com/ack?e=1".into()),
        status_callback: None,
    }
}

#[tokio::test]
async fn fcm_exchanges_one_token_and_classifies_errors() {
    let server = FcmServer::start().await.unwrap();
    let fcm = Fcm::new(&FcmConfig {
        service_account: server.service_account.clone(),
        base_url: server.url(),
        token_url: None,
        timeout: Duration::from_secs(10),
        ca_file: None,
    })
    .unwrap();
    for i in 0..3 {
        let r = fcm
            .send(
                &message(
                    Address::Fcm("device-a".into()),
                    &format!("k{i}"),
                    Priority::Immediate,
                ),
                false,
            )
            .await;
        assert!(
            matches!(&r, SendResult::Sent { provider_id: Some(id), .. } if id.starts_with("projects/teddy-test/messages/")),
            "{r:?} {:?}",
            server.refused()
        );
    }
    assert_eq!(
        (server.exchanges(), fcm.exchanges()),
        (1, 1),
        "the access token is cached"
    );
    let m = &server.delivered()[0];
    assert_eq!(m["android"]["priority"], "HIGH");
    assert_eq!(m["apns"]["headers"]["apns-priority"], "10");
    assert_eq!(
        m["data"]["event_id"],
        "4b7c2a52-6a9e-4d0e-9c4e-0d9a3c1f7e11"
    );
    assert_eq!(m["notification"]["title"], "Safety alert");
    let normal = fcm
        .send(
            &message(Address::Fcm("device-a".into()), "n", Priority::Normal),
            false,
        )
        .await;
    assert!(matches!(normal, SendResult::Sent { .. }));
    assert_eq!(server.delivered()[3]["android"]["priority"], "NORMAL");

    let cases = [
        (FcmScript::Unregistered, "unregistered"),
        (FcmScript::InvalidArgument, "invalid"),
        (FcmScript::QuotaExceeded, "quota"),
        (FcmScript::Unavailable, "unavailable"),
        (FcmScript::Internal, "internal"),
    ];
    for (script, token) in cases {
        server.script(token, script, 1);
    }
    let fcm = &fcm;
    let send = |t: &'static str| async move {
        fcm.send(&message(Address::Fcm(t.into()), t, Priority::High), false)
            .await
    };
    assert!(matches!(
        send("unregistered").await,
        SendResult::BadAddress { .. }
    ));
    assert!(matches!(
        send("invalid").await,
        SendResult::Permanent { .. }
    ));
    let q = send("quota").await;
    assert!(
        matches!(q, SendResult::Retry { after: Some(d), .. } if d >= Duration::from_secs(60)),
        "{q:?}"
    );
    assert!(matches!(
        send("unavailable").await,
        SendResult::Retry { .. }
    ));
    assert!(matches!(send("internal").await, SendResult::Retry { .. }));
    // A re-check validates without delivering.
    let before = server.delivered().len();
    assert!(matches!(
        fcm.send(
            &message(Address::Fcm("device-b".into()), "v", Priority::Normal),
            true
        )
        .await,
        SendResult::Sent { .. }
    ));
    assert_eq!(
        (server.delivered().len(), server.validated()),
        (before, vec!["device-b".to_owned()])
    );
    assert_eq!(server.exchanges(), 1);
}

#[tokio::test]
async fn apns_over_http2_reuses_its_provider_token_and_classifies_errors() {
    let tls = support::Tls::new().unwrap();
    let server = ApnsServer::start(&tls).await.unwrap();
    let apns = Apns::new(ApnsConfig {
        base_url: server.url(),
        key_pem: server.key_pem.clone(),
        key_id: KEY_ID.into(),
        team_id: TEAM_ID.into(),
        topic: TOPIC.into(),
        refresh: Duration::from_secs(40 * 60),
        timeout: Duration::from_secs(10),
        ca_file: Some(tls.ca.to_string_lossy().into_owned()),
    })
    .unwrap();
    let device = "a".repeat(64);
    for i in 0..5 {
        let r = apns
            .send(&message(
                Address::Apns(device.clone()),
                &format!("k{i}"),
                Priority::Immediate,
            ))
            .await;
        assert!(
            matches!(
                r,
                SendResult::Sent {
                    provider_id: Some(_),
                    ..
                }
            ),
            "{r:?} {:?}",
            server.refused()
        );
    }
    assert!(server.saw_http2());
    assert_eq!(
        (server.provider_tokens(), apns.tokens_made()),
        (1, 1),
        "one provider token, reused"
    );
    let (d, headers, payload) = &server.delivered()[0];
    assert_eq!(d, &device);
    assert_eq!(headers["apns-priority"], "10");
    assert_eq!(headers["apns-push-type"], "alert");
    assert!(headers["apns-collapse-id"].len() <= 64);
    assert_eq!(payload["aps"]["alert"]["title"], "Safety alert");
    let normal = apns
        .send(&message(
            Address::Apns(device.clone()),
            "n",
            Priority::Normal,
        ))
        .await;
    assert!(matches!(normal, SendResult::Sent { .. }));
    assert_eq!(server.delivered()[5].1["apns-priority"], "5");

    for (c, s) in [
        ('b', ApnsScript::Unregistered),
        ('c', ApnsScript::BadDeviceToken),
        ('d', ApnsScript::TooManyRequests),
        ('e', ApnsScript::ServiceUnavailable),
    ] {
        server.script(&c.to_string().repeat(64), s, 1);
    }
    let apns = &apns;
    let send = |c: char| async move {
        apns.send(&message(
            Address::Apns(c.to_string().repeat(64)),
            "x",
            Priority::High,
        ))
        .await
    };
    assert!(matches!(send('b').await, SendResult::BadAddress { .. }));
    assert!(matches!(send('c').await, SendResult::BadAddress { .. }));
    assert!(matches!(
        send('d').await,
        SendResult::Retry { after: Some(_), .. }
    ));
    assert!(matches!(send('e').await, SendResult::Retry { .. }));
    assert_eq!(server.provider_tokens(), 1);
    // A refresh interval outside Apple's 20–60 minutes is refused.
    let e = Apns::new(ApnsConfig {
        base_url: server.url(),
        key_pem: server.key_pem.clone(),
        key_id: KEY_ID.into(),
        team_id: TEAM_ID.into(),
        topic: TOPIC.into(),
        refresh: Duration::from_secs(60),
        timeout: Duration::from_secs(10),
        ca_file: None,
    })
    .unwrap_err();
    assert_eq!(e.key, "notify.apns.token.refresh");
}
