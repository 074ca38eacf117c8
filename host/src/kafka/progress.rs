//! What a Kafka pipeline's source and sink share: the partitions assigned, how far
//! each has been handed to the worker and committed, the high watermarks, the last
//! client error. It is also what the status and metrics routes show.
//!
//! The rebalance rule rests on it: before partitions are released, the consumer's
//! revoke callback waits until everything handed out from them is committed (the
//! worker finishes and commits its in-flight batch), so the next owner starts
//! exactly where this worker stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Delivery;

/// Shared by a Kafka source, its sink and the metrics routes.
#[derive(Debug)]
pub struct Progress {
    /// `kafka://cluster/topic` of the source, for display.
    pub source: String,
    /// The consumer group.
    pub group: String,
    /// The delivery guarantee in force.
    pub delivery: Mutex<Delivery>,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    assigned: BTreeSet<i32>,
    /// Per partition, the offset after the last message handed to the worker.
    handed: BTreeMap<i32, i64>,
    /// Per partition, the next offset to read as committed to the cluster.
    committed: BTreeMap<i32, i64>,
    /// Per partition, the end of the readable log (last stable offset for
    /// read_committed, from the fetch responses).
    high: BTreeMap<i32, i64>,
    /// Partitions revoked since the source last cleared this (during one fetch).
    revoked_recently: BTreeSet<i32>,
    rebalances: u64,
    abandoned: bool,
    /// The last client error and when it was seen, while it lasts.
    outage: Option<(String, i64)>,
}

/// What the status and metrics routes show of a Kafka source.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct KafkaSnapshot {
    /// `kafka://cluster/topic`.
    pub source: String,
    /// The consumer group id.
    pub consumer_group: String,
    /// `exactly_once` or `at_least_once`.
    pub delivery: Delivery,
    /// Partitions this worker owns now.
    pub assigned_partitions: Vec<i32>,
    /// Per owned partition: committed position, end of log, lag.
    pub partitions: Vec<PartitionLag>,
    /// Sum of the partitions' lag.
    pub lag: u64,
    /// Rebalances this worker went through (assignments and revocations).
    pub rebalances: u64,
    /// The cluster error of the moment (unreachable brokers, ...), while it lasts.
    pub outage: Option<String>,
    /// Since when, ms since the epoch.
    pub outage_since_ms: Option<i64>,
}

/// One partition's position.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PartitionLag {
    /// The partition.
    pub partition: i32,
    /// Next offset to process, as committed (none before the first commit).
    pub committed_offset: Option<i64>,
    /// End of the readable log, as the last fetch response said (none before it).
    pub high_watermark: Option<i64>,
    /// End of log minus position (the committed one, or what was handed out).
    pub lag: u64,
}

