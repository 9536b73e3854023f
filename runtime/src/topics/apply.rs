//! Reading topics from the broker and applying a plan with the Kafka admin API.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::plan::{Action, ExistingTopic};

/// Why talking to the broker failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The broker could not be reached or refused a request.
    #[error("{0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A topic-level error.
    #[error("topic {topic}: {message}")]
    Topic {
        /// The topic.
        topic: String,
        /// The broker's error.
        message: String,
    },
}

/// An admin connection to a cluster.
pub struct Admin {
    admin: AdminClient<DefaultClientContext>,
    metadata: BaseConsumer,
    timeout: Duration,
}

impl Admin {
    /// Connects (lazily; the first request fails if the cluster is unreachable within `timeout`).
    pub fn new(bootstrap_servers: &str, timeout: Duration) -> Result<Admin, AdminError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", bootstrap_servers);
        Self::with_config(config, timeout)
    }

    /// Connects with a full client config (`bootstrap.servers` and e.g. SASL/TLS properties).
    pub fn with_config(mut config: ClientConfig, timeout: Duration) -> Result<Admin, AdminError> {
        config.set(
            "socket.connection.setup.timeout.ms",
            timeout.as_millis().to_string(),
        );
        Ok(Admin {
            admin: config.create()?,
            metadata: config.create()?,
            timeout,
        })
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .operation_timeout(Some(self.timeout))
            .request_timeout(Some(self.timeout))
    }

    /// The topics named in `names` that exist, with partition counts and configs.
    pub async fn describe(&self, names: &[String]) -> Result<Vec<ExistingTopic>, AdminError> {
        let metadata =
            tokio::task::block_in_place(|| self.metadata.fetch_metadata(None, self.timeout))?;
        let present: BTreeMap<String, usize> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_owned(), t.partitions().len()))
            .collect();
        let wanted: Vec<&String> = names.iter().filter(|n| present.contains_key(*n)).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let specs: Vec<ResourceSpecifier<'_>> =
            wanted.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
        let results = self.admin.describe_configs(&specs, &self.options()).await?;
        let mut out = Vec::new();
        for (name, result) in wanted.into_iter().zip(results) {
            let resource = result.map_err(|code| AdminError::Topic {
                topic: name.clone(),
                message: code.to_string(),
            })?;
            let effective: BTreeMap<String, String> = resource
                .entries
                .iter()
                .filter_map(|e| e.value.as_ref().map(|v| (e.name.clone(), v.clone())))
                .collect();
            out.push(ExistingTopic {
                name: name.clone(),
                partitions: present[name],
                effective,
            });
        }
        Ok(out)
    }

    /// Applies one action.
    pub async fn apply(&self, action: &Action) -> Result<(), AdminError> {
        let check =
            |topic: &str,
             results: Vec<Result<String, (String, rdkafka::types::RDKafkaErrorCode)>>| {
                results.into_iter().try_for_each(|r| {
                    r.map(|_| ()).map_err(|(_, code)| AdminError::Topic {
                        topic: topic.to_owned(),
                        message: code.to_string(),
                    })
                })
            };
        match action {
            Action::Create {
                topic,
                partitions,
                replication_factor,
                configs,
            } => {
                let mut t = NewTopic::new(
                    topic,
                    *partitions as i32,
                    TopicReplication::Fixed(i32::from(*replication_factor)),
                );
                for (k, v) in configs {
                    t = t.set(k, v);
                }
                check(
                    topic,
                    self.admin.create_topics([&t], &self.options()).await?,
                )
            }
            Action::AddPartitions { topic, to, .. } => {
                let p = NewPartitions::new(topic, *to);
                check(
                    topic,
                    self.admin.create_partitions([&p], &self.options()).await?,
                )
            }
            Action::AlterConfigs { topic, changes } => {
                let set: BTreeMap<String, String> = changes
                    .iter()
                    .map(|(k, _, v)| (k.clone(), v.clone()))
                    .collect();
                tokio::task::block_in_place(|| {
                    super::incremental::set_topic_configs(&self.admin, topic, &set, self.timeout)
                })
                .map_err(|message| AdminError::Topic {
                    topic: topic.clone(),
                    message,
                })
            }
            Action::Refuse { .. } => Ok(()),
        }
    }
}
