//! The ETL loop of one running pipeline, on its own thread: fetch a batch, run each
//! message through the module (with retries), commit outputs, failures and the new
//! source position in one step, repeat.
//!
//! Commits are pipelined: batch n is handed to the sink and, while it is being
//! written, batch n+1 is fetched and processed. A sink keeps at most
//! [`Sink::max_in_flight`] commits unconfirmed (one for Kafka; for the local store
//! `etl.commits_in_flight`, two by default): the worker waits for the oldest before
//! it starts another. Commits land in order, and a failed commit stops the worker;
//! a commit started behind it is refused by the sink (the local store checks that
//! each commit follows the stored position), so nothing after a failure is ever
//! written: exactly-once holds as with a commit-and-wait loop, and on two cores the
//! storage work and the guest calls overlap instead of alternating.
//!
//! Guest calls are synchronous (wasmtime runs them on the calling thread, bounded by
//! epoch deadlines), so each running pipeline owns a plain OS thread rather than an
//! async task; the runtime's semaphore bounds how many guest calls run at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, info, info_span, warn};

use super::endpoint::KAFKA_SCHEME;
use super::io::{
    CommitBatch, Fetched, IoError, PendingCommit, Positions, Sink, Source, LOCAL_PARTITION,
};
pub use super::loaded::Loaded;
use super::metrics::PipelineMetrics;
use super::spec::{Configuration, ProcessingMode};
use crate::message::{HeaderLimits, Message};
use crate::runtime::{
    BatchContext, ProcessContext, ProcessOutput, Transform, TransformError, MAX_BATCH_OUTPUT_BYTES,
};
use crate::state::SharedState;

/// How long an idle worker waits for new messages before checking for a stop or an
/// update again.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// The longest error text copied into an error-topic header: guests control it.
pub const MAX_ERROR_HEADER_LEN: usize = 4096;

/// Headers the broker adds to the messages it writes.
pub mod headers {
    /// On every output: the exact module (`name-v1.2.3`) that produced it.
    pub const MODULE: &str = "x-rustmq-module";
    /// On every output: the exact module version that produced it.
    pub const MODULE_VERSION: &str = "x-rustmq-module-version";
    /// On error-topic messages: the pipeline id.
    pub const PIPELINE: &str = "x-rustmq-pipeline";
    /// On error-topic messages: the source topic.
    pub const SOURCE_TOPIC: &str = "x-rustmq-source-topic";
    /// On error-topic messages: the source offset.
    pub const SOURCE_OFFSET: &str = "x-rustmq-source-offset";
    /// On error-topic messages of a Kafka source: the source partition.
    pub const SOURCE_PARTITION: &str = "x-rustmq-source-partition";
    /// On error-topic messages: the error text (truncated to 4 KiB).
    pub const ERROR: &str = "x-rustmq-error";
    /// On error-topic messages: why it failed (`dead_letter`, `module_error`,
    /// `timeout`, `memory_limit`, `trap`, `abi`, `init_refused`, `instantiate`,
    /// `state_limit`, `undeclared_route`, and `too_many_headers` or
    /// `headers_too_large` for a message over the header limits, never sent to the
    /// module: `attempts` is then 0).
    pub const ERROR_CAUSE: &str = "x-rustmq-error-cause";
    /// On error-topic messages: how many calls were made.
    pub const ATTEMPTS: &str = "x-rustmq-attempts";
    /// On every output of a chain: each stage's module id, in order, comma-separated.
    pub const CHAIN: &str = "x-rustmq-chain";
    /// On error-topic messages of a chain: the index (from 0) of the stage that failed.
    pub const ERROR_STAGE: &str = "x-rustmq-error-stage";
    /// On error-topic messages of a chain: the exact module of the stage that failed.
    pub const ERROR_MODULE: &str = "x-rustmq-error-module";
    /// On error-topic messages of a chain: that module's version.
    pub const ERROR_MODULE_VERSION: &str = "x-rustmq-error-module-version";
    /// On a dead letter a redrive takes (so on its outputs and on its failure, if
    /// it fails again): how many redrives it has been through.
    pub const REDRIVES: &str = "x-rustmq-redrives";

    /// What a redrive removes from a dead letter before the module sees it: the
    /// failure, not where the message came from.
    pub const FAILURE: [&str; 6] = [
        ERROR,
        ERROR_CAUSE,
        ATTEMPTS,
        ERROR_STAGE,
        ERROR_MODULE,
        ERROR_MODULE_VERSION,
    ];
}

/// Readies a dead letter of pipeline `parent` for a redrive: false for another
/// pipeline's (a shared error topic); else its failure headers are removed and its
/// redrive count raised.
fn redrive_input(parent: &str, m: &mut Message) -> bool {
    if m.header(headers::PIPELINE) != Some(parent) {
        return false;
    }
    let redrives = m
        .header(headers::REDRIVES)
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    m.headers
        .retain(|(name, _)| !headers::FAILURE.contains(&name.as_str()));
    m.set_header(headers::REDRIVES, redrives.saturating_add(1).to_string());
    true
}

/// Which version handles the message in hand (see `pipeline::canary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Side {
    /// The pinned version.
    #[default]
    Stable,
    /// The canary.
    Canary,
}

/// A change handed to a running worker; applied between two batches.
pub struct Update {
    /// The new module instance (already initialised with the new parameters).
    pub loaded: Loaded,
    /// The new settings.
    pub configuration: Configuration,
}

