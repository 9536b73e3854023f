//! Registry subject names per Confluent's subject naming strategies.

use crate::{SchemaRef, SubjectNameStrategy};

impl SubjectNameStrategy {
    /// The subject for a topic's key (`is_key`) or value schema.
    pub fn subject(self, topic: &str, schema: &SchemaRef, is_key: bool) -> String {
        let record = schema.name();
        match self {
            SubjectNameStrategy::TopicNameStrategy => {
                format!("{topic}-{}", if is_key { "key" } else { "value" })
            }
            SubjectNameStrategy::RecordNameStrategy => record.to_owned(),
            SubjectNameStrategy::TopicRecordNameStrategy => format!("{topic}-{record}"),
        }
    }
}
