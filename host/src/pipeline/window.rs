//! The last minutes of a pipeline's work, in fixed buckets of wall-clock time: inputs
//! handled, failures and module times per bucket, so throughput and p50/p99 can be
//! told for each few seconds (the console's charts) rather than only since the run
//! started.
//!
//! A ring of [`BUCKETS`] slots of [`BUCKET_MS`] each; a slot holding an older bucket
//! is cleared when written and read as empty. A bucket's histogram is allocated on its
//! first sample, at one significant figure (about 6 % error; some 2 KiB), so an idle
//! pipeline holds none and a busy one at most [`BUCKETS`].

use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// One bucket's span.
pub const BUCKET_MS: u64 = 5_000;
/// Buckets kept: five minutes.
pub const BUCKETS: usize = 60;
/// Longest module time a bucket tracks (60 s, in microseconds); longer calls count at
/// the cap.
const MAX_TRACKED_MICROS: u64 = 60_000_000;

#[derive(Default)]
struct Bucket {
    /// `start_ms / BUCKET_MS` of the bucket this slot holds.
    index: u64,
    handled: u64,
    failed: u64,
    times: Option<Box<Histogram<u32>>>,
}

/// The recent buckets of one pipeline.
#[derive(Default)]
pub struct Recent {
    slots: Mutex<Vec<Bucket>>,
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recent").finish_non_exhaustive()
    }
}

/// One bucket as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WindowSample {
    /// The bucket's start, ms since the epoch.
    pub at_ms: u64,
    /// Inputs handled in it (processed or sent to the error topic).
    pub handled: u64,
    /// Of those, inputs sent to the error topic.
    pub failed: u64,
    /// `handled` per second of the bucket (of its elapsed part, for the current one).
    pub throughput_msgs_per_sec: f64,
    /// Median module time per input in the bucket, ms; null without calls.
    pub p50_processing_time_ms: Option<f64>,
    /// 99th percentile module time per input in the bucket, ms; null without calls.
    pub p99_processing_time_ms: Option<f64>,
}

/// `GET /api/v1/etl/pipelines/{id}/metrics/history`: the last five minutes, oldest
/// first, one sample per bucket (empty buckets included, so idle time shows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricsHistory {
    /// Each bucket's span, ms.
    pub bucket_ms: u64,
    /// The buckets, oldest first; the last is the current, partial one.
    pub samples: Vec<WindowSample>,
}

/// What the buckets of a span hold together.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Totals {
    /// Inputs handled.
    pub handled: u64,
    /// Of those, the ones failed.
    pub failed: u64,
    /// 99th percentile module time, ms; `None` without calls.
    pub p99_ms: Option<f64>,
}

impl Totals {
    /// `failed / handled`, 0 without inputs.
    pub fn error_rate(&self) -> f64 {
        if self.handled == 0 {
            0.0
        } else {
            self.failed as f64 / self.handled as f64
        }
    }
}

