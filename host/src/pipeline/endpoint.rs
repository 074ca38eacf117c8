//! Where a pipeline's topics live: this broker's own topics, or topics of a Kafka
//! cluster declared in `broker.toml`.
//!
//! A pipeline definition names its topics as strings, as the deployment guide does:
//! a plain name (`raw-events`) is a topic of this broker; `kafka://CLUSTER/TOPIC` is
//! topic `TOPIC` of the cluster declared as `[kafka.clusters.CLUSTER]`. Keeping the
//! string form means the guide's definitions, the persisted records and every client
//! keep working unchanged.

use std::fmt;

/// The scheme prefix of a Kafka endpoint.
pub const KAFKA_SCHEME: &str = "kafka://";

/// The longest Kafka topic name (Kafka's own limit).
pub const MAX_KAFKA_TOPIC_LEN: usize = 249;

/// A topic a pipeline reads or writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// A topic of this broker.
    Local(String),
    /// A topic of a declared Kafka cluster.
    Kafka {
        /// The cluster's name in `[kafka.clusters.NAME]`.
        cluster: String,
        /// The topic on that cluster.
        topic: String,
    },
}

impl Endpoint {
    /// Parses a topic reference. `local_ok` checks a local topic name; `cluster_ok`
    /// says whether a cluster of that name is declared. Errors say what to write.
    pub fn parse(
        text: &str,
        local_ok: impl Fn(&str) -> Result<(), String>,
        cluster_ok: impl Fn(&str) -> bool,
    ) -> Result<Endpoint, String> {
        let Some(rest) = text.strip_prefix(KAFKA_SCHEME) else {
            if text.contains("://") {
                return Err(format!(
                    "{text:?} has an unknown scheme; write a local topic name or {KAFKA_SCHEME}CLUSTER/TOPIC"
                ));
            }
            local_ok(text)?;
            return Ok(Endpoint::Local(text.to_string()));
        };
        let Some((cluster, topic)) = rest.split_once('/') else {
            return Err(format!(
                "{text:?} names no topic; write {KAFKA_SCHEME}CLUSTER/TOPIC"
            ));
        };
        if !cluster_ok(cluster) {
            return Err(format!(
                "{text:?} names Kafka cluster {cluster:?}, which is not declared; add [kafka.clusters.{cluster}] with bootstrap_servers to broker.toml and restart the broker"
            ));
        }
        validate_kafka_topic(topic).map_err(|m| format!("{text:?}: {m}"))?;
        Ok(Endpoint::Kafka {
            cluster: cluster.to_string(),
            topic: topic.to_string(),
        })
    }

    /// The cluster, for a Kafka endpoint.
    pub fn cluster(&self) -> Option<&str> {
        match self {
            Endpoint::Local(_) => None,
            Endpoint::Kafka { cluster, .. } => Some(cluster),
        }
    }

    /// The topic name on its side (local or cluster).
    pub fn topic(&self) -> &str {
        match self {
            Endpoint::Local(t) => t,
            Endpoint::Kafka { topic, .. } => topic,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Local(t) => f.write_str(t),
            Endpoint::Kafka { cluster, topic } => write!(f, "{KAFKA_SCHEME}{cluster}/{topic}"),
        }
    }
}

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_kafka_topic(topic: &str) -> Result<(), String> {
    let ok = !topic.is_empty()
        && topic.len() <= MAX_KAFKA_TOPIC_LEN
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Kafka topic names are 1 to {MAX_KAFKA_TOPIC_LEN} letters, digits, '.', '_' and '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Endpoint, String> {
        Endpoint::parse(text, |_| Ok(()), |c| c == "main")
    }

    #[test]
    fn plain_names_are_local_topics() {
        assert_eq!(
            parse("raw-events").unwrap(),
            Endpoint::Local("raw-events".into())
        );
    }

    #[test]
    fn kafka_urls_name_a_declared_cluster_and_a_topic() {
        let e = parse("kafka://main/orders.v1").unwrap();
        assert_eq!(e.cluster(), Some("main"));
        assert_eq!(e.topic(), "orders.v1");
        assert_eq!(e.to_string(), "kafka://main/orders.v1");
    }

    #[test]
    fn undeclared_clusters_and_bad_topics_are_explained() {
        let err = parse("kafka://other/orders").unwrap_err();
        assert!(err.contains("[kafka.clusters.other]"), "{err}");
        assert!(parse("kafka://main").unwrap_err().contains("CLUSTER/TOPIC"));
        assert!(parse("kafka://main/a b").unwrap_err().contains("letters"));
        assert!(parse("kafka://main/..").is_err());
        assert!(parse("pulsar://x/y")
            .unwrap_err()
            .contains("unknown scheme"));
    }
}
