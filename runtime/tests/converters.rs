//! Converters against the real dev registry (in-process): Avro with references, typed decoding into generated
//! types, unknown ids, a stopped registry, every poison pill, tombstones.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use ursa::connect::convert::{ConvertError, Converter, ConverterKind};
use ursa_avro::schema::{Attrs, Loc, Schema, SchemaKind, SchemaSet};
use ursa_avro::{AvroRecord, Decimal, encode as e, wire};
use ursa_events::com::teddy::common::{ChildRef, DeviceRef, EventMetadata};
use ursa_events::com::teddy::conversation::{
    ConversationStarted, Emotion, InputModality, MessageReceived,
};
use ursa_registry::{
    ClientConfig, Reference, RegistryClient, RetryPolicy, RunningServer, Server, ServerConfig,
};

async fn registry() -> (RunningServer, Arc<RegistryClient>) {
    let server = Server::bind(ServerConfig::ephemeral())
        .await
        .unwrap()
        .spawn();
    let client = new_client(&server.url());
    (server, client)
}

fn new_client(url: &str) -> Arc<RegistryClient> {
    let mut config = ClientConfig::new(url);
    config.timeout = Duration::from_secs(5);
    config.retries = RetryPolicy::none();
    Arc::new(RegistryClient::new(config).unwrap())
}

fn avro(client: &Arc<RegistryClient>) -> Converter {
    Converter::new(ConverterKind::Avro, Some(Arc::clone(client))).unwrap()
}

fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    wire::write_header(&mut buf, id);
    buf.extend_from_slice(datum);
    buf
}

fn reference(name: &str, subject: &str, version: i32) -> Reference {
    Reference {
        name: name.into(),
        subject: subject.into(),
        version,
    }
}

const CURRENCY: &str =
    r#"{"type":"enum","name":"Currency","namespace":"com.acme","symbols":["EUR","USD"]}"#;
const MONEY: &str = r#"{"type":"record","name":"Money","namespace":"com.acme","fields":[
    {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
    {"name":"currency","type":"com.acme.Currency"}
]}"#;
const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[
    {"name":"id","type":{"type":"string","logicalType":"uuid"}},
    {"name":"total","type":"com.acme.Money"},
    {"name":"placed_at","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","fields":[
        {"name":"sku","type":"string"},{"name":"qty","type":"int"}]}}},
    {"name":"tags","type":{"type":"map","values":"string"}},
    {"name":"note","type":["null","string"],"default":null}
]}"#;

/// Registers Currency ← Money ← Order across three subjects; returns Order's id.
async fn register_order(client: &RegistryClient) -> u32 {
    client
        .register("acme-currency", CURRENCY, &[])
        .await
        .unwrap();
    client
        .register(
            "acme-money",
            MONEY,
            &[reference("com.acme.Currency", "acme-currency", 1)],
        )
        .await
        .unwrap();
    client
        .register(
            "orders-value",
            ORDER,
            &[reference("com.acme.Money", "acme-money", 1)],
        )
        .await
        .unwrap()
}

