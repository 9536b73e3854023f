//! Planning topic changes: the catalog against what the broker has. Never deletes, never shrinks.

use std::collections::BTreeMap;
use std::fmt;

use ursa_catalog::Catalog;

/// A topic as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingTopic {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: usize,
    /// Effective values of every config (including broker defaults).
    pub effective: BTreeMap<String, String>,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create a topic.
    Create {
        /// Name.
        topic: String,
        /// Partitions.
        partitions: usize,
        /// Replication factor.
        replication_factor: i16,
        /// Topic configs.
        configs: BTreeMap<String, String>,
    },
    /// Add partitions.
    AddPartitions {
        /// Name.
        topic: String,
        /// Current count.
        from: usize,
        /// New count.
        to: usize,
    },
    /// Set configs (only these keys; other overrides stay).
    AlterConfigs {
        /// Name.
        topic: String,
        /// (key, current effective value, new value).
        changes: Vec<(String, Option<String>, String)>,
    },
    /// Something the catalog asks that is not done (e.g. fewer partitions).
    Refuse {
        /// Name.
        topic: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Create {
                topic,
                partitions,
                replication_factor,
                configs,
            } => {
                write!(
                    f,
                    "+ create topic {topic} (partitions {partitions}, replication factor {replication_factor})"
                )?;
                for (k, v) in configs {
                    write!(f, "\n    {k} = {v}")?;
                }
                Ok(())
            }
            Action::AddPartitions { topic, from, to } => {
                write!(f, "~ topic {topic}: partitions {from} -> {to}")
            }
            Action::AlterConfigs { topic, changes, .. } => {
                write!(f, "~ topic {topic}: configs")?;
                for (k, old, new) in changes {
                    write!(
                        f,
                        "\n    {k}: {} -> {new}",
                        old.as_deref().unwrap_or("(unset)")
                    )?;
                }
                Ok(())
            }
            Action::Refuse { topic, reason } => write!(f, "! topic {topic}: {reason}"),
        }
    }
}

/// The changes that bring the broker to the catalog, in catalog order.
pub fn plan(catalog: &Catalog, existing: &[ExistingTopic]) -> Vec<Action> {
    let mut actions = Vec::new();
    for t in &catalog.topics {
        let wanted = t.topic_configs();
        let partitions = t.partitions as usize;
        let Some(cur) = existing.iter().find(|e| e.name == t.name) else {
            actions.push(Action::Create {
                topic: t.name.clone(),
                partitions,
                replication_factor: t.replication_factor,
                configs: wanted,
            });
            continue;
        };
        if cur.partitions < partitions {
            actions.push(Action::AddPartitions {
                topic: t.name.clone(),
                from: cur.partitions,
                to: partitions,
            });
        } else if cur.partitions > partitions {
            actions.push(Action::Refuse {
                topic: t.name.clone(),
                reason: format!(
                    "has {} partitions, the catalog says {partitions}: partitions are never removed (Kafka cannot shrink a topic)",
                    cur.partitions
                ),
            });
        }
        let changes: Vec<(String, Option<String>, String)> = wanted
            .iter()
            .filter(|(k, v)| cur.effective.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), cur.effective.get(k).cloned(), v.clone()))
            .collect();
        if !changes.is_empty() {
            actions.push(Action::AlterConfigs {
                topic: t.name.clone(),
                changes,
            });
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn catalog() -> Catalog {
        Catalog::parse(
            Path::new("t.toml"),
            "[defaults]\nretention = \"1d\"\n[topics.a]\nvalue = \"x.A\"\npartitions = 6\n[topics.b]\nvalue = \"x.B\"\npartitions = 2\n[topics.c]\nvalue = \"x.C\"\n",
        )
        .unwrap()
    }

    fn existing(name: &str, partitions: usize, effective: &[(&str, &str)]) -> ExistingTopic {
        let map = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        ExistingTopic {
            name: name.into(),
            partitions,
            effective: map(effective),
        }
    }

    #[test]
    fn creates_grows_alters_and_refuses_to_shrink() {
        let cur = vec![
            existing(
                "a",
                3,
                &[("cleanup.policy", "delete"), ("retention.ms", "86400000")],
            ),
            existing(
                "b",
                4,
                &[
                    ("cleanup.policy", "delete"),
                    ("retention.ms", "604800000"),
                    ("segment.ms", "1000"),
                ],
            ),
        ];
        let actions = plan(&catalog(), &cur);
        assert_eq!(actions.len(), 4, "{actions:#?}");
        assert_eq!(
            actions[0],
            Action::AddPartitions {
                topic: "a".into(),
                from: 3,
                to: 6
            }
        );
        assert!(matches!(&actions[1], Action::Refuse { topic, .. } if topic == "b"));
        match &actions[2] {
            Action::AlterConfigs { topic, changes } => {
                assert_eq!(topic, "b");
                assert_eq!(
                    changes,
                    &vec![(
                        "retention.ms".to_owned(),
                        Some("604800000".to_owned()),
                        "86400000".to_owned()
                    )]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&actions[3], Action::Create { topic, partitions: 3, .. } if topic == "c"));
    }

    #[test]
    fn an_applied_catalog_plans_nothing() {
        let cfg = [("cleanup.policy", "delete"), ("retention.ms", "86400000")];
        let cur = vec![
            existing("a", 6, &cfg),
            existing("b", 2, &cfg),
            existing("c", 3, &cfg),
        ];
        assert_eq!(plan(&catalog(), &cur), vec![]);
    }
}
