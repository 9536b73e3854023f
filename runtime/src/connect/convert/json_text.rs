//! JSON text made compact in one pass, without a tree: the text `serde_json` writes for the value it parses,
//! for sinks that write JSON out (the file sink's lines). Runs of plain string bytes are copied as they are;
//! escapes, numbers and whitespace are rewritten as `serde_json` writes them.
//!
//! What this pass does not write exactly as the tree would (a float, a `\u` escape of a surrogate, nesting
//! deeper than `serde_json`'s limit), it hands to `serde_json` for that one value, or for the whole text
//! when it is not valid JSON, so the result and the error are always `serde_json`'s. One difference
//! remains by design: an object that repeats a key keeps every member as written (the tree keeps the last
//! value).

use serde_json::Value;
use ursa_avro::value::{append_from, plain_run, write_json_str_content};

/// `serde_json`'s nesting limit (it reads 127 open containers and refuses a 128th): deeper text goes to
/// `serde_json`, which refuses it.
const MAX_DEPTH: usize = 127;

/// Why the pass stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Not valid JSON, or something only `serde_json` writes exactly: the caller asks `serde_json`.
    Fallback,
}

/// Appends the compact form of the JSON text `input` to `out`; on `Err` the caller parses the text with
/// `serde_json` (for the error, or for the exact text of what this pass does not handle), and `out` may
/// hold part of a value.
///
/// Two flat loops over the text (a value, then what follows it) with the open containers as a bit stack: no
/// call per value, no state to dispatch on. Text the tree would write as it stands is not copied piece by
/// piece: the pass only notes how far the input has been copied and copies each stretch once, where something
/// must change (whitespace dropped, an escape or a number rewritten) and at the end, so compact input (what
/// producers send) is a scan and a few copies.
pub(super) fn compact(input: &[u8], out: &mut Vec<u8>) -> Result<(), Refused> {
    // Outside strings, anything not ASCII is a syntax error; inside, it must be UTF-8: one check for both.
    if !input.is_ascii() && std::str::from_utf8(input).is_err() {
        return Err(Refused::Fallback);
    }
    out.reserve(input.len());
    let mut p = Pass {
        b: input,
        i: 0,
        copied: 0,
    };
    p.document(out)?;
    p.flush(out);
    Ok(())
}

/// The value of each hexadecimal digit, and `0xff` for every other byte.
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = d as u8;
        d += 1;
    }
    let mut d = 0;
    while d < 6 {
        t[b'a' as usize + d] = 10 + d as u8;
        t[b'A' as usize + d] = 10 + d as u8;
        d += 1;
    }
    t
};

/// Four hexadecimal digits (of a `\u` escape), strictly: no sign, no other length. Four table lookups, one
/// check for all of them.
#[inline(always)]
fn hex4(digits: &[u8; 4]) -> Option<u32> {
    let [a, b, c, d] = digits.map(|x| HEX[usize::from(x)]);
    if (a | b | c | d) & 0xf0 != 0 {
        return None;
    }
    Some(u32::from(a) << 12 | u32::from(b) << 8 | u32::from(c) << 4 | u32::from(d))
}

/// Whether the innermost of `depth` open containers is an object (bit `d` of `objects` is set when the
/// container at depth `d + 1` is one); `false` at the top.
#[inline(always)]
fn innermost_is_object(objects: u128, depth: usize) -> bool {
    depth > 0 && objects >> (depth - 1) & 1 == 1
}

struct Pass<'a> {
    b: &'a [u8],
    /// Where the pass is.
    i: usize,
    /// `b[..copied]` is written to `out` (as it stands or rewritten); `b[copied..i]` is still to copy.
    copied: usize,
}