fn order_datum() -> Vec<u8> {
    let mut b = Vec::new();
    e::string(&mut b, "0b9c2f6e-4d1a-4c8e-9f3a-2b7d5e1c0a94");
    e::bytes(&mut b, Decimal::from_i128(123_456, 2).unscaled_bytes());
    e::enum_index(&mut b, 1);
    e::long(&mut b, 1_760_000_000_123);
    e::long(&mut b, 2);
    e::string(&mut b, "bear-xl");
    e::int(&mut b, 1);
    e::string(&mut b, "honey");
    e::int(&mut b, 12);
    e::long(&mut b, 0);
    e::long(&mut b, 1);
    e::string(&mut b, "channel");
    e::string(&mut b, "web");
    e::long(&mut b, 0);
    e::union_index(&mut b, 0);
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn avro_with_cross_subject_references_to_json() {
    let (server, client) = registry().await;
    let id = register_order(&client).await;
    let converter = avro(&client);
    let bytes = framed(id, &order_datum());
    let c = converter.convert("orders", Some(&bytes)).await.unwrap();
    assert_eq!(c.schema_id, Some(id));
    assert_eq!(
        c.json,
        json!({
            "id": "0b9c2f6e-4d1a-4c8e-9f3a-2b7d5e1c0a94",
            "total": {"amount": "1234.56", "currency": "USD"},
            "placed_at": "2025-10-09T08:53:20.123Z",
            "lines": [{"sku": "bear-xl", "qty": 1}, {"sku": "honey", "qty": 12}],
            "tags": {"channel": "web"},
            "note": null
        })
    );
    let keys: Vec<&String> = c.json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "total", "placed_at", "lines", "tags", "note"]);

    // The parsed schema is cached per id: with the registry gone, the same id still converts.
    server.stop().await.unwrap();
    let again = converter.convert("orders", Some(&bytes)).await.unwrap();
    assert_eq!(again, c);
    // A clone shares the cache.
    assert!(
        converter
            .clone()
            .convert("orders", Some(&bytes))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_schema_id_is_permanent() {
    let (_server, client) = registry().await;
    let e = avro(&client)
        .convert("orders", Some(&framed(4242, &[0])))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ConvertError::UnknownSchemaId { id: 4242, .. }),
        "{e:?}"
    );
    assert!(!e.is_retriable());
    assert_eq!(e.class_name(), "ursa.convert.UnknownSchemaId");
    let msg = e.to_string();
    assert!(
        msg.starts_with("value of topic `orders`: schema id 4242 is not in the schema registry"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_registry_is_retriable() {
    let (server, client) = registry().await;
    let id = register_order(&client).await;
    let url = server.url();
    server.stop().await.unwrap();
    // A fresh client and converter: nothing cached.
    let e = avro(&new_client(&url))
        .convert("orders", Some(&framed(id, &order_datum())))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ConvertError::RegistryUnavailable { .. }),
        "{e:?}"
    );
    assert!(e.is_retriable());
    assert_eq!(e.class_name(), "ursa.convert.RegistryUnavailable");
    assert!(
        e.to_string()
            .contains(&format!("cannot fetch schema id {id}")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn avro_poison_pills_are_permanent() {
    let (_server, client) = registry().await;
    let id = register_order(&client).await;
    let converter = avro(&client);
    let datum = order_datum();

    let e = converter
        .convert("orders", Some(br#"{"id":"x"}"#))
        .await
        .unwrap_err();
    assert_eq!(e.class_name(), "ursa.convert.BadMagicByte");
    assert!(
        e.to_string().ends_with(
            "byte 0 is 0x7b, expected magic byte 0x00 (not Confluent Avro — is this JSON?)"
        ),
        "{e}"
    );

    // Cut inside a string: its length exceeds what is left.
    let cut = framed(id, &datum[..datum.len() - 3]);
    let e = converter.convert("orders", Some(&cut)).await.unwrap_err();
    assert!(
        matches!(
            e,
            ConvertError::MalformedAvro {
                source: ursa_avro::Error::LengthTooLarge { .. },
                ..
            }
        ),
        "{e:?}"
    );
    let truncated = framed(id, &datum[..datum.len() - 1]);
    let e = converter
        .convert("orders", Some(&truncated))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ConvertError::MalformedAvro {
                source: ursa_avro::Error::UnexpectedEof { .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.class_name(), "ursa.convert.MalformedAvro");
    assert!(!e.is_retriable());
    assert!(e.to_string().contains(&format!("schema id {id}")), "{e}");

    let mut trailing = framed(id, &datum);
    trailing.push(0);
    let e = converter
        .convert("orders", Some(&trailing))
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        ConvertError::MalformedAvro {
            source: ursa_avro::Error::TrailingBytes { .. },
            ..
        }
    ));

    let mut bad_union = framed(id, &datum);
    *bad_union.last_mut().unwrap() = 4; // union index 2 of ["null","string"]
    let e = converter
        .convert("orders", Some(&bad_union))
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        ConvertError::MalformedAvro {
            source: ursa_avro::Error::UnionIndex { .. },
            ..
        }
    ));

    let mut bad_utf8 = Vec::new();
    e::bytes(&mut bad_utf8, &[0xff; 36]);
    let e = converter
        .convert("orders", Some(&framed(id, &bad_utf8)))
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        ConvertError::MalformedAvro {
            source: ursa_avro::Error::InvalidUtf8 { .. },
            ..
        }
    ));

    let e = converter
        .convert("orders", Some(&[0, 0, 0]))
        .await
        .unwrap_err();
    assert_eq!(e.class_name(), "ursa.convert.ShortFrame");
}

#[tokio::test(flavor = "multi_thread")]
async fn schemaless_poison_pills_and_tombstones() {
    let (_server, client) = registry().await;
    let json = Converter::new(ConverterKind::Json, None).unwrap();
    let e = json.convert("t", Some(b"{not json")).await.unwrap_err();
    assert_eq!(e.class_name(), "ursa.convert.InvalidJson");
    assert!(!e.is_retriable());
    let string = Converter::new(ConverterKind::String, None)
        .unwrap()
        .for_keys();
    let e = string.convert("t", Some(&[0xfe])).await.unwrap_err();
    assert_eq!(e.class_name(), "ursa.convert.InvalidUtf8");
    assert!(e.to_string().starts_with("key of topic `t`"), "{e}");
    for kind in ConverterKind::ALL {
        let c = Converter::new(kind, Some(Arc::clone(&client))).unwrap();
        let t = c.convert("t", None).await.unwrap();
        assert!(t.is_tombstone() && t.json.is_null() && t.schema_id.is_none());
        assert_eq!(t.decode_as::<MessageReceived>().unwrap(), None);
    }
}

