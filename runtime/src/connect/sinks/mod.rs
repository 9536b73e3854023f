//! The sink connectors built into the runtime (each its own crate under `connectors/`), and the plugin list.

use std::sync::Arc;

use crate::connect::sink::SinkPlugin;

/// Every built-in sink plugin.
pub fn builtin() -> Vec<Arc<dyn SinkPlugin>> {
    vec![
        Arc::new(ursa_connector_file::FilePlugin),
        Arc::new(ursa_connector_audit::AuditPlugin),
        Arc::new(ursa_connector_metrics::MetricsPlugin),
        Arc::new(ursa_connector_notify::NotifyPlugin),
    ]
}

/// The plugin for a `connector.class` value (name or alias).
pub fn find(class: &str) -> Option<Arc<dyn SinkPlugin>> {
    builtin()
        .into_iter()
        .find(|p| p.name() == class || p.aliases().contains(&class))
}
