//! What a pipeline's worker runs: the pinned module's live instance (of a chain, all
//! its stages as one) with what identifies it, and, while one runs, a canary version
//! beside it (see `pipeline::canary`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::canary::{CanaryEvent, CanarySpec};
use super::metrics::Sides;
use crate::runtime::chain::StageCounters;
use crate::runtime::Transform;

/// The module a worker runs: a live instance plus what identifies it.
pub struct Loaded {
    /// The instance (of a chain: all its stages as one).
    pub transform: Box<dyn Transform>,
    /// `name-v1.2.3` (of a chain: its last stage, which made the outputs).
    pub module_id: String,
    /// `1.2.3` (of a chain: its last stage's).
    pub version: String,
    /// Of a chain: every stage's module id, in order; empty for one module.
    pub chain: Vec<String>,
    /// Of a chain: every stage's counters, for the metrics.
    pub counters: Vec<Arc<StageCounters>>,
    /// A canary version running beside this one on a share of the messages.
    pub canary: Option<Box<Canary>>,
}

/// A canary as a worker runs it: its instance, its share, both sides' counters, and
/// what to do when it is rolled back.
pub struct Canary {
    /// The canary's instance.
    pub loaded: Loaded,
    /// Its definition (the version resolved).
    pub spec: CanarySpec,
    /// Both sides' counters.
    pub sides: Arc<Sides>,
    /// Called once, off the worker's thread, when the error rate rolls it back; the
    /// pipeline manager then drops it from the definition.
    pub on_rollback: Arc<dyn Fn(CanaryEvent) + Send + Sync>,
    rolled_back: AtomicBool,
}

impl Canary {
    /// A canary of `spec` running `loaded`.
    pub fn new(
        loaded: Loaded,
        spec: CanarySpec,
        on_rollback: Arc<dyn Fn(CanaryEvent) + Send + Sync>,
    ) -> Canary {
        Canary {
            loaded,
            spec,
            sides: Arc::new(Sides::default()),
            on_rollback,
            rolled_back: AtomicBool::new(false),
        }
    }

    /// Whether the error rate over the window calls for a rollback; if so, the
    /// reason (and the rollback is reported, once).
    pub fn judge(&self) -> Option<String> {
        let max = self.spec.max_error_rate?;
        let window = self.sides.canary.window(self.spec.window_secs * 1000);
        if window.handled < self.spec.min_messages || window.error_rate() <= max {
            return None;
        }
        if self.rolled_back.swap(true, Ordering::SeqCst) {
            return None;
        }
        let reason = format!(
            "{} of its {} messages in the last {} s failed ({:.1} %, above max_error_rate {:.1} %)",
            window.failed,
            window.handled,
            self.spec.window_secs,
            window.error_rate() * 100.0,
            max * 100.0
        );
        let event = CanaryEvent {
            event: "rolled_back".into(),
            module_version: self.spec.module_version.clone(),
            at_ms: crate::message::now_millis(),
            reason: Some(reason.clone()),
        };
        let report = self.on_rollback.clone();
        // The manager's update takes the pipeline's operation lock, which a stop
        // holds while it waits for this worker: never from the worker's thread.
        let spawned = std::thread::Builder::new()
            .name("canary-rollback".into())
            .spawn(move || report(event));
        if let Err(e) = spawned {
            tracing::error!(target: "rustmq::etl::pipeline", error = %e, "could not record a canary rollback");
        }
        Some(reason)
    }
}
