//! `[kafka]` in `broker.toml`: the clusters pipelines may read and write, and this
//! broker's name among the workers sharing them.
//!
//! ```toml
//! [kafka]
//! worker_id = "etl-1"            # optional; default: generated once, kept in the data dir
//!
//! [kafka.clusters.main]
//! bootstrap_servers = "kafka-1:9092,kafka-2:9092"
//! transactions = "auto"          # auto | required | off
//! [kafka.clusters.main.properties]   # librdkafka properties, passed through
//! "security.protocol" = "SASL_SSL"
//! "sasl.mechanism" = "PLAIN"
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Properties the broker sets itself: a pipeline's delivery guarantee depends on them,
/// so a passed-through value would silently break it.
pub const RESERVED_PROPERTIES: [(&str, &str); 10] = [
    ("bootstrap.servers", "set bootstrap_servers instead"),
    ("metadata.broker.list", "set bootstrap_servers instead"),
    (
        "group.id",
        "set consumer_group in the pipeline definition instead",
    ),
    (
        "group.instance.id",
        "it is the worker id ([kafka] worker_id) when static_membership = true",
    ),
    (
        "enable.auto.commit",
        "offsets are committed with the pipeline's outputs",
    ),
    (
        "enable.auto.offset.store",
        "offsets are committed with the pipeline's outputs",
    ),
    (
        "transactional.id",
        "it is derived from the pipeline and the worker id",
    ),
    ("isolation.level", "pipelines read committed records only"),
    ("enable.idempotence", "the producer is always idempotent"),
    (
        "auto.offset.reset",
        "set start_from in the pipeline definition instead",
    ),
];

/// `[kafka]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// This broker's stable name among the workers of a cluster: its consumer-group
    /// instance id and part of its transactional ids. Two running brokers must not
    /// share one. Default: generated on first start and kept in the data directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// The clusters, by the name pipelines use in `kafka://NAME/topic`.
    pub clusters: BTreeMap<String, ClusterConfig>,
}

/// `[kafka.clusters.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// Whether pipelines use Kafka transactions for exactly-once delivery.
    #[serde(default)]
    pub transactions: Transactions,
    /// Join consumer groups with the worker id as `group.instance.id` (static
    /// membership, KIP-345): a restarted worker gets its partitions back without a
    /// rebalance, but a stopped or dead one keeps them until `session.timeout.ms`
    /// passes, and the cluster must expire static members (default false).
    #[serde(default)]
    pub static_membership: bool,
    /// librdkafka properties for every client of this cluster.
    #[serde(default, deserialize_with = "scalar_map")]
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for consumers only (e.g. `session.timeout.ms`).
    #[serde(default, deserialize_with = "scalar_map")]
    pub consumer_properties: BTreeMap<String, String>,
    /// librdkafka properties for producers only (e.g. `compression.type`).
    #[serde(default, deserialize_with = "scalar_map")]
    pub producer_properties: BTreeMap<String, String>,
}

/// `transactions` of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transactions {
    /// Use them when the cluster supports them; otherwise at-least-once (default).
    #[default]
    Auto,
    /// Use them; a pipeline fails to start on a cluster without them.
    Required,
    /// Never: at-least-once with the idempotent producer.
    Off,
}

/// librdkafka takes every value as a string; TOML users write numbers and booleans
/// as such (`"session.timeout.ms" = 6000`), so accept any scalar.
fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::Text(s) => s,
                Scalar::Int(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// A name usable in `kafka://NAME/topic` and in ids: letters, digits, `.`, `_`, `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl KafkaConfig {
    /// Checks what can be checked without librdkafka: names, addresses and reserved
    /// properties. Returns the offending key and what to do.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(id) = &self.worker_id {
            if !valid_name(id) {
                return Err((
                    "kafka.worker_id".into(),
                    "use 1 to 128 letters, digits, '.', '_' and '-'".into(),
                ));
            }
        }
        for (name, cluster) in &self.clusters {
            let key = |k: &str| format!("kafka.clusters.{name}.{k}");
            if !valid_name(name) {
                return Err((
                    format!("kafka.clusters.{name}"),
                    "cluster names are 1 to 128 letters, digits, '.', '_' and '-'".into(),
                ));
            }
            let servers: Vec<&str> = cluster
                .bootstrap_servers
                .split(',')
                .map(str::trim)
                .collect();
            if servers
                .iter()
                .any(|s| s.is_empty() || !s.contains(':') || s.contains("://"))
            {
                return Err((
                    key("bootstrap_servers"),
                    format!(
                        "{:?} is not a list of host:port (e.g. \"kafka-1:9092,kafka-2:9092\")",
                        cluster.bootstrap_servers
                    ),
                ));
            }
            for (table, props) in [
                ("properties", &cluster.properties),
                ("consumer_properties", &cluster.consumer_properties),
                ("producer_properties", &cluster.producer_properties),
            ] {
                for prop in props.keys() {
                    if let Some((_, why)) = RESERVED_PROPERTIES.iter().find(|(p, _)| p == prop) {
                        return Err((
                            key(&format!("{table}.{prop}")),
                            format!("the broker sets this property itself: {why}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> KafkaConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn clusters_take_scalar_properties_as_strings() {
        let c = parse(
            r#"
            [clusters.main]
            bootstrap_servers = "127.0.0.1:9092"
            [clusters.main.consumer_properties]
            "session.timeout.ms" = 6000
            "check.crcs" = true
            "#,
        );
        let main = &c.clusters["main"];
        assert_eq!(main.transactions, Transactions::Auto);
        assert!(!main.static_membership);
        assert_eq!(main.consumer_properties["session.timeout.ms"], "6000");
        assert_eq!(main.consumer_properties["check.crcs"], "true");
        c.validate().unwrap();
    }

    #[test]
    fn reserved_properties_are_refused_with_the_alternative() {
        let c = parse(
            r#"
            [clusters.main]
            bootstrap_servers = "127.0.0.1:9092"
            properties = { "group.id" = "mine" }
            "#,
        );
        let (key, why) = c.validate().unwrap_err();
        assert_eq!(key, "kafka.clusters.main.properties.group.id");
        assert!(why.contains("consumer_group"), "{why}");
    }

    #[test]
    fn bootstrap_servers_must_be_host_port_pairs() {
        let c = parse("[clusters.main]\nbootstrap_servers = \"kafka://x:9092\"\n");
        assert_eq!(
            c.validate().unwrap_err().0,
            "kafka.clusters.main.bootstrap_servers"
        );
    }
}
