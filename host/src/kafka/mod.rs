//! Kafka clusters as pipeline sources and sinks (librdkafka, through `rdkafka`).
//!
//! Several `rustmq-broker` processes running the same pipeline against one cluster
//! share its work through the cluster's own consumer groups: each pipeline is a
//! group, each broker a member, the partitions are split among them and move on
//! worker loss. See `docs/scaling.md`.
//!
//! # Layout
//! - `config`: `[kafka]` in `broker.toml`.
//! - `progress`: positions, assignment and errors shared by a source and its sink;
//!   the Kafka part of a pipeline's status and metrics.
//! - `record`: messages to and from Kafka records.
//! - `source`: [`source::KafkaSource`], a group consumer as a pipeline source.
//! - `sink`: [`sink::TransactionalSink`] (exactly-once, one Kafka transaction per
//!   batch) and [`sink::StagedSink`] (at-least-once: outputs acknowledged first,
//!   offsets committed after).
//!
//! [`Clusters`] holds the declared clusters, checked at start, and builds their
//! clients.

pub mod config;
pub mod progress;
pub mod record;
pub mod sink;
pub mod source;

use std::collections::BTreeMap;
use std::path::Path;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use serde::Serialize;

pub use config::{ClusterConfig, KafkaConfig, Transactions};

/// The name of the file in the data directory that keeps the generated worker id.
pub const WORKER_ID_FILE: &str = "worker-id";

/// A pipeline's delivery guarantee, as its status reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Every source message's effects land once (one transaction for outputs,
    /// errors and the source position).
    ExactlyOnce,
    /// Nothing is lost; after a crash, the messages of the last uncommitted batch
    /// may be written again.
    AtLeastOnce,
}

impl Delivery {
    /// `exactly_once` / `at_least_once`.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::ExactlyOnce => "exactly_once",
            Delivery::AtLeastOnce => "at_least_once",
        }
    }
}

/// Why the Kafka configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// librdkafka refused a property.
    #[error("kafka.clusters.{cluster}: librdkafka refused the client configuration: {message}; see https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md")]
    Property {
        /// The cluster.
        cluster: String,
        /// librdkafka's words.
        message: String,
    },
    /// The worker id could not be read or written.
    #[error("cannot keep the worker id in {path}: {source}; set [kafka] worker_id instead")]
    WorkerId {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The declared clusters, checked, and this broker's worker id.
#[derive(Debug, Clone, Default)]
pub struct Clusters {
    worker_id: String,
    clusters: BTreeMap<String, ClusterConfig>,
}

/// Which client a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A pipeline's group consumer.
    Consumer,
    /// A pipeline's producer.
    Producer,
}

impl Clusters {
    /// Checks every cluster's client properties with librdkafka (no network
    /// needed) and settles the worker id (configured, or kept in `data_dir`).
    pub fn new(config: &KafkaConfig, data_dir: &Path) -> Result<Clusters, KafkaError> {
        let worker_id = match &config.worker_id {
            Some(id) => id.clone(),
            None if config.clusters.is_empty() => String::new(),
            None => stored_worker_id(data_dir)?,
        };
        let clusters = Clusters {
            worker_id,
            clusters: config.clusters.clone(),
        };
        for name in config.clusters.keys() {
            for role in [Role::Consumer, Role::Producer] {
                let mut cfg = clusters.client_config(name, role).expect("declared");
                if role == Role::Consumer {
                    cfg.set("group.id", "rustmq-etl.config-check");
                }
                // Creating a client parses and checks every property; it connects
                // lazily, so this works with the cluster down.
                let checked = match role {
                    Role::Consumer => cfg.create::<rdkafka::consumer::BaseConsumer>().map(|_| ()),
                    Role::Producer => cfg.create::<BaseProducer>().map(|p| {
                        p.purge(rdkafka::producer::PurgeConfig::default().queue());
                    }),
                };
                checked.map_err(|e| KafkaError::Property {
                    cluster: name.clone(),
                    message: e.to_string(),
                })?;
            }
        }
        Ok(clusters)
    }