impl Recent {
    /// The buckets that overlap the last `span_ms` up to `now_ms`, the current one
    /// included, summed.
    pub fn totals(&self, now_ms: u64, span_ms: u64) -> Totals {
        let current = now_ms / BUCKET_MS;
        let first = now_ms.saturating_sub(span_ms) / BUCKET_MS;
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut totals = Totals::default();
        let mut times: Option<Histogram<u32>> = None;
        for index in first..=current {
            let Some(b) = slots
                .get((index % BUCKETS as u64) as usize)
                .filter(|b| b.index == index)
            else {
                continue;
            };
            totals.handled += b.handled;
            totals.failed += b.failed;
            if let Some(h) = b.times.as_deref() {
                match times.as_mut() {
                    Some(t) => {
                        let _ = t.add(h);
                    }
                    None => times = Some(h.clone()),
                }
            }
        }
        totals.p99_ms = times
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(0.99) as f64 / 1000.0);
        totals
    }

    fn with_bucket(&self, now_ms: u64, f: impl FnOnce(&mut Bucket)) {
        let index = now_ms / BUCKET_MS;
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.is_empty() {
            slots.resize_with(BUCKETS, Bucket::default);
        }
        let slot = &mut slots[(index % BUCKETS as u64) as usize];
        if slot.index != index {
            slot.index = index;
            slot.handled = 0;
            slot.failed = 0;
            if let Some(h) = slot.times.as_mut() {
                h.reset();
            }
        }
        f(slot);
    }

    /// `count` module calls' inputs that took `micros` each.
    pub fn record_times(&self, now_ms: u64, micros: u64, count: u64) {
        self.with_bucket(now_ms, |b| {
            let h = b.times.get_or_insert_with(|| {
                Box::new(
                    Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 1)
                        .expect("static histogram bounds are valid"),
                )
            });
            // A count past u32 in one bucket saturates rather than failing.
            h.saturating_record_n(
                micros.clamp(1, MAX_TRACKED_MICROS),
                u32::try_from(count).unwrap_or(u32::MAX),
            );
        });
    }

    /// One input handled; `failed` when it went to the error topic.
    pub fn handled(&self, now_ms: u64, failed: bool) {
        self.with_bucket(now_ms, |b| {
            b.handled += 1;
            b.failed += u64::from(failed);
        });
    }

    /// The buckets up to `now_ms`, oldest first.
    pub fn history(&self, now_ms: u64) -> MetricsHistory {
        let current = now_ms / BUCKET_MS;
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let samples = (0..BUCKETS as u64)
            .rev()
            .filter_map(|back| current.checked_sub(back))
            .map(|index| {
                let at_ms = index * BUCKET_MS;
                let span_ms = if index == current {
                    (now_ms - at_ms).max(1)
                } else {
                    BUCKET_MS
                };
                let bucket = slots
                    .get((index % BUCKETS as u64) as usize)
                    .filter(|b| b.index == index);
                let (handled, failed) = bucket.map_or((0, 0), |b| (b.handled, b.failed));
                let quantile = |q: f64| {
                    bucket
                        .and_then(|b| b.times.as_ref())
                        .filter(|h| !h.is_empty())
                        .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
                };
                WindowSample {
                    at_ms,
                    handled,
                    failed,
                    throughput_msgs_per_sec: handled as f64 * 1000.0 / span_ms as f64,
                    p50_processing_time_ms: quantile(0.5),
                    p99_processing_time_ms: quantile(0.99),
                }
            })
            .collect();
        MetricsHistory {
            bucket_ms: BUCKET_MS,
            samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bucket_counts_its_own_inputs_and_times() {
        let recent = Recent::default();
        let t0 = 1_000 * BUCKET_MS;
        for _ in 0..10 {
            recent.record_times(t0 + 10, 1_000, 1);
            recent.handled(t0 + 10, false);
        }
        recent.handled(t0 + 20, true);
        recent.record_times(t0 + BUCKET_MS + 1, 50_000, 4);
        for _ in 0..4 {
            recent.handled(t0 + BUCKET_MS + 1, false);
        }
        let h = recent.history(t0 + BUCKET_MS + 2_500);
        assert_eq!(h.samples.len(), BUCKETS);
        let last = &h.samples[BUCKETS - 1];
        let before = &h.samples[BUCKETS - 2];
        assert_eq!((before.at_ms, before.handled, before.failed), (t0, 11, 1));
        assert_eq!(before.throughput_msgs_per_sec, 11.0 / 5.0);
        let p50 = before.p50_processing_time_ms.unwrap();
        assert!((0.9..=1.1).contains(&p50), "{p50}");
        assert_eq!(last.handled, 4);
        // The current bucket's rate is over its elapsed part.
        assert!((last.throughput_msgs_per_sec - 4.0 / 2.5).abs() < 0.01);
        let p99 = last.p99_processing_time_ms.unwrap();
        assert!((45.0..=55.0).contains(&p99), "{p99}");
        assert_eq!(h.samples[0].handled, 0);
        assert_eq!(h.samples[0].p50_processing_time_ms, None);
    }

    #[test]
    fn totals_sum_the_buckets_of_the_span() {
        let recent = Recent::default();
        let t0 = 100 * BUCKET_MS;
        for k in 0..4 {
            let at = t0 + k * BUCKET_MS;
            recent.handled(at, k == 3);
            recent.record_times(at, 1000 * (k + 1), 1);
        }
        let now = t0 + 3 * BUCKET_MS + 10;
        let all = recent.totals(now, 60_000);
        assert_eq!((all.handled, all.failed), (4, 1));
        assert_eq!(all.error_rate(), 0.25);
        let p99 = all.p99_ms.unwrap();
        assert!((3.8..=4.2).contains(&p99), "{p99}");
        // The last 5 s reach back into the bucket before the current one.
        let recent_two = recent.totals(now, BUCKET_MS);
        assert_eq!(recent_two.handled, 2);
        assert_eq!(Recent::default().totals(now, 60_000), Totals::default());
    }

    #[test]
    fn a_bucket_older_than_the_window_is_forgotten_when_its_slot_comes_round() {
        let recent = Recent::default();
        let t0 = 7 * BUCKET_MS;
        recent.handled(t0, false);
        recent.record_times(t0, 10, 1);
        let later = t0 + BUCKETS as u64 * BUCKET_MS;
        // Read a window later: the old bucket is outside it.
        assert!(recent.history(later).samples.iter().all(|s| s.handled == 0));
        // Written a window later, the slot starts afresh.
        recent.handled(later, false);
        let h = recent.history(later);
        assert_eq!(h.samples.last().unwrap().handled, 1);
        assert_eq!(h.samples.last().unwrap().p50_processing_time_ms, None);
    }
}