/// The state of a pipeline's run, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Processing (or waiting for messages).
    Running,
    /// Stopped on request.
    Stopped,
    /// Stopped by a failure it cannot get past.
    Failed(String),
    /// Waiting for the broker's storage to take writes again (its disk is full);
    /// the pipeline goes on from its committed offset once it does.
    Stalled(String),
    /// A bounded pipeline (`end_offset`) committed every message before its end.
    Completed,
}

impl RunState {
    /// Running, or stalled and about to run again by itself.
    pub fn is_live(&self) -> bool {
        matches!(self, RunState::Running | RunState::Stalled(_))
    }
}

/// Why a worker cannot go on.
pub(crate) struct Fault {
    reason: String,
    /// The storage refuses writes for now: the pipeline stalls instead of failing.
    storage_blocked: bool,
}

impl Fault {
    fn io(context: &str, e: &IoError) -> Fault {
        Fault {
            reason: format!("{context}: {e}"),
            storage_blocked: e.storage_blocked(),
        }
    }
}

impl From<String> for Fault {
    fn from(reason: String) -> Fault {
        Fault {
            reason,
            storage_blocked: false,
        }
    }
}

/// Shared between the worker and its manager.
#[derive(Default)]
pub struct Control {
    stop: AtomicBool,
    update: Mutex<Option<Update>>,
    /// Wakes a worker sleeping through a retry backoff.
    bell: (Mutex<()>, Condvar),
}

impl Control {
    /// Whether a stop was asked for (sinks that retry through an outage check it).
    pub fn stop_requested(&self) -> bool {
        self.stopping()
    }

    /// Asks the worker to stop at the next message boundary.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.bell.1.notify_all();
    }

    /// Hands the worker an update to apply at the next batch boundary.
    pub fn request_update(&self, update: Update) {
        *self.update.lock().unwrap_or_else(|p| p.into_inner()) = Some(update);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `d` unless a stop is requested first; true if it slept through.
    pub(crate) fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut guard = self.bell.0.lock().unwrap_or_else(|p| p.into_inner());
        while !self.stopping() {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            guard = self
                .bell
                .1
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        false
    }
}

/// Everything a worker needs.
pub struct Worker {
    /// The pipeline id.
    pub pipeline_id: String,
    /// The source topic's name (for the context and error headers).
    pub source_topic: String,
    /// Whether failures have somewhere to go.
    pub has_error_topic: bool,
    /// Settings in force.
    pub configuration: Configuration,
    /// The module in use.
    pub loaded: Loaded,
    /// Where results go. Declared (so dropped) before the source: a Kafka source's
    /// rebalance callback waits for the sink's commits until the sink is gone.
    pub sink: Box<dyn Sink>,
    /// Where messages come from.
    pub source: Box<dyn Source>,
    /// Counters.
    pub metrics: Arc<PipelineMetrics>,
    /// Stop and update requests.
    pub control: Arc<Control>,
    /// Recycles of instances replaced by updates, so the metric keeps counting.
    pub recycle_base: u64,
    /// The destination topic, as declared (a module may name it as an output's
    /// topic too).
    pub destination_topic: String,
    /// The topics the module may route to, as declared; the index of a topic here
    /// is its index in [`CommitBatch::routed`].
    pub routes: Vec<String>,
    /// The pipeline's durable state (unavailable for pipelines with Kafka
    /// endpoints).
    pub state: SharedState,
    /// A message over these goes to the error topic without a call: produced
    /// messages were held to them already, records from Kafka were not.
    pub header_limits: HeaderLimits,
    /// Messages fetched but left out of the last commit, because its outputs
    /// reached [`MAX_BATCH_OUTPUT_BYTES`]: processed before anything is fetched.
    pub carried: Vec<Fetched>,
    /// For a bounded pipeline (a local source only): the offset it ends before.
    pub until: Option<u64>,
    /// Which version handles the message in hand.
    pub side: Side,
    /// For a redrive: the pipeline whose dead letters it takes (from its source, the
    /// error topic) and in whose name it writes failures again.
    pub redrive_of: Option<String>,
}

