//! The rules file: which events notify whom, how urgently, on which channels in which order, with which
//! templates. Parsed and compiled once at start-up (and by `ursa validate`): every problem is reported with
//! its `file:line:column`, and every template is compiled and dry-run against a sample of its topic's schema,
//! so a broken template or a PII field in an SMS fails validation, not delivery.
//!
//! ```toml
//! default_locale = "en"
//!
//! [digest]                      # routine news: one message per guardian per window
//! every = "24h"                 # or: at = "18:00" (the guardian's local time)
//! channels = ["email"]
//! [digest.templates.email.en]
//! subject = "Your day with the bear"
//! text = "{% for item in items %}- {{ item.title }}\n{% endfor %}"
//!
//! [[rule]]
//! name = "safety-critical"
//! topic = "child.safety-violation"
//! when = ["severity in [high, critical]"]
//! priority = "immediate"        # immediate | high | normal | digest
//! category = "safety"
//! channels = ["sms", "push", "email"]   # in order: fallback and escalation follow it
//! fanout = 2                    # the first two reachable channels at once
//! dedupe_window = "10m"
//! dedupe_key = "{{ child.child_id }}/{{ category }}"
//! escalation = { every = "5m", max = 3 }
//! [rule.templates.sms.en]
//! text = "Safety alert ({{ severity }}). Open {{ notification.ack_url }}"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

/// How urgent a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// Now, through quiet hours and per-recipient limits.
    Immediate,
    /// Soon; held through quiet hours.
    High,
    /// When convenient; held through quiet hours.
    Normal,
    /// Collected into the guardian's next digest.
    Digest,
}

impl Priority {
    /// The name used in rules, the ledger and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Immediate => "immediate",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Digest => "digest",
        }
    }

    /// Parses a rule's `priority`.
    pub fn parse(s: &str) -> Option<Priority> {
        Some(match s {
            "immediate" => Priority::Immediate,
            "high" => Priority::High,
            "normal" => Priority::Normal,
            "digest" => Priority::Digest,
            _ => return None,
        })
    }
}

/// A delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    /// SMTP.
    Email,
    /// Twilio's Messages API.
    Sms,
    /// FCM or APNs, per device token.
    Push,
    /// Standard Webhooks.
    Webhook,
}

impl ChannelKind {
    /// Every channel.
    pub const ALL: [ChannelKind; 4] = [
        ChannelKind::Email,
        ChannelKind::Sms,
        ChannelKind::Push,
        ChannelKind::Webhook,
    ];

    /// The name used in rules and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Sms => "sms",
            ChannelKind::Push => "push",
            ChannelKind::Webhook => "webhook",
        }
    }

    /// Parses a channel name.
    pub fn parse(s: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether what it shows may be seen by others (a lock screen, an SMS preview): PII is kept out of its
    /// templates unless a rule allows it.
    pub fn is_public(self) -> bool {
        matches!(self, ChannelKind::Sms | ChannelKind::Push)
    }

    /// The template parts it needs (at least one of the second list).
    fn parts(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            ChannelKind::Email => (&["subject"], &["text", "html"]),
            ChannelKind::Sms => (&[], &["text"]),
            ChannelKind::Push => (&["title"], &["body"]),
            ChannelKind::Webhook => (&[], &[]),
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A comparison in a condition.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    In(Vec<Scalar>),
    NotIn(Vec<Scalar>),
    Eq(Scalar),
    Ne(Scalar),
    Gt(f64),
    Ge(f64),
    Lt(f64),
    Le(f64),
    Exists,
}

/// A literal in a condition: text compares case-insensitively with strings (enum symbols are upper case in
/// the catalog, `severity in [high, critical]` reads better), numbers numerically.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Text(String),
    Number(f64),
    Bool(bool),
    Null,
}

impl Scalar {
    fn parse(s: &str) -> Scalar {
        let s = s.trim();
        let unquoted = s
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .or_else(|| s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')));
        if let Some(u) = unquoted {
            return Scalar::Text(u.to_owned());
        }
        match s {
            "true" => Scalar::Bool(true),
            "false" => Scalar::Bool(false),
            "null" => Scalar::Null,
            _ => s
                .parse::<f64>()
                .map_or_else(|_| Scalar::Text(s.to_owned()), Scalar::Number),
        }
    }

    fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (Scalar::Text(t), Value::String(s)) => t.eq_ignore_ascii_case(s),
            (Scalar::Number(n), Value::Number(m)) => m.as_f64() == Some(*n),
            (Scalar::Number(n), Value::String(s)) => s.parse::<f64>().ok() == Some(*n),
            (Scalar::Bool(b), Value::Bool(c)) => b == c,
            (Scalar::Null, Value::Null) => true,
            _ => false,
        }
    }
}

/// One condition of a rule's `when`: `path op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    path: Vec<String>,
    op: Op,
}

