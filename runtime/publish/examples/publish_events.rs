//! Publishing from a service: one event straight to Kafka, and one through the transactional outbox inside the
//! service's own database transaction (when `DATABASE_URL` is set). The README's "Publishing events" section
//! shows this code.
//!
//! `BOOTSTRAP=127.0.0.1:9092 REGISTRY=http://127.0.0.1:8081 cargo run -p ursa-publish --example publish_events`

use std::time::Duration;

use ursa_publish::{Outbox, Publisher, PublisherConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::var("BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let registry = std::env::var("REGISTRY").unwrap_or_else(|_| "http://127.0.0.1:8081".into());
    let violation =
        ursa_publish::demo::safety_violation(ursa_publish::demo::uuid(), "I want to hurt myself");

    // Straight to Kafka: topic `child.safety-violation`, keyed by child id, Confluent-framed, acks=all.
    let publisher = Publisher::new(PublisherConfig::new(
        &bootstrap,
        &registry,
        "safety-classifier",
    ))?;
    publisher
        .prepare::<ursa_events::com::teddy::child::SafetyViolation>()
        .await?;
    let delivery = publisher.send(&violation).await?;
    match delivery.await {
        Ok(at) => println!("written to {}/{}@{}", at.topic, at.partition, at.offset),
        // A final failure: the event is in `dlq.failed-events` (see `e.dead_letter()`).
        Err(e) => eprintln!("not delivered: {e} (retriable: {})", e.is_retriable()),
    }
    publisher.shutdown(Duration::from_secs(30)).await?;

    // Through the outbox: stored with the state change, published by `ursa-outbox relay`.
    if let Ok(url) = std::env::var("DATABASE_URL") {
        let (mut db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let outbox = Outbox::new("safety-classifier");
        outbox.install(&db).await?;
        let tx = db.transaction().await?;
        // … the service's own writes in `tx` …
        let row = outbox.write(&tx, &violation).await?;
        tx.commit().await?;
        println!("outbox row {row}: the relay publishes it");
    }
    Ok(())
}
