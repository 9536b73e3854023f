//! The process-wide log subscriber: human-readable text (colored on a terminal only) or one JSON object per
//! line, on stderr, behind
//! tracing-subscriber's reload layer so that `/admin/loggers` can change the filter at run time.
//!
//! The filter is kept as Kafka Connect's loggers are: a root level and levels of named loggers (tracing
//! targets, module paths such as `ursa::connect::pipeline`; a target matches its submodules too).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::connect::api::LoggerLevel;
use crate::connect::config::worker::LogFormat;

/// The filter when neither the worker config nor `RUST_LOG` sets one.
const DEFAULT_FILTER: &str = "info";

/// The levels `/admin/loggers` takes (Kafka Connect's log4j names), as tracing's filter names them.
const LEVELS: &[(&str, &str)] = &[
    ("OFF", "off"),
    ("FATAL", "error"),
    ("ERROR", "error"),
    ("WARN", "warn"),
    ("INFO", "info"),
    ("DEBUG", "debug"),
    ("TRACE", "trace"),
    ("ALL", "trace"),
];

/// The loggers' levels: the root's and the named ones', with when each was last set through the API.
#[derive(Debug, Clone)]
struct Levels {
    root: (String, i64),
    named: BTreeMap<String, (String, i64)>,
    /// Directives kept as given (span or field filters), which have no logger name.
    other: Vec<String>,
}

impl Levels {
    /// From `EnvFilter` directives (`info,ursa=debug`).
    fn parse(directives: &str) -> Levels {
        let mut levels = Levels {
            root: ("INFO".to_owned(), 0),
            named: BTreeMap::new(),
            other: Vec::new(),
        };
        for d in directives
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            match d.split_once('=') {
                None if level_name(d).is_some() => {
                    levels.root = (level_name(d).unwrap_or("INFO").to_owned(), 0);
                }
                Some((target, level))
                    if !target.contains(['[', '{']) && level_name(level).is_some() =>
                {
                    levels.named.insert(
                        target.to_owned(),
                        (level_name(level).unwrap_or("INFO").to_owned(), 0),
                    );
                }
                _ => levels.other.push(d.to_owned()),
            }
        }
        levels
    }

    /// Back to `EnvFilter` directives.
    fn directives(&self) -> String {
        let mut out = vec![tracing_level(&self.root.0).to_owned()];
        out.extend(
            self.named
                .iter()
                .map(|(t, (l, _))| format!("{t}={}", tracing_level(l))),
        );
        out.extend(self.other.iter().cloned());
        out.join(",")
    }
}

/// The log4j name of a level given in either spelling (`debug`, `DEBUG`, `warning` is not one).
fn level_name(level: &str) -> Option<&'static str> {
    let upper = level.trim().to_ascii_uppercase();
    LEVELS
        .iter()
        .find(|(name, _)| *name == upper)
        .map(|(name, _)| match *name {
            "FATAL" => "ERROR",
            "ALL" => "TRACE",
            other => other,
        })
}

fn tracing_level(name: &str) -> &'static str {
    LEVELS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("info", |(_, t)| t)
}

/// What `/admin/loggers` controls: the levels and, once [`init_logging`] installed the subscriber, the
/// handle that swaps its filter.
struct Control {
    levels: Mutex<Levels>,
    reload: OnceLock<reload::Handle<EnvFilter, Registry>>,
}

static CONTROL: OnceLock<Control> = OnceLock::new();

fn control() -> &'static Control {
    CONTROL.get_or_init(|| Control {
        levels: Mutex::new(Levels::parse(
            &std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_FILTER.to_owned()),
        )),
        reload: OnceLock::new(),
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The loggers with a level of their own (not the root), as `GET /admin/loggers` lists them.
pub fn loggers() -> BTreeMap<String, LoggerLevel> {
    let levels = control()
        .levels
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    levels
        .named
        .iter()
        .map(|(name, (level, at))| {
            (
                name.clone(),
                LoggerLevel {
                    level: level.clone(),
                    last_modified: *at,
                },
            )
        })
        .collect()
}

/// One logger's level (`root`: the default); `None` for a logger without a level of its own.
pub fn logger(name: &str) -> Option<LoggerLevel> {
    let levels = control()
        .levels
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let (level, at) = if name == "root" {
        Some(&levels.root)
    } else {
        levels.named.get(name)
    }?;
    Some(LoggerLevel {
        level: level.clone(),
        last_modified: *at,
    })
}

/// Sets `name`'s level (`root`: the default level) from now on; returns the loggers changed.
pub fn set_level(name: &str, level: &str) -> Result<Vec<String>, String> {
    let name = name.trim();
    if name.is_empty() || name.contains([',', '=', '[', '{', ' ']) {
        return Err(format!("Invalid logger name {name:?}"));
    }
    let Some(level) = level_name(level) else {
        return Err(format!(
            "Invalid log level '{level}': expected one of OFF, ERROR, WARN, INFO, DEBUG, TRACE"
        ));
    };
    let control = control();
    let mut levels = control
        .levels
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let entry = (level.to_owned(), now_ms());
    if name == "root" {
        levels.root = entry;
    } else {
        levels.named.insert(name.to_owned(), entry);
    }
    if let Some(handle) = control.reload.get() {
        let filter = EnvFilter::try_new(levels.directives()).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())?;
    }
    tracing::info!(logger = name, level, "log level changed");
    Ok(vec![name.to_owned()])
}

/// Installs the global `tracing` subscriber: `format` from the worker config, `filter` an `EnvFilter`
/// directive (`info,ursa=debug`); without one, `RUST_LOG`, else `info`. An invalid filter falls back to
/// `info` with a warning. Idempotent: once a global subscriber is set, later calls do nothing. The filter
/// can be changed afterwards with [`set_level`].
pub fn init_logging(format: LogFormat, filter: Option<&str>) {
    let from_env = std::env::var("RUST_LOG").ok();
    let wanted = filter.map(str::to_owned).or(from_env);
    let (directives, invalid) = match wanted {
        Some(d) => match EnvFilter::try_new(&d) {
            Ok(_) => (d, None),
            Err(error) => (DEFAULT_FILTER.to_owned(), Some((d, error))),
        },
        None => (DEFAULT_FILTER.to_owned(), None),
    };
    let levels = Levels::parse(&directives);
    let env_filter =
        EnvFilter::try_new(levels.directives()).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (layer, handle) = reload::Layer::new(env_filter);
    let registry = tracing_subscriber::registry().with(layer);
    let installed = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init()
            .is_ok(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
            .is_ok(),
    };
    if installed {
        let control = control();
        *control
            .levels
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = levels;
        let _ = control.reload.set(handle);
    }
    if let (true, Some((directives, error))) = (installed, invalid) {
        tracing::warn!(filter = directives, %error, "invalid log filter; using \"info\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_directives_as_loggers() {
        let l = Levels::parse("warn,ursa::connect=debug,rdkafka=TRACE,[span]=info");
        assert_eq!(l.root.0, "WARN");
        assert_eq!(l.named["ursa::connect"].0, "DEBUG");
        assert_eq!(l.named["rdkafka"].0, "TRACE");
        assert_eq!(l.other, vec!["[span]=info"]);
        assert_eq!(
            l.directives(),
            "warn,rdkafka=trace,ursa::connect=debug,[span]=info"
        );
        assert_eq!(level_name("fatal"), Some("ERROR"));
        assert_eq!(level_name("loud"), None);
    }
}