/// Looks up a dotted path in a JSON value.
pub fn lookup<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, k| v.get(k.as_str()))
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl Condition {
    /// Parses `severity in [high, critical]`, `confidence >= 0.8`, `category != SPAM`, `message_id exists`.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let text = text.trim();
        let (path, rest) = text
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("expected `field op value`, found {text:?}"))?;
        let path: Vec<String> = path.split('.').map(str::to_owned).collect();
        if path.iter().any(|p| {
            p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) {
            return Err(format!("`{}` is not a field path", path.join(".")));
        }
        let rest = rest.trim();
        let list = |s: &str| -> Result<Vec<Scalar>, String> {
            let inner = s
                .trim()
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .ok_or_else(|| format!("expected a list like [a, b], found {s:?}"))?;
            Ok(inner
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Scalar::parse)
                .collect())
        };
        let num = |s: &str| -> Result<f64, String> {
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("expected a number, found {:?}", s.trim()))
        };
        let op = if rest == "exists" {
            Op::Exists
        } else if let Some(r) = rest.strip_prefix("not in") {
            Op::NotIn(list(r)?)
        } else if let Some(r) = rest.strip_prefix("in ") {
            Op::In(list(r)?)
        } else if let Some(r) = rest.strip_prefix("==") {
            Op::Eq(Scalar::parse(r))
        } else if let Some(r) = rest.strip_prefix("!=") {
            Op::Ne(Scalar::parse(r))
        } else if let Some(r) = rest.strip_prefix(">=") {
            Op::Ge(num(r)?)
        } else if let Some(r) = rest.strip_prefix("<=") {
            Op::Le(num(r)?)
        } else if let Some(r) = rest.strip_prefix('>') {
            Op::Gt(num(r)?)
        } else if let Some(r) = rest.strip_prefix('<') {
            Op::Lt(num(r)?)
        } else {
            return Err(format!(
                "unknown operator in {text:?}: use in, not in, ==, !=, >, >=, <, <= or exists"
            ));
        };
        Ok(Condition { path, op })
    }

    /// Whether the event satisfies it.
    pub fn matches(&self, event: &Value) -> bool {
        let v = lookup(event, &self.path);
        match (&self.op, v) {
            (Op::Exists, v) => v.is_some_and(|v| !v.is_null()),
            (Op::In(list), Some(v)) => list.iter().any(|s| s.matches(v)),
            (Op::NotIn(list), v) => v.is_none_or(|v| !list.iter().any(|s| s.matches(v))),
            (Op::Eq(s), Some(v)) => s.matches(v),
            (Op::Ne(s), v) => v.is_none_or(|v| !s.matches(v)),
            (Op::Gt(n), Some(v)) => number(v).is_some_and(|x| x > *n),
            (Op::Ge(n), Some(v)) => number(v).is_some_and(|x| x >= *n),
            (Op::Lt(n), Some(v)) => number(v).is_some_and(|x| x < *n),
            (Op::Le(n), Some(v)) => number(v).is_some_and(|x| x <= *n),
            (_, None) => false,
        }
    }
}

/// Repeat and move to the next channel every `every` until acknowledged, at most `max` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalation {
    /// Between two steps.
    pub every: Duration,
    /// Steps after the first delivery.
    pub max: u32,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its name (unique in the file; part of template names and audit records).
    pub name: String,
    /// The topic it matches.
    pub topic: String,
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// How urgent.
    pub priority: Priority,
    /// The preference category guardians opt in or out of (`safety` cannot be turned off).
    pub category: String,
    /// Channels in order.
    pub channels: Vec<ChannelKind>,
    /// How many reachable channels the first delivery uses at once.
    pub fanout: usize,
    /// Events with the same dedupe key within this window notify once.
    pub dedupe_window: Option<Duration>,
    /// The template of the dedupe key (default: the event id).
    pub dedupe_key: Option<String>,
    /// The escalation policy, for critical events.
    pub escalation: Option<Escalation>,
    /// PII fields its SMS and push templates may use.
    pub allow_pii: BTreeSet<String>,
    /// Where the recipients are: the path of a household id (or a child id, resolved through the directory).
    pub recipients: Vec<String>,
    /// The locales it has templates for, per channel.
    pub locales: BTreeMap<ChannelKind, Vec<String>>,
}

impl Rule {
    /// Whether the rule matches an event of `topic`.
    pub fn matches(&self, topic: &str, event: &Value) -> bool {
        self.topic == topic && self.conditions.iter().all(|c| c.matches(event))
    }
}

/// When digests go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestWindow {
    /// Every N (aligned to the epoch).
    Every(Duration),
    /// Once a day at this local time of the guardian (seconds after midnight).
    At(u32),
}

/// The digest: how often, on which channels, with which templates (named `digest`).
#[derive(Debug, Clone)]
pub struct Digest {
    /// When.
    pub window: DigestWindow,
    /// Channels in order (the first reachable one is used; the others are fallbacks).
    pub channels: Vec<ChannelKind>,
    /// The locales it has templates for, per channel.
    pub locales: BTreeMap<ChannelKind, Vec<String>>,
}

/// What a template renders to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Email subject.
    pub subject: Option<String>,
    /// Plain text (email, SMS).
    pub text: Option<String>,
    /// HTML (email).
    pub html: Option<String>,
    /// Push title.
    pub title: Option<String>,
    /// Push body, or a webhook's JSON body.
    pub body: Option<String>,
}

