//! The PostgreSQL wiring: each test gets a database of its own on the shared server (`DATABASE_URL`'s, or a
//! private cluster), can create, write and read in it, and the database is gone once its handle drops.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ursa_testkit::{Postgres, TestDatabase};

/// Creates a table in `db`, writes `rows` and reads them back in order.
async fn round_trip(db: &TestDatabase, rows: &[(i64, &str)]) -> Vec<(i64, String)> {
    let client = db.connect().await.unwrap();
    let current: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(current, db.name(), "the URL names the test's database");
    client
        .batch_execute("CREATE TABLE events (id BIGINT PRIMARY KEY, body TEXT NOT NULL)")
        .await
        .unwrap();
    for (id, body) in rows {
        client
            .execute("INSERT INTO events (id, body) VALUES ($1, $2)", &[id, body])
            .await
            .unwrap();
    }
    client
        .query("SELECT id, body FROM events ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn database_exists(pg: &Postgres, name: &str) -> bool {
    let admin = pg.connect().await.unwrap();
    admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn each_test_gets_its_own_database() {
    let pg = Postgres::shared();
    let (a, b) = (pg.database().unwrap(), pg.database().unwrap());
    assert_ne!(a.name(), b.name());
    assert_eq!(
        round_trip(&a, &[(2, "two"), (1, "one")]).await,
        vec![(1, "one".to_owned()), (2, "two".to_owned())]
    );
    // Same table name, other rows: nothing of `a` shows in `b`.
    assert_eq!(
        round_trip(&b, &[(7, "seven")]).await,
        vec![(7, "seven".to_owned())]
    );
}

#[tokio::test]
async fn a_database_is_dropped_with_its_handle() {
    let pg = Postgres::shared();
    let db = pg.database().unwrap();
    let name = db.name().to_owned();
    assert_eq!(
        round_trip(&db, &[(1, "kept until the drop")]).await.len(),
        1
    );
    // A connection still open does not keep it alive (DROP DATABASE … WITH (FORCE)).
    let open = db.connect().await.unwrap();
    assert!(database_exists(pg, &name).await);
    drop(db);
    assert!(!database_exists(pg, &name).await, "{name} still exists");
    assert!(open.simple_query("SELECT 1").await.is_err());
}
