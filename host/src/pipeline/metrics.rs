//! Per-pipeline counters and latency histograms, updated by the worker and read by
//! the metrics endpoints.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::kafka::progress::{KafkaSnapshot, Progress};
use crate::runtime::chain::{StageCounters, StageMetrics};

use super::canary::{CanarySpec, VersionMetrics};
use super::window::{MetricsHistory, Recent, Totals};

/// A running canary's definition, the pinned version, and both sides' counters.
type CanaryView = (CanarySpec, String, Arc<Sides>);

fn now_ms() -> u64 {
    u64::try_from(crate::message::now_millis()).unwrap_or(0)
}

/// Longest processing time the histogram tracks (60 s, in microseconds); longer
/// calls are counted at the cap.
const MAX_TRACKED_MICROS: u64 = 60_000_000;

/// Live counters of one pipeline. Shared between its worker and the API.
#[derive(Debug)]
pub struct PipelineMetrics {
    started: Mutex<Option<Instant>>,
    /// Inputs the module handled without error (transformed or filtered).
    pub processed: AtomicU64,
    /// Inputs the module filtered out (no output, no error).
    pub filtered: AtomicU64,
    /// Inputs that ended in the error topic (dead-lettered or out of retries).
    pub failed: AtomicU64,
    /// Calls retried after a failure.
    pub retries: AtomicU64,
    /// Batch calls whose outputs were discarded and whose messages were processed
    /// again one per call (a trap, or a message that failed, in batch mode).
    pub batch_replays: AtomicU64,
    /// Messages written to the destination topic.
    pub outputs: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Guest instances replaced (after faults or to reclaim memory).
    pub recycles: AtomicU64,
    /// Linear memory held by the pipeline's instance.
    pub memory_bytes: AtomicU64,
    /// Offset committed last.
    pub committed_offset: AtomicU64,
    histogram: Mutex<hdrhistogram::Histogram<u64>>,
    /// The last minutes, bucket by bucket.
    recent: Recent,
    /// While a canary runs: its definition, the pinned version, and both versions'
    /// own counters.
    canary: Mutex<Option<CanaryView>>,
    /// The Kafka source's progress, while the pipeline reads one.
    kafka: Mutex<Option<Arc<Progress>>>,
    /// A chain's stages, while it runs.
    stages: Mutex<Vec<Arc<StageCounters>>>,
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        PipelineMetrics {
            started: Mutex::new(None),
            processed: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            batch_replays: AtomicU64::new(0),
            outputs: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            recycles: AtomicU64::new(0),
            memory_bytes: AtomicU64::new(0),
            committed_offset: AtomicU64::new(0),
            histogram: Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 2)
                    .expect("static histogram bounds are valid"),
            ),
            recent: Recent::default(),
            canary: Mutex::new(None),
            kafka: Mutex::new(None),
            stages: Mutex::new(Vec::new()),
        }
    }
}

/// A point-in-time copy, in the guide's field names plus ours.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct MetricsSnapshot {
    /// See [`PipelineMetrics::processed`].
    pub messages_processed: u64,
    /// See [`PipelineMetrics::filtered`].
    pub messages_filtered: u64,
    /// See [`PipelineMetrics::failed`].
    pub messages_failed: u64,
    /// Mean module time per input, in milliseconds (retries included).
    pub avg_processing_time_ms: f64,
    /// Inputs handled per second since the pipeline last started.
    pub throughput_msgs_per_sec: f64,
    /// See [`PipelineMetrics::retries`].
    pub retries: u64,
    /// See [`PipelineMetrics::batch_replays`].
    pub batch_replays: u64,
    /// See [`PipelineMetrics::outputs`].
    pub messages_produced: u64,
    /// Source end offset minus committed offset.
    pub lag: u64,
    /// Median module time per input, ms.
    pub p50_processing_time_ms: f64,
    /// 99th percentile module time per input, ms.
    pub p99_processing_time_ms: f64,
    /// See [`PipelineMetrics::recycles`].
    pub instance_recycles: u64,
    /// See [`PipelineMetrics::batches`].
    pub batches_committed: u64,
    /// See [`PipelineMetrics::committed_offset`].
    pub committed_offset: u64,
    /// See [`PipelineMetrics::memory_bytes`].
    pub memory_usage_bytes: u64,
    /// A Kafka source's partitions, positions, lag, rebalances and delivery mode.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kafka: Option<KafkaSnapshot>,
    /// A chain's stages, each with its own counts and times (since the chain was
    /// last loaded: a start or an update).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub stages: Vec<StageMetrics>,
    /// While a canary runs: the pinned version's and the canary's numbers side by
    /// side (see `pipeline::canary`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<VersionMetrics>,
}

impl PipelineMetrics {
    /// Marks the start of a run (throughput is measured from here).
    pub fn mark_started(&self) {
        *self.started.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// The counters of the chain's stages now running (none for one module).
    pub fn set_stages(&self, stages: Vec<Arc<StageCounters>>) {
        *self.stages.lock().unwrap_or_else(|p| p.into_inner()) = stages;
    }

    /// Attaches (or, with `None`, detaches) a Kafka source's progress.
    pub fn set_kafka(&self, progress: Option<Arc<Progress>>) {
        *self.kafka.lock().unwrap_or_else(|p| p.into_inner()) = progress;
    }

    /// The Kafka source's progress, if the pipeline reads one.
    pub fn kafka(&self) -> Option<KafkaSnapshot> {
        self.kafka
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|p| p.snapshot())
    }

