//! A Kafka topic read by a consumer group, as a pipeline [`Source`].
//!
//! Every broker running the pipeline joins the pipeline's group; the cluster splits
//! the topic's partitions among them. Records of one partition arrive in order, and
//! the worker processes them in that order. Positions are the group's committed
//! offsets: the sink commits them with the outputs (in the transaction, or after
//! the outputs are acknowledged), and a worker that takes a partition over starts
//! from there.
//!
//! On a rebalance the consumer's revoke callback (which runs inside `poll`, on the
//! reader thread) waits until the worker has committed everything it was handed
//! from the revoked partitions; records of those partitions polled but not yet
//! handed over are dropped, since the next owner reads them again from the
//! committed offsets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, Message as _, TopicPartitionList};

use super::progress::Progress;
use super::record;
use crate::pipeline::io::{Fetched, IoError, Source, MAX_FETCH_BYTES};

/// How long a revoke waits for the in-flight batch to be committed before it lets
/// the partitions go anyway (the next owner then re-reads the uncommitted records:
/// at-least-once; a transaction still open is fenced by the group generation).
pub const REVOKE_WAIT: Duration = Duration::from_secs(60);

/// The consumer's callbacks: rebalances, errors and statistics go to [`Progress`].
pub struct SourceContext {
    progress: Arc<Progress>,
    topic: String,
}

impl ClientContext for SourceContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "rustmq::etl::kafka", source = %self.progress.source, fac, "{message}")
            }
            L::Warning => {
                tracing::warn!(target: "rustmq::etl::kafka", source = %self.progress.source, fac, "{message}")
            }
            _ => {
                tracing::debug!(target: "rustmq::etl::kafka", source = %self.progress.source, fac, "{message}")
            }
        }
    }

    fn stats(&self, stats: Statistics) {
        if let Some(topic) = stats.topics.get(&self.topic) {
            for (p, part) in &topic.partitions {
                // Read committed: the end is the last stable offset when the
                // broker reports one, else the high watermark.
                let end = if part.ls_offset >= 0 {
                    part.ls_offset
                } else {
                    part.hi_offset
                };
                if *p >= 0 && end >= 0 {
                    self.progress.set_high_watermark(*p, end);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "rustmq::etl::kafka", source = %self.progress.source, error = %error, reason, "Kafka consumer error");
        self.progress.note_error(&format!("{error}: {reason}"));
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = partitions_of(tpl);
            tracing::info!(target: "rustmq::etl::kafka", source = %self.progress.source, ?partitions, "partitions revoked: finishing the batch in flight");
            if !self.progress.wait_committed(&partitions, REVOKE_WAIT) {
                tracing::warn!(target: "rustmq::etl::kafka", source = %self.progress.source, ?partitions, "releasing partitions with uncommitted messages; their next owner reads them again");
            }
            self.progress.revoked(&partitions);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let partitions = partitions_of(tpl);
                tracing::info!(target: "rustmq::etl::kafka", source = %self.progress.source, ?partitions, "partitions assigned");
                self.progress.assigned(&partitions);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(target: "rustmq::etl::kafka", source = %self.progress.source, error = %e, "rebalance failed");
                self.progress.note_error(&format!("rebalance failed: {e}"));
            }
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

/// The consumer a source polls and its sink commits through.
pub type GroupConsumer = BaseConsumer<SourceContext>;

/// A Kafka topic as a pipeline source.
pub struct KafkaSource {
    consumer: Arc<GroupConsumer>,
    progress: Arc<Progress>,
}

impl KafkaSource {
    /// Joins the group configured in `config` (which carries `group.id` and the
    /// cluster's settings) and subscribes to `topic`.
    pub fn subscribe(
        config: &ClientConfig,
        topic: &str,
        progress: Arc<Progress>,
    ) -> Result<KafkaSource, IoError> {
        let context = SourceContext {
            progress: Arc::clone(&progress),
            topic: topic.to_string(),
        };
        let consumer: GroupConsumer = config
            .create_with_context(context)
            .map_err(|e| IoError::new(format!("cannot create the Kafka consumer: {e}")))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| IoError::new(format!("cannot subscribe to {topic:?}: {e}")))?;
        Ok(KafkaSource {
            consumer: Arc::new(consumer),
            progress,
        })
    }

    /// The consumer, for the sink's offset commits and transactions.
    pub fn consumer(&self) -> Arc<GroupConsumer> {
        Arc::clone(&self.consumer)
    }
}

impl Source for KafkaSource {
    fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Fetched>, IoError> {
        let deadline = Instant::now() + wait;
        let mut out: Vec<Fetched> = Vec::new();
        let mut bytes = 0usize;
        self.progress.take_revoked();
        loop {
            let timeout = if out.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.consumer.poll(timeout) {
                Some(Ok(m)) => {
                    self.progress.clear_error();
                    let message = record::from_kafka(&m);
                    bytes += message.memory_size();
                    out.push(Fetched {
                        partition: m.partition(),
                        offset: u64::try_from(m.offset()).unwrap_or(0),
                        message,
                    });
                    if out.len() >= max || bytes >= MAX_FETCH_BYTES {
                        break;
                    }
                }
                Some(Err(e)) => {
                    // librdkafka reconnects by itself; the error is shown in the
                    // status while it lasts and the pipeline keeps waiting.
                    tracing::debug!(target: "rustmq::etl::kafka", source = %self.progress.source, error = %e, "fetch error");
                    self.progress.note_error(&e.to_string());
                    if !out.is_empty() || Instant::now() >= deadline {
                        break;
                    }
                }
                None => {
                    if !out.is_empty() || Instant::now() >= deadline {
                        break;
                    }
                }
            }
        }
        // A rebalance inside `poll` took partitions away: what was polled from them
        // and not yet handed over belongs to their next owner.
        let revoked = self.progress.take_revoked();
        if !revoked.is_empty() {
            out.retain(|f| !revoked.contains(&f.partition));
        }
        let mut handed = BTreeMap::new();
        for f in &out {
            handed.insert(f.partition, f.offset as i64 + 1);
        }
        self.progress.handed(&handed);
        Ok(out)
    }

    fn seek(&mut self, _offset: u64) {
        // Positions are the group's committed offsets (see the module docs).
    }

    fn bounds(&self) -> Result<(u64, u64), IoError> {
        let s = self.progress.snapshot();
        Ok((0, s.lag))
    }
}
