//! The dev registry's REST API, driven with raw HTTP: paths, status codes, bodies and Confluent error codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Raw, assert_error, start, user_incompatible, user_v1, user_v2};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn register_get_and_idempotency() {
    let server = start().await;
    let raw = Raw::new(&server.url());

    let root = raw.get("/").await;
    assert_eq!((root.status, root.body.clone()), (200, json!({})));

    let id = raw.register("users-value", &user_v1()).await;
    assert_eq!(id, 1);
    // The same schema again (any whitespace): the same id, no new version.
    let pretty = serde_json::to_string_pretty(&user_v1()).unwrap();
    let again = raw
        .post(
            "/subjects/users-value/versions",
            json!({ "schema": pretty }),
        )
        .await;
    assert_eq!((again.status, again.body["id"].as_u64()), (200, Some(id)));
    assert_eq!(again.content_type, "application/vnd.schemaregistry.v1+json");
    assert_eq!(
        raw.get("/subjects/users-value/versions").await.body,
        json!([1])
    );

    let id2 = raw.register("users-value", &user_v2()).await;
    assert_eq!(id2, 2);
    assert_eq!(
        raw.get("/subjects/users-value/versions").await.body,
        json!([1, 2])
    );
    assert_eq!(raw.get("/subjects").await.body, json!(["users-value"]));

    for path in [
        "/subjects/users-value/versions/latest",
        "/subjects/users-value/versions/-1",
        "/subjects/users-value/versions/2",
    ] {
        let a = raw.get(path).await;
        assert_eq!(a.status, 200, "{path}: {a:?}");
        assert_eq!(a.body["subject"], "users-value");
        assert_eq!(a.body["version"], 2);
        assert_eq!(a.body["id"], 2);
        assert!(a.body.get("schemaType").is_none(), "AVRO omits schemaType");
        assert!(a.body.get("references").is_none());
        let schema: Value = serde_json::from_str(a.body["schema"].as_str().unwrap()).unwrap();
        assert_eq!(schema, user_v2());
    }
    // Field order of a version body, as Confluent's.
    let v1 = raw.get("/subjects/users-value/versions/1").await;
    let keys: Vec<&String> = v1.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["subject", "version", "id", "schema"]);

    let raw_schema = raw.get("/subjects/users-value/versions/1/schema").await;
    assert_eq!(raw_schema.status, 200);
    assert_eq!(raw_schema.body, user_v1());

    let by_id = raw.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(by_id.status, 200);
    assert_eq!(by_id.body.as_object().unwrap().len(), 1, "{by_id:?}");
    assert_eq!(
        serde_json::from_str::<Value>(by_id.body["schema"].as_str().unwrap()).unwrap(),
        user_v1()
    );
    assert_eq!(
        raw.get(&format!("/schemas/ids/{id}/schema")).await.body,
        user_v1()
    );
    assert_eq!(raw.get("/schemas/types").await.body, json!(["AVRO"]));

    // Lookup.
    let found = raw
        .post(
            "/subjects/users-value",
            json!({ "schema": user_v1().to_string() }),
        )
        .await;
    assert_eq!(found.status, 200, "{found:?}");
    assert_eq!(found.body["id"], 1);
    assert_eq!(found.body["version"], 1);
    assert_eq!(found.body["subject"], "users-value");
    assert!(found.body["schema"].is_string());
    let missing = raw
        .post(
            "/subjects/users-value",
            json!({ "schema": user_incompatible().to_string() }),
        )
        .await;
    assert_error(&missing, 404, 40403);
    let no_subject = raw
        .post("/subjects/nope", json!({ "schema": user_v1().to_string() }))
        .await;
    assert_error(&no_subject, 404, 40401);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn ids_are_global_and_shared_across_subjects() {
    let server = start().await;
    let raw = Raw::new(&server.url());
    let a = raw.register("a-value", &user_v1()).await;
    let b = raw.register("b-value", &user_v1()).await;
    assert_eq!(a, b, "identical schemas share an id");
    let c = raw.register("b-value", &user_v2()).await;
    assert_ne!(c, a);
    assert_eq!(
        raw.get(&format!("/schemas/ids/{a}/subjects")).await.body,
        json!(["a-value", "b-value"])
    );
    assert_eq!(
        raw.get(&format!("/schemas/ids/{a}/versions")).await.body,
        json!([{"subject": "a-value", "version": 1}, {"subject": "b-value", "version": 1}])
    );
    // A different schema under a third subject gets the next id; the same as b's v2 shares it.
    assert_eq!(raw.register("c-value", &user_v2()).await, c);
    assert_error(&raw.get("/schemas/ids/999").await, 404, 40403);
    assert_error(&raw.get("/schemas/ids/999/subjects").await, 404, 40403);
    assert_error(&raw.get("/schemas/ids/999/versions").await, 404, 40403);
    // An id that is not a 32-bit integer does not match Confluent's `{id}` path parameter: a plain 404.
    for bad in ["abc", "1.5", "2147483648", ""] {
        for suffix in ["", "/schema", "/subjects", "/versions"] {
            let a = raw.get(&format!("/schemas/ids/{bad}{suffix}")).await;
            assert_error(&a, 404, 404);
        }
    }
    assert_error(&raw.get("/schemas/ids/-1").await, 404, 40403);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn error_codes_and_content_types() {
    let server = start().await;
    let raw = Raw::new(&server.url());
    raw.register("s", &user_v1()).await;

    assert_error(&raw.get("/subjects/nope/versions").await, 404, 40401);
    assert_error(&raw.get("/subjects/nope/versions/1").await, 404, 40401);
    assert_error(&raw.get("/subjects/s/versions/7").await, 404, 40402);
    for bad in ["0", "abc", "-2", "2147483648"] {
        assert_error(
            &raw.get(&format!("/subjects/s/versions/{bad}")).await,
            422,
            42202,
        );
    }
    // Invalid schemas.
    for schema in [
        "{not json",
        r#"{"type": "record", "name": "X"}"#,
        r#"{"type": "record", "name": "X", "fields": [{"name": "a", "type": "Missing"}]}"#,
        "",
    ] {
        let a = raw
            .post("/subjects/s2/versions", json!({ "schema": schema }))
            .await;
        assert_error(&a, 422, 42201);
    }
    let typed = raw
        .post(
            "/subjects/s2/versions",
            json!({ "schema": "{}", "schemaType": "PROTOBUF" }),
        )
        .await;
    assert_error(&typed, 422, 42201);
    let a = raw
        .post(
            "/subjects/s2/versions",
            json!({ "schema": user_v1().to_string(), "schemaType": "AVRO" }),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");

    // Malformed request JSON.
    let a = raw
        .send(
            Method::POST,
            "/subjects/s/versions",
            Some("{oops".into()),
            "application/json",
        )
        .await;
    assert_error(&a, 400, 400);
    // Request content types Confluent accepts, and one it does not.
    for ct in [
        "application/json",
        "application/vnd.schemaregistry+json",
        "application/vnd.schemaregistry.v1+json; charset=utf-8",
        "application/octet-stream",
    ] {
        let a = raw
            .send(
                Method::POST,
                "/subjects/s/versions",
                Some(json!({ "schema": user_v1().to_string() }).to_string()),
                ct,
            )
            .await;
        assert_eq!(a.status, 200, "{ct}: {a:?}");
    }
    let a = raw
        .send(
            Method::POST,
            "/subjects/s/versions",
            Some(json!({ "schema": user_v1().to_string() }).to_string()),
            "text/plain",
        )
        .await;
    assert_error(&a, 415, 415);

    assert_error(&raw.get("/no/such/path").await, 404, 404);
    // Errors the HTTP layer finds (an undecodable path, an oversized body) are Confluent-shaped too.
    assert_error(&raw.get("/subjects/%FF%FE/versions").await, 400, 400);
    let huge = json!({ "schema": "x".repeat(3 * 1024 * 1024) }).to_string();
    let a = raw
        .send(
            Method::POST,
            "/subjects/s/versions",
            Some(huge),
            "application/json",
        )
        .await;
    assert_error(&a, 413, 413);
    // Subjects with characters that need escaping.
    let odd = "topic/with space-value";
    let path = format!("/subjects/{}/versions", "topic%2Fwith%20space-value");
    let a = raw
        .post(&path, json!({ "schema": user_v1().to_string() }))
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(
        raw.get("/subjects")
            .await
            .body
            .as_array()
            .unwrap()
            .contains(&json!(odd))
    );
    assert_error(
        &raw.send(Method::PATCH, "/subjects", None, "").await,
        405,
        405,
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn soft_and_permanent_deletes() {
    let server = start().await;
    let raw = Raw::new(&server.url());
    let id1 = raw.register("s", &user_v1()).await;
    let id2 = raw.register("s", &user_v2()).await;

    // Versions: permanent only after soft.
    assert_error(
        &raw.delete("/subjects/s/versions/1?permanent=true").await,
        404,
        40407,
    );
    let a = raw.delete("/subjects/s/versions/1").await;
    assert_eq!((a.status, a.body.clone()), (200, json!(1)));
    assert_error(&raw.delete("/subjects/s/versions/1").await, 404, 40406);
    assert_error(&raw.get("/subjects/s/versions/1").await, 404, 40402);
    assert_eq!(
        raw.get("/subjects/s/versions/1?deleted=true").await.status,
        200
    );
    assert_eq!(raw.get("/subjects/s/versions").await.body, json!([2]));
    assert_eq!(
        raw.get("/subjects/s/versions?deleted=true").await.body,
        json!([1, 2])
    );
    // The id stays readable after a soft delete.
    assert_eq!(raw.get(&format!("/schemas/ids/{id1}")).await.status, 200);
    assert_eq!(
        raw.get(&format!("/schemas/ids/{id1}/subjects")).await.body,
        json!([])
    );
    assert_eq!(
        raw.get(&format!("/schemas/ids/{id1}/subjects?deleted=true"))
            .await
            .body,
        json!(["s"])
    );
    let a = raw.delete("/subjects/s/versions/1?permanent=true").await;
    assert_eq!((a.status, a.body.clone()), (200, json!(1)));
    assert_error(
        &raw.get("/subjects/s/versions/1?deleted=true").await,
        404,
        40402,
    );
    assert_error(&raw.get(&format!("/schemas/ids/{id1}")).await, 404, 40403);

    // Re-registering a soft-deleted schema makes a new version.
    raw.register("s", &user_v1()).await;
    assert_eq!(raw.get("/subjects/s/versions").await.body, json!([2, 3]));

    // Subjects: permanent only after soft.
    assert_error(&raw.delete("/subjects/s?permanent=true").await, 404, 40405);
    let a = raw.delete("/subjects/s").await;
    assert_eq!((a.status, a.body.clone()), (200, json!([2, 3])));
    assert_error(&raw.delete("/subjects/s").await, 404, 40404);
    assert_eq!(raw.get("/subjects").await.body, json!([]));
    assert_eq!(raw.get("/subjects?deleted=true").await.body, json!(["s"]));
    assert_eq!(
        raw.get("/subjects?deletedOnly=true").await.body,
        json!(["s"])
    );
    assert_error(&raw.get("/subjects/s/versions").await, 404, 40401);
    assert_error(&raw.get("/subjects/s/versions/latest").await, 404, 40401);
    assert_eq!(raw.get(&format!("/schemas/ids/{id2}")).await.status, 200);
    let a = raw.delete("/subjects/s?permanent=true").await;
    assert_eq!((a.status, a.body.clone()), (200, json!([2, 3])));
    assert_eq!(raw.get("/subjects?deleted=true").await.body, json!([]));
    assert_error(&raw.get(&format!("/schemas/ids/{id2}")).await, 404, 40403);
    assert_error(&raw.delete("/subjects/s").await, 404, 40401);
    assert_error(&raw.delete("/subjects/s/versions/1").await, 404, 40401);

    // Versions restart after a permanent delete; ids are never reused.
    let id = raw.register("s", &user_v2()).await;
    assert!(id > id2, "{id} > {id2}");
    assert_eq!(raw.get("/subjects/s/versions").await.body, json!([1]));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn config_global_and_per_subject() {
    let server = start().await;
    let raw = Raw::new(&server.url());
    assert_eq!(
        raw.get("/config").await.body,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    let a = raw.put("/config", json!({"compatibility": "FULL"})).await;
    assert_eq!(
        (a.status, a.body.clone()),
        (200, json!({"compatibility": "FULL"}))
    );
    assert_eq!(
        raw.get("/config").await.body,
        json!({"compatibilityLevel": "FULL"})
    );

    assert_error(&raw.get("/config/orders-value").await, 404, 40408);
    assert_eq!(
        raw.get("/config/orders-value?defaultToGlobal=true")
            .await
            .body,
        json!({"compatibilityLevel": "FULL"})
    );
    let a = raw
        .put("/config/orders-value", json!({"compatibility": "none"}))
        .await;
    assert_eq!(
        (a.status, a.body.clone()),
        (200, json!({"compatibility": "NONE"}))
    );
    assert_eq!(
        raw.get("/config/orders-value").await.body,
        json!({"compatibilityLevel": "NONE"})
    );
    assert_eq!(
        raw.get("/config").await.body,
        json!({"compatibilityLevel": "FULL"}),
        "the subject's level does not change the global one"
    );
    assert_error(
        &raw.put("/config/orders-value", json!({"compatibility": "SIDEWAYS"}))
            .await,
        422,
        42203,
    );
    assert_error(&raw.put("/config", json!({})).await, 422, 42203);

    let a = raw.delete("/config/orders-value").await;
    assert_eq!(
        (a.status, a.body.clone()),
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    assert_error(&raw.delete("/config/orders-value").await, 404, 40401);
    let a = raw.delete("/config").await;
    assert_eq!(
        (a.status, a.body.clone()),
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_eq!(
        raw.get("/config").await.body,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn compatibility_endpoint_and_checks_on_register() {
    let server = start().await;
    let raw = Raw::new(&server.url());
    let body = |v: Value| json!({ "schema": v.to_string() });

    // No versions yet: compatible against "latest"; 40401/40402 against a number.
    let a = raw
        .post("/compatibility/subjects/s/versions/latest", body(user_v1()))
        .await;
    assert_eq!(
        (a.status, a.body.clone()),
        (200, json!({"is_compatible": true}))
    );
    assert_error(
        &raw.post("/compatibility/subjects/s/versions/1", body(user_v1()))
            .await,
        404,
        40401,
    );
    raw.register("s", &user_v1()).await;
    assert_error(
        &raw.post("/compatibility/subjects/s/versions/9", body(user_v1()))
            .await,
        404,
        40402,
    );
    assert_error(
        &raw.post("/compatibility/subjects/s/versions/x", body(user_v1()))
            .await,
        422,
        42202,
    );
    assert_error(
        &raw.post(
            "/compatibility/subjects/s/versions/latest",
            json!({"schema": "{"}),
        )
        .await,
        422,
        42201,
    );
    for path in [
        "/compatibility/subjects/s/versions/latest",
        "/compatibility/subjects/s/versions/1",
        "/compatibility/subjects/s/versions",
    ] {
        let a = raw.post(path, body(user_v2())).await;
        assert_eq!(
            (a.status, a.body.clone()),
            (200, json!({"is_compatible": true})),
            "{path}"
        );
        let a = raw
            .post(&format!("{path}?verbose=true"), body(user_v2()))
            .await;
        assert_eq!(a.body["is_compatible"], true, "{path}");
        assert_eq!(a.body["messages"], json!([]), "{path}");
    }

    {
        let a = raw
            .post(
                "/compatibility/subjects/s/versions/latest?verbose=true",
                body(user_incompatible()),
            )
            .await;
        assert_eq!(a.body["is_compatible"], false, "{a:?}");
        assert!(!a.body["messages"].as_array().unwrap().is_empty(), "{a:?}");
        let a = raw
            .post("/subjects/s/versions", body(user_incompatible()))
            .await;
        assert_error(&a, 409, 409);
        let msg = a.body["message"].as_str().unwrap();
        assert!(
            msg.starts_with(
                "Schema being registered is incompatible with an earlier schema for subject \"s\", details: "
            ),
            "{msg}"
        );
        // NONE at the subject level lets it through.
        raw.put("/config/s", json!({"compatibility": "NONE"})).await;
        assert_eq!(
            raw.post("/subjects/s/versions", body(user_incompatible()))
                .await
                .status,
            200
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn read_only_and_import_modes() {
    let server = start().await;
    let raw = Raw::new(&server.url());
    raw.register("s", &user_v1()).await;
    assert_eq!(raw.get("/mode").await.body, json!({"mode": "READWRITE"}));
    let a = raw.put("/mode", json!({"mode": "READONLY"})).await;
    assert_eq!(
        (a.status, a.body.clone()),
        (200, json!({"mode": "READONLY"}))
    );

    let reg = raw
        .post(
            "/subjects/s/versions",
            json!({ "schema": user_v2().to_string() }),
        )
        .await;
    assert_error(&reg, 422, 42205);
    assert_error(&raw.delete("/subjects/s/versions/1").await, 422, 42205);
    assert_error(&raw.delete("/subjects/s").await, 422, 42205);
    assert_error(
        &raw.put("/config/s", json!({"compatibility": "FULL"})).await,
        422,
        42205,
    );
    // Reads still work.
    assert_eq!(raw.get("/subjects/s/versions/1").await.status, 200);
    assert_eq!(
        raw.post("/subjects/s", json!({ "schema": user_v1().to_string() }))
            .await
            .status,
        200
    );
    assert_error(
        &raw.put("/mode", json!({"mode": "SLEEPY"})).await,
        422,
        42204,
    );
    raw.put("/mode", json!({"mode": "READWRITE"})).await;
    raw.register("s", &user_v2()).await;

    // A subject-level mode.
    let a = raw.put("/mode/s", json!({"mode": "READONLY"})).await;
    assert_eq!(a.body, json!({"mode": "READONLY"}));
    assert_eq!(raw.get("/mode/s").await.body, json!({"mode": "READONLY"}));
    assert_error(&raw.get("/mode/other").await, 404, 40409);
    assert_eq!(
        raw.get("/mode/other?defaultToGlobal=true").await.body,
        json!({"mode": "READWRITE"})
    );
    assert_error(&raw.delete("/subjects/s/versions/1").await, 422, 42205);
    raw.register("other", &user_v1()).await;
    let a = raw.delete("/mode/s").await;
    assert_eq!(
        (a.status, a.body.clone()),
        (200, json!({"mode": "READONLY"}))
    );

    // IMPORT needs an empty registry (or force), then takes ids and versions as given.
    assert_error(
        &raw.put("/mode", json!({"mode": "IMPORT"})).await,
        422,
        42205,
    );
    assert_eq!(
        raw.put("/mode/imported", json!({"mode": "IMPORT"}))
            .await
            .status,
        200
    );
    let a = raw
        .post(
            "/subjects/imported/versions",
            json!({ "schema": user_incompatible().to_string(), "id": 100, "version": 7 }),
        )
        .await;
    assert_eq!(
        (a.status, a.body.clone()),
        (200, json!({"id": 100})),
        "{a:?}"
    );
    assert_eq!(
        raw.get("/subjects/imported/versions").await.body,
        json!([7])
    );
    assert_eq!(raw.get("/schemas/ids/100").await.status, 200);
    // An id not matching the schema already registered under another id.
    let a = raw
        .post(
            "/subjects/imported/versions",
            json!({ "schema": user_v1().to_string(), "id": 101, "version": 8 }),
        )
        .await;
    assert_error(&a, 422, 42207);
    // Outside IMPORT mode, ids cannot be chosen.
    let a = raw
        .post(
            "/subjects/other/versions",
            json!({ "schema": user_v2().to_string(), "id": 555 }),
        )
        .await;
    assert_error(&a, 422, 42205);
    // New ids continue after imported ones.
    let next = raw
        .register(
            "fresh",
            &json!({"type": "enum", "name": "Color", "symbols": ["RED"]}),
        )
        .await;
    assert_eq!(next, 101);
    server.stop().await.unwrap();
}

fn address() -> Value {
    json!({
        "type": "record", "name": "Address", "namespace": "com.acme",
        "fields": [{"name": "street", "type": "string"}, {"name": "zip", "type": "string"}]
    })
}

fn customer() -> Value {
    json!({
        "type": "record", "name": "Customer", "namespace": "com.acme",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "address", "type": "com.acme.Address"}
        ]
    })
}

#[tokio::test]
async fn references_across_subjects() {
    let server = start().await;
    let raw = Raw::new(&server.url());
    let address_id = raw.register("address", &address()).await;
    let refs = json!([{"name": "com.acme.Address", "subject": "address", "version": 1}]);

    // Without the reference the type is unknown.
    let a = raw
        .post(
            "/subjects/customer-value/versions",
            json!({ "schema": customer().to_string() }),
        )
        .await;
    assert_error(&a, 422, 42201);
    // A reference to a missing version.
    let a = raw
        .post(
            "/subjects/customer-value/versions",
            json!({ "schema": customer().to_string(),
                    "references": [{"name": "com.acme.Address", "subject": "address", "version": 4}] }),
        )
        .await;
    assert_error(&a, 422, 42201);

    let a = raw
        .post(
            "/subjects/customer-value/versions",
            json!({ "schema": customer().to_string(), "references": refs }),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let customer_id = a.body["id"].as_u64().unwrap();
    assert_ne!(customer_id, address_id);
    // Idempotent with references too; `latest` (-1) resolves to the version.
    let a = raw
        .post(
            "/subjects/customer-value/versions",
            json!({ "schema": customer().to_string(),
                    "references": [{"name": "com.acme.Address", "subject": "address", "version": -1}] }),
        )
        .await;
    assert_eq!(a.body["id"].as_u64(), Some(customer_id));

    let v = raw.get("/subjects/customer-value/versions/latest").await;
    assert_eq!(v.body["references"], refs);
    let by_id = raw.get(&format!("/schemas/ids/{customer_id}")).await;
    assert_eq!(by_id.body["references"], refs);
    let keys: Vec<&String> = by_id.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["schema", "references"]);
    assert_eq!(
        raw.get("/subjects/address/versions/1/referencedby")
            .await
            .body,
        json!([customer_id])
    );
    assert_eq!(
        raw.get("/subjects/customer-value/versions/1/referencedby")
            .await
            .body,
        json!([])
    );
    let found = raw
        .post(
            "/subjects/customer-value",
            json!({ "schema": customer().to_string(), "references": refs }),
        )
        .await;
    assert_eq!(found.body["id"].as_u64(), Some(customer_id), "{found:?}");
    let a = raw
        .post(
            "/compatibility/subjects/customer-value/versions/latest",
            json!({ "schema": customer().to_string(), "references": refs }),
        )
        .await;
    assert_eq!(a.body, json!({"is_compatible": true}));

    // A chain: an order referencing the customer (and so, transitively, the address).
    let order = json!({
        "type": "record", "name": "Order", "namespace": "com.acme",
        "fields": [{"name": "customer", "type": "com.acme.Customer"},
                   {"name": "ship_to", "type": "com.acme.Address"}]
    });
    let a = raw
        .post(
            "/subjects/order-value/versions",
            json!({ "schema": order.to_string(), "references": [
                {"name": "com.acme.Customer", "subject": "customer-value", "version": 1},
                {"name": "com.acme.Address", "subject": "address", "version": 1}
            ] }),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");

    // A referenced version cannot be deleted.
    assert_error(
        &raw.delete("/subjects/address/versions/1").await,
        422,
        42206,
    );
    assert_error(&raw.delete("/subjects/address").await, 422, 42206);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_registrations_get_distinct_versions() {
    let server = start().await;
    let url = server.url();
    let raw = std::sync::Arc::new(Raw::new(&url));
    raw.put("/config", json!({"compatibility": "NONE"})).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let raw = std::sync::Arc::clone(&raw);
        tasks.push(tokio::spawn(async move {
            let schema = json!({"type": "record", "name": format!("R{i}"), "fields": []});
            raw.post(
                &format!("/subjects/s{}/versions", i % 2),
                json!({"schema": schema.to_string()}),
            )
            .await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{a:?}");
        ids.push(a.body["id"].as_u64().unwrap());
    }
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=16).collect::<Vec<u64>>(),
        "every schema got its own id"
    );
    for s in ["s0", "s1"] {
        let a = raw.get(&format!("/subjects/{s}/versions")).await;
        assert_eq!(a.body, json!((1..=8).collect::<Vec<u64>>()));
    }
    server.stop().await.unwrap();
}

/// Avro 1.12 (AVRO-3649) lets a union field's default be a value of any branch; Confluent's registry (Avro
/// Java) registers such schemas, and so does this one, and checks compatibility with them.
#[tokio::test]
async fn union_defaults_on_any_branch_are_accepted() {
    let server = start().await;
    let raw = Raw::new(&server.url());
    let v1 = json!({
        "type": "record", "name": "Toy", "namespace": "com.acme",
        "fields": [{"name": "id", "type": "long"}]
    });
    let v2 = json!({
        "type": "record", "name": "Toy", "namespace": "com.acme",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "colour", "type": ["null", "string"], "default": "red"},
            {"name": "size", "type": ["null", "int", "long"], "default": 3}
        ]
    });
    raw.register("toys-value", &v1).await;
    let check = raw
        .post(
            "/compatibility/subjects/toys-value/versions/latest?verbose=true",
            json!({ "schema": v2.to_string() }),
        )
        .await;
    assert_eq!(check.status, 200, "{check:?}");
    assert_eq!(check.body["is_compatible"], true, "{check:?}");
    let id = raw.register("toys-value", &v2).await;
    let got = raw.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(got.status, 200, "{got:?}");
    let stored: Value = serde_json::from_str(got.body["schema"].as_str().unwrap()).unwrap();
    assert_eq!(stored["fields"][1]["default"], "red", "{stored}");
    // A default that no branch takes is still refused.
    let bad = json!({
        "type": "record", "name": "Toy", "namespace": "com.acme",
        "fields": [{"name": "id", "type": "long"}, {"name": "x", "type": ["null", "int"], "default": "red"}]
    });
    let a = raw
        .post(
            "/subjects/toys-value/versions",
            json!({ "schema": bad.to_string() }),
        )
        .await;
    assert_error(&a, 422, 42201);
    server.stop().await.unwrap();
}

/// Avro Java checks only that a fixed, bytes or enum field default is a string (and ignores an enum default
/// that is not one), so Confluent's registry registers such schemas; this one does too.
#[tokio::test]
async fn defaults_avro_java_accepts_are_registered() {
    let server = start().await;
    let raw = Raw::new(&server.url());
    let schema = json!({
        "type": "record", "name": "Token", "namespace": "com.acme",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 4}, "default": "ab"},
            {"name": "raw", "type": "bytes", "default": "\u{0100}"},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A"], "default": 1}, "default": "Z"}
        ]
    });
    let id = raw.register("tokens-value", &schema).await;
    let found = raw
        .post(
            "/subjects/tokens-value",
            json!({ "schema": schema.to_string() }),
        )
        .await;
    assert_eq!(found.status, 200, "{found:?}");
    assert_eq!(found.body["id"].as_u64(), Some(id), "{found:?}");
    // What Java refuses is still refused: a number as a fixed default.
    let bad = json!({
        "type": "record", "name": "Token", "namespace": "com.acme",
        "fields": [{"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 4}, "default": 5}]
    });
    let a = raw
        .post(
            "/subjects/other-value/versions",
            json!({ "schema": bad.to_string() }),
        )
        .await;
    assert_error(&a, 422, 42201);
    server.stop().await.unwrap();
}

/// `GET /schemas`: every version's schema (`?subjectPrefix=`, `?deleted=true`, `?latestOnly=true`,
/// `?offset=`, `?limit=`), as `[{subject, version, id, schema, references?}]` sorted by subject and version.
#[tokio::test]
async fn list_schemas() {
    let server = start().await;
    let raw = Raw::new(&server.url());
    let v1 = raw.register("users-value", &user_v1()).await;
    let v2 = raw.register("users-value", &user_v2()).await;
    let other = raw.register("orders-value", &user_v1()).await;
    assert_eq!(other, v1, "the same schema has one id");
    let all = raw.get("/schemas").await;
    assert_eq!(all.status, 200, "{all:?}");
    let rows: Vec<(String, u64, u64)> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["schema"].is_string(), "{r}");
            (
                r["subject"].as_str().unwrap().to_owned(),
                r["version"].as_u64().unwrap(),
                r["id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("orders-value".to_owned(), 1, v1),
            ("users-value".to_owned(), 1, v1),
            ("users-value".to_owned(), 2, v2),
        ]
    );
    let ids = |a: &common::Answer| -> Vec<u64> {
        a.body
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        ids(&raw.get("/schemas?subjectPrefix=users").await),
        [v1, v2]
    );
    assert_eq!(ids(&raw.get("/schemas?latestOnly=true").await), [v1, v2]);
    assert_eq!(ids(&raw.get("/schemas?offset=1&limit=1").await), [v1]);
    // Soft-deleted versions only with ?deleted=true.
    let d = raw.delete("/subjects/users-value/versions/2").await;
    assert_eq!(d.status, 200, "{d:?}");
    assert_eq!(ids(&raw.get("/schemas?subjectPrefix=users").await), [v1]);
    assert_eq!(
        ids(&raw.get("/schemas?subjectPrefix=users&deleted=true").await),
        [v1, v2]
    );
    server.stop().await.unwrap();
}

/// `GET /schemas/ids/{id}/subjects` removes duplicate subjects (a subject holding the id in two versions)
/// before `?offset=` and `?limit=` apply.
#[tokio::test]
async fn subjects_of_an_id_are_paged_after_removing_duplicates() {
    let server = start().await;
    let raw = Raw::new(&server.url());
    let id = raw.register("a-value", &user_v1()).await;
    raw.register("a-value", &user_v2()).await;
    // v1 soft-deleted, then the same schema again: v3 holds the id too.
    assert_eq!(raw.delete("/subjects/a-value/versions/1").await.status, 200);
    assert_eq!(raw.register("a-value", &user_v1()).await, id);
    assert_eq!(raw.register("b-value", &user_v1()).await, id);
    let versions = raw
        .get(&format!("/schemas/ids/{id}/versions?deleted=true"))
        .await;
    assert_eq!(versions.body.as_array().unwrap().len(), 3, "{versions:?}");
    let page = raw
        .get(&format!("/schemas/ids/{id}/subjects?deleted=true&limit=2"))
        .await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.body, json!(["a-value", "b-value"]));
    let page = raw
        .get(&format!("/schemas/ids/{id}/subjects?deleted=true&offset=1"))
        .await;
    assert_eq!(page.body, json!(["b-value"]));
    server.stop().await.unwrap();
}

/// `?normalize=true` (Confluent's): the schema is normalized before it is stored or looked up, so schemas that
/// differ only in key order, alias order or the order of custom attributes are one schema: one id, one
/// version. Without it, attribute order counts (as Confluent's canonical string keeps it).
#[tokio::test]
async fn normalize_makes_attribute_and_alias_order_irrelevant() {
    let server = start().await;
    let raw = Raw::new(&server.url());
    let a = r#"{"type":"record","name":"Event","namespace":"ns","aliases":["Old","Older"],"owner":"safety","tier":1,
        "fields":[{"name":"id","type":"string","aliases":["key","ident"],"pii":false,"doc":"the id"}]}"#;
    let b = r#"{"fields":[{"doc":"the id","pii":false,"aliases":["ident","key"],"type":"string","name":"id"}],
        "tier":1,"owner":"safety","aliases":["Older","Old"],"namespace":"ns","name":"Event","type":"record"}"#;
    let register = async |subject: &str, text: &str, normalize: bool| {
        let q = if normalize { "?normalize=true" } else { "" };
        let r = raw
            .post(
                &format!("/subjects/{subject}/versions{q}"),
                json!({ "schema": text }),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body["id"].as_u64().unwrap()
    };
    let first = register("n-value", a, true).await;
    assert_eq!(register("n-value", b, true).await, first, "one schema");
    assert_eq!(raw.get("/subjects/n-value/versions").await.body, json!([1]));
    // What is stored is the normalized text: sorted keys and aliases, full names.
    let stored = raw.get(&format!("/schemas/ids/{first}")).await.body["schema"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(stored.starts_with(r#"{"aliases":["ns.Old","ns.Older"],"fields":[{"aliases":["ident","key"],"doc":"the id","name":"id","pii":false,"type":"string"}],"name":"ns.Event","owner":"safety","tier":1,"type":"record"}"#), "{stored}");
    // Looked up normalized: found from either spelling; not normalized, the reordered text is not the stored one.
    for text in [a, b] {
        let r = raw
            .post(
                "/subjects/n-value?normalize=true",
                json!({ "schema": text }),
            )
            .await;
        assert_eq!(
            (r.status, r.body["id"].as_u64()),
            (200, Some(first)),
            "{r:?}"
        );
    }
    let r = raw.post("/subjects/n-value", json!({ "schema": b })).await;
    assert_eq!(r.status, 404, "{r:?}");
    // Without normalize, the two spellings are two schemas (the attribute order differs).
    let x = register("plain-value", a, false).await;
    let y = register("plain-value", b, false).await;
    assert_ne!(x, y);
    // The compatibility check takes it too.
    let r = raw
        .post(
            "/compatibility/subjects/n-value/versions/latest?normalize=true",
            json!({ "schema": b }),
        )
        .await;
    assert_eq!(
        (r.status, r.body["is_compatible"].clone()),
        (200, json!(true)),
        "{r:?}"
    );
}

/// Schema contexts (Confluent's): `:.staging:orders-value` lives in context `.staging`, with ids of its own
/// (id 1 there is not id 1 of the default context), its own compatibility default (`/config/:.staging:`),
/// and references that resolve in it; `/schemas/ids/{id}?subject=` picks the context, `/contexts` lists
/// them, `/subjects` lists every context's subjects (`subjectPrefix` narrows).
#[tokio::test]
async fn contexts_have_their_own_ids_settings_and_references() {
    let server = start().await;
    let raw = Raw::new(&server.url());
    let other = json!({"type": "record", "name": "Order", "namespace": "com.acme",
                       "fields": [{"name": "n", "type": "int"}]});
    assert_eq!(raw.register("orders-value", &user_v1()).await, 1);
    assert_eq!(
        raw.register(":.staging:orders-value", &other).await,
        1,
        "ids per context"
    );
    // The default context's schema again, in staging: a new id there (no sharing across contexts).
    assert_eq!(raw.register(":.staging:users-value", &user_v1()).await, 2);
    let schema_of = async |path: &str| -> Value {
        let a = raw.get(path).await;
        assert_eq!(a.status, 200, "{path}: {a:?}");
        serde_json::from_str(a.body["schema"].as_str().unwrap()).unwrap()
    };
    assert_eq!(schema_of("/schemas/ids/1").await, user_v1());
    assert_eq!(schema_of("/schemas/ids/1?subject=:.staging:").await, other);
    assert_eq!(
        schema_of("/schemas/ids/2?subject=:.staging:users-value").await,
        user_v1()
    );
    assert_error(&raw.get("/schemas/ids/2").await, 404, 40403);
    assert_eq!(
        raw.get("/schemas/ids/1/versions?subject=:.staging:")
            .await
            .body,
        json!([{"subject": ":.staging:orders-value", "version": 1}])
    );
    assert_eq!(raw.get("/contexts").await.body, json!([".", ".staging"]));
    assert_eq!(
        raw.get("/subjects").await.body,
        json!([
            ":.staging:orders-value",
            ":.staging:users-value",
            "orders-value"
        ])
    );
    assert_eq!(
        raw.get("/subjects?subjectPrefix=:*:").await.body,
        raw.get("/subjects").await.body
    );
    assert_eq!(
        raw.get("/subjects?subjectPrefix=:.staging:").await.body,
        json!([":.staging:orders-value", ":.staging:users-value"])
    );
    assert_eq!(
        raw.get("/subjects/:.staging:orders-value/versions/1")
            .await
            .body["id"],
        1
    );

    // The context's compatibility default: NONE in staging lets an incompatible change in; the default
    // context (BACKWARD) still refuses it.
    let r = raw
        .put("/config/:.staging:", json!({"compatibility": "NONE"}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = raw
        .post(
            "/subjects/:.staging:users-value/versions",
            json!({ "schema": user_incompatible().to_string() }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = raw
        .post(
            "/subjects/orders-value/versions",
            json!({ "schema": user_incompatible().to_string() }),
        )
        .await;
    assert_error(&r, 409, 409);

    // An unqualified reference resolves in the referring schema's context.
    let money = json!({"type": "record", "name": "Money", "namespace": "com.acme",
                       "fields": [{"name": "cents", "type": "long"}]});
    raw.register(":.staging:money", &money).await;
    let priced = json!({"type": "record", "name": "Priced", "namespace": "com.acme",
                        "fields": [{"name": "price", "type": "com.acme.Money"}]});
    let body = json!({"schema": priced.to_string(),
                      "references": [{"name": "com.acme.Money", "subject": "money", "version": 1}]});
    let r = raw
        .post("/subjects/:.staging:priced/versions", body.clone())
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        raw.get("/subjects/:.staging:money/versions/1/referencedby")
            .await
            .body,
        json!([r.body["id"]])
    );
    let r = raw.post("/subjects/priced/versions", body).await;
    assert_eq!(r.status, 422, "no `money` in the default context: {r:?}");
}