/// What one call made of its message.
enum Outcome {
    /// Final: no retry.
    Done(Routed),
    /// A failure that the retry policy may try again.
    Failed { cause: &'static str, error: String },
}

/// A batch handed to the sink and not yet known to be durable.
struct InFlight {
    pending: Box<dyn PendingCommit>,
    positions: Positions,
    produced: u64,
    messages: usize,
}

/// What became of one input message.
enum Routed {
    /// For the destination, and for routes (by route index).
    Outputs(Vec<Message>, Vec<(usize, Message)>),
    Errors(Vec<Message>),
    /// It failed for good and there is no error topic: stop, leaving it uncommitted.
    Halt(String),
    /// A stop arrived during a retry backoff: leave it uncommitted.
    Interrupted,
}

impl Worker {
    /// Runs until stopped, failed or stalled; returns how it ended.
    pub fn run(&mut self) -> RunState {
        let span = info_span!(target: "rustmq::etl::pipeline", "pipeline", pipeline_id = %self.pipeline_id, module_id = %self.loaded.module_id);
        let _enter = span.enter();
        // A local source resumes from the offset committed with the outputs; a Kafka
        // source from its group's committed offsets, which its consumer fetches.
        let start = match self.sink.committed() {
            Ok(offset) => offset,
            Err(e) => return RunState::Failed(format!("could not read the committed offset: {e}")),
        };
        if let Some(start) = start {
            self.source.seek(start);
        }
        let start = start.unwrap_or(0);
        self.loaded.transform.attach_state(self.state.clone());
        self.metrics.set_stages(self.loaded.counters.clone());
        self.attach_canary();
        self.metrics
            .committed_offset
            .store(start, Ordering::Relaxed);
        self.metrics.mark_started();
        info!(target: "rustmq::etl::pipeline", offset = start, "pipeline running");
        let mut in_flight = VecDeque::new();
        // A bounded pipeline has fetched a message at or past its end.
        let mut reached_until = false;
        loop {
            if self.control.stopping() {
                if let Err(reason) = self.settle(&mut in_flight) {
                    return self.fail(reason);
                }
                info!(target: "rustmq::etl::pipeline", "pipeline stopped");
                return RunState::Stopped;
            }
            if let Some(until) = self.until {
                let fetched_all = reached_until && self.carried.is_empty();
                if fetched_all || self.metrics.committed_offset.load(Ordering::Relaxed) >= until {
                    if let Err(reason) = self.settle(&mut in_flight) {
                        return self.fail(reason);
                    }
                    info!(target: "rustmq::etl::pipeline", end_offset = until, "pipeline completed");
                    return RunState::Completed;
                }
            }
            self.apply_update();
            // With a commit in flight, take only what is already there: if nothing
            // is, the time is better spent confirming that commit.
            let wait = if !in_flight.is_empty() {
                Duration::ZERO
            } else {
                IDLE_WAIT
            };
            let fetched = if !self.carried.is_empty() {
                Ok(std::mem::take(&mut self.carried))
            } else {
                self.source
                    .fetch(self.configuration.batch_size as usize, wait)
            };
            let fetched = match fetched {
                // A bounded pipeline never processes a message at or past its end.
                Ok(mut f) => {
                    if let Some(until) = self.until {
                        let before = f.len();
                        f.retain(|m| m.offset < until);
                        // Offsets come in order: one at or past the end means every
                        // message before it has been fetched.
                        reached_until |= f.len() < before;
                    }
                    if let Some(parent) = &self.redrive_of {
                        f.retain_mut(|m| redrive_input(parent, &mut m.message));
                    }
                    f
                }
                Err(e) => {
                    let fault = Fault::io("reading the source failed", &e);
                    return self.fail(self.settle(&mut in_flight).err().unwrap_or(fault));
                }
            };
            if fetched.is_empty() {
                if let Err(reason) = self.settle(&mut in_flight) {
                    return self.fail(reason);
                }
                continue;
            }
            // An update that arrived while the fetch waited applies to this batch:
            // whoever sent it may be producing the messages it is meant for.
            self.apply_update();
            if let Some(end) = self.process_batch(fetched, &mut in_flight) {
                return end;
            }
        }
    }

    /// Waits for every commit in flight and publishes what they covered.
    fn settle(&self, in_flight: &mut VecDeque<InFlight>) -> Result<(), Fault> {
        self.settle_to(in_flight, 0)
    }

    /// Waits for the oldest commits in flight, in order, until at most `keep` are
    /// left, and publishes what each covered.
    fn settle_to(&self, in_flight: &mut VecDeque<InFlight>, keep: usize) -> Result<(), Fault> {
        while in_flight.len() > keep {
            let done = in_flight.pop_front().expect("more than `keep` in flight");
            self.confirm(done)?;
        }
        Ok(())
    }

    fn confirm(&self, done: InFlight) -> Result<(), Fault> {
        done.pending
            .wait()
            .map_err(|e| Fault::io("committing the batch failed", &e))?;
        self.metrics
            .outputs
            .fetch_add(done.produced, Ordering::Relaxed);
        self.metrics.batches.fetch_add(1, Ordering::Relaxed);
        // Last, so that a reader who sees the new offset also sees the counters of
        // the batch it covers. (A Kafka source's positions per partition are in
        // its own part of the metrics.)
        if let Some(&offset) = done.positions.get(&LOCAL_PARTITION) {
            self.metrics
                .committed_offset
                .store(offset, Ordering::Release);
        }
        debug!(target: "rustmq::etl::pipeline", positions = ?done.positions, messages = done.messages, "batch committed");
        Ok(())
    }

    fn apply_update(&mut self) {
        let update = self
            .control
            .update
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(update) = update {
            self.recycle_base += self.loaded.transform.recycles();
            info!(target: "rustmq::etl::pipeline", from = %self.loaded.module_id, to = %update.loaded.module_id, "pipeline switched module at a batch boundary");
            self.loaded = update.loaded;
            // The state belongs to the pipeline, not the module: the new version
            // sees what the old one left.
            self.loaded.transform.attach_state(self.state.clone());
            self.metrics.set_stages(self.loaded.counters.clone());
            self.attach_canary();
            self.configuration = update.configuration;
        }
    }

    /// Binds the canary (if any) to the pipeline's state, and shows both versions'
    /// counters in the metrics.
    fn attach_canary(&mut self) {
        if let Some(c) = self.loaded.canary.as_mut() {
            c.loaded.transform.attach_state(self.state.clone());
        }
        self.metrics.set_canary(
            self.loaded
                .canary
                .as_ref()
                .map(|c| (c.spec.clone(), self.loaded.version.clone(), c.sides.clone())),
        );
    }

    /// Counts into the counters of the version handling the message in hand, while
    /// a canary runs.
    fn count_side(&self, count: impl Fn(&PipelineMetrics)) {
        if let Some(c) = &self.loaded.canary {
            count(match self.side {
                Side::Stable => &c.sides.stable,
                Side::Canary => &c.sides.canary,
            });
        }
    }