/// A problem in the rules file, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct RuleError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// The compiled rules file.
pub struct Rules {
    /// The rules, in file order (the first match wins).
    pub rules: Vec<Arc<Rule>>,
    /// The digest, if the file has one.
    pub digest: Option<Digest>,
    /// The locale used when a guardian's has no template.
    pub default_locale: String,
    tera: tera::Tera,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("rules", &self.rules)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

type TemplateDocs = Spanned<BTreeMap<String, BTreeMap<String, BTreeMap<String, Spanned<String>>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    default_locale: Option<Spanned<String>>,
    #[serde(default)]
    digest: Option<DigestDoc>,
    #[serde(default)]
    rule: Vec<Spanned<RuleDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DigestDoc {
    #[serde(default)]
    every: Option<Spanned<String>>,
    #[serde(default)]
    at: Option<Spanned<String>>,
    channels: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    templates: Option<TemplateDocs>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalationDoc {
    every: Spanned<String>,
    max: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    name: Spanned<String>,
    topic: Spanned<String>,
    #[serde(default)]
    when: Vec<Spanned<String>>,
    priority: Spanned<String>,
    #[serde(default)]
    category: Option<Spanned<String>>,
    channels: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    fanout: Option<Spanned<i64>>,
    #[serde(default)]
    dedupe_window: Option<Spanned<String>>,
    #[serde(default)]
    dedupe_key: Option<Spanned<String>>,
    #[serde(default)]
    escalation: Option<Spanned<EscalationDoc>>,
    #[serde(default)]
    allow_pii: Vec<Spanned<String>>,
    #[serde(default)]
    recipients: Option<Spanned<String>>,
    #[serde(default)]
    templates: Option<TemplateDocs>,
}

/// Positions in the source text.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn at(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rfind('\n')
            .map_or(before.chars().count(), |i| before[i + 1..].chars().count())
            + 1;
        (line, column)
    }

    fn error(&self, span: Range<usize>, message: impl Into<String>) -> RuleError {
        let (line, column) = self.at(span.start);
        RuleError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// The schema of a catalog topic (so templates are checked against it), if the catalog binds one.
pub fn catalog_schema(topic: &str) -> Option<&'static str> {
    use ursa_avro::AvroRecord;
    use ursa_events::com::teddy::{analytics, child, conversation, system};
    Some(match topic {
        "child.safety-violation" => child::SafetyViolation::SCHEMA,
        "child.milestone-achieved" => child::MilestoneAchieved::SCHEMA,
        "child.registered" => child::ChildRegistered::SCHEMA,
        "child.profile-updated" => child::ChildProfileUpdated::SCHEMA,
        "analytics.usage-stats" => analytics::UsageStats::SCHEMA,
        "analytics.engagement-metrics" => analytics::EngagementMetrics::SCHEMA,
        "conversation.escalated" => conversation::ConversationEscalated::SCHEMA,
        "conversation.ended" => conversation::ConversationEnded::SCHEMA,
        "system.health-check" => system::HealthCheck::SCHEMA,
        _ => return None,
    })
}

/// The dotted paths of the `"pii": true` fields of a self-contained Avro schema (JSON), through records,
/// unions, arrays and maps (`changes.old_value` for a field of an array's records).
pub fn pii_paths(schema: &Value) -> BTreeSet<String> {
    fn walk(s: &Value, prefix: &str, out: &mut BTreeSet<String>, depth: usize) {
        if depth > 32 {
            return;
        }
        match s {
            Value::Array(branches) => {
                for b in branches {
                    walk(b, prefix, out, depth + 1);
                }
            }
            Value::Object(o) => match o.get("type").and_then(Value::as_str) {
                Some("record") | Some("error") => {
                    for f in o
                        .get("fields")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let Some(name) = f.get("name").and_then(Value::as_str) else {
                            continue;
                        };
                        let path = if prefix.is_empty() {
                            name.to_owned()
                        } else {
                            format!("{prefix}.{name}")
                        };
                        if f.get("pii") == Some(&Value::Bool(true)) {
                            out.insert(path.clone());
                        }
                        if let Some(t) = f.get("type") {
                            walk(t, &path, out, depth + 1);
                        }
                    }
                }
                Some("array") => {
                    if let Some(i) = o.get("items") {
                        walk(i, prefix, out, depth + 1);
                    }
                }
                Some("map") => {
                    if let Some(v) = o.get("values") {
                        walk(v, prefix, out, depth + 1);
                    }
                }
                _ => {
                    if let Some(t @ (Value::Object(_) | Value::Array(_))) = o.get("type") {
                        walk(t, prefix, out, depth + 1);
                    }
                }
            },
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(schema, "", &mut out, 0);
    out
}

/// Removes the fields at `paths` (through arrays) from `value`, except those in `keep`.
pub fn strip_paths(value: &mut Value, paths: &BTreeSet<String>, keep: &BTreeSet<String>) {
    fn strip(v: &mut Value, path: &[&str]) {
        match v {
            Value::Array(items) => {
                for i in items {
                    strip(i, path);
                }
            }
            Value::Object(o) => match path {
                [last] => {
                    o.shift_remove(*last);
                }
                [first, rest @ ..] => {
                    if let Some(inner) = o.get_mut(*first) {
                        strip(inner, rest);
                    }
                }
                [] => {}
            },
            _ => {}
        }
    }
    for p in paths.iter().filter(|p| !keep.contains(*p)) {
        let parts: Vec<&str> = p.split('.').collect();
        strip(value, &parts);
    }
}

/// A sample value of a self-contained Avro schema (JSON), as the runtime would decode it: every field present,
/// the first non-null branch of unions, one item in arrays and maps.
pub fn sample(schema: &Value) -> Value {
    fn walk(s: &Value, depth: usize) -> Value {
        if depth > 32 {
            return Value::Null;
        }
        match s {
            Value::String(t) => match t.as_str() {
                "null" => Value::Null,
                "boolean" => Value::Bool(true),
                "int" | "long" | "float" | "double" => Value::from(1),
                _ => Value::String("sample".into()),
            },
            Value::Array(branches) => branches
                .iter()
                .find(|b| b.as_str() != Some("null"))
                .map_or(Value::Null, |b| walk(b, depth + 1)),
            Value::Object(o) => match o.get("type").and_then(Value::as_str) {
                Some("record") | Some("error") => Value::Object(
                    o.get("fields")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|f| {
                            let name = f.get("name")?.as_str()?.to_owned();
                            Some((name, walk(f.get("type")?, depth + 1)))
                        })
                        .collect(),
                ),
                Some("enum") => o
                    .get("symbols")
                    .and_then(Value::as_array)
                    .and_then(|s| s.first().cloned())
                    .unwrap_or(Value::Null),
                Some("array") => Value::Array(
                    o.get("items")
                        .map(|i| vec![walk(i, depth + 1)])
                        .unwrap_or_default(),
                ),
                Some("map") => {
                    let mut m = serde_json::Map::new();
                    if let Some(v) = o.get("values") {
                        m.insert("key".into(), walk(v, depth + 1));
                    }
                    Value::Object(m)
                }
                Some("fixed") => Value::String("sample".into()),
                _ => o.get("type").map_or(Value::Null, |t| walk(t, depth + 1)),
            },
            _ => Value::Null,
        }
    }
    walk(schema, 0)
}

/// The context templates see: the event (PII removed for public channels unless allowed), and
/// `notification` (rule, priority, event id, guardian locale, acknowledgement link).
pub fn context(event: &Value, notification: Value) -> tera::Context {
    let mut ctx = match tera::Context::from_serialize(event) {
        Ok(c) => c,
        Err(_) => {
            let mut c = tera::Context::new();
            c.insert("event", event);
            c
        }
    };
    ctx.insert("notification", &notification);
    ctx
}

fn template_name(owner: &str, channel: ChannelKind, locale: &str, part: &str) -> String {
    let ext = if part == "html" { "html" } else { "txt" };
    format!("{owner}/{channel}/{locale}/{part}.{ext}")
}

/// Parses a duration (`30s`, `5m`, `24h`).
fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); use e.g. 30s, 5m, 24h"))
}

