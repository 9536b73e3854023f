//! Confluent Schema Registry's verbose compatibility messages (`?verbose=true`), worded as its `Difference`
//! strings: `{errorType:'…', description:'…', additionalInfo:'…'}` with "new"/"old" for the direction.

use crate::{Direction, IncompatibilityKind, Report};

/// One Confluent-style string per incompatibility, in report order (warnings are not included). Confluent's
/// trailing `{oldSchemaVersion: N}`, `{oldSchema: '…'}` and `{validateFields: …}` entries are the registry's.
pub fn confluent_messages(report: &Report) -> Vec<String> {
    report
        .errors()
        .map(|m| {
            let (reader, writer) = match m.direction {
                Some(Direction::Backward) => ("new", "old"),
                Some(Direction::Forward) => ("old", "new"),
                None => ("reader", "writer"),
            };
            let path = &m.location;
            let info = &m.detail;
            let description = match m.kind.as_str() {
                k if k == IncompatibilityKind::FixedSizeMismatch.as_str() => format!(
                    "The size of FIXED type field at path '{path}' in the {reader} schema does not match with the {writer} schema"
                ),
                k if k == IncompatibilityKind::TypeMismatch.as_str() => format!(
                    "The type (path '{path}') of a field in the {reader} schema does not match with the {writer} schema"
                ),
                k if k == IncompatibilityKind::NameMismatch.as_str() => {
                    format!("The name of the schema has changed (path '{path}')")
                }
                k if k == IncompatibilityKind::MissingEnumSymbols.as_str() => format!(
                    "The {reader} schema is missing enum symbols '{info}' at path '{path}' in the {writer} schema"
                ),
                k if k == IncompatibilityKind::MissingUnionBranch.as_str() => format!(
                    "The {reader} schema is missing a type inside a union field at path '{path}' in the {writer} schema"
                ),
                k if k == IncompatibilityKind::ReaderFieldMissingDefaultValue.as_str() => format!(
                    "The field '{info}' at path '{path}' in the {reader} schema has no default value and is missing in the {writer} schema"
                ),
                _ => format!(
                    "The field at path '{path}' in the {reader} schema matches several fields of the {writer} schema"
                ),
            };
            format!(
                "{{errorType:'{}', description:'{description}', additionalInfo:'{info}'}}",
                m.kind
            )
        })
        .collect()
}