    /// The module id and version that handled the message in hand.
    fn side_identity(&self) -> (&str, &str) {
        match (self.side, &self.loaded.canary) {
            (Side::Canary, Some(c)) => (&c.loaded.module_id, &c.loaded.version),
            _ => (&self.loaded.module_id, &self.loaded.version),
        }
    }

    /// Tries the message on the canary, if it takes it: `Some` with the outcome when
    /// the canary handled it; `None` when the message is the pinned version's,
    /// including after the canary failed it (the failure is counted, and may roll
    /// the canary back).
    fn try_canary(&mut self, f: &Fetched, ctx: &mut ProcessContext) -> Option<Routed> {
        let batch_mode = self.configuration.processing_mode == ProcessingMode::Batch;
        let canary = self.loaded.canary.as_mut()?;
        if !canary.spec.takes(&f.message, f.partition, f.offset) {
            return None;
        }
        ctx.source_offset = f.offset;
        ctx.attempt = 1;
        self.state.with(|s| s.discard_call());
        let started = Instant::now();
        let result = call_one(&mut *canary.loaded.transform, f, ctx, batch_mode);
        let micros = started.elapsed().as_micros() as u64;
        self.metrics.record_time(micros);
        canary.sides.canary.record_time(micros);
        let failure = match &result {
            Err(e) => Some(describe(e)),
            Ok(out) => out.error.clone(),
        };
        if let Some(error) = failure {
            // The pinned version takes the message, with none of the canary's
            // state changes.
            self.state.with(|s| s.discard_call());
            canary.sides.canary.failed_one();
            debug!(target: "rustmq::etl::pipeline", offset = f.offset, error = %error, "the canary failed a message; the pinned version takes it");
            if let Some(reason) = canary.judge() {
                warn!(target: "rustmq::etl::pipeline", canary = %canary.loaded.module_id, reason = %reason, "canary rolled back");
                self.loaded.canary = None;
                self.metrics.set_canary(None);
            }
            return None;
        }
        self.side = Side::Canary;
        match self.classify(f, result, 1) {
            Outcome::Done(routed) => Some(routed),
            // An answer without an error is never a failure.
            Outcome::Failed { .. } => {
                self.side = Side::Stable;
                None
            }
        }
    }

    /// Processes one batch and starts its commit (once the previous one is durable);
    /// `Some` when the worker must end.
    fn process_batch(
        &mut self,
        mut fetched: Vec<Fetched>,
        in_flight: &mut VecDeque<InFlight>,
    ) -> Option<RunState> {
        // While a canary runs, each message says which version made it.
        let per_message = self.loaded.canary.is_some();
        let mut stamp = if per_message {
            Vec::new()
        } else {
            vec![
                (headers::MODULE.to_string(), self.loaded.module_id.clone()),
                (
                    headers::MODULE_VERSION.to_string(),
                    self.loaded.version.clone(),
                ),
            ]
        };
        if !self.loaded.chain.is_empty() {
            stamp.push((headers::CHAIN.to_string(), self.loaded.chain.join(",")));
        }
        let mut batch = CommitBatch {
            // Every output and error-topic message says which module produced it.
            stamp,
            ..CommitBatch::default()
        };
        let mut handled = 0usize;
        let mut end = None;
        let mut produced = 0u64;
        // Bytes of everything this commit will write, outputs and error-topic
        // messages: once it reaches MAX_BATCH_OUTPUT_BYTES, the rest of the batch
        // waits for the next commit.
        let mut bytes = 0usize;
        // Built once per batch: only the offset and attempt change between calls.
        let mut ctx = ProcessContext {
            pipeline_id: self.pipeline_id.clone(),
            source_topic: self.source_topic.clone(),
            source_offset: 0,
            attempt: 1,
        };
        // In batch mode the whole batch goes to the module in one call; when that
        // call cannot be kept as a whole (see `call_batch`), every message is
        // processed again on its own.
        let mut whole =
            if self.configuration.processing_mode == ProcessingMode::Batch && !per_message {
                self.call_batch(&mut fetched).map(Vec::into_iter)
            } else {
                None
            };
        for f in &fetched {
            let routed = match &mut whole {
                Some(outcomes) => outcomes.next().expect("one outcome per message"),
                None => {
                    if self.control.stopping() {
                        break;
                    }
                    self.handle(f, &mut ctx)
                }
            };
            let mut routed = routed;
            if per_message {
                let (module_id, version) = self.side_identity();
                let stamp_one = |m: &mut Message| {
                    m.set_header(headers::MODULE, module_id);
                    m.set_header(headers::MODULE_VERSION, version);
                };
                match &mut routed {
                    Routed::Outputs(msgs, routed) => {
                        msgs.iter_mut().for_each(stamp_one);
                        routed.iter_mut().for_each(|(_, m)| stamp_one(m));
                    }
                    Routed::Errors(msgs) => msgs.iter_mut().for_each(stamp_one),
                    Routed::Halt(_) | Routed::Interrupted => {}
                }
            }
            match routed {
                Routed::Outputs(msgs, routed) => {
                    produced += (msgs.len() + routed.len()) as u64;
                    bytes += msgs.iter().map(Message::memory_size).sum::<usize>()
                        + routed.iter().map(|(_, m)| m.memory_size()).sum::<usize>();
                    batch.destination.extend(msgs);
                    for (route, m) in routed {
                        if batch.routed.len() <= route {
                            batch.routed.resize_with(route + 1, Vec::new);
                        }
                        batch.routed[route].push(m);
                    }
                }
                Routed::Errors(msgs) => {
                    bytes += msgs.iter().map(Message::memory_size).sum::<usize>();
                    batch.errors.extend(msgs);
                }
                Routed::Halt(reason) => {
                    end = Some(reason);
                    break;
                }
                Routed::Interrupted => break,
            }
            batch.positions.insert(f.partition, f.offset + 1);
            handled += 1;
            if bytes >= MAX_BATCH_OUTPUT_BYTES && whole.is_none() {
                break;
            }
        }
        if end.is_none() && !self.control.stopping() && handled < fetched.len() {
            // Cut at the output bound: the rest is processed right after this
            // commit. (After a halt or a stop it is read again from the committed
            // position instead.)
            self.carried = fetched.split_off(handled);
            debug!(target: "rustmq::etl::pipeline", bytes, carried = self.carried.len(), "batch cut at its output bound");
        }
        // Only the changes of messages that are part of this commit: a halt or a
        // stop leaves the rest uncommitted, and their calls' changes were discarded.
        if let Some(changes) = self.state.with(|s| s.take_changes()) {
            batch.state = changes;
        }
        self.metrics.recycles.store(
            self.recycle_base + self.loaded.transform.recycles(),
            Ordering::Relaxed,
        );
        self.metrics
            .memory_bytes
            .store(self.loaded.transform.memory_bytes(), Ordering::Relaxed);
        // Room for this commit: the oldest ones must be durable first. (One started
        // behind a commit that then fails is refused by the sink, never stored.)
        let keep = self.sink.max_in_flight().max(1) - 1;
        if let Err(reason) = self.settle_to(in_flight, keep) {
            return Some(self.fail(reason));
        }
        if handled > 0 {
            let positions = batch.positions.clone();
            match self.sink.start_commit(batch) {
                Ok(pending) => in_flight.push_back(InFlight {
                    pending,
                    positions,
                    produced,
                    messages: handled,
                }),
                Err(e) => {
                    let fault = Fault::io("committing the batch failed", &e);
                    return Some(self.fail(self.settle(in_flight).err().unwrap_or(fault)));
                }
            }
        }
        if let Some(reason) = end {
            // What was handled before the halt is kept; the failed message is not.
            return Some(self.fail(self.settle(in_flight).err().unwrap_or(reason.into())));
        }
        // A stop (or an interrupted retry) leaves the rest of the batch uncommitted;
        // the next start reads it again from the committed offset.
        None
    }