/// Parses `HH:MM` into seconds after midnight.
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 3600 + m * 60)
}

impl Rules {
    /// Reads, parses and compiles a rules file; every problem found is returned (not only the first).
    pub fn load(path: &Path) -> Result<Rules, Vec<RuleError>> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![RuleError {
                file: file.clone(),
                line: 1,
                column: 1,
                message: format!("cannot read the rules file: {e}"),
            }]
        })?;
        Rules::parse(&file, &text)
    }

    /// Parses and compiles the text of a rules file named `file`.
    pub fn parse(file: &str, text: &str) -> Result<Rules, Vec<RuleError>> {
        let src = Source { file, text };
        let doc: FileDoc = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            vec![src.error(span, e.message().to_owned())]
        })?;
        let mut errors = Vec::new();
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![".html"]);
        let default_locale = doc
            .default_locale
            .as_ref()
            .map_or_else(|| "en".to_owned(), |l| l.get_ref().clone());
        let mut rules = Vec::new();
        let mut names = BTreeSet::new();
        for r in &doc.rule {
            let span = r.span();
            let r = r.get_ref();
            let name = r.name.get_ref().clone();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                errors.push(src.error(
                    r.name.span(),
                    format!("rule name {name:?} must be letters, digits, `-` or `_`"),
                ));
            }
            if !names.insert(name.clone()) {
                errors.push(src.error(r.name.span(), format!("a second rule named {name:?}")));
            }
            let mut conditions = Vec::new();
            for w in &r.when {
                match Condition::parse(w.get_ref()) {
                    Ok(c) => conditions.push(c),
                    Err(e) => errors.push(src.error(w.span(), e)),
                }
            }
            let priority = Priority::parse(r.priority.get_ref()).unwrap_or_else(|| {
                errors.push(src.error(
                    r.priority.span(),
                    format!(
                        "unknown priority {:?}: use immediate, high, normal or digest",
                        r.priority.get_ref()
                    ),
                ));
                Priority::Normal
            });
            let channels = channels(&src, &r.channels, &mut errors);
            let fanout = match &r.fanout {
                None => 1,
                Some(f) => {
                    let n = *f.get_ref();
                    if n < 1 || n as usize > channels.len().max(1) {
                        errors.push(src.error(
                            f.span(),
                            format!(
                                "fanout must be between 1 and the number of channels, found {n}"
                            ),
                        ));
                        1
                    } else {
                        n as usize
                    }
                }
            };
            let dedupe_window = r.dedupe_window.as_ref().and_then(|d| {
                duration(d.get_ref())
                    .map_err(|e| errors.push(src.error(d.span(), e)))
                    .ok()
            });
            let escalation = r.escalation.as_ref().and_then(|e| {
                let doc = e.get_ref();
                let every = duration(doc.every.get_ref())
                    .map_err(|m| errors.push(src.error(doc.every.span(), m)))
                    .ok()?;
                let max = *doc.max.get_ref();
                if !(1..=100).contains(&max) {
                    errors.push(src.error(doc.max.span(), "max must be between 1 and 100"));
                    return None;
                }
                if every < Duration::from_secs(1) {
                    errors.push(src.error(
                        doc.every.span(),
                        "escalation steps must be at least 1s apart",
                    ));
                    return None;
                }
                if priority != Priority::Immediate {
                    errors.push(src.error(
                        e.span(),
                        "escalation is for immediate rules (critical events)",
                    ));
                }
                Some(Escalation {
                    every,
                    max: max as u32,
                })
            });
            let allow_pii: BTreeSet<String> =
                r.allow_pii.iter().map(|p| p.get_ref().clone()).collect();
            let schema: Option<Value> =
                catalog_schema(r.topic.get_ref()).and_then(|s| serde_json::from_str(s).ok());
            if let Some(schema) = &schema {
                let pii = pii_paths(schema);
                for p in &r.allow_pii {
                    if !pii.contains(p.get_ref()) {
                        errors.push(src.error(
                            p.span(),
                            format!(
                                "`{}` is not a PII field of {}",
                                p.get_ref(),
                                r.topic.get_ref()
                            ),
                        ));
                    }
                }
            }
            if let Some(k) = &r.dedupe_key {
                let tname = format!("{name}/dedupe_key.txt");
                if let Err(e) = tera.add_raw_template(&tname, k.get_ref()) {
                    errors.push(template_error(&src, k, &e));
                }
            }
            if r.dedupe_key.is_some() && dedupe_window.is_none() {
                errors.push(src.error(span.clone(), "dedupe_key needs a dedupe_window"));
            }
            let locales = templates(
                &src,
                &mut tera,
                &name,
                &channels,
                &r.templates,
                span.clone(),
                &default_locale,
                &mut errors,
            );
            let recipients = r.recipients.as_ref().map_or_else(
                || vec!["child".to_owned(), "household_id".to_owned()],
                |p| p.get_ref().split('.').map(str::to_owned).collect(),
            );
            let category = r
                .category
                .as_ref()
                .map_or_else(|| name.clone(), |c| c.get_ref().clone());
            let rule = Rule {
                name: name.clone(),
                topic: r.topic.get_ref().clone(),
                conditions,
                priority,
                category,
                channels,
                fanout,
                dedupe_window,
                dedupe_key: r
                    .dedupe_key
                    .as_ref()
                    .map(|_| format!("{name}/dedupe_key.txt")),
                escalation,
                allow_pii,
                recipients,
                locales,
            };
            if let Some(schema) = &schema {
                dry_run(&src, &tera, &rule, schema, r, &mut errors);
            }
            rules.push(Arc::new(rule));
        }
        let digest = doc.digest.as_ref().and_then(|d| {
            let window = match (&d.every, &d.at) {
                (Some(e), None) => duration(e.get_ref())
                    .map_err(|m| errors.push(src.error(e.span(), m)))
                    .ok()
                    .filter(|d| {
                        *d >= Duration::from_secs(1) || {
                            errors.push(src.error(e.span(), "a digest window is at least 1s"));
                            false
                        }
                    })
                    .map(DigestWindow::Every),
                (None, Some(a)) => match parse_hhmm(a.get_ref()) {
                    Some(s) => Some(DigestWindow::At(s)),
                    None => {
                        errors.push(src.error(a.span(), "expected a local time like 18:00"));
                        None
                    }
                },
                _ => {
                    errors
                        .push(src.error(d.channels.span(), "a digest has either `every` or `at`"));
                    None
                }
            }?;
            let channels = channels(&src, &d.channels, &mut errors);
            let locales = templates(
                &src,
                &mut tera,
                "digest",
                &channels,
                &d.templates,
                d.channels.span(),
                &default_locale,
                &mut errors,
            );
            Some(Digest {
                window,
                channels,
                locales,
            })
        });
        if doc.digest.is_none()
            && let Some(r) = doc
                .rule
                .iter()
                .find(|r| r.get_ref().priority.get_ref() == "digest")
        {
            errors.push(src.error(
                r.get_ref().priority.span(),
                "a digest rule needs a [digest] section (when, on which channels, with which templates)",
            ));
        }
        if let Some(d) = &digest {
            let items = Value::Array(vec![serde_json::json!({
                "event_id": "00000000-0000-0000-0000-000000000000", "rule": "sample", "title": "sample", "event": {}
            })]);
            for (channel, locales) in &d.locales {
                for locale in locales {
                    let ctx = digest_context(&items, sample_notification(locale));
                    for part in ["subject", "text", "html", "title", "body"] {
                        let tname = template_name("digest", *channel, locale, part);
                        if tera.get_template_names().any(|n| n == tname)
                            && let Err(e) = tera.render(&tname, &ctx)
                        {
                            let span = doc
                                .digest
                                .as_ref()
                                .and_then(|dd| {
                                    dd.templates
                                        .as_ref()?
                                        .get_ref()
                                        .get(channel.as_str())?
                                        .get(locale)?
                                        .get(part)
                                        .map(|s| s.span())
                                })
                                .unwrap_or(0..0);
                            errors.push(src.error(
                                span,
                                format!("digest template does not render: {}", describe(&e)),
                            ));
                        }
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(Rules {
                rules,
                digest,
                default_locale,
                tera,
            })
        } else {
            errors.sort_by_key(|e| (e.line, e.column));
            Err(errors)
        }
    }

    /// The first rule matching an event of `topic`.
    pub fn find(&self, topic: &str, event: &Value) -> Option<&Arc<Rule>> {
        self.rules.iter().find(|r| r.matches(topic, event))
    }

    /// Every topic a rule matches.
    pub fn topics(&self) -> BTreeSet<&str> {
        self.rules.iter().map(|r| r.topic.as_str()).collect()
    }

    /// The locale to use for `wanted` among `available`: exact, then the language, then the default, then any.
    pub fn pick_locale<'a>(&'a self, available: &'a [String], wanted: &str) -> Option<&'a str> {
        let lang = wanted.split(['-', '_']).next().unwrap_or(wanted);
        available
            .iter()
            .find(|l| l.eq_ignore_ascii_case(wanted))
            .or_else(|| available.iter().find(|l| l.eq_ignore_ascii_case(lang)))
            .or_else(|| available.iter().find(|l| **l == self.default_locale))
            .or_else(|| available.first())
            .map(String::as_str)
    }

    /// Renders the templates of `owner` (a rule name, or `digest`) for `channel` in `locale`.
    pub fn render(
        &self,
        owner: &str,
        channel: ChannelKind,
        locale: &str,
        ctx: &tera::Context,
    ) -> Result<Rendered, String> {
        let part = |p: &str| -> Result<Option<String>, String> {
            let name = template_name(owner, channel, locale, p);
            if !self.tera.get_template_names().any(|n| n == name) {
                return Ok(None);
            }
            self.tera
                .render(&name, ctx)
                .map(Some)
                .map_err(|e| describe(&e))
        };
        Ok(Rendered {
            subject: part("subject")?,
            text: part("text")?,
            html: part("html")?,
            title: part("title")?,
            body: part("body")?,
        })
    }

    /// Renders a rule's dedupe key.
    pub fn dedupe_key(&self, rule: &Rule, ctx: &tera::Context) -> Result<Option<String>, String> {
        match &rule.dedupe_key {
            None => Ok(None),
            Some(t) => self.tera.render(t, ctx).map(Some).map_err(|e| describe(&e)),
        }
    }
}

/// The context of a digest's templates: `items` (each with `event_id`, `rule`, `title`, and the event, PII kept
/// out for public channels as for rules) and `notification`.
pub fn digest_context(items: &Value, notification: Value) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("items", items);
    ctx.insert("notification", &notification);
    ctx
}