    /// Whether a cluster of that name is declared.
    pub fn has(&self, name: &str) -> bool {
        self.clusters.contains_key(name)
    }

    /// A declared cluster's settings.
    pub fn get(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.get(name)
    }

    /// This broker's worker id ("" when no cluster is declared).
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// A client configuration for `role` on cluster `name`: the broker's settings
    /// first, then the cluster's pass-through properties (reserved ones were refused
    /// when the configuration was loaded).
    pub fn client_config(&self, name: &str, role: Role) -> Option<ClientConfig> {
        let cluster = self.clusters.get(name)?;
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &cluster.bootstrap_servers)
            .set("client.id", format!("rustmq-etl-{}", self.worker_id));
        match role {
            Role::Consumer => {
                cfg.set("enable.auto.commit", "false")
                    .set("enable.auto.offset.store", "false")
                    .set("isolation.level", "read_committed")
                    .set("enable.partition.eof", "false")
                    // The high watermarks behind the lag come from the statistics,
                    // which librdkafka takes from fetch responses.
                    .set("statistics.interval.ms", "1000");
            }
            Role::Producer => {
                cfg.set("enable.idempotence", "true")
                    .set("acks", "all")
                    // The Java client's partitioner: a key lands on the same
                    // partition whichever client wrote it.
                    .set("partitioner", "murmur2_random");
            }
        }
        for (k, v) in &cluster.properties {
            cfg.set(k, v);
        }
        let extra = match role {
            Role::Consumer => &cluster.consumer_properties,
            Role::Producer => &cluster.producer_properties,
        };
        for (k, v) in extra {
            cfg.set(k, v);
        }
        Some(cfg)
    }
}

/// The worker id kept in `data_dir`, generated on first use: stable across restarts
/// (a restarted worker fences its own unfinished transactions and gets its
/// partitions back), distinct between brokers (each has its own data directory).
fn stored_worker_id(data_dir: &Path) -> Result<String, KafkaError> {
    let path = data_dir.join(WORKER_ID_FILE);
    let err = |source| KafkaError::WorkerId {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if config::valid_name(text.trim()) => return Ok(text.trim().to_string()),
        Ok(_) => {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the file does not hold a worker id",
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let seed = format!(
        "{}:{}:{:?}",
        std::process::id(),
        crate::message::now_millis(),
        std::time::Instant::now()
    );
    let id = format!(
        "worker-{}",
        &blake3::hash(seed.as_bytes()).to_hex().as_str()[..12]
    );
    std::fs::create_dir_all(data_dir).map_err(err)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &id).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(props: &str) -> KafkaConfig {
        toml::from_str(&format!(
            "[clusters.main]\nbootstrap_servers = \"127.0.0.1:1\"\n{props}"
        ))
        .unwrap()
    }

    #[test]
    fn unknown_librdkafka_properties_are_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let err = Clusters::new(
            &config("properties = { \"no.such.property\" = \"1\" }"),
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("kafka.clusters.main"), "{err}");
        assert!(err.contains("no.such.property"), "{err}");
    }

    #[test]
    fn tls_sasl_and_zstd_settings_are_accepted() {
        // Built in (OpenSSL vendored, zstd): a cluster behind SASL_SSL works.
        let dir = tempfile::tempdir().unwrap();
        Clusters::new(
            &config(
                "properties = { \"security.protocol\" = \"SASL_SSL\", \"sasl.mechanism\" = \"SCRAM-SHA-512\", \"sasl.username\" = \"u\", \"sasl.password\" = \"p\" }\nproducer_properties = { \"compression.type\" = \"zstd\" }",
            ),
            dir.path(),
        )
        .unwrap();
    }

    #[test]
    fn the_generated_worker_id_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = Clusters::new(&config(""), dir.path()).unwrap();
        let again = Clusters::new(&config(""), dir.path()).unwrap();
        assert!(first.worker_id().starts_with("worker-"));
        assert_eq!(first.worker_id(), again.worker_id());
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            Clusters::new(&config(""), other.path())
                .unwrap()
                .worker_id(),
            first.worker_id()
        );
    }
}
