//! Email against a real SMTP server (aiosmtpd on loopback) with STARTTLS on a test CA and AUTH: the message
//! read back has its text and HTML parts, the sender, the subject and a Message-ID derived from the
//! idempotency key; messages share one pooled session, over STARTTLS and over implicit TLS; a 451 is a retry,
//! a refused login is permanent, plain text is refused off loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ursa_connector_notify::testing as support;

use std::time::Duration;

use ursa_connector_notify::channels::email::{Email, EmailConfig, EmailTls};
use ursa_connector_notify::channels::{Address, Message, SendResult};
use ursa_connector_notify::rules::{Priority, Rendered};
use ursa_testkit::wait_until;

fn config(smtp: &support::Smtp, tls: &support::Tls, password: &str) -> EmailConfig {
    EmailConfig {
        host: "127.0.0.1".into(),
        port: smtp.port,
        tls: EmailTls::StartTls,
        username: Some("bear".into()),
        password: Some(password.into()),
        from: "Teddy <alerts@teddy.example>".into(),
        ca_file: Some(tls.ca.to_string_lossy().into_owned()),
        timeout: Duration::from_secs(10),
    }
}

fn message(key: &str) -> Message {
    Message {
        key: key.into(),
        to: Address::Email("parent@family.example".into()),
        content: Rendered {
            subject: Some("Safety alert: please check in".into()),
            text: Some("Something needs your attention.\nOpen the app.".into()),
            html: Some("<p>Something needs <b>your</b> attention.</p>".into()),
            ..Rendered::default()
        },
        priority: Priority::Immediate,
        event_id: "e-1".into(),
        rule: "safety".into(),
        ack_url: None,
        status_callback: None,
    }
}

#[tokio::test]
async fn sends_text_and_html_over_starttls_with_auth() {
    let tls = support::Tls::new().unwrap();
    let smtp = support::Smtp::start(&tls, "bear", "honey", None, 0).unwrap();
    let email = Email::new(&config(&smtp, &tls, "honey")).unwrap();
    email.health().await.unwrap();
    let r = email.send(&message("e-1/g-1/email//0")).await;
    let SendResult::Sent {
        provider_id: Some(id),
        ..
    } = &r
    else {
        panic!("{r:?} {}", smtp.service.log_tail(20))
    };
    let got = wait_until("the message", Duration::from_secs(10), || {
        smtp.messages().into_iter().next()
    })
    .unwrap();
    assert_eq!(got["subject"], "Safety alert: please check in");
    assert_eq!(got["from"], "alerts@teddy.example");
    assert_eq!(got["to"][0], "parent@family.example");
    assert_eq!(got["content_type"], "multipart/alternative");
    assert_eq!(
        got["text"]
            .as_str()
            .unwrap()
            .replace("\r\n", "\n")
            .trim_end(),
        "Something needs your attention.\nOpen the app."
    );
    assert!(
        got["html"].as_str().unwrap().contains("<b>your</b>"),
        "{got}"
    );
    assert_eq!(
        (got["tls"].as_bool(), got["authenticated"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(got["message_id"].as_str(), Some(id.as_str()));
    // The same key gives the same Message-ID (a receiver could tell a resend).
    let again = email.send(&message("e-1/g-1/email//0")).await;
    assert!(matches!(&again, SendResult::Sent { provider_id: Some(i), .. } if i == id));
}

#[tokio::test]
async fn transient_and_permanent_smtp_errors() {
    let tls = support::Tls::new().unwrap();
    let smtp = support::Smtp::start(&tls, "bear", "honey", None, 1).unwrap();
    let email = Email::new(&config(&smtp, &tls, "honey")).unwrap();
    // 451 on the first message: a retry.
    let r = email.send(&message("k1")).await;
    assert!(matches!(r, SendResult::Retry { .. }), "{r:?}");
    assert!(matches!(
        email.send(&message("k1")).await,
        SendResult::Sent { .. }
    ));
    // A refused login (535) is permanent.
    let bad = Email::new(&config(&smtp, &tls, "wrong")).unwrap();
    let r = bad.send(&message("k2")).await;
    assert!(matches!(r, SendResult::Permanent { .. }), "{r:?}");
    // Nobody listening: nothing was sent, a retry.
    let port = ursa_testkit::free_port().unwrap();
    let mut c = config(&smtp, &tls, "honey");
    c.port = port;
    let r = Email::new(&c).unwrap().send(&message("k3")).await;
    assert!(matches!(r, SendResult::Retry { .. }), "{r:?}");
    // Plain SMTP only to loopback.
    c.host = "smtp.example.com".into();
    c.tls = EmailTls::None;
    assert!(Email::new(&c).unwrap_err().message.contains("loopback"));
}

#[tokio::test]
async fn sessions_are_reused_over_starttls_and_implicit_tls() {
    let tls = support::Tls::new().unwrap();
    for implicit in [false, true] {
        let smtp = if implicit {
            support::Smtp::start_implicit(&tls, "bear", "honey").unwrap()
        } else {
            support::Smtp::start(&tls, "bear", "honey", None, 0).unwrap()
        };
        let mut c = config(&smtp, &tls, "honey");
        if implicit {
            c.tls = EmailTls::Implicit;
        }
        let email = Email::new(&c).unwrap();
        for i in 0..3 {
            let r = email.send(&message(&format!("k{i}"))).await;
            assert!(
                matches!(r, SendResult::Sent { .. }),
                "implicit={implicit}: {r:?} {}",
                smtp.service.log_tail(20)
            );
        }
        let got = wait_until("three messages", Duration::from_secs(10), || {
            let m = smtp.messages();
            (m.len() == 3).then_some(m)
        })
        .unwrap();
        for m in &got {
            assert_eq!(m["tls"], true, "implicit={implicit}: {m}");
            assert_eq!(m["authenticated"], true, "implicit={implicit}: {m}");
        }
        let ports: std::collections::BTreeSet<String> =
            got.iter().map(|m| m["client_port"].to_string()).collect();
        assert_eq!(
            ports.len(),
            1,
            "one session for all three (implicit={implicit}): {ports:?}"
        );
    }
}