impl Pass<'_> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Copies the input up to where the pass is: a short stretch (before an escape) as one fixed-size copy,
    /// which costs less than a call to `memcpy`.
    #[inline(always)]
    fn flush(&mut self, out: &mut Vec<u8>) {
        if let Some(from) = self.b.get(self.copied..) {
            append_from(out, self.i - self.copied, from);
        }
        self.copied = self.i;
    }

    /// Skips whitespace, which is not copied (rare in what producers send: out of line).
    #[inline(always)]
    fn ws(&mut self, out: &mut Vec<u8>) {
        if self.peek().is_some_and(|c| c <= b' ') {
            self.skip_ws(out);
        }
    }

    #[inline(never)]
    fn skip_ws(&mut self, out: &mut Vec<u8>) {
        self.flush(out);
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
        self.copied = self.i;
    }

    /// The whole text: one value between optional whitespace.
    ///
    /// Two loops: the outer one reads a value, the inner one what follows it (a `,`, closing brackets, the
    /// end), so compact text (what producers send) takes about one test per byte of punctuation and no
    /// dispatch on a state. Whitespace is looked for before a key and inside an opening bracket, and elsewhere
    /// only where a byte is not what is expected.
    fn document(&mut self, out: &mut Vec<u8>) -> Result<(), Refused> {
        // Bit `d` says whether the container at depth `d + 1` is an object; `depth` containers are open,
        // and `object` says whether the innermost one is an object.
        let mut objects: u128 = 0;
        let mut depth = 0usize;
        let mut object = false;
        'value: loop {
            let Some(c) = self.peek() else {
                return Err(Refused::Fallback);
            };
            match c {
                b'"' => self.string(out)?,
                b'{' | b'[' => {
                    if depth == MAX_DEPTH {
                        return Err(Refused::Fallback);
                    }
                    object = c == b'{';
                    let bit = 1u128 << depth;
                    if object {
                        objects |= bit;
                    } else {
                        objects &= !bit;
                    }
                    depth += 1;
                    self.i += 1;
                    self.ws(out);
                    let close = if object { b'}' } else { b']' };
                    if self.peek() != Some(close) {
                        if object {
                            self.key(out)?;
                        }
                        continue 'value;
                    }
                    // An empty container: closed below, as after any value.
                    self.i += 1;
                    depth -= 1;
                    object = innermost_is_object(objects, depth);
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number(out)?,
                b' ' | b'\t' | b'\n' | b'\r' => {
                    self.skip_ws(out);
                    continue 'value;
                }
                _ => return Err(Refused::Fallback),
            }
            // What follows a value.
            loop {
                if depth == 0 {
                    self.ws(out);
                    return if self.i == self.b.len() {
                        Ok(())
                    } else {
                        Err(Refused::Fallback)
                    };
                }
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if object {
                            self.ws(out);
                            self.key(out)?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if object => {}
                    Some(b']') if !object => {}
                    Some(b' ' | b'\t' | b'\n' | b'\r') => {
                        self.skip_ws(out);
                        continue;
                    }
                    _ => return Err(Refused::Fallback),
                }
                self.i += 1;
                depth -= 1;
                object = innermost_is_object(objects, depth);
            }
        }
    }

    /// An object's key and its `:`, at the key's opening quote (whitespace after the `:` is the value's).
    #[inline(always)]
    fn key(&mut self, out: &mut Vec<u8>) -> Result<(), Refused> {
        if self.peek() != Some(b'"') {
            return Err(Refused::Fallback);
        }
        self.string(out)?;
        if self.peek() != Some(b':') {
            self.ws(out);
            if self.peek() != Some(b':') {
                return Err(Refused::Fallback);
            }
        }
        self.i += 1;
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Refused> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Refused::Fallback)
        }
    }

    /// A string, at its opening quote: plain runs and the escapes `serde_json` writes the same are left in
    /// place; the others are decoded and written again as `serde_json` writes them.
    #[inline(always)]
    fn string(&mut self, out: &mut Vec<u8>) -> Result<(), Refused> {
        self.i += 1;
        loop {
            // Plain bytes sixteen at a time (UTF-8 was checked once for the whole text).
            if let Some(rest) = self.b.get(self.i..) {
                self.i += plain_run(rest);
            }
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => self.escape(out)?,
                // The end of the text, or a raw control character (not valid JSON).
                _ => return Err(Refused::Fallback),
            }
        }
    }

    /// One escape, at `\` (out of line: most strings have none).
    #[inline(never)]
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), Refused> {
        let Some(&e) = self.b.get(self.i + 1) else {
            return Err(Refused::Fallback);
        };
        match e {
            // Written the same by `serde_json`: left in place.
            b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
            b'/' => {
                self.flush(out);
                out.push(b'/');
                self.i += 2;
                self.copied = self.i;
            }
            b'u' => {
                self.flush(out);
                // A run of them (text from producers that escape every non-ASCII character) in one go.
                loop {
                    let code = self
                        .b
                        .get(self.i + 2..)
                        .and_then(<[u8]>::first_chunk::<4>)
                        .and_then(hex4)
                        .ok_or(Refused::Fallback)?;
                    self.i += 6;
                    self.copied = self.i;
                    // Written as `serde_json` writes the character: escaped if it must be, else as its UTF-8
                    // (encoded here: the two- and three-byte forms are all a `\u` escape can give outside the
                    // surrogates, which are `serde_json`'s to judge, in pairs and alone).
                    match code {
                        0x20..=0x7f if code != u32::from(b'"') && code != u32::from(b'\\') => {
                            out.push(code as u8);
                        }
                        0..=0x7f => {
                            // A control character, `"` or `\`: `serde_json`'s short or `\u00XX` form.
                            write_json_str_content(
                                out,
                                char::from(code as u8).encode_utf8(&mut [0; 4]),
                            );
                        }
                        0x80..=0x7ff => {
                            out.extend_from_slice(&[
                                0xc0 | (code >> 6) as u8,
                                0x80 | (code & 0x3f) as u8,
                            ]);
                        }
                        0xd800..=0xdfff => return Err(Refused::Fallback),
                        _ => out.extend_from_slice(&[
                            0xe0 | (code >> 12) as u8,
                            0x80 | (code >> 6 & 0x3f) as u8,
                            0x80 | (code & 0x3f) as u8,
                        ]),
                    }
                    if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                        break;
                    }
                }
            }
            _ => return Err(Refused::Fallback),
        }
        Ok(())
    }

    /// A number: an integer that fits 64 bits is left in place; anything else (fractions, exponents, big
    /// integers, `-0`) is parsed and written by `serde_json`.
    fn number(&mut self, out: &mut Vec<u8>) -> Result<(), Refused> {
        let start = self.i;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let digits = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        let n = self.i - digits;
        if n == 0 {
            return Err(Refused::Fallback);
        }
        // A leading zero is followed by nothing but the end of the number, in JSON.
        if self.b[digits] == b'0' && n > 1 {
            return Err(Refused::Fallback);
        }
        let simple = !matches!(self.peek(), Some(b'.' | b'e' | b'E'));
        let fits = if negative {
            n <= 18 && !(n == 1 && self.b[digits] == b'0')
        } else {
            n <= 19
        };
        if simple && fits {
            return Ok(());
        }
        while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = self.peek() {
            self.i += 1;
        }
        let v: Value =
            serde_json::from_slice(&self.b[start..self.i]).map_err(|_| Refused::Fallback)?;
        let end = self.i;
        self.i = start;
        self.flush(out);
        self.i = end;
        self.copied = end;
        // Writing into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, &v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use proptest::prelude::*;
    use serde_json::Value;

    use super::compact;

    /// What the tree gives, or `None` where `serde_json` refuses the text.
    fn tree(input: &str) -> Option<String> {
        serde_json::from_str::<Value>(input)
            .ok()
            .map(|v| serde_json::to_string(&v).unwrap())
    }

    /// The pass gives the tree's text, or hands the text back (never a different text).
    fn check(input: &str) {
        let mut out = Vec::new();
        if compact(input.as_bytes(), &mut out).is_ok() {
            assert_eq!(
                Some(String::from_utf8(out).unwrap()),
                tree(input),
                "{input:?}"
            );
        }
    }

    #[test]
    fn rewrites_as_serde_json_writes() {
        for input in [
            r#"{"a": 1, "b" : [true, false, null], "c": {"d": "e"}}"#,
            "  [1.0, 1e3, -0, -0.0, 0, -7, 18446744073709551615, 18446744073709551616, -9223372036854775808]",
            r#""\u00e9\u2713 \"q\" \\ \/ \n\t\b\f\r \u0001 \u001f \u007f \u0022 \u005c""#,
            r#"{"nested": {"deeper": [[], {}, [{"x": -12}]]}, "unicode": "héllo ✓"}"#,
            "\n\t42\r\n",
            r#"["\ud83d\ude00", "\ud800"]"#,
            r#""\u00E9 \u00e9 \u2713\u0022\u000A""#,
            r#"{"a":1,"b":[true,false,null,{}],"c":{"d":"e\u00e9\/f"},"e":[],"g":-3}"#,
            r#"  {"k\u00e9y" : "v" , "x":[ 1 ,2 ] }  "#,
            // Runs of `\u` escapes, decoded in one go: to the end of a string, mixed with those that stay
            // escaped, and before other escapes.
            r#"["abc\u00e9\u2713", "\u00e9\u00e9\u2713\u0001\u0022\u005c\/\n\u00e9", "\u0041\u00e9x\u2713"]"#,
        ] {
            check(input);
            let mut out = Vec::new();
            if input.contains("\\ud8") {
                continue;
            }
            compact(input.as_bytes(), &mut out).expect(input);
        }
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in [
            "{nope",
            "[1, 2",
            "1 2",
            "",
            "[01]",
            "\"raw \u{1} control\"",
            "{\"a\" 1}",
            "[1,]",
            "-",
            "tru",
            "\"\\x\"",
            "\"\\u12\"",
            // A sign is not a hexadecimal digit.
            "\"\\u+041\"",
            "\"\\u-041\"",
            // A bad escape inside a run.
            "\"\\u00e9\\u12\"",
            "\"\\u00e9\\u00zz\"",
            // Bytes beside the digits and letters (the hexadecimal table's edges).
            "\"\\u00/0\"",
            "\"\\u00:0\"",
            "\"\\u00@0\"",
            "\"\\u00G0\"",
            "\"\\u00`0\"",
            "\"\\u00g0\"",
            "\"\\u00\"",
            "\"\\u00e",
            // A comma or colon where the other belongs, and whitespace in an escape.
            "{\"a\",1}",
            "[1:2]",
            "\"\\u 0041\"",
            // Brackets that do not match, and commas and keys out of place.
            "[1}",
            "{\"a\":1]",
            "{\"a\":1,}",
            "{,}",
            "[,1]",
            "{\"a\"}",
            "{1:2}",
            "{\"a\":1 \"b\":2}",
            "[1]]",
            "[1] x",
        ] {
            assert!(compact(bad.as_bytes(), &mut Vec::new()).is_err(), "{bad:?}");
        }
        assert!(compact(&[b'"', 0xff, b'"'], &mut Vec::new()).is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(compact(deep.as_bytes(), &mut Vec::new()).is_err());
        // serde_json's limit exactly: 127 open containers are read, 128 refused (the pass once took 128).
        let limit = "[".repeat(63) + &"{\"k\":[".repeat(32) + &"]}".repeat(32) + &"]".repeat(63);
        check(&limit);
        compact(limit.as_bytes(), &mut Vec::new()).expect("127 deep");
        let over = "[".repeat(64) + &"{\"k\":[".repeat(32) + &"]}".repeat(32) + &"]".repeat(64);
        assert_eq!(tree(&over), None);
        assert!(compact(over.as_bytes(), &mut Vec::new()).is_err());
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "(\\PC|[\\x00-\\x1f\"\\\\])*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec(("[a-z\"\\\\é]{0,4}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn pretty_text_compacts_to_the_trees_text(v in json()) {
            // Compact (what producers send) and pretty-printed (whitespace everywhere), each also with every
            // non-ASCII character as a \u escape.
            let compact_text = serde_json::to_string(&v).unwrap();
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            let ascii = |text: &str| -> String {
                text.chars()
                    .map(|c| if c.is_ascii() { c.to_string() } else {
                        let mut units = [0u16; 2];
                        c.encode_utf16(&mut units).iter().map(|u| format!("\\u{u:04x}")).collect()
                    })
                    .collect()
            };
            for input in [&compact_text, &ascii(&compact_text), &pretty, &ascii(&pretty)] {
                let mut out = Vec::new();
                let done = compact(input.as_bytes(), &mut out);
                // The tree of the text, not `v`: serde_json reads some floats 1 ULP off, and the pass reads
                // numbers with serde_json too.
                let want = tree(input).unwrap();
                // Surrogate pairs are left to serde_json; everything else is written here.
                if done.is_ok() {
                    prop_assert_eq!(String::from_utf8(out).unwrap(), want);
                } else {
                    prop_assert!(input.contains("\\ud"), "refused {}", input);
                }
            }
        }

        #[test]
        fn any_text_compacts_to_the_trees_text_or_is_handed_back(s in "[\\[\\]{}\",:0-9.eE+\\- a-z\\\\u]{0,24}") {
            check(&s);
        }
    }
}
