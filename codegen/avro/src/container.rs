//! Avro object container files (the specification's "Object Container Files", what Java's
//! `DataFileWriter`, fastavro's `writer` and apache-avro's `Writer` write): a header with the writer schema
//! and the codec, then blocks of datums, each compressed as a whole and followed by the file's sync marker.
//!
//! Codecs: `null`, `deflate` (raw RFC 1951), `snappy` (each block followed by the CRC-32 of its uncompressed
//! bytes, big-endian) and `zstandard`; the three compressing ones are the crate features `deflate`, `snappy`
//! and `zstandard` (all on by default). Reading is bounded: a block whose size, count or uncompressed size is
//! beyond [`ContainerLimits`] is an error before anything that large is allocated, and every datum goes
//! through the bounded [`Reader`]. A reader decodes data written with another, compatible schema through
//! schema resolution.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};

use crate::binary::Reader;
use crate::record::{AvroRecord, AvroType};
use crate::resolve::Resolver;
use crate::schema::{LogicalTypes, ParseOptions, SchemaSet, SourceFile};
use crate::{Error, encode};

const MAGIC: &[u8; 4] = b"Obj\x01";

fn broken(what: impl std::fmt::Display) -> Error {
    Error::Container(what.to_string())
}

/// A block codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// No compression.
    #[default]
    Null,
    /// Raw deflate (RFC 1951).
    Deflate,
    /// Snappy, with a CRC-32 of the uncompressed block.
    Snappy,
    /// Zstandard.
    Zstandard,
}

impl Codec {
    /// The name in the header's `avro.codec`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Null => "null",
            Codec::Deflate => "deflate",
            Codec::Snappy => "snappy",
            Codec::Zstandard => "zstandard",
        }
    }

    /// The codec named `name` (as the header says it).
    pub fn parse(name: &str) -> Result<Codec, Error> {
        Ok(match name {
            "null" => Codec::Null,
            "deflate" => Codec::Deflate,
            "snappy" => Codec::Snappy,
            "zstandard" => Codec::Zstandard,
            other => return Err(broken(format!("unknown codec `{other}`"))),
        })
    }

    fn unavailable(self) -> Error {
        broken(format!(
            "codec `{}` is not compiled in (ursa-avro's feature `{}`)",
            self.name(),
            self.name()
        ))
    }

    fn compress(self, block: &[u8]) -> Result<Vec<u8>, Error> {
        match self {
            Codec::Null => Ok(block.to_vec()),
            #[cfg(feature = "deflate")]
            Codec::Deflate => Ok(miniz_oxide::deflate::compress_to_vec(block, 6)),
            #[cfg(feature = "snappy")]
            Codec::Snappy => {
                let mut out = snap::raw::Encoder::new()
                    .compress_vec(block)
                    .map_err(|e| broken(format!("snappy: {e}")))?;
                out.extend_from_slice(&crc32fast::hash(block).to_be_bytes());
                Ok(out)
            }
            #[cfg(feature = "zstandard")]
            Codec::Zstandard => {
                zstd::bulk::compress(block, 0).map_err(|e| broken(format!("zstandard: {e}")))
            }
            #[allow(unreachable_patterns)]
            other => Err(other.unavailable()),
        }
    }

    /// Decompresses a block, refusing one that would be larger than `limit` bytes.
    fn decompress(self, data: Vec<u8>, limit: usize) -> Result<Vec<u8>, Error> {
        let too_large = || broken(format!("a block decompresses to more than {limit} bytes"));
        match self {
            Codec::Null => Ok(data),
            #[cfg(feature = "deflate")]
            Codec::Deflate => miniz_oxide::inflate::decompress_to_vec_with_limit(&data, limit)
                .map_err(|e| match e.status {
                    miniz_oxide::inflate::TINFLStatus::HasMoreOutput => too_large(),
                    _ => broken(format!("deflate: {e}")),
                }),
            #[cfg(feature = "snappy")]
            Codec::Snappy => {
                let Some(split) = data.len().checked_sub(4) else {
                    return Err(broken("snappy: a block shorter than its checksum"));
                };
                let (compressed, crc) = data.split_at(split);
                let len = snap::raw::decompress_len(compressed)
                    .map_err(|e| broken(format!("snappy: {e}")))?;
                if len > limit {
                    return Err(too_large());
                }
                let out = snap::raw::Decoder::new()
                    .decompress_vec(compressed)
                    .map_err(|e| broken(format!("snappy: {e}")))?;
                let expected = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
                if crc32fast::hash(&out) != expected {
                    return Err(broken("snappy: the block's CRC-32 does not match"));
                }
                Ok(out)
            }
            #[cfg(feature = "zstandard")]
            Codec::Zstandard => {
                let decoder = zstd::stream::read::Decoder::new(data.as_slice())
                    .map_err(|e| broken(format!("zstandard: {e}")))?;
                let mut out = Vec::new();
                decoder
                    .take(limit as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| broken(format!("zstandard: {e}")))?;
                if out.len() > limit {
                    return Err(too_large());
                }
                Ok(out)
            }
            #[allow(unreachable_patterns)]
            other => Err(other.unavailable()),
        }
    }
}