    fn fail(&self, fault: impl Into<Fault>) -> RunState {
        let Fault {
            reason,
            storage_blocked,
        } = fault.into();
        if self.control.stopping() {
            // A sink may give up on a commit once a stop is asked for (a Kafka
            // cluster that is down): what was not committed is read again on the
            // next start, so this is the stop that was asked for, not a failure
            // that would keep the pipeline from resuming after a restart.
            warn!(target: "rustmq::etl::pipeline", reason = %reason, "stopped with the last batch uncommitted");
            return RunState::Stopped;
        }
        if storage_blocked {
            // Nothing after the last durable commit is kept: the worker that takes
            // over reads on from the committed offset, with the committed state.
            warn!(target: "rustmq::etl::pipeline", reason = %reason, "pipeline stalled until the storage takes writes again");
            return RunState::Stalled(reason);
        }
        warn!(target: "rustmq::etl::pipeline", reason = %reason, "pipeline failed");
        RunState::Failed(reason)
    }

    /// Runs one message through the module, retrying failures per the policy.
    /// In batch mode each try is a batch call of this one message.
    fn handle(&mut self, f: &Fetched, ctx: &mut ProcessContext) -> Routed {
        if let Err(e) = self.header_limits.check(&f.message.headers) {
            // Not the module's failure: no call is made, so no attempt is counted.
            return self.to_error_topic(f, vec![f.message.clone()], e.code(), &e.to_string(), 0);
        }
        self.side = Side::Stable;
        if let Some(routed) = self.try_canary(f, ctx) {
            return routed;
        }
        let policy = self.configuration.retry_policy;
        let batch_mode = self.configuration.processing_mode == ProcessingMode::Batch;
        let mut attempt = 1u32;
        loop {
            ctx.source_offset = f.offset;
            ctx.attempt = attempt;
            self.state.with(|s| s.discard_call());
            let started = Instant::now();
            let result = call_one(&mut *self.loaded.transform, f, ctx, batch_mode);
            let micros = started.elapsed().as_micros() as u64;
            self.metrics.record_time(micros);
            self.count_side(|m| m.record_time(micros));
            let (cause, error) = match self.classify(f, result, attempt) {
                Outcome::Done(routed) => return routed,
                Outcome::Failed { cause, error } => (cause, error),
            };
            debug!(target: "rustmq::etl::pipeline", offset = f.offset, attempt, cause, error = %error, "module call failed");
            if attempt > policy.max_retries {
                return self.to_error_topic(f, vec![f.message.clone()], cause, &error, attempt);
            }
            self.metrics.retries.fetch_add(1, Ordering::Relaxed);
            if !self.control.sleep(policy.backoff(attempt)) {
                return Routed::Interrupted;
            }
            attempt += 1;
        }
    }

