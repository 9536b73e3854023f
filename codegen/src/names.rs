//! Rust identifiers from Avro names: snake_case fields, UpperCamelCase types and variants, keyword escaping.

/// Keywords that can be written as raw identifiers (`r#type`).
const RAW_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "false", "fn",
    "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "static", "struct", "trait", "true", "type", "unsafe", "use", "where", "while",
    "abstract", "become", "box", "do", "final", "gen", "macro", "override", "priv", "try",
    "typeof", "unsized", "virtual", "yield",
];

/// Keywords that cannot be raw identifiers; they get a trailing underscore.
const NON_RAW_KEYWORDS: &[&str] = &["self", "Self", "super", "crate", "extern", "_"];

/// Splits an identifier into lowercase words at `_`, case changes and acronym boundaries
/// (`HTTPStatus` → `http`, `status`; `camelCase` → `camel`, `case`).
fn words(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let boundary = c.is_uppercase()
            && !cur.is_empty()
            && (prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(char::is_uppercase) && next.is_some_and(char::is_lowercase)));
        if boundary {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Escapes a keyword.
pub fn escape(ident: String) -> String {
    if NON_RAW_KEYWORDS.contains(&ident.as_str()) {
        format!("{ident}_")
    } else if RAW_KEYWORDS.contains(&ident.as_str()) {
        format!("r#{ident}")
    } else {
        ident
    }
}

/// A snake_case field or module name; leading underscores are kept, keywords escaped.
pub fn snake(s: &str) -> String {
    let leading: String = s.chars().take_while(|c| *c == '_').collect();
    let body = words(s).join("_");
    let ident = if body.is_empty() {
        "_field".to_owned()
    } else if body.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{body}")
    } else {
        format!("{leading}{body}")
    };
    escape(ident)
}

/// An UpperCamelCase type or variant name.
pub fn upper_camel(s: &str) -> String {
    let mut out: String = words(s)
        .iter()
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'T');
    }
    escape(out)
}

/// A SCREAMING_SNAKE_CASE constant name.
pub fn screaming(s: &str) -> String {
    let out = words(&s.replace(['.', '-'], "_")).join("_").to_uppercase();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{out}")
    } else {
        out
    }
}

/// Makes a constant name unique among `taken` by appending `_2`, `_3`, …; records the result.
pub fn unique_constant(name: String, taken: &mut std::collections::BTreeSet<String>) -> String {
    if taken.insert(name.clone()) {
        return name;
    }
    (2..)
        .map(|i| format!("{name}_{i}"))
        .find(|n| taken.insert(n.clone()))
        .unwrap_or(name)
}

/// Makes `name` unique among `taken` by appending a number; records the result.
pub fn unique(name: String, taken: &mut std::collections::BTreeSet<String>) -> String {
    if taken.insert(name.clone()) {
        return name;
    }
    let base = name.trim_start_matches("r#").to_owned();
    let sep = if base.contains('_') || base.chars().all(|c| c.is_lowercase() || c == '_') {
        "_"
    } else {
        ""
    };
    (2..)
        .map(|i| format!("{base}{sep}{i}"))
        .find(|n| taken.insert(n.clone()))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_names() {
        assert_eq!(snake("camelCase"), "camel_case");
        assert_eq!(snake("HTTPStatus"), "http_status");
        assert_eq!(snake("type"), "r#type");
        assert_eq!(snake("self"), "self_");
        assert_eq!(snake("_leading_underscore"), "_leading_underscore");
        assert_eq!(snake("already_snake"), "already_snake");
        assert_eq!(upper_camel("UPPER_SNAKE"), "UpperSnake");
        assert_eq!(upper_camel("lower_case"), "LowerCase");
        assert_eq!(upper_camel("camelCase"), "CamelCase");
        assert_eq!(upper_camel("PascalCase"), "PascalCase");
        assert_eq!(upper_camel("X"), "X");
        assert_eq!(upper_camel("_under"), "Under");
        assert_eq!(upper_camel("Self"), "Self_");
        assert_eq!(
            screaming("child.safety-violation"),
            "CHILD_SAFETY_VIOLATION"
        );
        let mut taken = Default::default();
        assert_eq!(unique("Foo".into(), &mut taken), "Foo");
        assert_eq!(unique("Foo".into(), &mut taken), "Foo2");
        let mut constants = ["ALL".to_owned()].into();
        assert_eq!(unique_constant(screaming("a.b"), &mut constants), "A_B");
        assert_eq!(unique_constant(screaming("a-b"), &mut constants), "A_B_2");
        assert_eq!(unique_constant(screaming("all"), &mut constants), "ALL_2");
    }
}
