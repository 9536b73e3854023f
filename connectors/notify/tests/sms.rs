//! SMS through Twilio's Messages API. Against Stoplight Prism serving Twilio's official OpenAPI description in
//! validating mock mode (a request that does not conform is refused, as the first checks show), and against a
//! local fake for what Prism cannot show: 429 with Retry-After, 20500, a timeout after Twilio accepted (the
//! duplicate-send case: ambiguous, never resent), 21211 and 21610.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ursa_connector_notify::testing as support;

use std::time::Duration;

use support::twilio::{ACCOUNT_SID, AUTH_TOKEN, Fake, Prism, Script};
use ursa_connector_notify::channels::sms::{Sms, SmsConfig};
use ursa_connector_notify::channels::{Address, Message, SendResult};
use ursa_connector_notify::rules::{Priority, Rendered};

fn sms(base: &str, timeout: Duration) -> Sms {
    Sms::new(SmsConfig {
        base_url: base.into(),
        account_sid: ACCOUNT_SID.into(),
        username: ACCOUNT_SID.into(),
        password: AUTH_TOKEN.into(),
        auth_token: Some(AUTH_TOKEN.into()),
        from: Some("+15005550006".into()),
        messaging_service_sid: None,
        timeout,
        ca_file: None,
    })
    .unwrap()
}

fn message(to: &str) -> Message {
    Message {
        key: format!("e/{to}/sms//0"),
        to: Address::Phone(to.into()),
        content: Rendered {
            text: Some("Safety alert for your child: please open the app.".into()),
            ..Rendered::default()
        },
        priority: Priority::Immediate,
        event_id: "e".into(),
        rule: "safety".into(),
        ack_url: None,
        status_callback: Some("https://notify.example.com/twilio/status".into()),
    }
}

#[tokio::test]
async fn conforms_to_twilio_s_openapi_description() {
    let prism = Prism::start().unwrap();
    let url = format!(
        "{}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        prism.url()
    );
    let http = reqwest::Client::new();
    // The validator is on: no credentials, or no `To`, is refused.
    let r = http
        .post(&url)
        .form(&[("To", "+15005550001"), ("Body", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "{}", prism.service.log_tail(20));
    let r = http
        .post(&url)
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .form(&[("Body", "x"), ("From", "+15005550006")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        422,
        "a message without To is not valid"
    );
    let r = http
        .post(format!(
            "{}/2010-04-01/Accounts/not-a-sid/Messages.json",
            prism.url()
        ))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .form(&[("To", "+15005550001"), ("Body", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        422,
        "AccountSid follows ^AC[0-9a-fA-F]{{32}}$"
    );
    // Ours conforms (with --errors, Prism answers 422 to any request that does not), and reads the SID.
    let refusals = prism
        .service
        .log_tail(10_000)
        .matches("did not pass")
        .count();
    let client = sms(&prism.url(), Duration::from_secs(10));
    let r = client.send(&message("+15005550001")).await;
    let SendResult::Sent {
        provider_id: Some(sid),
        ..
    } = &r
    else {
        panic!("{r:?}\n{}", prism.service.log_tail(30))
    };
    assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
    assert_eq!(
        prism
            .service
            .log_tail(10_000)
            .matches("did not pass")
            .count(),
        refusals
    );
}

#[tokio::test]
async fn provider_errors_are_classified() {
    let fake = Fake::start().await.unwrap();
    fake.script("+15005550429", Script::TooMany { secs: 2, times: 1 });
    fake.script("+15005550500", Script::Internal);
    fake.script(
        "+15005550777",
        Script::SlowAccept {
            delay: Duration::from_secs(3),
        },
    );
    fake.script("+15005550211", Script::Refuse(21211));
    fake.script("+15005550610", Script::Refuse(21610));
    let client = sms(&fake.url(), Duration::from_secs(1));
    let r = client.send(&message("+15005550429")).await;
    assert!(
        matches!(r, SendResult::Retry { after: Some(d), .. } if d == Duration::from_secs(2)),
        "{r:?}"
    );
    assert!(matches!(
        client.send(&message("+15005550429")).await,
        SendResult::Sent { .. }
    ));
    let r = client.send(&message("+15005550500")).await;
    assert!(matches!(r, SendResult::Ambiguous { .. }), "{r:?}");
    // Accepted, then the answer is late: ambiguous (Twilio has it: sending again would duplicate it).
    let r = client.send(&message("+15005550777")).await;
    assert!(matches!(r, SendResult::Ambiguous { .. }), "{r:?}");
    assert_eq!(fake.received_for("+15005550777").len(), 1);
    assert!(
        matches!(client.send(&message("+15005550211")).await, SendResult::Permanent { reason, .. } if reason.contains("21211"))
    );
    assert!(
        matches!(client.send(&message("+15005550610")).await, SendResult::Permanent { reason, .. } if reason.contains("21610"))
    );
    // Every request carried what the API wants.
    assert!(
        fake.received().iter().all(|r| r.valid),
        "{:?}",
        fake.received()
    );
    assert!(
        fake.received()
            .iter()
            .all(|r| r.form.contains_key("StatusCallback"))
    );
}
