//! The sink connectors built into the runtime, and the plugin list.

pub mod file;

use std::sync::Arc;

use crate::connect::sink::SinkPlugin;

/// Every built-in sink plugin.
pub fn builtin() -> Vec<Arc<dyn SinkPlugin>> {
    vec![Arc::new(file::FilePlugin)]
}

/// The plugin for a `connector.class` value (name or alias).
pub fn find(class: &str) -> Option<Arc<dyn SinkPlugin>> {
    builtin()
        .into_iter()
        .find(|p| p.name() == class || p.aliases().contains(&class))
}
