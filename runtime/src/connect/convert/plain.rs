//! The schemaless converters: JSON text, UTF-8 text, raw bytes.

use serde_json::Value;
use ursa_avro::value::encode_base64;

use super::ConvertError;
use super::error::At;
use super::error::avro_hint;

/// Parses JSON text.
pub(super) fn json(at: At<'_>, bytes: &[u8]) -> Result<Value, ConvertError> {
    serde_json::from_slice(bytes).map_err(|e| ConvertError::InvalidJson {
        at: at.origin(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
        hint: avro_hint(bytes),
    })
}

/// JSON text, checked and rewritten compact in one pass, without a tree ([`super::json_text`]): what
/// serializing [`json`]'s value gives, except that an object's repeated key is kept as written.
pub(super) fn json_text(at: At<'_>, bytes: &[u8]) -> Result<bytes::Bytes, ConvertError> {
    let mut out = Vec::with_capacity(bytes.len());
    if super::json_text::compact(bytes, &mut out).is_ok() {
        return Ok(super::shared_text(out));
    }
    // Not JSON (the tree's parse gives the error, with its line and column), or something only serde_json
    // writes exactly (a float, a surrogate pair): the tree's text.
    let v = json(at, bytes)?;
    out.clear();
    // Writing into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut out, &v);
    Ok(super::shared_text(out))
}

/// UTF-8 text as a JSON string.
pub(super) fn string(at: At<'_>, bytes: &[u8]) -> Result<Value, ConvertError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(Value::String(s.to_owned())),
        Err(e) => Err(ConvertError::InvalidUtf8 {
            at: at.origin(),
            offset: e.valid_up_to(),
            hint: avro_hint(bytes),
        }),
    }
}

/// Checks that the bytes are UTF-8 (without building the string).
pub(super) fn check_utf8(at: At<'_>, bytes: &[u8]) -> Result<(), ConvertError> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(()),
        Err(e) => Err(ConvertError::InvalidUtf8 {
            at: at.origin(),
            offset: e.valid_up_to(),
            hint: avro_hint(bytes),
        }),
    }
}

/// Raw bytes as a base64 JSON string.
pub(super) fn bytes(bytes: &[u8]) -> Value {
    Value::String(encode_base64(bytes))
}
