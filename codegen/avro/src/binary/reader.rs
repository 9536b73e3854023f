//! A bounds-checked reader of Avro binary data: every length is checked against the input, nesting and
//! collection sizes are limited, so malformed input is an error and never a panic or a huge allocation.

use indexmap::IndexMap;

use crate::Error;

/// Limits that keep hostile input from using unbounded time, memory or stack.
///
/// Every value takes at least one byte of input except those of the types that take none (`null`, records of
/// such fields only, `fixed` of size 0), so with `max_empty_items` what a datum decodes to is bounded by its
/// length: collections reserve no more bytes than the input has left, and grow only as items are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of records (recursive types) and collections.
    pub max_depth: u32,
    /// Most items in one array or map (all blocks together).
    pub max_items: usize,
    /// Most collection items that take no bytes on the wire (`null`, empty records, `fixed` of size 0) in one
    /// datum, across all its collections: without it a 5-byte datum could claim 2^24 such values.
    pub max_empty_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 128,
            max_items: 1 << 24,
            max_empty_items: 1 << 12,
        }
    }
}

/// How many items of `item_size` bytes to reserve for a block of `count`: no more bytes than `remaining`
/// (the input left), since every item that is not a zero-sized type takes at least one byte of it.
#[inline]
pub(crate) fn reservation(count: usize, remaining: usize, item_size: usize) -> usize {
    count.min(remaining / item_size.max(1))
}

/// Reads Avro binary values from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: u32,
    limits: Limits,
    /// Collection items read so far that took no bytes.
    empty_items: usize,
}

