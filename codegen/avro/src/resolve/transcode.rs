//! Running a [`Plan`]: reading one writer datum and appending its reader encoding.

use std::cell::Cell;

use super::plan::{Branch, EnumTarget, Node, NodeId, Plan, Record, Step};
use super::skip::internal;
use crate::{Error, Reader, encode};

/// Space for writer fields that arrive before their turn in reader order: the bytes of buffered fields, and
/// each buffered field's (start, end) in `bytes`. Used as a stack by nested records.
#[derive(Debug, Default)]
struct Scratch {
    bytes: Vec<u8>,
    marks: Vec<usize>,
}

/// Scratch space larger than this is not kept for the next datum.
const KEEP_SCRATCH: usize = 1 << 20;

thread_local! {
    /// Reused across datums, so reordering plans allocate only while warming up.
    static SCRATCH: Cell<Scratch> = const { Cell::new(Scratch { bytes: Vec::new(), marks: Vec::new() }) };
}

impl Plan {
    /// Reads exactly one writer datum from `input` and appends its reader encoding to `out`; on error `out` is
    /// left as it was.
    pub(crate) fn transcode(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        let mut r = Reader::new(input);
        self.transcode_next(&mut r, out)?;
        let result = r.finish();
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Reads the next writer datum from `r` (more may follow) and appends its reader encoding to `out`; on
    /// error `out` is left as it was.
    pub(crate) fn transcode_next(
        &self,
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let start = out.len();
        let result = if self.reorders {
            let mut scratch = SCRATCH.try_with(Cell::take).unwrap_or_default();
            let result = self.node(self.root, r, out, &mut scratch);
            if scratch.bytes.capacity() <= KEEP_SCRATCH {
                scratch.bytes.clear();
                scratch.marks.clear();
                let _ = SCRATCH.try_with(|c| c.set(scratch));
            }
            result
        } else {
            self.node(self.root, r, out, &mut Scratch::default())
        };
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn node(
        &self,
        id: NodeId,
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
        s: &mut Scratch,
    ) -> Result<(), Error> {
        let Some(node) = self.nodes.get(id as usize) else {
            return Err(internal());
        };
        match node {
            Node::Copy(skip) => {
                let rest = r.rest();
                self.skip(*skip, r)?;
                let used = rest.len() - r.remaining();
                out.extend_from_slice(&rest[..used]);
            }
            Node::IntToLong => encode::long(out, i64::from(r.int()?)),
            Node::IntToFloat => encode::float(out, r.int()? as f32),
            Node::IntToDouble => encode::double(out, f64::from(r.int()?)),
            Node::LongToFloat => encode::float(out, r.long()? as f32),
            Node::LongToDouble => encode::double(out, r.long()? as f64),
            Node::FloatToDouble => encode::double(out, f64::from(r.float()?)),
            Node::BytesToString => encode::string(out, r.str()?),
            Node::Enum(targets) => match &targets[r.enum_index(targets.len())?] {
                EnumTarget::Ordinal(i) => encode::long(out, i64::from(*i)),
                EnumTarget::Unknown(msg) => return Err(Error::Resolution(msg.to_string())),
            },
            Node::Array(items) => {
                r.enter()?;
                self.blocks(r, out, s, |plan, r, out, s| plan.node(*items, r, out, s))?;
                r.leave();
            }
            Node::Map(values) => {
                r.enter()?;
                self.blocks(r, out, s, |plan, r, out, s| {
                    encode::bytes(out, r.bytes()?);
                    plan.node(*values, r, out, s)
                })?;
                r.leave();
            }
            Node::Union(branches) => match &branches[r.union_index(branches.len())?] {
                Branch::To(index, value) => {
                    if let Some(index) = index {
                        encode::long(out, i64::from(*index));
                    }
                    self.node(*value, r, out, s)?;
                }
                Branch::Fail(msg) => return Err(Error::Resolution(msg.to_string())),
            },
            Node::Tag(index, value) => {
                encode::long(out, i64::from(*index));
                self.node(*value, r, out, s)?;
            }
            Node::Record(record) => self.record(record, r, out, s)?,
            Node::Fail(msg) => return Err(Error::Resolution(msg.to_string())),
            Node::Pending => return Err(internal()),
        }
        Ok(())
    }

    fn record(
        &self,
        record: &Record,
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
        s: &mut Scratch,
    ) -> Result<(), Error> {
        r.enter()?;
        let (marks, bytes) = (s.marks.len(), s.bytes.len());
        for step in record.steps.iter() {
            match *step {
                Step::Direct(node) => self.node(node, r, out, s)?,
                Step::Skip(skip) => self.skip(skip, r)?,
                Step::Default { start, len } => {
                    let start = start as usize;
                    let default = self
                        .defaults
                        .get(start..start + len as usize)
                        .ok_or_else(internal)?;
                    out.extend_from_slice(default);
                }
                Step::Buffer(node) => {
                    // Transcoded into `out` (nested records may use the scratch meanwhile), then moved.
                    let at = out.len();
                    self.node(node, r, out, s)?;
                    s.marks.push(s.bytes.len());
                    s.bytes.extend_from_slice(&out[at..]);
                    s.marks.push(s.bytes.len());
                    out.truncate(at);
                }
                Step::Flush(slot) => {
                    let i = marks + 2 * slot as usize;
                    let buffered = match (s.marks.get(i), s.marks.get(i + 1)) {
                        (Some(&a), Some(&b)) => s.bytes.get(a..b),
                        _ => None,
                    };
                    out.extend_from_slice(buffered.ok_or_else(internal)?);
                }
            }
        }
        s.marks.truncate(marks);
        s.bytes.truncate(bytes);
        r.leave();
        Ok(())
    }

    /// Reads the blocks of an array or map (any number, negative counts allowed) and writes one block of all
    /// items, then the end marker.
    fn blocks(
        &self,
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
        s: &mut Scratch,
        mut item: impl FnMut(&Plan, &mut Reader<'_>, &mut Vec<u8>, &mut Scratch) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut block = r.position();
        let first = r.block_count(0)?;
        if first == 0 {
            out.push(0);
            return Ok(());
        }
        let header = out.len();
        encode::long(out, first as i64);
        let header_len = out.len() - header;
        let (mut total, mut n) = (0usize, first);
        while n > 0 {
            // Items that take no input (which reader defaults could still make large) are limited per datum.
            let start = r.position();
            item(self, r, out, s)?;
            r.block_items(block, start, n)?;
            for _ in 1..n {
                item(self, r, out, s)?;
            }
            total += n;
            block = r.position();
            n = r.block_count(total)?;
        }
        if total != first {
            // Several writer blocks: rewrite the count to cover them all.
            let (count, len) = varint(total as i64);
            out.splice(header..header + header_len, count[..len].iter().copied());
        }
        out.push(0);
        Ok(())
    }
}

/// The zig-zag varint of `v` in a stack buffer, and its length.
fn varint(v: i64) -> ([u8; 10], usize) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    let mut buf = [0u8; 10];
    let mut len = 0;
    while n >= 0x80 {
        buf[len] = (n as u8) | 0x80;
        n >>= 7;
        len += 1;
    }
    buf[len] = n as u8;
    (buf, len + 1)
}
