//! The hash chain of a topic-partition and the canonical encoding of a row it covers.
//!
//! `hash(row) = SHA-256(previous hash || canonical(row))`; the first row of a partition follows the genesis hash
//! `SHA-256("ursa-audit-chain/v1\n" || str(topic) || be32(partition))`.
//!
//! `canonical(row)` is, in order (integers big-endian; `str` and `bytes` are a u64 length then the bytes; an
//! optional value is `0x00`, or `0x01` then the value):
//!
//! ```text
//! "ursa-audit-row/v1\n"
//! str(topic) be32(partition) be64(offset) opt(be64(previous row's offset))
//! opt(be64(timestamp ms)) opt(bytes(key))
//! be64(header count) { str(header key) opt(bytes(header value)) }*
//! opt(be32(writer schema id)) opt(bytes(value as stored)) opt(str(data subject))
//! ```
//!
//! The previous row's offset ties each row to its predecessor, so a deleted row breaks the chain even where a
//! gap is recorded; the value is the bytes as stored (PII sealed), so erasing a data key never breaks it.

use ring::digest;
use ursa_connect::Header;

use crate::merkle::Hash;

/// What the chain covers of one row.
#[derive(Debug, Clone, Copy)]
pub struct ChainRow<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The offset of the previous row of the partition (`None` for its first).
    pub prev_offset: Option<i64>,
    /// The record timestamp as stored (ms since the epoch).
    pub timestamp: Option<i64>,
    /// The key bytes.
    pub key: Option<&'a [u8]>,
    /// The headers, in order.
    pub headers: &'a [Header],
    /// The writer schema id.
    pub schema_id: Option<u32>,
    /// The value bytes as stored.
    pub value: Option<&'a [u8]>,
    /// The data subject.
    pub subject: Option<&'a str>,
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_be_bytes());
    out.extend_from_slice(b);
}

fn put_opt<T>(out: &mut Vec<u8>, v: Option<T>, mut f: impl FnMut(&mut Vec<u8>, T)) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            f(out, v);
        }
    }
}

/// Appends the canonical encoding of `row` to `out`.
pub fn canonical(row: &ChainRow<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"ursa-audit-row/v1\n");
    put_bytes(out, row.topic.as_bytes());
    out.extend_from_slice(&row.partition.to_be_bytes());
    out.extend_from_slice(&row.offset.to_be_bytes());
    put_opt(out, row.prev_offset, |o, v| {
        o.extend_from_slice(&v.to_be_bytes())
    });
    put_opt(out, row.timestamp, |o, v| {
        o.extend_from_slice(&v.to_be_bytes())
    });
    put_opt(out, row.key, put_bytes);
    out.extend_from_slice(&(row.headers.len() as u64).to_be_bytes());
    for h in row.headers {
        put_bytes(out, h.key.as_bytes());
        put_opt(out, h.value.as_deref(), put_bytes);
    }
    put_opt(out, row.schema_id, |o, v| {
        o.extend_from_slice(&v.to_be_bytes())
    });
    put_opt(out, row.value, put_bytes);
    put_opt(out, row.subject, |o, v| put_bytes(o, v.as_bytes()));
}

/// The hash before a partition's first row.
pub fn genesis(topic: &str, partition: i32) -> Hash {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(b"ursa-audit-chain/v1\n");
    put_bytes(&mut buf, topic.as_bytes());
    buf.extend_from_slice(&partition.to_be_bytes());
    sha256(&[&buf])
}

/// The hash of `row` after `prev`; `scratch` is reused between calls.
pub fn row_hash(prev: &Hash, row: &ChainRow<'_>, scratch: &mut Vec<u8>) -> Hash {
    scratch.clear();
    canonical(row, scratch);
    sha256(&[prev, scratch])
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A 32-byte hash from stored bytes (`None` if the length is wrong).
pub fn hash_from(bytes: &[u8]) -> Option<Hash> {
    <[u8; 32]>::try_from(bytes).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn every_part_of_the_row_is_covered() {
        let headers = vec![Header {
            key: "h".into(),
            value: Some(b"v".to_vec().into()),
        }];
        let row = ChainRow {
            topic: "t",
            partition: 1,
            offset: 5,
            prev_offset: Some(4),
            timestamp: Some(1000),
            key: Some(b"k"),
            headers: &headers,
            schema_id: Some(7),
            value: Some(b"\0\0\0\0\x07x"),
            subject: Some("child-1"),
        };
        let g = genesis("t", 1);
        let mut s = Vec::new();
        let h = row_hash(&g, &row, &mut s);
        let other_headers = vec![Header {
            key: "h".into(),
            value: None,
        }];
        let variants = [
            ChainRow { topic: "u", ..row },
            ChainRow {
                partition: 2,
                ..row
            },
            ChainRow { offset: 6, ..row },
            ChainRow {
                prev_offset: None,
                ..row
            },
            ChainRow {
                timestamp: None,
                ..row
            },
            ChainRow { key: None, ..row },
            ChainRow {
                headers: &other_headers,
                ..row
            },
            ChainRow {
                schema_id: None,
                ..row
            },
            ChainRow {
                value: Some(b"y"),
                ..row
            },
            ChainRow {
                subject: None,
                ..row
            },
        ];
        for v in &variants {
            assert_ne!(row_hash(&g, v, &mut s), h, "{v:?}");
        }
        assert_ne!(row_hash(&genesis("t", 2), &row, &mut s), h);
        assert_eq!(row_hash(&g, &row, &mut s), h);
    }
}
