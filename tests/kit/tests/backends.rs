//! The test brokers themselves: the selected backend answers, Apache Kafka's SASL_SSL listener takes the SCRAM
//! password and refuses a wrong one, and a dropped broker leaves no process behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use ursa_testkit::{Backend, Kafka, create_topic, unique_name, wait_until};

fn sasl_client(kafka: &Kafka, password: &str) -> ClientConfig {
    let sasl = kafka
        .sasl_ssl()
        .expect("Apache Kafka run locally has a SASL_SSL listener");
    let mut c = ClientConfig::new();
    for (k, v) in sasl.client_settings(password) {
        c.set(k, v);
    }
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn the_selected_backend_takes_topics_and_records() {
    let kafka = Kafka::shared();
    let topic = unique_name("kit-roundtrip");
    create_topic(kafka, &topic, 3).await.unwrap();
    let producer: FutureProducer = kafka.config().create().unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload("v").partition(2),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let consumer: BaseConsumer = kafka.config().create().unwrap();
    let (low, high) = consumer
        .fetch_watermarks(&topic, 2, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        (low, high),
        (0, 1),
        "one record in partition 2 on {:?}",
        kafka.backend()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_ssl_takes_the_scram_password_and_refuses_a_wrong_one() {
    let kafka = Kafka::apache();
    assert_ne!(kafka.backend(), Backend::Nisshi);
    let password = kafka.sasl_ssl().unwrap().password.clone();
    let good: BaseConsumer = sasl_client(kafka, &password).create().unwrap();
    let md =
        tokio::task::spawn_blocking(move || good.fetch_metadata(None, Duration::from_secs(20)))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(md.brokers().len(), 1);
    assert_eq!(
        md.brokers()[0].port(),
        kafka
            .sasl_ssl()
            .unwrap()
            .bootstrap
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<i32>()
            .unwrap(),
        "the SASL_SSL listener advertises itself"
    );

    let errors = Errors::default();
    let bad: BaseConsumer<Errors> = sasl_client(kafka, "not-the-password")
        .create_with_context(errors.clone())
        .unwrap();
    let seen = errors.clone();
    let err = tokio::task::spawn_blocking(move || {
        let err = bad
            .fetch_metadata(None, Duration::from_secs(5))
            .unwrap_err();
        // The reason reaches the context's error callback when the client's queue is served.
        wait_until("the authentication error", Duration::from_secs(20), || {
            let _ = bad.poll(Duration::from_millis(100));
            (!seen.0.lock().unwrap().is_empty()).then_some(())
        })
        .unwrap();
        err
    })
    .await
    .unwrap();
    let reasons = errors.0.lock().unwrap().join("\n");
    assert!(
        reasons.contains("SASL authentication error") && reasons.contains("invalid credentials"),
        "a wrong password is the broker's authentication error ({err}), not a timeout: {reasons}"
    );
}

/// Collects the error reasons librdkafka reports to the client context.
#[derive(Clone, Default)]
struct Errors(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl rdkafka::ClientContext for Errors {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.0.lock().unwrap().push(format!("{error}: {reason}"));
    }
}

impl rdkafka::consumer::ConsumerContext for Errors {}

/// The child half of the next test: starts a broker, says where, and dies without unwinding.
fn start_a_broker_and_abort() -> ! {
    let kafka = Kafka::start_apache().unwrap();
    println!("broker at {}", kafka.bootstrap());
    std::process::abort()
}

#[test]
fn a_test_process_that_dies_leaves_no_broker_behind() {
    if std::env::var_os("URSA_KIT_ABORT_CHILD").is_some() {
        start_a_broker_and_abort();
    }
    if !ursa_testkit::java_peers_available() {
        panic!(
            "this test needs the Java peers: run `{}`",
            ursa_testkit::FETCH_PEERS
        );
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_test_process_that_dies_leaves_no_broker_behind",
            "--nocapture",
        ])
        .env("URSA_KIT_ABORT_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child aborts: {stdout}");
    let addr = stdout
        .lines()
        .find_map(|l| l.strip_prefix("broker at "))
        .unwrap_or_else(|| {
            panic!(
                "the child started no broker: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_owned();
    wait_until(
        "the dead test's broker to go away",
        Duration::from_secs(20),
        || std::net::TcpStream::connect(&addr).is_err().then_some(()),
    )
    .unwrap();
}

#[test]
fn a_dropped_apache_kafka_leaves_no_process_behind() {
    if !ursa_testkit::java_peers_available() {
        panic!(
            "this test needs the Java peers: run `{}`",
            ursa_testkit::FETCH_PEERS
        );
    }
    let kafka = Kafka::start_apache().unwrap();
    let addr = kafka.bootstrap().to_owned();
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    // Dropping waits for the process group to be gone.
    drop(kafka);
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the broker still listens on {addr}"
    );
}
