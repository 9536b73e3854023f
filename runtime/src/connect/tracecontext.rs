//! W3C Trace Context: records carrying a `traceparent` header are processed inside a span that continues
//! that trace (its trace id and parent span id are the span's fields), so logs of a record join its trace.

/// A parsed `traceparent` (version 00): `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id (32 lowercase hex digits, not all zero).
    pub trace_id: String,
    /// The parent span id (16 lowercase hex digits, not all zero).
    pub parent_id: String,
    /// Whether the trace is sampled.
    pub sampled: bool,
}

fn hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

impl TraceParent {
    /// Parses a header value; anything invalid is `None` (the record is processed without a parent).
    pub fn parse(value: &[u8]) -> Option<TraceParent> {
        let s = std::str::from_utf8(value).ok()?.trim();
        let mut parts = s.split('-');
        let (version, trace_id, parent_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00"
            || parts.next().is_some()
            || !hex(trace_id, 32)
            || !hex(parent_id, 16)
            || flags.len() != 2
        {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceParent {
            trace_id: trace_id.to_owned(),
            parent_id: parent_id.to_owned(),
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` header of a record, if it carries a valid one.
    pub fn from_headers(headers: &[ursa_connect::Header]) -> Option<TraceParent> {
        headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case("traceparent"))
            .and_then(|h| h.value.as_deref())
            .and_then(Self::parse)
    }
}

/// The span a record is processed in: continuing its trace when it has one.
pub fn record_span(
    connector: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    headers: &[ursa_connect::Header],
) -> tracing::Span {
    match TraceParent::from_headers(headers) {
        Some(tp) => tracing::info_span!(
            "record",
            connector,
            topic,
            partition,
            offset,
            trace_id = %tp.trace_id,
            parent_span_id = %tp.parent_id,
            sampled = tp.sampled
        ),
        None => tracing::debug_span!("record", connector, topic, partition, offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_and_rejects_invalid() {
        let tp =
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(tp.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id, "00f067aa0ba902b7");
        assert!(tp.sampled);
        for bad in [
            &b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"garbage",
        ] {
            assert_eq!(
                TraceParent::parse(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let headers = vec![ursa_connect::Header {
            key: "TraceParent".to_owned(),
            value: Some(
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
                    .as_slice()
                    .into(),
            ),
        }];
        assert!(!TraceParent::from_headers(&headers).unwrap().sampled);
    }
}
