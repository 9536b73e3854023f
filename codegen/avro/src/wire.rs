//! The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the Avro datum.

use crate::Error;

/// The magic byte that starts every Confluent-framed message.
pub const MAGIC: u8 = 0;

/// Length of the header (magic byte and schema id).
pub const HEADER_LEN: usize = 5;

/// Appends the header for `schema_id`.
pub fn write_header(buf: &mut Vec<u8>, schema_id: u32) {
    buf.push(MAGIC);
    buf.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits a framed message into its schema id and datum.
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8]), Error> {
    if bytes.len() < HEADER_LEN {
        return Err(Error::WireFormat(format!(
            "{} byte(s) is shorter than the 5-byte header",
            bytes.len()
        )));
    }
    if bytes[0] != MAGIC {
        return Err(Error::WireFormat(format!(
            "magic byte is {:#04x}, expected 0x00",
            bytes[0]
        )));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_splits() {
        let mut buf = Vec::new();
        write_header(&mut buf, 0x0102_0304);
        buf.push(42);
        assert_eq!(buf, [0, 1, 2, 3, 4, 42]);
        assert_eq!(split(&buf).unwrap(), (0x0102_0304, &[42u8][..]));
        assert!(matches!(split(&[0, 1]), Err(Error::WireFormat(_))));
        assert!(
            split(&[1, 0, 0, 0, 1])
                .unwrap_err()
                .to_string()
                .contains("magic byte is 0x01")
        );
    }
}