    /// Calls the module once for the whole batch (first tries). Returns one
    /// outcome per message, or `None` when the call cannot be kept as a whole: it
    /// failed (trap, timeout, an answer of the wrong length or over the caps), or
    /// one of its messages needs a retry or broke a rule (state limit, undeclared
    /// route) whose state changes cannot be told apart from the others'. Then the
    /// call's outputs and state changes are discarded and the caller processes
    /// each message on its own.
    ///
    /// A kept call's *pass* outputs take their inputs' messages rather than copies:
    /// `fetched` then holds only the positions of the messages the call covered.
    fn call_batch(&mut self, fetched: &mut [Fetched]) -> Option<Vec<Routed>> {
        if fetched.is_empty() || self.control.stopping() {
            return None;
        }
        // A message over the header limits is never handed to the module; one at a
        // time, it goes to the error topic (see `handle`).
        if fetched
            .iter()
            .any(|f| self.header_limits.check(&f.message.headers).is_err())
        {
            return None;
        }
        let messages: Vec<&Message> = fetched.iter().map(|f| &f.message).collect();
        let offsets: Vec<u64> = fetched.iter().map(|f| f.offset).collect();
        let ctx = BatchContext {
            pipeline_id: self.pipeline_id.clone(),
            source_topic: self.source_topic.clone(),
            attempt: 1,
        };
        self.state.with(|s| s.discard_call());
        let started = Instant::now();
        let answers = self
            .loaded
            .transform
            .process_batch_moving(&messages, &offsets, &ctx);
        let per_message = started.elapsed().as_micros() as u64 / fetched.len() as u64;
        self.metrics.record_times(per_message, fetched.len() as u64);
        let answers = match answers {
            Ok(answers) if answers.len() == fetched.len() => answers,
            Ok(answers) => {
                return self.replay_batch(&format!(
                    "the module answered {} results for a batch of {} messages",
                    answers.len(),
                    fetched.len()
                ))
            }
            Err(e) => return self.replay_batch(&e.to_string()),
        };
        if let Some(refusal) = self.state.with(|s| s.refusal().cloned()).flatten() {
            return self.replay_batch(&refusal.to_string());
        }
        // A dead letter with no error topic halts the pipeline at its message: the
        // changes of that message and those after it must not be committed, and the
        // call's changes cannot be told apart, so the batch goes one by one.
        let keep = answers.iter().all(|out| match &out.error {
            None => self.resolve_routes(out).is_ok(),
            Some(_) => out.should_continue && self.has_error_topic,
        });
        if !keep {
            return self.replay_batch("a message of the batch failed");
        }
        self.state.with(|s| s.accept_call());
        let mut outcomes = Vec::with_capacity(fetched.len());
        for (f, mut out) in fetched.iter_mut().zip(answers) {
            // Kept: the input is needed no more (a dead letter without outputs, the
            // one answer that sends its input on, never has a moved output).
            if let Some(k) = out.moved_input.take() {
                out.messages[k] = std::mem::take(&mut f.message);
            }
            match self.classify(f, Ok(out), 1) {
                Outcome::Done(routed) => outcomes.push(routed),
                Outcome::Failed { .. } => unreachable!("checked above: every answer is final"),
            }
        }
        Some(outcomes)
    }

    fn replay_batch(&mut self, why: &str) -> Option<Vec<Routed>> {
        self.state.with(|s| s.discard_call());
        self.metrics.batch_replays.fetch_add(1, Ordering::Relaxed);
        debug!(target: "rustmq::etl::pipeline", reason = %why, "batch processed again one message per call");
        None
    }

    /// Where each output of `out` goes: the destination (`None`) or a route index.
    fn resolve_routes(&self, out: &ProcessOutput) -> Result<Vec<Option<usize>>, String> {
        let mut places = vec![None; out.messages.len()];
        for (i, topic) in &out.topics {
            if *topic == self.destination_topic {
                continue;
            }
            match self.routes.iter().position(|r| r == topic) {
                Some(route) if *i < places.len() => places[*i] = Some(route),
                Some(_) => return Err(format!("output {i} does not exist")),
                None => {
                    return Err(if self.routes.is_empty() {
                        format!("the module routed an output to topic {topic:?}, but the pipeline declares no routes; add it to the pipeline's \"routes\"")
                    } else {
                        format!(
                            "the module routed an output to topic {topic:?}, which is not among the pipeline's routes {:?}; add it to \"routes\" or fix the module",
                            self.routes
                        )
                    })
                }
            }
        }
        Ok(places)
    }