fn sample_notification(locale: &str) -> Value {
    serde_json::json!({
        "rule": "sample", "priority": "immediate", "event_id": "00000000-0000-0000-0000-000000000000",
        "guardian_id": "sample", "locale": locale, "ack_url": "https://example.invalid/ack",
        "step": 0, "channel": "sms"
    })
}

fn channels(
    src: &Source<'_>,
    list: &Spanned<Vec<Spanned<String>>>,
    errors: &mut Vec<RuleError>,
) -> Vec<ChannelKind> {
    if list.get_ref().is_empty() {
        errors.push(src.error(list.span(), "at least one channel"));
    }
    let mut out = Vec::new();
    for c in list.get_ref() {
        match ChannelKind::parse(c.get_ref()) {
            Some(k) if out.contains(&k) => {
                errors.push(src.error(c.span(), format!("channel {k} is listed twice")));
            }
            Some(k) => out.push(k),
            None => errors.push(src.error(
                c.span(),
                format!(
                    "unknown channel {:?}: use email, sms, push or webhook",
                    c.get_ref()
                ),
            )),
        }
    }
    out
}

/// Compiles the templates of `owner`; checks every channel has what it needs in the default locale.
#[allow(clippy::too_many_arguments)]
fn templates(
    src: &Source<'_>,
    tera: &mut tera::Tera,
    owner: &str,
    channels: &[ChannelKind],
    docs: &Option<TemplateDocs>,
    owner_span: Range<usize>,
    default_locale: &str,
    errors: &mut Vec<RuleError>,
) -> BTreeMap<ChannelKind, Vec<String>> {
    let mut locales: BTreeMap<ChannelKind, Vec<String>> = BTreeMap::new();
    let empty = BTreeMap::new();
    let (all, docs_span) = match docs {
        Some(d) => (d.get_ref(), d.span()),
        None => (&empty, owner_span),
    };
    for (channel_name, by_locale) in all {
        let Some(channel) = ChannelKind::parse(channel_name) else {
            errors.push(src.error(
                docs_span.clone(),
                format!("templates for unknown channel {channel_name:?}"),
            ));
            continue;
        };
        for (locale, parts) in by_locale {
            let (required, one_of) = channel.parts();
            let allowed: Vec<&str> = match channel {
                ChannelKind::Webhook => vec!["body"],
                _ => required.iter().chain(one_of).copied().collect(),
            };
            for (part, text) in parts {
                if !allowed.contains(&part.as_str()) {
                    errors.push(src.error(
                        text.span(),
                        format!(
                            "{channel} templates have {}, not {part:?}",
                            allowed.join(", ")
                        ),
                    ));
                    continue;
                }
                let name = template_name(owner, channel, locale, part);
                if let Err(e) = tera.add_raw_template(&name, text.get_ref()) {
                    errors.push(template_error(src, text, &e));
                }
            }
            let span = parts
                .values()
                .next()
                .map_or_else(|| docs_span.clone(), |t| t.span());
            for r in required {
                if !parts.contains_key(*r) {
                    errors.push(src.error(
                        span.clone(),
                        format!("{channel} template for {locale} needs `{r}`"),
                    ));
                }
            }
            if !one_of.is_empty() && !one_of.iter().any(|p| parts.contains_key(*p)) {
                errors.push(src.error(
                    span,
                    format!(
                        "{channel} template for {locale} needs {}",
                        one_of
                            .iter()
                            .map(|p| format!("`{p}`"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                ));
            }
            locales.entry(channel).or_default().push(locale.clone());
        }
    }
    for c in channels {
        let has = locales.get(c).is_some_and(|l| !l.is_empty());
        if !has && *c != ChannelKind::Webhook {
            errors.push(src.error(
                docs_span.clone(),
                format!("{owner}: no {c} template (add [..templates.{c}.{default_locale}])"),
            ));
        }
    }
    locales
}

/// Renders every template of a rule against a sample event of its topic's schema (PII removed for SMS and
/// push unless allowed), so a template that would fail at delivery fails here.
fn dry_run(
    src: &Source<'_>,
    tera: &tera::Tera,
    rule: &Rule,
    schema: &Value,
    doc: &RuleDoc,
    errors: &mut Vec<RuleError>,
) {
    let pii = pii_paths(schema);
    for (channel, locales) in &rule.locales {
        for locale in locales {
            let mut event = sample(schema);
            if channel.is_public() {
                strip_paths(&mut event, &pii, &rule.allow_pii);
            }
            let ctx = context(&event, sample_notification(locale));
            for part in ["subject", "text", "html", "title", "body"] {
                let name = template_name(&rule.name, *channel, locale, part);
                if !tera.get_template_names().any(|n| n == name) {
                    continue;
                }
                if let Err(e) = tera.render(&name, &ctx) {
                    let span = doc
                        .templates
                        .as_ref()
                        .and_then(|t| t.get_ref().get(channel.as_str()))
                        .and_then(|l| l.get(locale))
                        .and_then(|p| p.get(part))
                        .map_or(0..0, |s| s.span());
                    let mut message = describe(&e);
                    if channel.is_public()
                        && let Some(field) =
                            pii.iter().find(|p| message.contains(&format!("`{p}`")))
                    {
                        message = format!(
                            "`{field}` is PII and may not appear in {channel} templates (a lock screen is not private) unless the rule lists it in allow_pii: {message}"
                        );
                    }
                    errors.push(src.error(span, format!("template does not render: {message}")));
                }
            }
        }
    }
}

/// Tera's error with its causes, on one line.
fn describe(e: &tera::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out.replace('\n', " ")
}

/// A template's parse error, positioned at its line inside the rules file.
fn template_error(src: &Source<'_>, text: &Spanned<String>, e: &tera::Error) -> RuleError {
    let message = describe(e);
    let (mut line, mut column) = src.at(text.span().start);
    // Tera says `--> line:column` inside the template; the value starts after its opening quote(s).
    if let Some(pos) = message.find("--> ") {
        let rest = &message[pos + 4..];
        let mut it = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty());
        if let (Some(l), Some(c)) = (it.next(), it.next())
            && let (Ok(l), Ok(c)) = (l.parse::<usize>(), c.parse::<usize>())
        {
            let raw = &src.text[text.span()];
            let multiline = raw.starts_with("\"\"\"") || raw.starts_with("'''");
            let newline_after_quotes = multiline && raw[3..].starts_with('\n');
            if l > 1 || newline_after_quotes {
                line += l - 1 + usize::from(newline_after_quotes);
                column = c;
            } else {
                column += c - 1 + if multiline { 3 } else { 1 };
            }
        }
    }
    RuleError {
        file: src.file.to_owned(),
        line,
        column,
        message: format!("template does not compile: {message}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    const GOOD: &str = r#"
default_locale = "en"

[digest]
every = "1h"
channels = ["email"]
[digest.templates.email.en]
subject = "Digest"
text = "{% for i in items %}{{ i.title }};{% endfor %}"

[[rule]]
name = "critical"
topic = "child.safety-violation"
when = ["severity in [high, critical]", "confidence >= 0.5"]
priority = "immediate"
category = "safety"
channels = ["sms", "push", "email"]
fanout = 2
escalation = { every = "5m", max = 3 }
[rule.templates.sms.en]
text = "Alert {{ severity }} {{ notification.ack_url }}"
[rule.templates.push.en]
title = "Safety alert"
body = "{{ category }}"
[rule.templates.email.en]
subject = "Safety alert"
text = "{{ excerpt }}"
html = "<p>{{ excerpt }}</p>"
"#;

    #[test]
    fn a_good_file_compiles_and_matches() {
        let r = Rules::parse("rules.toml", GOOD).unwrap();
        let rule = &r.rules[0];
        assert_eq!(rule.fanout, 2);
        assert_eq!(
            rule.escalation,
            Some(Escalation {
                every: Duration::from_secs(300),
                max: 3
            })
        );
        let ev = json!({"severity": "CRITICAL", "confidence": 0.9});
        assert!(rule.matches("child.safety-violation", &ev));
        assert!(!rule.matches(
            "child.safety-violation",
            &json!({"severity": "LOW", "confidence": 0.9})
        ));
        assert!(!rule.matches("other", &ev));
        let ctx = context(
            &json!({"severity": "HIGH", "category": "X", "excerpt": "<b>"}),
            json!({"ack_url": "http://a"}),
        );
        let out = r
            .render("critical", ChannelKind::Email, "en", &ctx)
            .unwrap();
        assert_eq!(
            out.html.as_deref(),
            Some("<p>&lt;b&gt;</p>"),
            "HTML is escaped"
        );
        assert_eq!(out.text.as_deref(), Some("<b>"), "text is not");
        assert_eq!(
            r.pick_locale(&["en".into(), "fr".into()], "fr-CA"),
            Some("fr")
        );
        assert_eq!(r.pick_locale(&["en".into()], "de"), Some("en"));
    }

    #[test]
    fn pii_in_an_sms_template_is_a_positioned_error() {
        let bad = GOOD.replace(
            "text = \"Alert {{ severity }} {{ notification.ack_url }}\"",
            "text = \"Alert {{ excerpt }}\"",
        );
        let e = Rules::parse("rules.toml", &bad).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].line, e[0].file.as_str()), (21, "rules.toml"));
        assert!(e[0].message.contains("`excerpt` is PII"), "{}", e[0]);
        // Allowed explicitly, it renders.
        let ok = bad.replace("fanout = 2", "fanout = 2\nallow_pii = [\"excerpt\"]");
        Rules::parse("rules.toml", &ok).unwrap();
    }

    #[test]
    fn broken_templates_and_rules_are_errors_with_positions() {
        let bad = GOOD
            .replace("priority = \"immediate\"", "priority = \"urgent\"")
            .replace("body = \"{{ category }}\"", "body = \"{{ category \"")
            .replace("\"confidence >= 0.5\"", "\"confidence ~ 0.5\"");
        let e = Rules::parse("r.toml", &bad).unwrap_err();
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("r.toml:14:") && t.contains("unknown operator")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("r.toml:15:") && t.contains("unknown priority")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("r.toml:24:") && t.contains("does not compile")),
            "{text:?}"
        );
        // TOML syntax errors carry their position too.
        let e = Rules::parse("r.toml", "[[rule]]\nname = \n").unwrap_err();
        assert_eq!(e[0].line, 2, "{e:?}");
        // A digest rule without a digest section.
        let e = Rules::parse(
            "r.toml",
            "[[rule]]\nname='m'\ntopic='t'\npriority='digest'\nchannels=['email']\n[rule.templates.email.en]\nsubject='s'\ntext='t'\n",
        )
        .unwrap_err();
        assert!(e[0].message.contains("[digest]"), "{e:?}");
    }

    #[test]
    fn pii_paths_follow_records_unions_and_arrays() {
        let schema: Value =
            serde_json::from_str(catalog_schema("child.profile-updated").unwrap()).unwrap();
        let p = pii_paths(&schema);
        assert!(
            p.contains("changes.old_value") && p.contains("changes.new_value"),
            "{p:?}"
        );
        let schema: Value =
            serde_json::from_str(catalog_schema("child.registered").unwrap()).unwrap();
        let p = pii_paths(&schema);
        assert!(
            p.contains("guardian_phone") && p.contains("locale.time_zone"),
            "{p:?}"
        );
        let mut v =
            json!({"changes": [{"field_path": "a", "old_value": "x"}], "child": {"child_id": "c"}});
        strip_paths(
            &mut v,
            &pii_paths(
                &serde_json::from_str(catalog_schema("child.profile-updated").unwrap()).unwrap(),
            ),
            &BTreeSet::new(),
        );
        assert_eq!(
            v,
            json!({"changes": [{"field_path": "a"}], "child": {"child_id": "c"}})
        );
    }
}