/// Bounds on what a [`ContainerReader`] accepts.
#[derive(Debug, Clone, Copy)]
pub struct ContainerLimits {
    /// Largest block, compressed or not (default 64 MiB).
    pub max_block_bytes: usize,
    /// Most datums in one block (default 16 Mi).
    pub max_block_count: u64,
    /// Largest header metadata, all entries together (default 1 MiB).
    pub max_metadata_bytes: usize,
}

impl Default for ContainerLimits {
    fn default() -> Self {
        ContainerLimits {
            max_block_bytes: 64 << 20,
            max_block_count: 16 << 20,
            max_metadata_bytes: 1 << 20,
        }
    }
}

/// Writes an object container file: [`ContainerWriter::append`] datums, then [`ContainerWriter::finish`].
pub struct ContainerWriter<W: Write> {
    out: W,
    codec: Codec,
    sync: [u8; 16],
    block: Vec<u8>,
    count: i64,
    block_size: usize,
}

fn io(e: std::io::Error) -> Error {
    broken(format!("I/O: {e}"))
}

/// 16 bytes that differ between files (std's per-process random hash keys, mixed with a counter).
fn sync_marker() -> [u8; 16] {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut out = [0u8; 16];
    for (i, half) in out.chunks_mut(8).enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_usize(i);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

impl<W: Write> ContainerWriter<W> {
    /// Starts a file of datums of `schema` (its JSON text, stored as `avro.schema`) with `codec`.
    pub fn new(out: W, schema: &str, codec: Codec) -> Result<Self, Error> {
        Self::with_metadata(out, schema, codec, &[])
    }

    /// Starts a file for generated type `T` (its [`AvroRecord::SCHEMA`]).
    pub fn for_record<T: AvroRecord>(out: W, codec: Codec) -> Result<Self, Error> {
        Self::new(out, T::SCHEMA, codec)
    }

    /// As [`ContainerWriter::new`], with extra header metadata (keys starting `avro.` are reserved).
    pub fn with_metadata(
        mut out: W,
        schema: &str,
        codec: Codec,
        metadata: &[(&str, &[u8])],
    ) -> Result<Self, Error> {
        if let Some((k, _)) = metadata.iter().find(|(k, _)| k.starts_with("avro.")) {
            return Err(broken(format!("metadata key `{k}` is reserved")));
        }
        // Refuse a codec that is not compiled in now, not at the first block.
        codec.compress(&[])?;
        let sync = sync_marker();
        let mut header = Vec::with_capacity(schema.len() + 64);
        header.extend_from_slice(MAGIC);
        let entries = 2 + metadata.len();
        encode::long(&mut header, i64::try_from(entries).unwrap_or(i64::MAX));
        encode::string(&mut header, "avro.schema");
        encode::bytes(&mut header, schema.as_bytes());
        encode::string(&mut header, "avro.codec");
        encode::bytes(&mut header, codec.name().as_bytes());
        for (k, v) in metadata {
            encode::string(&mut header, k);
            encode::bytes(&mut header, v);
        }
        header.push(0);
        header.extend_from_slice(&sync);
        out.write_all(&header).map_err(io)?;
        Ok(ContainerWriter {
            out,
            codec,
            sync,
            block: Vec::new(),
            count: 0,
            block_size: 64 * 1024,
        })
    }

    /// Ends a block once it holds this many bytes (uncompressed; default 64 KiB).
    pub fn block_size(mut self, bytes: usize) -> Self {
        self.block_size = bytes.max(1);
        self
    }

    /// Appends one value.
    pub fn append<T: AvroType>(&mut self, value: &T) -> Result<(), Error> {
        let start = self.block.len();
        if let Err(e) = value.encode(&mut self.block) {
            self.block.truncate(start);
            return Err(e);
        }
        self.appended()
    }

    /// Appends one datum already in the binary encoding of the file's schema.
    pub fn append_datum(&mut self, datum: &[u8]) -> Result<(), Error> {
        self.block.extend_from_slice(datum);
        self.appended()
    }

    fn appended(&mut self) -> Result<(), Error> {
        self.count += 1;
        if self.block.len() >= self.block_size {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Writes the datums appended so far as a block.
    pub fn flush_block(&mut self) -> Result<(), Error> {
        if self.count == 0 {
            return Ok(());
        }
        let data = self.codec.compress(&self.block)?;
        let mut head = Vec::with_capacity(20);
        encode::long(&mut head, self.count);
        encode::long(&mut head, i64::try_from(data.len()).unwrap_or(i64::MAX));
        self.out.write_all(&head).map_err(io)?;
        self.out.write_all(&data).map_err(io)?;
        self.out.write_all(&self.sync).map_err(io)?;
        self.block.clear();
        self.count = 0;
        Ok(())
    }

    /// Writes the last block, flushes, and returns the output.
    pub fn finish(mut self) -> Result<W, Error> {
        self.flush_block()?;
        self.out.flush().map_err(io)?;
        Ok(self.out)
    }
}

/// Reads a varint from a stream (the header and block heads); `None` at a clean end of the input.
fn read_long<R: Read>(input: &mut R) -> Result<Option<i64>, Error> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let mut b = [0u8];
        loop {
            match input.read(&mut b) {
                Ok(0) if i == 0 => return Ok(None),
                Ok(0) => return Err(broken("the file ends inside a number")),
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        value |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            let v = (value >> 1) as i64 ^ -((value & 1) as i64);
            return Ok(Some(v));
        }
    }
    Err(broken("a number longer than 10 bytes"))
}

fn read_exact_vec<R: Read>(input: &mut R, len: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let got = input.take(len as u64).read_to_end(&mut out).map_err(io)?;
    if got < len {
        return Err(broken(format!("the file ends {} byte(s) early", len - got)));
    }
    Ok(out)
}

fn length(n: i64, limit: usize, what: &str) -> Result<usize, Error> {
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= limit)
        .ok_or_else(|| broken(format!("{what} of {n} bytes (at most {limit})")))
}

/// Reads an object container file.
pub struct ContainerReader<R: Read> {
    input: R,
    schema: String,
    writer: SchemaSet,
    codec: Codec,
    metadata: Vec<(String, Vec<u8>)>,
    sync: [u8; 16],
    limits: ContainerLimits,
}

impl<R: Read> ContainerReader<R> {
    /// Reads the header.
    pub fn new(input: R) -> Result<Self, Error> {
        Self::with_limits(input, ContainerLimits::default())
    }

    /// Reads the header, with these bounds.
    pub fn with_limits(mut input: R, limits: ContainerLimits) -> Result<Self, Error> {
        let magic = read_exact_vec(&mut input, 4)?;
        if magic != MAGIC {
            return Err(broken("not an Avro object container file (no `Obj\\x01`)"));
        }
        let mut metadata = Vec::new();
        let mut total = 0usize;
        loop {
            let Some(n) = read_long(&mut input)? else {
                return Err(broken("the file ends inside its header"));
            };
            if n == 0 {
                break;
            }
            // A negative count is followed by the block's size in bytes.
            if n < 0 {
                read_long(&mut input)?;
            }
            for _ in 0..n.unsigned_abs() {
                let mut entry = |what| -> Result<Vec<u8>, Error> {
                    let len = read_long(&mut input)?
                        .ok_or_else(|| broken("the file ends inside its header"))?;
                    let len = length(
                        len,
                        limits.max_metadata_bytes - total.min(limits.max_metadata_bytes),
                        what,
                    )?;
                    total += len;
                    read_exact_vec(&mut input, len)
                };
                let key = entry("a metadata key")?;
                let value = entry("a metadata value")?;
                let key =
                    String::from_utf8(key).map_err(|_| broken("a metadata key is not UTF-8"))?;
                metadata.push((key, value));
            }
        }
        let sync: [u8; 16] = read_exact_vec(&mut input, 16)?
            .try_into()
            .map_err(|_| broken("a short sync marker"))?;
        let get = |k: &str| metadata.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        let schema = get("avro.schema").ok_or_else(|| broken("the header has no `avro.schema`"))?;
        let schema =
            String::from_utf8(schema.clone()).map_err(|_| broken("`avro.schema` is not UTF-8"))?;
        let codec = match get("avro.codec") {
            None => Codec::Null,
            Some(c) => Codec::parse(std::str::from_utf8(c).unwrap_or("?"))?,
        };
        let parse = |text: String| {
            SchemaSet::parse(
                vec![SourceFile::new("avro.schema", text)],
                ParseOptions {
                    logical_types: LogicalTypes::Lenient,
                },
            )
        };
        // Other writers' headers may repeat a key in an object (apache-avro 0.21 writes a decimal `fixed`'s
        // `logicalType` twice): read as Java's parser reads them, the last value winning.
        let writer = parse(schema.clone()).or_else(|e| {
            serde_json::from_str::<serde_json::Value>(&schema)
                .ok()
                .and_then(|v| parse(v.to_string()).ok())
                .ok_or(e)
        })?;
        Ok(ContainerReader {
            input,
            schema,
            writer,
            codec,
            metadata,
            sync,
            limits,
        })
    }

    /// The writer schema's text.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The writer schema, parsed.
    pub fn writer_schema(&self) -> &SchemaSet {
        &self.writer
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// A header metadata value.
    pub fn metadata(&self, key: &str) -> Option<&[u8]> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The next block: its datum count and uncompressed bytes; `None` at the end of the file.
    pub fn next_block(&mut self) -> Result<Option<(u64, Vec<u8>)>, Error> {
        let Some(count) = read_long(&mut self.input)? else {
            return Ok(None);
        };
        let count = u64::try_from(count)
            .ok()
            .filter(|&c| c <= self.limits.max_block_count)
            .ok_or_else(|| broken(format!("a block of {count} datums")))?;
        let size =
            read_long(&mut self.input)?.ok_or_else(|| broken("the file ends inside a block"))?;
        let size = length(size, self.limits.max_block_bytes, "a block")?;
        let data = read_exact_vec(&mut self.input, size)?;
        let sync = read_exact_vec(&mut self.input, 16)?;
        if sync != self.sync {
            return Err(broken("a block not followed by the file's sync marker"));
        }
        let block = self.codec.decompress(data, self.limits.max_block_bytes)?;
        Ok(Some((count, block)))
    }

    /// Every value, as generated type `T` (resolved from the writer schema when it differs).
    pub fn read_all<T: AvroRecord>(mut self) -> Result<Vec<T>, Error> {
        let resolver = Resolver::for_record::<T>(&self.writer)?;
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some((count, block)) = self.next_block()? {
            let mut r = Reader::new(&block);
            for _ in 0..count {
                if resolver.is_identity() {
                    out.push(T::decode(&mut r)?);
                } else {
                    buf.clear();
                    resolver.transcode_next(&mut r, &mut buf)?;
                    out.push(T::from_avro_datum(&buf)?);
                }
            }
            r.finish()?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"R","fields":[{"name":"s","type":"string"}]}"#;

    fn datum(s: &str) -> Vec<u8> {
        let mut d = Vec::new();
        encode::string(&mut d, s);
        d
    }

    fn file(codec: Codec, n: usize, block_size: usize) -> Vec<u8> {
        let mut w = ContainerWriter::with_metadata(Vec::new(), SCHEMA, codec, &[("app", b"ursa")])
            .unwrap()
            .block_size(block_size);
        for i in 0..n {
            w.append_datum(&datum(&format!("value {i} {}", "x".repeat(i % 50))))
                .unwrap();
        }
        w.finish().unwrap()
    }

    fn all(bytes: &[u8], limits: ContainerLimits) -> Result<Vec<Vec<u8>>, Error> {
        let mut r = ContainerReader::with_limits(bytes, limits)?;
        let mut out = Vec::new();
        while let Some((count, block)) = r.next_block()? {
            let mut reader = Reader::new(&block);
            for _ in 0..count {
                out.push(datum(reader.str()?));
            }
            reader.finish()?;
        }
        Ok(out)
    }

    #[test]
    fn every_codec_round_trips_across_blocks() {
        for codec in [Codec::Null, Codec::Deflate, Codec::Snappy, Codec::Zstandard] {
            let bytes = file(codec, 200, 300);
            let r = ContainerReader::new(&bytes[..]).unwrap();
            assert_eq!((r.codec(), r.schema()), (codec, SCHEMA));
            assert_eq!(r.metadata("app"), Some(&b"ursa"[..]));
            let got = all(&bytes, ContainerLimits::default()).unwrap();
            let want: Vec<Vec<u8>> = (0..200)
                .map(|i| datum(&format!("value {i} {}", "x".repeat(i % 50))))
                .collect();
            assert_eq!(got, want, "{codec:?}");
        }
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let bytes = file(Codec::Snappy, 20, 100);
        // Every truncation: an error, or (cut between blocks) the whole blocks before the cut.
        let whole = all(&bytes, ContainerLimits::default()).unwrap();
        for n in 0..bytes.len() {
            if let Ok(some) = all(&bytes[..n], ContainerLimits::default()) {
                assert!(
                    some.len() < whole.len() && whole.starts_with(&some),
                    "cut at {n}"
                );
            }
        }
        // A flipped byte in the last block's data (the CRC or the snappy stream catches it) or its sync.
        for back in [17, 18, 20] {
            let mut b = bytes.clone();
            let at = b.len() - back;
            b[at] ^= 0x55;
            assert!(
                all(&b, ContainerLimits::default()).is_err(),
                "flipped {back} from the end"
            );
        }
        let mut b = bytes.clone();
        b[0] = b'X';
        let e = all(&b, ContainerLimits::default()).unwrap_err();
        assert!(
            e.to_string().contains("not an Avro object container file"),
            "{e}"
        );
        let e = ContainerWriter::with_metadata(Vec::new(), SCHEMA, Codec::Null, &[("avro.x", b"")])
            .err()
            .unwrap();
        assert!(e.to_string().contains("reserved"), "{e}");
    }

    #[test]
    fn blocks_beyond_the_limits_are_refused_before_they_are_read() {
        let big = file(Codec::Deflate, 1000, 1 << 20);
        let limits = ContainerLimits {
            max_block_bytes: 4096,
            ..ContainerLimits::default()
        };
        let e = all(&big, limits).unwrap_err();
        assert!(e.to_string().contains("more than 4096 bytes"), "{e}");
        let limits = ContainerLimits {
            max_block_count: 10,
            ..ContainerLimits::default()
        };
        assert!(
            all(&big, limits)
                .unwrap_err()
                .to_string()
                .contains("1000 datums")
        );
        assert_eq!(
            Codec::parse("lzma").unwrap_err().to_string(),
            "object container file: unknown codec `lzma`"
        );
    }
}
