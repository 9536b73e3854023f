//! A connector subscribed with `topics.regex` consumes every matching topic (and no other), and reports them
//! through the topics API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use ursa::connect::api::ConnectApi;
use ursa_testkit::{create_topic, unique_name};

#[tokio::test(flavor = "multi_thread")]
async fn regex_subscription_consumes_matching_topics() {
    let prefix = unique_name("rx").replace('-', "_");
    let (a, b, other) = (
        format!("{prefix}.a"),
        format!("{prefix}.b"),
        unique_name("rx-other"),
    );
    for t in [&a, &b, &other] {
        create_topic(support::kafka(), t, 1).await.unwrap();
    }
    let producer = support::Producer::new();
    producer.send_many(&a, 0, 0..3, |i| format!("a{i}")).await;
    producer.send_many(&b, 0, 0..2, |i| format!("b{i}")).await;
    producer
        .send_many(&other, 0, 0..4, |i| format!("o{i}"))
        .await;
    let recorder = support::Recorder::new();
    let worker = support::worker(&recorder);
    let name = unique_name("regex");
    let regex = format!("^{prefix}\\..*");
    let config = support::flat(&[
        ("name", &name),
        ("connector.class", support::PLUGIN),
        ("topics.regex", &regex),
        ("value.converter", "string"),
    ]);
    worker
        .put_connector(name.clone(), config, true)
        .await
        .unwrap();
    let delivered = support::eventually(
        "5 records from the two matching topics",
        support::DEADLINE,
        || {
            let d = recorder.delivered(&name);
            (d.len() >= 5).then_some(d)
        },
    )
    .await;
    let mut topics: Vec<String> = delivered.iter().map(|r| r.topic.clone()).collect();
    topics.sort();
    topics.dedup();
    assert_eq!(topics, vec![a.clone(), b.clone()]);
    let mut listed = worker.topics(name.clone()).await.unwrap();
    listed.sort();
    assert_eq!(listed, vec![a, b]);
    worker.shutdown().await;
}