fn message() -> MessageReceived {
    use ursa_avro::logical::uuid_from_str;
    let uuid = |s: &str| uuid_from_str(s).unwrap();
    MessageReceived {
        metadata: EventMetadata {
            event_id: uuid("6f1c1f0e-8a52-4b1e-9d56-0c3f7b8a2e11"),
            occurred_at: ursa_avro::Timestamp::from_millis(1_760_000_000_123),
            correlation_id: Some(uuid("a3d9e4b2-1c7f-4e8a-b6d5-9f2e0c1b3a47")),
            causation_id: None,
            producer: "conversation-engine".into(),
            schema_version: 3,
            trace_parent: None,
        },
        message_id: uuid("0b9c2f6e-4d1a-4c8e-9f3a-2b7d5e1c0a94"),
        conversation_id: uuid("5e7a2c91-3b4d-4f60-8e1a-7c9b0d2f4a68"),
        child: ChildRef {
            child_id: uuid("c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"),
            household_id: uuid("f0e1d2c3-b4a5-4968-8776-5a4b3c2d1e0f"),
        },
        device: DeviceRef {
            device_id: "TB2-0042-A7F3-19C8".into(),
            firmware_version: "3.14.2".into(),
        },
        sequence_number: 17,
        text: "Tell me a story about a dinosaur".into(),
        modality: InputModality::Voice,
        detected_emotion: Some(Emotion::Curiosity),
        audio_duration_ms: Some(4_250),
        asr_confidence: Some(0.93),
        captured_at: ursa_avro::Timestamp::from_micros(1_759_999_995_810_606),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_decoding_into_a_generated_type() {
    let (_server, client) = registry().await;
    let id = client
        .register(MessageReceived::VALUE_SUBJECT, MessageReceived::SCHEMA, &[])
        .await
        .unwrap();
    let value = message();
    let bytes = value.to_confluent(id).unwrap();
    let converter = avro(&client);
    let c = converter
        .convert(MessageReceived::TOPIC, Some(&bytes))
        .await
        .unwrap();
    assert_eq!(c.json["text"], json!("Tell me a story about a dinosaur"));
    assert_eq!(c.json["modality"], json!("VOICE"));
    assert_eq!(c.json["detected_emotion"], json!("CURIOSITY"));
    assert_eq!(c.json["asr_confidence"], json!(0.93));
    assert_eq!(c.json["captured_at"], json!("2025-10-09T08:53:15.810606Z"));
    assert_eq!(
        c.json["metadata"]["occurred_at"],
        json!("2025-10-09T08:53:20.123Z")
    );
    assert_eq!(c.json["metadata"]["causation_id"], json!(null));
    assert_eq!(
        c.decode_as::<MessageReceived>().unwrap(),
        Some(value.clone())
    );
    // Again, through the cached plan, from another record.
    let c2 = converter
        .convert(MessageReceived::TOPIC, Some(&bytes))
        .await
        .unwrap();
    assert_eq!(c2.decode_as::<MessageReceived>().unwrap(), Some(value));
    // A type the writer schema does not resolve to.
    let e = c.decode_as::<ConversationStarted>().unwrap_err();
    assert!(
        matches!(e, ConvertError::IncompatibleSchema { .. }),
        "{e:?}"
    );
    assert_eq!(e.class_name(), "ursa.convert.IncompatibleSchema");
    assert!(!e.is_retriable());
}

/// The generated type's schema registered the way a Confluent producer with schema references would: the
/// common records under their own subjects, the event referencing them.
#[tokio::test(flavor = "multi_thread")]
async fn typed_decoding_with_schema_references() {
    let (_server, client) = registry().await;
    let set: &SchemaSet = MessageReceived::schema().unwrap();
    let mut refs = Vec::new();
    let mut external = Vec::new();
    for name in [
        "com.teddy.common.EventMetadata",
        "com.teddy.common.ChildRef",
        "com.teddy.common.DeviceRef",
    ] {
        let named = set.lookup(name).unwrap();
        let node = Schema {
            kind: SchemaKind::Named(named),
            logical: None,
            attrs: Attrs::new(),
            loc: Loc::default(),
        };
        let text = set.full_json(&node).to_string();
        client.register(name, &text, &[]).await.unwrap();
        refs.push(reference(name, name, 1));
        external.push(named);
    }
    let text = set
        .json_with_references(set.last_root(), &external)
        .to_string();
    assert!(
        !text.contains("\"household_id\""),
        "the common types are referenced, not inlined"
    );
    let id = client
        .register(MessageReceived::VALUE_SUBJECT, &text, &refs)
        .await
        .unwrap();
    let value = message();
    let c = avro(&client)
        .convert(
            MessageReceived::TOPIC,
            Some(&value.to_confluent(id).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        c.json["child"]["household_id"],
        json!("f0e1d2c3-b4a5-4968-8776-5a4b3c2d1e0f")
    );
    assert_eq!(c.decode_as::<MessageReceived>().unwrap(), Some(value));
}
