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

/// `serde_json`'s nesting limit: deeper text goes to `serde_json`, which refuses it.
const MAX_DEPTH: usize = 128;

/// Why the pass stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Not valid JSON, or something only `serde_json` writes exactly: the caller asks `serde_json`.
    Fallback,
}

/// Appends the compact form of the JSON text `input` to `out`; on `Err` the caller parses the text with
/// `serde_json` (for the error, or for the exact text of what this pass does not handle), and `out` may
/// hold part of a value.
pub(super) fn compact(input: &[u8], out: &mut Vec<u8>) -> Result<(), Refused> {
    // Outside strings, anything not ASCII is a syntax error; inside, it must be UTF-8: one check for both.
    if !input.is_ascii() && std::str::from_utf8(input).is_err() {
        return Err(Refused::Fallback);
    }
    let mut p = Parser { b: input, i: 0 };
    p.ws();
    p.value(out, 0)?;
    p.ws();
    if p.i != input.len() {
        return Err(Refused::Fallback);
    }
    Ok(())
}

/// Four hexadecimal digits (of a `\u` escape), strictly: no sign, no other length.
fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |code, &d| {
        Some(code << 4 | char::from(d).to_digit(16)?)
    })
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), Refused> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Refused::Fallback)
        }
    }

    fn literal(&mut self, word: &[u8], out: &mut Vec<u8>) -> Result<(), Refused> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            out.extend_from_slice(word);
            Ok(())
        } else {
            Err(Refused::Fallback)
        }
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), Refused> {
        match self.peek() {
            Some(b'{') => self.object(out, depth + 1),
            Some(b'[') => self.array(out, depth + 1),
            Some(b'"') => self.string(out),
            Some(b't') => self.literal(b"true", out),
            Some(b'f') => self.literal(b"false", out),
            Some(b'n') => self.literal(b"null", out),
            Some(b'-' | b'0'..=b'9') => self.number(out),
            _ => Err(Refused::Fallback),
        }
    }

    fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), Refused> {
        self.sequence(out, depth, b'}', |p, out, depth| {
            if p.peek() != Some(b'"') {
                return Err(Refused::Fallback);
            }
            p.string(out)?;
            p.ws();
            p.eat(b':')?;
            out.push(b':');
            p.ws();
            p.value(out, depth)
        })
    }

    fn array(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), Refused> {
        self.sequence(out, depth, b']', Self::value)
    }

    /// An object or array at its opening bracket: `item`s separated by commas up to `close`.
    fn sequence(
        &mut self,
        out: &mut Vec<u8>,
        depth: usize,
        close: u8,
        mut item: impl FnMut(&mut Self, &mut Vec<u8>, usize) -> Result<(), Refused>,
    ) -> Result<(), Refused> {
        if depth > MAX_DEPTH {
            return Err(Refused::Fallback);
        }
        out.push(self.b[self.i]);
        self.i += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            out.push(close);
            return Ok(());
        }
        loop {
            self.ws();
            item(self, out, depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    out.push(b',');
                }
                Some(c) if c == close => {
                    self.i += 1;
                    out.push(close);
                    return Ok(());
                }
                _ => return Err(Refused::Fallback),
            }
        }
    }

    /// A string: plain runs copied (the quotes with them), escapes decoded and written again as
    /// `serde_json` escapes.
    #[inline(always)]
    fn string(&mut self, out: &mut Vec<u8>) -> Result<(), Refused> {
        // The run to copy begins at the opening quote.
        let mut run = self.i;
        self.i += 1;
        loop {
            // Plain bytes sixteen at a time (UTF-8 was checked once for the whole text).
            self.i += self.b.get(self.i..).map_or(0, plain_run);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    append_from(out, self.i - run, &self.b[run..]);
                    return Ok(());
                }
                Some(b'\\') => {
                    append_from(out, self.i - run, &self.b[run..]);
                    self.escape(out)?;
                    run = self.i;
                }
                // The end of the text, or a raw control character (not valid JSON).
                _ => return Err(Refused::Fallback),
            }
        }
    }

    /// One escape, at `\` (out of line: [`Parser::string`] is inlined where strings are parsed, and most
    /// strings have no escape).
    #[inline(never)]
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), Refused> {
        let Some(&e) = self.b.get(self.i + 1) else {
            return Err(Refused::Fallback);
        };
        self.i += 2;
        let same: &[u8] = match e {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'/' => b"/",
            b'b' => b"\\b",
            b'f' => b"\\f",
            b'n' => b"\\n",
            b'r' => b"\\r",
            b't' => b"\\t",
            b'u' => {
                let code = self
                    .b
                    .get(self.i..self.i + 4)
                    .and_then(hex4)
                    .ok_or(Refused::Fallback)?;
                self.i += 4;
                // Surrogates (pairs and lone ones) are `serde_json`'s to judge.
                let c = char::from_u32(code).ok_or(Refused::Fallback)?;
                // Written as `serde_json` writes the character: escaped if it must be, else as itself.
                write_json_str_content(out, c.encode_utf8(&mut [0u8; 4]));
                return Ok(());
            }
            _ => return Err(Refused::Fallback),
        };
        out.extend_from_slice(same);
        Ok(())
    }

    /// A number: an integer that fits 64 bits is copied; anything else (fractions, exponents, big
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
            append_from(out, self.i - start, &self.b[start..]);
            return Ok(());
        }
        while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = self.peek() {
            self.i += 1;
        }
        let v: Value =
            serde_json::from_slice(&self.b[start..self.i]).map_err(|_| Refused::Fallback)?;
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
        ] {
            assert!(compact(bad.as_bytes(), &mut Vec::new()).is_err(), "{bad:?}");
        }
        assert!(compact(&[b'"', 0xff, b'"'], &mut Vec::new()).is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(compact(deep.as_bytes(), &mut Vec::new()).is_err());
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
            // Pretty-printed (whitespace everywhere) and with every non-ASCII character as a \u escape.
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            let ascii: String = pretty
                .chars()
                .map(|c| if c.is_ascii() { c.to_string() } else {
                    let mut units = [0u16; 2];
                    c.encode_utf16(&mut units).iter().map(|u| format!("\\u{u:04x}")).collect()
                })
                .collect();
            for input in [&pretty, &ascii] {
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