    /// What one call's answer means for its message; keeps or discards the call's
    /// state changes accordingly.
    fn classify(
        &mut self,
        f: &Fetched,
        result: Result<ProcessOutput, TransformError>,
        attempt: u32,
    ) -> Outcome {
        let refusal = self.state.with(|s| s.refusal().cloned()).flatten();
        let out = match result {
            Err(e) => {
                self.state.with(|s| s.discard_call());
                return Outcome::Failed {
                    cause: e.cause(),
                    error: describe(&e),
                };
            }
            Ok(out) => out,
        };
        if let Some(refusal) = refusal {
            // Retrying cannot help: the same message makes the same change.
            self.state.with(|s| s.discard_call());
            return Outcome::Done(self.to_error_topic(
                f,
                vec![f.message.clone()],
                "state_limit",
                &refusal.to_string(),
                attempt,
            ));
        }
        match out.error {
            None => {
                let places = match self.resolve_routes(&out) {
                    Ok(places) => places,
                    Err(error) => {
                        self.state.with(|s| s.discard_call());
                        return Outcome::Done(self.to_error_topic(
                            f,
                            vec![f.message.clone()],
                            "undeclared_route",
                            &error,
                            attempt,
                        ));
                    }
                };
                self.state.with(|s| s.accept_call());
                let filtered = out.messages.is_empty();
                self.metrics.processed_one(filtered);
                self.count_side(|m| m.processed_one(filtered));
                if out.topics.is_empty() {
                    return Outcome::Done(Routed::Outputs(out.messages, Vec::new()));
                }
                let mut destination = Vec::with_capacity(out.messages.len());
                let mut routed = Vec::new();
                for (m, place) in out.messages.into_iter().zip(places) {
                    match place {
                        None => destination.push(m),
                        Some(route) => routed.push((route, m)),
                    }
                }
                Outcome::Done(Routed::Outputs(destination, routed))
            }
            Some(error) if out.should_continue => {
                // The guide's dead-letter pattern: straight to the error topic. The
                // module chose this answer, so its state changes stand, committed
                // with the error-topic message. Without an error topic the message
                // halts the pipeline uncommitted, and its changes go with it.
                if self.has_error_topic {
                    self.state.with(|s| s.accept_call());
                } else {
                    self.state.with(|s| s.discard_call());
                }
                let msgs = if out.messages.is_empty() {
                    vec![f.message.clone()]
                } else {
                    out.messages
                };
                Outcome::Done(self.to_error_topic(f, msgs, "dead_letter", &error, attempt))
            }
            Some(error) => {
                self.state.with(|s| s.discard_call());
                Outcome::Failed {
                    cause: "module_error",
                    error,
                }
            }
        }
    }

