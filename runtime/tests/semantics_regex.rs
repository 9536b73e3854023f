//! A connector subscribed with `topics.regex` consumes every matching topic (and no other), and reports them
//! through the topics and offsets APIs: a regex matches whole topic names (as Kafka Connect's), with
//! alternation and wildcards anywhere, and the consumer, `/topics` and `/offsets` agree.
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

/// Issue 8 (10): `(a|x.*y)` — an alternation in a group and a wildcard between literals — matches exactly
/// the topics whose whole name matches, for the consumer (what is delivered and committed) and for the
/// topics and offsets APIs alike (the hand-made matcher split on `|` and matched nothing).
#[tokio::test(flavor = "multi_thread")]
async fn regex_alternation_and_wildcards_match_whole_names() {
    let prefix = unique_name("rx2").replace('-', "_");
    let topic = |s: &str| format!("{prefix}.{s}");
    let (matched, unmatched) = (
        vec![topic("a"), topic("xzy")],
        vec![
            topic("b"),
            topic("ab"),
            topic("xzyw"),
            format!("z{prefix}.a"),
        ],
    );
    for t in matched.iter().chain(&unmatched) {
        create_topic(support::kafka(), t, 1).await.unwrap();
    }
    let producer = support::Producer::new();
    // The topics that must not be consumed get their records first: had the consumer subscribed to them,
    // some of theirs would be delivered by the time the matching topics' records are committed.
    for t in &unmatched {
        producer.send_many(t, 0, 0..2, |i| format!("u{i}")).await;
    }
    for t in &matched {
        producer.send_many(t, 0, 0..3, |i| format!("m{i}")).await;
    }
    let recorder = support::Recorder::new();
    let worker = support::worker(&recorder);
    let name = unique_name("regex2");
    let regex = format!("{prefix}\\.(a|x.*y)");
    let config = support::flat(&[
        ("name", &name),
        ("connector.class", support::PLUGIN),
        ("topics.regex", &regex),
        ("value.converter", "string"),
        ("offset.flush.interval.ms", "100"),
    ]);
    worker
        .put_connector(name.clone(), config, true)
        .await
        .unwrap();
    for t in &matched {
        support::Committed::of_connector(&name, t, 1)
            .wait_for(&format!("{t} consumed and committed"), &[Some(3)])
            .await;
    }
    let mut listed = worker.topics(name.clone()).await.unwrap();
    listed.sort();
    let offsets = worker.offsets(name.clone()).await.unwrap();
    let mut with_offsets: Vec<String> = offsets
        .offsets
        .iter()
        .map(|o| o.partition["kafka_topic"].as_str().unwrap().to_owned())
        .collect();
    with_offsets.sort();
    let mut delivered: Vec<String> = recorder
        .delivered(&name)
        .iter()
        .map(|r| r.topic.clone())
        .collect();
    delivered.sort();
    delivered.dedup();
    worker.shutdown().await;
    assert_eq!(delivered, matched, "the consumer's topics");
    assert_eq!(listed, matched, "GET /connectors/{{c}}/topics");
    assert_eq!(with_offsets, matched, "GET /connectors/{{c}}/offsets");
}