impl Progress {
    /// Progress of a source reading `source` in consumer group `group`.
    pub fn new(source: String, group: String, delivery: Delivery) -> Self {
        Progress {
            source,
            group,
            delivery: Mutex::new(delivery),
            state: Mutex::default(),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The delivery guarantee in force.
    pub fn delivery(&self) -> Delivery {
        *self.delivery.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the delivery guarantee (known once the producer started).
    pub fn set_delivery(&self, d: Delivery) {
        *self.delivery.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }

    /// Partitions were assigned to this worker.
    pub fn assigned(&self, partitions: &[i32]) {
        let mut s = self.lock();
        s.assigned.extend(partitions.iter().copied());
        s.rebalances += 1;
    }

    /// Partitions were taken away: forget their positions.
    pub fn revoked(&self, partitions: &[i32]) {
        let mut s = self.lock();
        for p in partitions {
            s.assigned.remove(p);
            s.handed.remove(p);
            s.committed.remove(p);
            s.high.remove(p);
            s.revoked_recently.insert(*p);
        }
        s.rebalances += 1;
        drop(s);
        self.changed.notify_all();
    }

    /// Whether `partition` is assigned now.
    pub fn owns(&self, partition: i32) -> bool {
        self.lock().assigned.contains(&partition)
    }

    /// Takes the partitions revoked since the last call.
    pub fn take_revoked(&self) -> BTreeSet<i32> {
        std::mem::take(&mut self.lock().revoked_recently)
    }

    /// The worker was handed messages up to (excluding) these offsets.
    pub fn handed(&self, positions: &BTreeMap<i32, i64>) {
        let mut s = self.lock();
        for (p, o) in positions {
            s.handed.insert(*p, *o);
        }
    }

    /// These positions are committed to the cluster.
    pub fn committed(&self, positions: &BTreeMap<i32, i64>) {
        let mut s = self.lock();
        for (p, o) in positions {
            if s.assigned.contains(p) {
                s.committed.insert(*p, *o);
            }
        }
        drop(s);
        self.changed.notify_all();
    }

    /// The end of partition `p`'s readable log.
    pub fn set_high_watermark(&self, p: i32, high: i64) {
        let mut s = self.lock();
        if s.assigned.contains(&p) {
            s.high.insert(p, high);
        }
    }

    /// Waits until everything handed out from `partitions` is committed, the sink
    /// is gone, or `limit` passes; true when it is committed.
    pub fn wait_committed(&self, partitions: &[i32], limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut s = self.lock();
        loop {
            let done = partitions.iter().all(|p| match s.handed.get(p) {
                None => true,
                Some(h) => s.committed.get(p).is_some_and(|c| c >= h),
            });
            if done {
                return true;
            }
            let now = Instant::now();
            if s.abandoned || now >= deadline {
                return false;
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The sink will commit nothing more (the worker ended): stop waiting for it.
    pub fn abandon(&self) {
        self.lock().abandoned = true;
        self.changed.notify_all();
    }

    /// A client error (unreachable cluster, unknown topic ...) seen now.
    pub fn note_error(&self, error: &str) {
        let mut s = self.lock();
        match &mut s.outage {
            Some((text, _)) => *text = error.to_string(),
            None => s.outage = Some((error.to_string(), crate::message::now_millis())),
        }
    }

    /// The cluster answered again.
    pub fn clear_error(&self) {
        let mut s = self.lock();
        if let Some((text, since)) = s.outage.take() {
            tracing::info!(target: "rustmq::etl::kafka", source = %self.source, error = %text, since_ms = since, "cluster reachable again");
        }
    }

    /// The current picture.
    pub fn snapshot(&self) -> KafkaSnapshot {
        let s = self.lock();
        let partitions: Vec<PartitionLag> = s
            .assigned
            .iter()
            .map(|p| {
                let committed = s.committed.get(p).copied();
                let position = committed.or_else(|| s.handed.get(p).copied());
                let high = s.high.get(p).copied();
                let lag = match (high, position) {
                    (Some(h), Some(pos)) => u64::try_from(h - pos).unwrap_or(0),
                    (Some(h), None) => u64::try_from(h).unwrap_or(0),
                    _ => 0,
                };
                PartitionLag {
                    partition: *p,
                    committed_offset: committed,
                    high_watermark: high,
                    lag,
                }
            })
            .collect();
        KafkaSnapshot {
            source: self.source.clone(),
            consumer_group: self.group.clone(),
            delivery: self.delivery(),
            assigned_partitions: s.assigned.iter().copied().collect(),
            lag: partitions.iter().map(|p| p.lag).sum(),
            partitions,
            rebalances: s.rebalances,
            outage: s.outage.as_ref().map(|(t, _)| t.clone()),
            outage_since_ms: s.outage.as_ref().map(|(_, since)| *since),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn progress() -> Arc<Progress> {
        Arc::new(Progress::new(
            "kafka://main/in".into(),
            "g".into(),
            Delivery::AtLeastOnce,
        ))
    }

    #[test]
    fn a_revoke_waits_for_what_was_handed_out_to_be_committed() {
        let p = progress();
        p.assigned(&[0, 1]);
        p.handed(&BTreeMap::from([(0, 10), (1, 5)]));
        let waiter = {
            let p = Arc::clone(&p);
            std::thread::spawn(move || p.wait_committed(&[0, 1], Duration::from_secs(30)))
        };
        p.committed(&BTreeMap::from([(0, 10)]));
        p.committed(&BTreeMap::from([(1, 5)]));
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn a_revoke_stops_waiting_when_the_sink_is_gone() {
        let p = progress();
        p.assigned(&[0]);
        p.handed(&BTreeMap::from([(0, 10)]));
        let waiter = {
            let p = Arc::clone(&p);
            std::thread::spawn(move || p.wait_committed(&[0], Duration::from_secs(30)))
        };
        p.abandon();
        assert!(!waiter.join().unwrap());
    }

    #[test]
    fn lag_is_the_end_of_log_minus_the_committed_position() {
        let p = progress();
        p.assigned(&[0, 1]);
        p.committed(&BTreeMap::from([(0, 7)]));
        p.set_high_watermark(0, 10);
        p.set_high_watermark(1, 4);
        p.set_high_watermark(2, 100); // not ours
        let s = p.snapshot();
        assert_eq!(s.assigned_partitions, [0, 1]);
        assert_eq!(s.partitions[0].lag, 3);
        assert_eq!(s.partitions[1].lag, 4);
        assert_eq!(s.lag, 7);
        p.revoked(&[0]);
        assert_eq!(p.snapshot().lag, 4);
        assert_eq!(p.take_revoked(), BTreeSet::from([0]));
    }
}