    fn to_error_topic(
        &self,
        f: &Fetched,
        mut msgs: Vec<Message>,
        cause: &str,
        error: &str,
        attempts: u32,
    ) -> Routed {
        if !self.has_error_topic {
            return Routed::Halt(format!(
                "message at offset {} of topic {:?} failed after {attempts} attempt(s) ({cause}: {error}) and the pipeline has no error_topic; fix the module or add an error_topic, then start the pipeline again",
                f.offset, self.source_topic
            ));
        }
        self.metrics.failed_one();
        self.count_side(PipelineMetrics::failed_one);
        let error = truncate(error, MAX_ERROR_HEADER_LEN);
        // With no call made (a message over the header limits), no stage failed.
        let failed_stage = (attempts > 0)
            .then(|| self.loaded.transform.failed_stage())
            .flatten();
        for m in &mut msgs {
            // A redrive's failure goes back as its pipeline's dead letter, from where
            // it first came.
            if let Some(parent) = &self.redrive_of {
                m.set_header(headers::PIPELINE, parent.as_str());
            } else {
                m.set_header(headers::PIPELINE, self.pipeline_id.as_str());
                m.set_header(headers::SOURCE_TOPIC, self.source_topic.as_str());
                m.set_header(headers::SOURCE_OFFSET, f.offset.to_string());
                if self.source_topic.starts_with(KAFKA_SCHEME) {
                    m.set_header(headers::SOURCE_PARTITION, f.partition.to_string());
                }
            }
            m.set_header(headers::ERROR, error);
            m.set_header(headers::ERROR_CAUSE, cause);
            m.set_header(headers::ATTEMPTS, attempts.to_string());
            if let Some(stage) = &failed_stage {
                m.set_header(headers::ERROR_STAGE, stage.index.to_string());
                m.set_header(headers::ERROR_MODULE, stage.module_id.as_str());
                m.set_header(headers::ERROR_MODULE_VERSION, stage.version.as_str());
            }
        }
        Routed::Errors(msgs)
    }
}

/// One call of `transform` on `f` at `ctx`'s attempt: `process`, or in batch mode a
/// batch call of this one message.
fn call_one(
    transform: &mut dyn Transform,
    f: &Fetched,
    ctx: &ProcessContext,
    batch_mode: bool,
) -> Result<ProcessOutput, TransformError> {
    if !batch_mode {
        return transform.process(&f.message, ctx);
    }
    let batch_ctx = BatchContext {
        pipeline_id: ctx.pipeline_id.clone(),
        source_topic: ctx.source_topic.clone(),
        attempt: ctx.attempt,
    };
    transform
        .process_batch(&[&f.message], &[f.offset], &batch_ctx)
        .and_then(|mut answers| {
            answers
                .pop()
                .ok_or_else(|| TransformError::Abi("process-batch answered no result".into()))
        })
}

fn describe(e: &TransformError) -> String {
    e.to_string()
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fakes::Numbered;
    use crate::pipeline::io::IoError;
    use crate::runtime::ProcessOutput;
    use crate::storage::StorageError;

    /// Hands back every message unchanged.
    struct Echo;

    impl Transform for Echo {
        fn process(
            &mut self,
            message: &Message,
            _ctx: &ProcessContext,
        ) -> Result<ProcessOutput, TransformError> {
            Ok(ProcessOutput {
                messages: vec![message.clone()],
                should_continue: true,
                ..ProcessOutput::default()
            })
        }
        fn recycles(&self) -> u64 {
            0
        }
        fn memory_bytes(&self) -> u64 {
            0
        }
    }

    /// What the fake sink saw: `started` commits (their next offsets), and the most
    /// that were unconfirmed at once.
    #[derive(Default)]
    struct Log {
        started: Vec<u64>,
        unconfirmed: usize,
        most_unconfirmed: usize,
    }

    /// A sink whose commit number `fail_at` (from 0) fails when waited for, and
    /// which allows `in_flight` unconfirmed commits.
    struct Flaky {
        log: Arc<Mutex<Log>>,
        fail_at: usize,
        failure: fn() -> IoError,
        in_flight: usize,
    }

    struct Pending {
        log: Arc<Mutex<Log>>,
        fails: Option<fn() -> IoError>,
    }

    impl PendingCommit for Pending {
        fn wait(self: Box<Self>) -> Result<(), IoError> {
            self.log.lock().unwrap().unconfirmed -= 1;
            match self.fails {
                Some(failure) => Err(failure()),
                None => Ok(()),
            }
        }
    }

    impl Sink for Flaky {
        fn start_commit(&mut self, batch: CommitBatch) -> Result<Box<dyn PendingCommit>, IoError> {
            let mut log = self.log.lock().unwrap();
            log.unconfirmed += 1;
            log.most_unconfirmed = log.most_unconfirmed.max(log.unconfirmed);
            log.started.push(batch.positions[&LOCAL_PARTITION]);
            let fails = (log.started.len() - 1 == self.fail_at).then_some(self.failure);
            Ok(Box::new(Pending {
                log: Arc::clone(&self.log),
                fails,
            }))
        }
        fn committed(&mut self) -> Result<Option<u64>, IoError> {
            Ok(None)
        }
        fn max_in_flight(&self) -> usize {
            self.in_flight
        }
    }

    /// Runs messages in batches of 10 through a sink that allows `in_flight`
    /// unconfirmed commits and whose third commit fails with `failure`.
    fn run_until_commit_fails(
        in_flight: usize,
        failure: fn() -> IoError,
    ) -> (RunState, Arc<Mutex<Log>>, Arc<PipelineMetrics>) {
        let log = Arc::new(Mutex::new(Log::default()));
        let metrics = Arc::new(PipelineMetrics::default());
        let control = Arc::new(Control::default());
        let mut source = Numbered::new(100);
        source.stop_at_end = Some(Arc::clone(&control));
        let mut worker = Worker {
            pipeline_id: "pipeline-1".into(),
            source_topic: "in".into(),
            has_error_topic: false,
            configuration: Configuration {
                batch_size: 10,
                ..Configuration::default()
            },
            loaded: Loaded {
                transform: Box::new(Echo),
                module_id: "echo-v1.0.0".into(),
                version: "1.0.0".into(),
                chain: Vec::new(),
                counters: Vec::new(),
                canary: None,
            },
            source: Box::new(source),
            sink: Box::new(Flaky {
                log: Arc::clone(&log),
                fail_at: 2,
                failure,
                in_flight,
            }),
            metrics: Arc::clone(&metrics),
            control,
            recycle_base: 0,
            destination_topic: "out".into(),
            routes: Vec::new(),
            state: SharedState::default(),
            header_limits: HeaderLimits::default(),
            carried: Vec::new(),
            until: None,
            side: Side::Stable,
            redrive_of: None,
        };
        (worker.run(), log, metrics)
    }

    #[test]
    fn a_failed_commit_stops_the_pipeline_before_a_later_batch_is_committed() {
        let (end, log, metrics) =
            run_until_commit_fails(1, || IoError::new("the disk is on fire".into()));
        assert!(
            matches!(&end, RunState::Failed(why) if why.contains("on fire")),
            "{end:?}"
        );
        let log = log.lock().unwrap();
        // Commits 0 and 1 landed, 2 failed, and 3 was never started.
        assert_eq!(log.started, [10, 20, 30]);
        assert_eq!(
            log.most_unconfirmed, 1,
            "a commit started before the previous one was confirmed"
        );
        assert_eq!(metrics.committed_offset.load(Ordering::Acquire), 20);
    }

    #[test]
    fn a_sink_that_takes_two_commits_in_flight_gets_two_and_a_failure_still_stops_the_pipeline() {
        let (end, log, metrics) =
            run_until_commit_fails(2, || IoError::new("the disk is on fire".into()));
        assert!(
            matches!(&end, RunState::Failed(why) if why.contains("on fire")),
            "{end:?}"
        );
        let log = log.lock().unwrap();
        // Commit 3 was started behind commit 2 (the sink refuses it, as the local
        // store does), and nothing after it: the worker stopped at 2's failure.
        assert_eq!(log.started, [10, 20, 30, 40]);
        assert_eq!(log.most_unconfirmed, 2);
        assert_eq!(
            log.unconfirmed, 1,
            "the commit behind the failed one is left unconfirmed"
        );
        assert_eq!(metrics.committed_offset.load(Ordering::Acquire), 20);
    }

    #[test]
    fn a_commit_refused_for_a_full_disk_stalls_the_pipeline_instead_of_failing_it() {
        let (end, log, metrics) = run_until_commit_fails(1, || {
            StorageError::Full {
                dir: "data".into(),
                available: 10,
                reserve: 100,
            }
            .into()
        });
        assert!(
            matches!(&end, RunState::Stalled(why) if why.contains("min_free_bytes")),
            "{end:?}"
        );
        assert!(end.is_live());
        // As with a failure, nothing after the refused commit was started.
        assert_eq!(log.lock().unwrap().started, [10, 20, 30]);
        assert_eq!(metrics.committed_offset.load(Ordering::Acquire), 20);
    }

    #[test]
    fn truncate_keeps_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn stop_interrupts_a_backoff_sleep() {
        let c = Arc::new(Control::default());
        let c2 = c.clone();
        let t = std::thread::spawn(move || c2.sleep(Duration::from_secs(60)));
        c.request_stop();
        assert!(!t.join().unwrap());
    }
}
