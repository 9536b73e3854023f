//! Distributed mode: two `ursa run` workers of one group share connectors through the config topic — a
//! connector created on one is run by both (Kafka spreads the partitions), a pause through either reaches
//! both, and a delete stops it everywhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use ursa_testkit::{Kafka, WorkerProcess, create_topic, unique_name, wait_until};

async fn json(url: String) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_connectors_through_kafka() {
    let kafka = Kafka::shared();
    let topic = unique_name("dist");
    create_topic(kafka, &topic, 4).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let group = unique_name("workers");
    let worker_toml = dir.path().join("worker.toml");
    std::fs::write(
        &worker_toml,
        format!(
            "mode = \"distributed\"\n[kafka]\nbootstrap_servers = \"{}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n[distributed]\ngroup_id = \"{group}\"\nconfig_topic = \"{group}-configs\"\nstatus_topic = \"{group}-status\"\n",
            kafka.bootstrap()
        ),
    )
    .unwrap();
    let a =
        WorkerProcess::start(env!("CARGO_BIN_EXE_ursa"), &[worker_toml.to_str().unwrap()]).unwrap();
    let b =
        WorkerProcess::start(env!("CARGO_BIN_EXE_ursa"), &[worker_toml.to_str().unwrap()]).unwrap();
    let (url_a, url_b) = (a.url.clone(), b.url.clone());
    let out = dir.path().join("out.jsonl");
    let name = unique_name("shared");
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{url_a}/connectors"))
        .json(&serde_json::json!({"name": name, "config": {
            "connector.class": "file", "topics": topic, "file": out.display().to_string(),
            "value.converter": "string", "offset.flush.interval.ms": "200"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());

    // Worker B knows it, and both run a task of it.
    let listed = wait_until(
        "worker B lists the connector",
        Duration::from_secs(30),
        || {
            let url = format!("{url_b}/connectors");
            let v = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(json(url))
            });
            v.as_array()
                .unwrap()
                .iter()
                .any(|n| n == name.as_str())
                .then_some(v)
        },
    );
    listed.unwrap();
    wait_until("two RUNNING tasks", Duration::from_secs(30), || {
        let url = format!("{url_b}/connectors/{name}/status");
        let v =
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(json(url)));
        let tasks = v["tasks"].as_array()?;
        (tasks.len() == 2 && tasks.iter().all(|t| t["state"] == "RUNNING")).then_some(())
    })
    .unwrap();

    let producer: FutureProducer = kafka.config().create().unwrap();
    for i in 0..200 {
        producer
            .send(
                FutureRecord::<str, _>::to(&topic).payload(&format!("m{i}")),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let values = wait_until("200 records delivered", Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let mut v: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["value"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        v.sort();
        v.dedup();
        (v.len() == 200).then_some(v)
    })
    .unwrap();
    assert_eq!(values.len(), 200);

    // A restart through worker B restarts the task on both workers.
    let restarted = client
        .post(format!(
            "{url_b}/connectors/{name}/restart?includeTasks=true"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        restarted.status(),
        202,
        "{}",
        restarted.text().await.unwrap()
    );
    for url in [&url_a, &url_b] {
        wait_until(
            "the task restarted on every worker",
            Duration::from_secs(30),
            || {
                let metrics_url = format!("{url}/metrics");
                let text = tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current()
                        .block_on(async { reqwest::get(metrics_url).await.ok()?.text().await.ok() })
                })?;
                text.lines()
                    .any(|l| {
                        l.starts_with("ursa_task_restarts_total")
                            && l.contains(&name)
                            && !l.trim_end().ends_with(" 0")
                    })
                    .then_some(())
            },
        )
        .unwrap();
    }

    // A pause through worker B reaches both tasks; a delete through A removes it from B.
    assert_eq!(
        client
            .put(format!("{url_b}/connectors/{name}/pause"))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    wait_until("both tasks PAUSED", Duration::from_secs(30), || {
        let url = format!("{url_a}/connectors/{name}/status");
        let v =
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(json(url)));
        let tasks = v["tasks"].as_array()?;
        (tasks.len() == 2 && tasks.iter().all(|t| t["state"] == "PAUSED")).then_some(())
    })
    .unwrap();
    assert_eq!(
        client
            .delete(format!("{url_a}/connectors/{name}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    wait_until("worker B forgets it", Duration::from_secs(30), || {
        let url = format!("{url_b}/connectors/{name}");
        let status = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current()
                .block_on(async { reqwest::get(url).await.unwrap().status() })
        });
        (status == 404).then_some(())
    })
    .unwrap();
}