    /// Records the module time spent on one input.
    pub fn record_time(&self, micros: u64) {
        self.record_times(micros, 1);
    }

    /// Records `count` inputs that took `micros` each (a batch call's share).
    pub fn record_times(&self, micros: u64, count: u64) {
        {
            let mut h = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
            let _ = h.record_n(micros.clamp(1, MAX_TRACKED_MICROS), count);
        }
        self.recent.record_times(now_ms(), micros, count);
    }

    /// One input the module handled without error; `filtered` when it answered
    /// nothing.
    pub fn processed_one(&self, filtered: bool) {
        self.processed.fetch_add(1, Ordering::Relaxed);
        if filtered {
            self.filtered.fetch_add(1, Ordering::Relaxed);
        }
        self.recent.handled(now_ms(), false);
    }

    /// One input sent to the error topic.
    pub fn failed_one(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.recent.handled(now_ms(), true);
    }

    /// The last minutes, bucket by bucket.
    pub fn history(&self) -> MetricsHistory {
        self.recent.history(now_ms())
    }

    /// Shows (or, with `None`, stops showing) a canary's counters beside the
    /// pinned version's.
    pub fn set_canary(&self, canary: Option<CanaryView>) {
        *self.canary.lock().unwrap_or_else(|p| p.into_inner()) = canary;
    }

    /// Both versions' numbers while a canary runs; empty otherwise.
    pub fn versions(&self) -> Vec<VersionMetrics> {
        self.canary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(spec, stable, sides)| sides.view(spec, stable))
            .unwrap_or_default()
    }

    /// The last `span_ms`, summed.
    pub fn window(&self, span_ms: u64) -> Totals {
        self.recent.totals(now_ms(), span_ms)
    }

    /// A snapshot; `source_end` is a local source's next offset, for lag (a Kafka
    /// source's lag is the sum over its partitions).
    pub fn snapshot(&self, source_end: u64) -> MetricsSnapshot {
        let kafka = self.kafka();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (mean, p50, p99) = {
            let h = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
            if h.is_empty() {
                (0.0, 0.0, 0.0)
            } else {
                (
                    h.mean() / 1000.0,
                    h.value_at_quantile(0.5) as f64 / 1000.0,
                    h.value_at_quantile(0.99) as f64 / 1000.0,
                )
            }
        };
        let handled = get(&self.processed) + get(&self.failed);
        let elapsed = self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let committed = get(&self.committed_offset);
        MetricsSnapshot {
            messages_processed: get(&self.processed),
            messages_filtered: get(&self.filtered),
            messages_failed: get(&self.failed),
            batch_replays: get(&self.batch_replays),
            avg_processing_time_ms: mean,
            throughput_msgs_per_sec: if elapsed > 0.0 {
                handled as f64 / elapsed
            } else {
                0.0
            },
            retries: get(&self.retries),
            messages_produced: get(&self.outputs),
            lag: match &kafka {
                Some(k) => k.lag,
                None => source_end.saturating_sub(committed),
            },
            p50_processing_time_ms: p50,
            p99_processing_time_ms: p99,
            instance_recycles: get(&self.recycles),
            batches_committed: get(&self.batches),
            committed_offset: committed,
            memory_usage_bytes: get(&self.memory_bytes),
            kafka,
            stages: self
                .stages
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .enumerate()
                .map(|(k, c)| c.snapshot(k))
                .collect(),
            versions: self.versions(),
        }
    }
}

/// Both versions' counters while a canary runs, each counting only its own share.
#[derive(Debug, Default)]
pub struct Sides {
    /// The pinned version's share.
    pub stable: PipelineMetrics,
    /// The canary's share (its failures include those the pinned version then
    /// processed).
    pub canary: PipelineMetrics,
}

impl Sides {
    /// Both sides' numbers, the window being the canary's.
    pub fn view(&self, spec: &CanarySpec, stable_version: &str) -> Vec<VersionMetrics> {
        let window_ms = spec.window_secs * 1000;
        let one = |role: &str, version: &str, m: &PipelineMetrics| {
            let snapshot = m.snapshot(0);
            let window = m.window(window_ms);
            VersionMetrics {
                role: role.into(),
                module_version: version.into(),
                messages_handled: snapshot.messages_processed + snapshot.messages_failed,
                messages_failed: snapshot.messages_failed,
                window_error_rate: window.error_rate(),
                window_messages: window.handled,
                window_p99_processing_time_ms: window.p99_ms,
                p50_processing_time_ms: snapshot.p50_processing_time_ms,
                p99_processing_time_ms: snapshot.p99_processing_time_ms,
            }
        };
        vec![
            one("stable", stable_version, &self.stable),
            one("canary", &spec.module_version, &self.canary),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reports_counts_lag_and_percentiles() {
        let m = PipelineMetrics::default();
        m.mark_started();
        m.processed.store(3, Ordering::Relaxed);
        m.filtered.store(1, Ordering::Relaxed);
        m.committed_offset.store(4, Ordering::Relaxed);
        for micros in [1000, 2000, 3000] {
            m.record_time(micros);
        }
        let s = m.snapshot(10);
        assert_eq!(s.messages_processed, 3);
        assert_eq!(s.messages_filtered, 1);
        assert_eq!(s.lag, 6);
        assert!(
            (s.avg_processing_time_ms - 2.0).abs() < 0.05,
            "{}",
            s.avg_processing_time_ms
        );
        assert!((s.p50_processing_time_ms - 2.0).abs() < 0.05);
        assert!(s.p99_processing_time_ms >= 2.9);
    }
}
