//! The process-wide log subscriber: human-readable text or one JSON object per line, on stderr.

use tracing_subscriber::EnvFilter;

use crate::connect::config::worker::LogFormat;

/// The filter when neither the worker config nor `RUST_LOG` sets one.
const DEFAULT_FILTER: &str = "info";

/// Installs the global `tracing` subscriber: `format` from the worker config, `filter` an `EnvFilter`
/// directive (`info,ursa=debug`); without one, `RUST_LOG`, else `info`. An invalid filter falls back to
/// `info` with a warning. Idempotent: once a global subscriber is set, later calls do nothing.
pub fn init_logging(format: LogFormat, filter: Option<&str>) {
    let (env_filter, invalid) = match filter {
        Some(directives) => match EnvFilter::try_new(directives) {
            Ok(f) => (f, None),
            Err(error) => (EnvFilter::new(DEFAULT_FILTER), Some((directives, error))),
        },
        None => (
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)),
            None,
        ),
    };
    let installed = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(env_filter)
            .with_writer(std::io::stderr)
            .try_init()
            .is_ok(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(env_filter)
            .with_writer(std::io::stderr)
            .try_init()
            .is_ok(),
    };
    if let (true, Some((directives, error))) = (installed, invalid) {
        tracing::warn!(filter = directives, %error, "invalid log filter; using \"info\"");
    }
}
