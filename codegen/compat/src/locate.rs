//! Source positions: file:line:col of a schema node, or of one of its attributes (`"size"`, `"symbols"`, …)
//! found by scanning the node's JSON object text for the key at its top level.

use ursa_avro::schema::{Loc, SchemaSet};

/// The path, 1-based line and column of `loc` in `set`, at attribute `key` of the object there if it has one.
pub(crate) fn position(set: &SchemaSet, loc: Loc, key: Option<&str>) -> (String, usize, usize) {
    let file = set.file(loc.file);
    let offset = key
        .and_then(|k| key_offset(file.text(), loc.span.start as usize, k))
        .unwrap_or(loc.span.start as usize);
    let (line, column) = file.line_col(u32::try_from(offset).unwrap_or(loc.span.start));
    (file.path().to_owned(), line, column)
}

/// Byte offset of the opening quote of member `key` of the JSON object starting at `start`, at its top level.
fn key_offset(text: &str, start: usize, key: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.get(start) != Some(&b'{') {
        return None;
    }
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return None;
                }
            }
            b'"' => {
                let open = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let content = text.get(open + 1..i.min(bytes.len()))?;
                if depth == 1 && content == key {
                    let rest = text.get(i + 1..)?.trim_start();
                    if rest.starts_with(':') {
                        return Some(open);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::key_offset;

    #[test]
    fn finds_top_level_keys_only() {
        let text = r#"x {"fields":[{"name":"a","type":"int"}], "name" : "R"}"#;
        let at = key_offset(text, 2, "name").unwrap_or(0);
        assert_eq!(&text[at..at + 6], "\"name\"");
        assert!(at > 30);
        assert_eq!(key_offset(text, 2, "size"), None);
        assert_eq!(key_offset(text, 0, "name"), None);
    }
}