impl<'a> Reader<'a> {
    /// A reader with default [`Limits`].
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_limits(buf, Limits::default())
    }

    /// A reader with the given limits.
    pub fn with_limits(buf: &'a [u8], limits: Limits) -> Self {
        Reader {
            buf,
            pos: 0,
            depth: 0,
            limits,
            empty_items: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether the input is fully consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread rest of the input.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Errors unless the input is fully consumed.
    pub fn finish(&self) -> Result<(), Error> {
        match self.remaining() {
            0 => Ok(()),
            trailing => Err(Error::TrailingBytes { trailing }),
        }
    }

    /// Enters a nested value (a record or collection); pair with [`Reader::leave`].
    #[inline]
    pub fn enter(&mut self) -> Result<(), Error> {
        if self.depth >= self.limits.max_depth {
            return Err(Error::TooDeep {
                offset: self.pos,
                limit: self.limits.max_depth,
            });
        }
        self.depth += 1;
        Ok(())
    }

    /// Sets the nesting depth (for a walk that begins inside values entered by other code).
    #[inline]
    pub(crate) fn set_depth(&mut self, depth: u32) {
        self.depth = depth;
    }

    /// Leaves a nested value.
    #[inline]
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Takes `n` raw bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let start = self.pos;
        match self.buf.get(start..start.wrapping_add(n)) {
            Some(s) if start.checked_add(n).is_some() => {
                self.pos += n;
                Ok(s)
            }
            _ => Err(Error::UnexpectedEof {
                offset: start,
                needed: n - self.remaining(),
            }),
        }
    }

    /// A `null`: nothing on the wire.
    #[inline]
    pub fn null(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// A zig-zag varint `long`.
    #[inline]
    pub fn long(&mut self) -> Result<i64, Error> {
        // Most varints on the wire (lengths, union and enum indexes, small numbers) are one byte.
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            let v = u64::from(b);
            return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
        }
        self.long_multi()
    }

    /// A varint of more than one byte (or none left): [`Reader::long`]'s slow path.
    #[inline(never)]
    fn long_multi(&mut self) -> Result<i64, Error> {
        let start = self.pos;
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(Error::UnexpectedEof {
                    offset: start,
                    needed: 1,
                });
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(Error::InvalidVarint { offset: start });
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(Error::InvalidVarint { offset: start });
            }
        }
        Ok((value >> 1) as i64 ^ -((value & 1) as i64))
    }

    /// A zig-zag varint `int`.
    #[inline]
    pub fn int(&mut self) -> Result<i32, Error> {
        let offset = self.pos;
        let value = self.long()?;
        i32::try_from(value).map_err(|_| Error::IntOutOfRange { offset, value })
    }

    /// A `boolean` (one byte, 0 or 1).
    #[inline]
    pub fn boolean(&mut self) -> Result<bool, Error> {
        let offset = self.pos;
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(Error::InvalidBoolean { offset, value }),
        }
    }

    /// A `float` (4 bytes little-endian).
    #[inline]
    pub fn float(&mut self) -> Result<f32, Error> {
        let b = self.take(4)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `double` (8 bytes little-endian).
    #[inline]
    pub fn double(&mut self) -> Result<f64, Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }

    /// A length prefix, checked against the bytes left.
    #[inline]
    pub fn len(&mut self) -> Result<usize, Error> {
        let offset = self.pos;
        let len = self.long()?;
        if len < 0 {
            return Err(Error::NegativeLength { offset, len });
        }
        if len as u64 > self.remaining() as u64 {
            return Err(Error::LengthTooLarge {
                offset,
                len,
                remaining: self.remaining(),
            });
        }
        Ok(len as usize)
    }

    /// `bytes`, borrowed.
    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let n = self.len()?;
        self.take(n)
    }

    /// `bytes`, borrowed, with the rest of the input from their first byte on (for fixed-size copies that
    /// may read past them).
    #[inline]
    pub fn bytes_and_rest(&mut self) -> Result<(&'a [u8], &'a [u8]), Error> {
        let n = self.len()?;
        let from = self.rest();
        Ok((self.take(n)?, from))
    }

    /// `bytes`, owned.
    #[inline]
    pub fn bytes_vec(&mut self) -> Result<Vec<u8>, Error> {
        Ok(self.bytes()?.to_vec())
    }

    /// `string`, borrowed.
    #[inline]
    pub fn str(&mut self) -> Result<&'a str, Error> {
        let n = self.len()?;
        let offset = self.pos;
        let b = self.take(n)?;
        std::str::from_utf8(b).map_err(|_| Error::InvalidUtf8 { offset })
    }

    /// `string`, owned.
    #[inline]
    pub fn string(&mut self) -> Result<String, Error> {
        Ok(self.str()?.to_owned())
    }

    /// A `fixed` of size `N`.
    #[inline]
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    /// A union branch index, checked against the number of branches.
    #[inline]
    pub fn union_index(&mut self, branches: usize) -> Result<usize, Error> {
        let offset = self.pos;
        let index = self.long()?;
        if index < 0 || index as u64 >= branches as u64 {
            return Err(Error::UnionIndex {
                offset,
                index,
                branches,
            });
        }
        Ok(index as usize)
    }

    /// An enum ordinal, checked against the number of symbols.
    #[inline]
    pub fn enum_index(&mut self, symbols: usize) -> Result<usize, Error> {
        let offset = self.pos;
        let index = self.int()?;
        if index < 0 || index as u64 >= symbols as u64 {
            return Err(Error::EnumOrdinal {
                offset,
                index: i64::from(index),
                symbols,
            });
        }
        Ok(index as usize)
    }

    /// The item count of the next block of an array or map; 0 ends the collection. A negative count
    /// (followed by the block's byte size) is accepted as the specification allows. `seen` is the
    /// number of items read so far in this collection and is checked against the item limit.
    #[inline]
    pub fn block_count(&mut self, seen: usize) -> Result<usize, Error> {
        let offset = self.pos;
        let mut count = self.long()?;
        if count < 0 {
            count = count.checked_neg().ok_or(Error::InvalidVarint { offset })?;
            let _byte_size = self.len()?;
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count > self.limits.max_items.saturating_sub(seen) {
            return Err(Error::TooManyItems {
                offset,
                limit: self.limits.max_items,
            });
        }
        Ok(count)
    }

    /// Accounts for the items of a block after its first item, read from `item_start`: whether a value takes
    /// bytes depends only on its type, so if the first took none, all `count` items of the block take none
    /// and count against [`Limits::max_empty_items`] (for the whole datum). `block` is where the block count
    /// was, for the error. Every loop over collection items calls this after reading the block's first item.
    #[inline]
    pub fn block_items(
        &mut self,
        block: usize,
        item_start: usize,
        count: usize,
    ) -> Result<(), Error> {
        if self.pos != item_start {
            return Ok(());
        }
        match self.empty_items.checked_add(count) {
            Some(total) if total <= self.limits.max_empty_items => {
                self.empty_items = total;
                Ok(())
            }
            _ => Err(Error::TooManyEmptyItems {
                offset: block,
                limit: self.limits.max_empty_items,
            }),
        }
    }

    /// Reads an array, calling `item` for each element.
    #[inline]
    pub fn array<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        self.enter()?;
        let mut out = Vec::new();
        loop {
            let block = self.pos;
            let n = self.block_count(out.len())?;
            if n == 0 {
                break;
            }
            // Never reserve more bytes than the input has left.
            out.reserve(reservation(n, self.remaining(), size_of::<T>()));
            let start = self.pos;
            out.push(item(self)?);
            self.block_items(block, start, n)?;
            for _ in 1..n {
                out.push(item(self)?);
            }
        }
        self.leave();
        Ok(out)
    }

    /// Reads a map, calling `value` for each value. Keys keep their order on the wire.
    #[inline]
    pub fn map<T>(
        &mut self,
        mut value: impl FnMut(&mut Self) -> Result<T, Error>,
    ) -> Result<IndexMap<String, T>, Error> {
        self.enter()?;
        let mut out = IndexMap::new();
        let mut seen = 0usize;
        loop {
            let n = self.block_count(seen)?;
            if n == 0 {
                break;
            }
            seen += n;
            // An entry is its key, its value, and the hash table's index (a hash and a position).
            let entry = size_of::<(String, T)>() + 2 * size_of::<usize>();
            out.reserve(reservation(n, self.remaining(), entry));
            // A key takes at least its length byte, so map entries never take no bytes.
            for _ in 0..n {
                let k = self.string()?;
                let v = value(self)?;
                out.insert(k, v);
            }
        }
        self.leave();
        Ok(out)
    }
}
