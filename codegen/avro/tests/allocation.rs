//! Decoding allocates in proportion to its input, measured with a counting global allocator: collection
//! reservations are bounded in bytes, and items that take no bytes on the wire (`null`, empty records, `fixed`
//! of size 0) are limited per datum, in the generated-code reader, the JSON decoder and the transcoder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking
#![allow(unsafe_code)] // the counting allocator

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ursa_avro::schema::SchemaSet;
use ursa_avro::value::{decode_json, decode_json_resolved};
use ursa_avro::{Error, Limits, Reader, Resolver, encode};

/// Counts the bytes each thread has allocated and not freed, and the peak of that count.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are thread-local cells.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most bytes `f` had allocated at once (beyond what was live before it), and its result.
fn peak<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let top = PEAK.with(Cell::get);
    ((top - base).max(0) as usize, out)
}

fn long(v: i64) -> Vec<u8> {
    let mut b = Vec::new();
    encode::long(&mut b, v);
    b
}

/// A block count followed by `filler` bytes: the items claimed are as many as there are bytes left.
fn claimed(count: usize, filler: u8) -> Vec<u8> {
    let mut b = long(count as i64);
    b.extend(std::iter::repeat_n(filler, count));
    b
}

/// An array block claiming as many 64-byte items as there are bytes left reserves at most about the input
/// (not 64 times it) before the first item fails.
#[test]
fn reservations_are_bounded_by_the_input_bytes() {
    let input = claimed(10_000, 0);
    let (bytes, result) = peak(|| Reader::new(&input).array(|r| r.fixed::<64>()));
    assert!(
        matches!(result, Err(Error::UnexpectedEof { .. })),
        "{result:?}"
    );
    assert!(
        bytes <= 2 * input.len() + 4096,
        "an array of 64-byte items allocated {bytes} bytes for a {}-byte input",
        input.len()
    );
    // A map entry (a String key plus a 64-byte value) too.
    let (bytes, result) = peak(|| Reader::new(&input).map(|r| r.fixed::<64>()));
    assert!(result.is_err(), "{result:?}");
    assert!(
        bytes <= 4 * input.len() + 4096,
        "a map of 64-byte values allocated {bytes} bytes for a {}-byte input",
        input.len()
    );
    // The JSON decoder (a `Value` per item) too: the first string's length is -1.
    let set = SchemaSet::parse_str(r#"{"type":"array","items":"string"}"#).unwrap();
    let input = claimed(10_000, 0x01);
    let (bytes, result) = peak(|| decode_json(&set, set.last_root(), &input));
    assert!(
        matches!(result, Err(Error::NegativeLength { .. })),
        "{result:?}"
    );
    assert!(
        bytes <= 2 * input.len() + 4096,
        "an array of strings decoded to JSON allocated {bytes} bytes for a {}-byte input",
        input.len()
    );
}

/// The first bytes of a datum whose array of items that take no bytes claims `count` of them.
fn empty_items(count: i64) -> Vec<u8> {
    [long(count), vec![0]].concat()
}

/// A 5-byte datum cannot make millions of values of a type that takes no bytes.
#[test]
fn items_that_take_no_bytes_are_limited_per_datum() {
    let limit = Limits::default().max_empty_items;
    let input = empty_items(1 << 24);
    assert_eq!(input.len(), 5);
    let expect = Error::TooManyEmptyItems { offset: 0, limit };
    // The generated-code reader: `Vec<()>`, and records of nothing (`Vec<Empty>`).
    let mut r = Reader::new(&input);
    assert_eq!(r.array(|r| r.null()), Err(expect.clone()));
    assert_eq!(
        Reader::new(&input).array(|r| r.fixed::<0>()),
        Err(expect.clone())
    );
    // At the limit it is fine; one more, in another array of the same datum, is not.
    let at = [empty_items(limit as i64), empty_items(1)].concat();
    let mut r = Reader::new(&at);
    assert_eq!(r.array(|r| r.null()).unwrap().len(), limit);
    assert_eq!(
        r.array(|r| r.null()),
        Err(Error::TooManyEmptyItems {
            offset: empty_items(limit as i64).len(),
            limit
        })
    );
    // Arrays of arrays of nothing: each inner array costs a few bytes but cannot claim 2^24 items each.
    let nested = [long(1000), empty_items(1 << 24).repeat(1000), vec![0]].concat();
    let r = Reader::new(&nested).array(|r| r.array(|r| r.null()));
    assert!(matches!(r, Err(Error::TooManyEmptyItems { .. })), "{r:?}");

    // The JSON decoder: null, an empty record and a fixed of size 0.
    for items in [
        r#""null""#,
        r#"{"type":"record","name":"E","fields":[]}"#,
        r#"{"type":"record","name":"E","fields":[{"name":"n","type":"null"}]}"#,
        r#"{"type":"fixed","name":"Z","size":0}"#,
    ] {
        let set = SchemaSet::parse_str(&format!(r#"{{"type":"array","items":{items}}}"#)).unwrap();
        let (bytes, result) = peak(|| decode_json(&set, set.last_root(), &input));
        assert_eq!(result, Err(expect.clone()), "{items}");
        assert!(bytes < 1 << 20, "{items}: {bytes} bytes allocated");
    }
}

/// The transcoder: an array of empty writer records read as records with a defaulted field would write the
/// default once per item; and a writer-only array of arrays of nothing would be skipped item by item.
#[test]
fn the_transcoder_limits_items_that_take_no_bytes() {
    let limit = Limits::default().max_empty_items;
    let expect = Error::TooManyEmptyItems { offset: 0, limit };
    let writer = r#"{"type":"array","items":{"type":"record","name":"E","fields":[]}}"#;
    let reader = r#"{"type":"array","items":{"type":"record","name":"E","fields":[
        {"name":"note","type":"string","default":"a default of about sixty-four bytes, written for every item"}]}}"#;
    let (ws, rs) = (
        SchemaSet::parse_str(writer).unwrap(),
        SchemaSet::parse_str(reader).unwrap(),
    );
    let resolver = Resolver::new(&ws, ws.last_root(), &rs, rs.last_root()).unwrap();
    let input = empty_items(1 << 24);
    let mut out = Vec::new();
    let (bytes, result) = peak(|| resolver.transcode(&input, &mut out));
    assert_eq!(result, Err(expect.clone()));
    assert!(out.is_empty());
    assert!(bytes < 1 << 20, "{bytes} bytes allocated");
    let (_, json) = peak(|| decode_json_resolved(&ws, ws.last_root(), &rs, rs.last_root(), &input));
    assert_eq!(json, Err(expect));

    // Skipped: a writer-only field holding 1000 arrays that each claim 2^24 nulls.
    let writer = r#"{"type":"record","name":"R","fields":[
        {"name":"junk","type":{"type":"array","items":{"type":"array","items":"null"}}},{"name":"id","type":"int"}]}"#;
    let reader = r#"{"type":"record","name":"R","fields":[{"name":"id","type":"int"}]}"#;
    let (ws, rs) = (
        SchemaSet::parse_str(writer).unwrap(),
        SchemaSet::parse_str(reader).unwrap(),
    );
    let resolver = Resolver::new(&ws, ws.last_root(), &rs, rs.last_root()).unwrap();
    let input = [long(1000), empty_items(1 << 24).repeat(1000), vec![0, 2]].concat();
    let r = resolver.transcode(&input, &mut out);
    assert!(matches!(r, Err(Error::TooManyEmptyItems { .. })), "{r:?}");
}
