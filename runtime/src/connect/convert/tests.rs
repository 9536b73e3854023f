//! Unit tests that need no registry: kinds, the schemaless converters, tombstones, framing errors, messages.

use std::sync::Arc;

use serde_json::json;
use ursa_registry::{ClientConfig, RegistryClient};

use super::*;

fn converter(kind: ConverterKind) -> Converter {
    // Never contacted: these tests fail before any lookup.
    let client = RegistryClient::new(ClientConfig::new("http://127.0.0.1:9")).unwrap();
    Converter::new(kind, Some(Arc::new(client))).unwrap()
}

#[test]
fn kinds_parse_from_short_names_and_connect_classes() {
    for kind in ConverterKind::ALL {
        assert_eq!(ConverterKind::parse(kind.as_str()), Ok(kind));
        assert_eq!(kind.connect_class().parse::<ConverterKind>(), Ok(kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
    assert_eq!(ConverterKind::parse(" AVRO "), Ok(ConverterKind::Avro));
    assert_eq!(
        ConverterKind::parse("org.apache.kafka.connect.converters.ByteArrayConverter"),
        Ok(ConverterKind::Bytes)
    );
    let e = ConverterKind::parse("protobuf").unwrap_err();
    assert!(
        e.contains("protobuf") && e.contains("avro, json, string or bytes"),
        "{e}"
    );
    assert!(ConverterKind::Avro.needs_registry() && !ConverterKind::Json.needs_registry());
}

#[test]
fn avro_needs_a_registry() {
    let e = Converter::new(ConverterKind::Avro, None).unwrap_err();
    assert!(matches!(e, ConvertError::Config(_)));
    assert_eq!(e.class_name(), "ursa.convert.Config");
    assert!(e.origin().is_none());
    assert!(Converter::new(ConverterKind::Json, None).is_ok());
}

#[tokio::test]
async fn tombstones_are_null_for_every_converter() {
    for kind in ConverterKind::ALL {
        let c = converter(kind).convert("t", None).await.unwrap();
        assert_eq!(c.json, serde_json::Value::Null);
        assert_eq!(c.schema_id, None);
        assert!(c.is_tombstone());
        assert!(
            c.decode_as::<ursa_events::com::teddy::conversation::MessageReceived>()
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn schemaless_converters() {
    let j = converter(ConverterKind::Json)
        .convert("t", Some(br#"{"b":1,"a":[true,null]}"#))
        .await
        .unwrap();
    assert_eq!(j.json, json!({"b": 1, "a": [true, null]}));
    assert!(!j.is_tombstone());
    let s = converter(ConverterKind::String)
        .convert("t", Some("héllo".as_bytes()))
        .await
        .unwrap();
    assert_eq!(s.json, json!("héllo"));
    let b = converter(ConverterKind::Bytes)
        .convert("t", Some(&[0, 0xff, 1]))
        .await
        .unwrap();
    assert_eq!(b.json, json!("AP8B"));
    let empty = converter(ConverterKind::Bytes)
        .convert("t", Some(&[]))
        .await
        .unwrap();
    assert_eq!(empty.json, json!(""));
    // Typed decoding of a payload that is not Avro.
    let e = j
        .decode_as::<ursa_events::com::teddy::conversation::MessageReceived>()
        .unwrap_err();
    assert!(
        matches!(
            e,
            ConvertError::NotAvro {
                kind: ConverterKind::Json,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.class_name(), "ursa.convert.NotAvro");
}

#[tokio::test]
async fn invalid_json_and_utf8_are_permanent_and_located() {
    let e = converter(ConverterKind::Json)
        .convert("orders", Some(b"{\"a\":\n  tru}"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ConvertError::InvalidJson { line: 2, .. }),
        "{e:?}"
    );
    assert!(!e.is_retriable());
    assert_eq!(e.class_name(), "ursa.convert.InvalidJson");
    let msg = e.to_string();
    assert!(
        msg.starts_with("value of topic `orders`: invalid JSON:") && msg.contains("line 2"),
        "{msg}"
    );
    // Empty bytes are not JSON either; Avro bytes get a hint.
    assert!(
        converter(ConverterKind::Json)
            .convert("t", Some(b""))
            .await
            .is_err()
    );
    let e = converter(ConverterKind::Json)
        .convert("t", Some(&[0, 0, 0, 0, 1, 2]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is the converter `avro`?"), "{e}");

    let e = converter(ConverterKind::String)
        .for_keys()
        .convert("orders", Some(&[b'o', b'k', 0xc3, 0x28]))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ConvertError::InvalidUtf8 { offset: 2, .. }),
        "{e:?}"
    );
    assert_eq!(e.class_name(), "ursa.convert.InvalidUtf8");
    assert_eq!(
        e.to_string(),
        "key of topic `orders`: invalid UTF-8 at byte 2"
    );
    assert_eq!(
        e.origin(),
        Some(&Origin {
            topic: "orders".into(),
            part: Part::Key
        })
    );
}

#[tokio::test]
async fn framing_errors_say_what_the_payload_looks_like() {
    let avro = converter(ConverterKind::Avro);
    let e = avro
        .convert("orders", Some(br#"{"id":1}"#))
        .await
        .unwrap_err();
    assert!(matches!(e, ConvertError::BadMagicByte { byte: b'{', .. }));
    assert_eq!(
        e.to_string(),
        "value of topic `orders`: byte 0 is 0x7b, expected magic byte 0x00 (not Confluent Avro — is this JSON?)"
    );
    assert_eq!(e.class_name(), "ursa.convert.BadMagicByte");
    assert!(!e.is_retriable());
    let text = avro.convert("t", Some(b"hello")).await.unwrap_err();
    assert!(text.to_string().ends_with("— is this text?)"), "{text}");
    let single = avro
        .convert("t", Some(&[0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]))
        .await
        .unwrap_err();
    assert!(
        single.to_string().contains("single-object encoding"),
        "{single}"
    );
    let binary = avro.convert("t", Some(&[0x07, 0])).await.unwrap_err();
    assert!(
        binary.to_string().ends_with("(not Confluent Avro)"),
        "{binary}"
    );

    for short in [&[][..], &[0], &[0, 0, 0, 1]] {
        let e = avro.convert("t", Some(short)).await.unwrap_err();
        assert!(
            matches!(e, ConvertError::ShortFrame { len, .. } if len == short.len()),
            "{e:?}"
        );
        assert_eq!(e.class_name(), "ursa.convert.ShortFrame");
        assert!(!e.is_retriable());
    }
}

/// The JSON text form (for sinks that write JSON) is the tree's text, written in one pass: whitespace,
/// escapes, numbers and nesting as `serde_json` writes them; bad JSON fails with the tree's error.
#[tokio::test]
async fn json_text_is_the_text_of_the_tree() {
    let c = converter(ConverterKind::Json);
    for input in [
        r#"{"a": 1, "b" : [true, false, null], "c": {"d": "e"}}"#,
        "  [1.0, 1e3, -0, -0.0, 12345678901234567890, 123456789012345678901234, 1.5e-7, 0.1]  ",
        r#""\u00e9\u2713 \"quoted\" \\ \n\t\u0001 \ud83d\ude00""#,
        r#"{"nested": {"deeper": [[], {}, [{"x": -12}]]}, "unicode": "héllo ✓"}"#,
        "\n\t42\r\n",
    ] {
        let text = c
            .payload(
                "t",
                Some(bytes::Bytes::from(input.to_owned())),
                Conversion::JsonText,
            )
            .await
            .unwrap();
        let tree: serde_json::Value = serde_json::from_str(input).unwrap();
        let mut written = Vec::new();
        text.write_json(&mut written).unwrap();
        assert!(text.has_json_text() && !text.has_json(), "{input}");
        assert_eq!(
            String::from_utf8(written).unwrap(),
            serde_json::to_string(&tree).unwrap(),
            "{input}"
        );
    }
    for bad in ["{nope", "[1, 2", "1 2", r#"{"a": 1e400}"#, ""] {
        let text = c
            .payload("t", Some(bytes::Bytes::from(bad)), Conversion::JsonText)
            .await
            .unwrap_err();
        let tree = c
            .payload("t", Some(bytes::Bytes::from(bad)), Conversion::JsonTree)
            .await
            .unwrap_err();
        assert_eq!(text.to_string(), tree.to_string(), "{bad}");
    }
}
