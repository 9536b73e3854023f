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
/// One flat loop over the text with the open containers as a bit stack (no call per value). Text the tree
/// would write as it stands is not copied piece by piece: the pass only notes how far the input has been
/// copied and copies each stretch once, where something must change (whitespace dropped, an escape or a
/// number rewritten) and at the end, so compact input (what producers send) is a scan and a few copies.
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

/// Four hexadecimal digits (of a `\u` escape), strictly: no sign, no other length.
fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |code, &d| {
        Some(code << 4 | char::from(d).to_digit(16)?)
    })
}

/// What the pass expects next.
#[derive(Clone, Copy)]
enum Next {
    /// A value (at the top, after `[`, `,` in an array, or `:`).
    Value,
    /// An object's key (after `,` in an object).
    Key,
    /// A `,`, the innermost container's closing bracket, or the end of the text at the top.
    After,
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
    fn document(&mut self, out: &mut Vec<u8>) -> Result<(), Refused> {
        // Bit `d` says whether the container at depth `d + 1` is an object; `depth` containers are open.
        let mut objects: u128 = 0;
        let mut depth = 0usize;
        let mut next = Next::Value;
        loop {
            self.ws(out);
            match next {
                Next::Value => {
                    let Some(c) = self.peek() else {
                        return Err(Refused::Fallback);
                    };
                    match c {
                        b'{' | b'[' => {
                            if depth == MAX_DEPTH {
                                return Err(Refused::Fallback);
                            }
                            let object = c == b'{';
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
                            if self.peek() == Some(close) {
                                self.i += 1;
                                depth -= 1;
                                next = Next::After;
                            } else if object {
                                next = Next::Key;
                            }
                        }
                        b'"' => {
                            self.string(out)?;
                            next = Next::After;
                        }
                        b't' => self.literal(b"true", &mut next)?,
                        b'f' => self.literal(b"false", &mut next)?,
                        b'n' => self.literal(b"null", &mut next)?,
                        b'-' | b'0'..=b'9' => {
                            self.number(out)?;
                            next = Next::After;
                        }
                        _ => return Err(Refused::Fallback),
                    }
                }
                Next::Key => {
                    if self.peek() != Some(b'"') {
                        return Err(Refused::Fallback);
                    }
                    self.string(out)?;
                    self.ws(out);
                    if self.peek() != Some(b':') {
                        return Err(Refused::Fallback);
                    }
                    self.i += 1;
                    next = Next::Value;
                }
                Next::After => {
                    if depth == 0 {
                        return if self.i == self.b.len() {
                            Ok(())
                        } else {
                            Err(Refused::Fallback)
                        };
                    }
                    let object = objects >> (depth - 1) & 1 == 1;
                    match (self.peek(), object) {
                        (Some(b','), true) => next = Next::Key,
                        (Some(b','), false) => next = Next::Value,
                        (Some(b'}'), true) | (Some(b']'), false) => depth -= 1,
                        _ => return Err(Refused::Fallback),
                    }
                    self.i += 1;
                }
            }
        }
    }

    fn literal(&mut self, word: &[u8], next: &mut Next) -> Result<(), Refused> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            *next = Next::After;
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
                        .get(self.i + 2..self.i + 6)
                        .and_then(hex4)
                        .ok_or(Refused::Fallback)?;
                    // Surrogates (pairs and lone ones) are `serde_json`'s to judge.
                    let c = char::from_u32(code).ok_or(Refused::Fallback)?;
                    self.i += 6;
                    self.copied = self.i;
                    // Written as `serde_json` writes the character: escaped if it must be, else as itself.
                    if c >= ' ' && c != '"' && c != '\\' {
                        // Encoded into sixteen bytes, so that appending it is one fixed-size copy.
                        let mut utf8 = [0u8; 16];
                        let n = c.encode_utf8(&mut utf8).len();
                        append_from(out, n, &utf8);
                    } else {
                        write_json_str_content(out, c.encode_utf8(&mut [0u8; 4]));
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
        // serde_json's limit exactly: 128 open containers are JSON, 129 are refused.
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
