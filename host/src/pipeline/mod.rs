//! Pipelines: `source topic → module → destination topic`, with an error topic for
//! what fails. See `docs/pipelines.md` for the processing semantics.
//!
//! # Layout
//! - `spec`: the definition users post, its validation, the persisted record.
//! - `endpoint`: topic references: local names and `kafka://CLUSTER/TOPIC`.
//! - `io`: the [`io::Source`] / [`io::Sink`] traits and the local-topic implementations.
//! - `connect`: the source and sink for a pipeline's endpoints, and the delivery
//!   guarantee they give.
//! - `read_ahead`: a [`io::Source`] wrapper that reads the next batch on its own thread.
//! - `worker`: the loop of one running pipeline (its own thread).
//! - `metrics`: per-pipeline counters and latency histograms.
//! - `window`: the last minutes of those, in 5 s buckets (the console's charts).
//! - `status`: [`PipelineStatus`], what the status routes show.
//!
//! [`PipelineManager`] owns every pipeline: it persists definitions, pins each to an
//! exact module version, starts and stops workers, hands them hot-swap updates, and
//! resumes the running ones after a restart.
//!
//! # Lifecycle
//! Every operation that starts, stops, changes or deletes a pipeline (start, stop,
//! update, delete, a state reset, shutdown) holds that pipeline's own operation lock
//! from its first check to its last effect, so they run one after the other whatever
//! the API calls race: a second `start` waits for the first and finds the pipeline
//! running, a `stop` or a state reset waits for a `start` in progress, and both
//! answer only once the worker has finished its last commit and its thread has
//! ended. So a pipeline has at most one worker, ever. The map of pipelines has its own
//! lock, held only for short reads and writes and never while waiting for a worker.
//! Ids come from a persisted counter and are never reused: a pipeline created while
//! another is being deleted can neither take its id nor see its state or position,
//! which are deleted before its definition, and its entry goes last.

mod backfill;
pub mod canary;
pub mod connect;
pub mod endpoint;
#[cfg(test)]
mod fakes;
pub mod io;
pub mod loaded;
pub mod metrics;
pub mod read_ahead;
mod redrive;
mod reset;
pub mod spec;
mod status;
pub mod window;
pub mod worker;

pub use backfill::BackfillRequest;
pub use io::DEFAULT_COMMITS_IN_FLIGHT;
pub use redrive::RedriveRequest;
pub use reset::{ResetRequest, ResetTo};
pub use status::{PipelineStatus, RunStatus, StageStatus};

use canary::{CanaryEvent, CanarySpec};
use loaded::Canary;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::kafka::Clusters;
use crate::message::HeaderLimits;
use crate::modules::{ModuleError, ModuleRecord, ModuleStore};
use crate::runtime::chain::{ChainTransform, Stage, StageCounters};
use crate::runtime::TransformError;
use crate::state::{PipelineState, SharedState, DEFAULT_STATE_QUOTA_BYTES};
use crate::storage::{Commit, MetaTable, StatePage, Storage, StorageError};
use connect::Endpoints;
use endpoint::Endpoint;
use io::{LocalSource, Source};
use metrics::{MetricsSnapshot, PipelineMetrics};
use spec::{DesiredState, PipelinePatch, PipelineRecord, PipelineSpec, SpecError, StartFrom};
use worker::{Control, Loaded, RunState, Update, Worker};

/// Why a pipeline operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// No pipeline with that id or name.
    #[error("no pipeline {0:?}; list pipelines with GET /api/v1/etl/pipelines")]
    NotFound(String),
    /// The definition is invalid.
    #[error("invalid pipeline definition: {0}")]
    Spec(#[from] SpecError),
    /// Another pipeline has that name.
    #[error(
        "a pipeline named {0:?} already exists; choose another pipeline_name or update that one"
    )]
    DuplicateName(String),
    /// The module could not be resolved or loaded.
    #[error(transparent)]
    Module(#[from] ModuleError),
    /// The module refused the parameters or could not be instantiated.
    #[error("the module could not start: {0}")]
    Start(#[from] TransformError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A module cannot be deleted while pipelines are pinned to it.
    #[error("module {module_id} is pinned by pipeline(s) {}; move them to another version (PATCH module_version) or delete them first", .pipelines.join(", "))]
    ModuleInUse {
        /// The module.
        module_id: String,
        /// The pipelines pinned to it.
        pipelines: Vec<String>,
    },
    /// The source or sink failed, or a worker thread could not be started.
    #[error("{0}")]
    Io(String),
    /// The operation needs the pipeline stopped (the message says how).
    #[error("{0}")]
    Running(String),
}

struct Entry {
    record: PipelineRecord,
    metrics: Arc<PipelineMetrics>,
    run: Option<Run>,
    /// Held by each lifecycle operation on this pipeline (see the module docs).
    ops: Arc<Mutex<()>>,
}

impl Entry {
    fn new(record: PipelineRecord) -> Entry {
        Entry {
            record,
            metrics: Arc::default(),
            run: None,
            ops: Arc::default(),
        }
    }
}

/// What a start does when the local source topic was deleted and created again
/// since the pipeline's position was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recreated {
    /// Fail with a reason that says so (resumes after a restart, restarts by PATCH).
    Fail,
    /// Read the new topic from its first message (an operator's start).
    ReadFromStart,
}

/// How a stage is pinned in a record.
fn pin(module: &ModuleRecord) -> spec::PinnedStage {
    spec::PinnedStage {
        module_id: module.module_id.clone(),
        module_version: module.version.clone(),
    }
}

/// The stage a PATCH's `module_version` applies to: `stage` in a chain (required),
/// 0 for a pipeline of one module.
fn patch_stage(record: &PipelineRecord, stage: Option<usize>) -> Result<usize, PipelineError> {
    let stages = record.pinned().len();
    let bad = |message: String| {
        PipelineError::Spec(SpecError {
            field: "stage",
            message,
        })
    };
    match (record.spec.is_chain(), stage) {
        (false, None | Some(0)) => Ok(0),
        (false, Some(_)) => Err(bad("this pipeline runs one module: leave stage out".into())),
        (true, None) => Err(bad(format!(
            "this pipeline runs a chain of {stages} modules: say which stage (0 to {}) module_version applies to",
            stages - 1
        ))),
        (true, Some(k)) if k < stages => Ok(k),
        (true, Some(k)) => Err(bad(format!(
            "stage {k} does not exist: the chain has stages 0 to {}",
            stages - 1
        ))),
    }
}

/// How often a stalled pipeline asks whether the storage takes writes again.
const STALL_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// A worker's connected endpoints and loaded state, waiting for its module.
struct WorkerParts {
    record: PipelineRecord,
    connected: connect::Connected,
    metrics: Arc<PipelineMetrics>,
    control: Arc<Control>,
    state: SharedState,
    header_limits: crate::message::HeaderLimits,
}

impl WorkerParts {
    fn with(self, loaded: Loaded) -> Worker {
        let record = self.record;
        Worker {
            pipeline_id: record.pipeline_id.clone(),
            source_topic: record.spec.source_topic.clone(),
            has_error_topic: record.spec.error_topic.is_some(),
            configuration: record.spec.configuration.clone(),
            loaded,
            sink: self.connected.sink,
            source: self.connected.source,
            metrics: self.metrics,
            control: self.control,
            recycle_base: 0,
            destination_topic: record.spec.destination_topic.clone(),
            routes: record.spec.routes.clone(),
            state: self.state,
            header_limits: self.header_limits,
            carried: Vec::new(),
            until: record.spec.end_offset,
            side: worker::Side::Stable,
            redrive_of: record.spec.redrive_of.clone(),
        }
    }
}

/// Whether `canary` is not the canary `before` already was (a canary given anew
/// with the pinned version is refused rather than silently dropped).
fn patch_is_new(before: &Option<CanarySpec>, canary: &CanarySpec) -> bool {
    before.as_ref() != Some(canary)
}

/// The key of the last pipeline id handed out, in [`MetaTable::Counters`].
pub const LAST_PIPELINE_ID: &str = "last-pipeline-id";

struct Run {
    control: Arc<Control>,
    state: Arc<Mutex<RunState>>,
    thread: Option<JoinHandle<()>>,
}

impl Run {
    fn state(&self) -> RunState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn stop_and_join(&mut self) {
        self.control.request_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Owns every pipeline. Cheap to clone. Its methods block (they may compile modules
/// or wait for a worker to finish its batch): call them off the async executor.
#[derive(Clone)]
pub struct PipelineManager {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    modules: ModuleStore,
    kafka: Clusters,
    pipelines: Mutex<BTreeMap<String, Entry>>,
    /// `[etl] state_quota_bytes`.
    state_quota: AtomicU64,
    /// `[etl] commits_in_flight`.
    commits_in_flight: AtomicUsize,
    /// `[server] max_headers_per_message` and `max_header_bytes_per_message`.
    header_limits: Mutex<HeaderLimits>,
    /// The number of the last pipeline id handed out (persisted before use); read and
    /// written under the `pipelines` lock.
    last_id: AtomicU64,
    /// Set by [`PipelineManager::shutdown`]: no worker starts after it.
    shutting_down: AtomicBool,
}

impl PipelineManager {
    /// Loads the persisted pipelines (without starting them; see [`Self::resume`]),
    /// with no Kafka cluster declared.
    pub fn open(storage: Storage, modules: ModuleStore) -> Result<Self, PipelineError> {
        Self::open_with_kafka(storage, modules, Clusters::default())
    }

    /// Loads the persisted pipelines; their topics may be on the `kafka` clusters.
    pub fn open_with_kafka(
        storage: Storage,
        modules: ModuleStore,
        kafka: Clusters,
    ) -> Result<Self, PipelineError> {
        let mut pipelines = BTreeMap::new();
        for (key, value) in storage.meta_list(MetaTable::Pipelines)? {
            match serde_json::from_slice::<PipelineRecord>(&value) {
                Ok(record) => {
                    pipelines.insert(record.pipeline_id.clone(), Entry::new(record));
                }
                Err(e) => {
                    tracing::error!(target: "rustmq::etl::pipeline", key, error = %e, "skipping an unreadable pipeline record")
                }
            }
        }
        // Brokers from before the counter have only their pipelines' ids to go by.
        let counted = storage
            .meta_get(MetaTable::Counters, LAST_PIPELINE_ID)?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        let last_id = pipelines
            .keys()
            .filter_map(|k| id_number(k))
            .max()
            .unwrap_or(0)
            .max(counted);
        Ok(PipelineManager {
            inner: Arc::new(Inner {
                storage,
                modules,
                kafka,
                pipelines: Mutex::new(pipelines),
                state_quota: AtomicU64::new(DEFAULT_STATE_QUOTA_BYTES),
                commits_in_flight: AtomicUsize::new(DEFAULT_COMMITS_IN_FLIGHT),
                header_limits: Mutex::new(HeaderLimits::DEFAULT),
                last_id: AtomicU64::new(last_id),
                shutting_down: AtomicBool::new(false),
            }),
        })
    }

    /// Sets the state quota of pipelines started from now on (`[etl]
    /// state_quota_bytes`).
    pub fn set_state_quota(&self, bytes: u64) {
        self.inner.state_quota.store(bytes, Ordering::Relaxed);
    }

    /// Sets how many commits pipelines between this broker's topics, started from
    /// now on, may have in flight (`[etl] commits_in_flight`).
    pub fn set_commits_in_flight(&self, commits: usize) {
        self.inner
            .commits_in_flight
            .store(commits.max(1), Ordering::Relaxed);
    }

    /// Sets the header limits that pipelines started from now on hold the messages
    /// they read to (`[server] max_headers_per_message`, `max_header_bytes_per_message`).
    pub fn set_header_limits(&self, limits: HeaderLimits) {
        *self
            .inner
            .header_limits
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = limits;
    }

    /// A pipeline's committed state, sorted by key.
    pub fn state(&self, id_or_name: &str) -> Result<Vec<(String, Vec<u8>)>, PipelineError> {
        let id = self.resolve_id(id_or_name)?;
        Ok(self.inner.storage.pipeline_state(&id)?)
    }

    /// One page of a pipeline's committed state: the keys after `after`, at most
    /// `limit` of them and about `max_bytes` (see [`Storage::pipeline_state_page`]).
    pub fn state_page(
        &self,
        id_or_name: &str,
        after: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<(String, StatePage), PipelineError> {
        let id = self.resolve_id(id_or_name)?;
        let page = self
            .inner
            .storage
            .pipeline_state_page(&id, after, limit, max_bytes)?;
        Ok((id, page))
    }

    /// Deletes a stopped pipeline's state; returns how many keys it held. A
    /// running pipeline holds its state in memory, so it must be stopped first.
    pub fn reset_state(&self, id_or_name: &str) -> Result<usize, PipelineError> {
        let (id, ops) = self.ops(id_or_name)?;
        let _op = lock(&ops);
        {
            let pipelines = self.lock();
            let entry = pipelines
                .get(&id)
                .ok_or_else(|| PipelineError::NotFound(id.clone()))?;
            // A stop in progress holds the operation lock until its worker's last
            // commit is done, so a worker seen here is running or has ended.
            if entry.run.as_ref().is_some_and(|r| r.state().is_live()) {
                return Err(PipelineError::Running(format!(
                    "pipeline {:?} is running; stop it (POST /api/v1/etl/pipelines/{id}/stop), reset its state, then start it again",
                    entry.record.spec.pipeline_name
                )));
            }
        }
        let deleted = self.inner.storage.delete_pipeline_state(&id)?;
        tracing::info!(target: "rustmq::etl::pipeline", pipeline_id = %id, keys = deleted, "pipeline state reset");
        Ok(deleted)
    }

    /// Starts every pipeline that was running before the broker stopped.
    pub fn resume(&self) {
        let ids: Vec<(String, String)> = self
            .lock()
            .values()
            .filter(|e| e.record.desired == DesiredState::Running && e.record.failure.is_none())
            .map(|e| (e.record.pipeline_id.clone(), e.record.module_id.clone()))
            .collect();
        for (id, module_id) in ids {
            let resumed = self.ops(&id).and_then(|(id, ops)| {
                let _op = lock(&ops);
                self.start_locked(&id, Recreated::Fail)
            });
            if let Err(e) = resumed {
                tracing::error!(target: "rustmq::etl::pipeline", pipeline_id = %id, error = %e, "could not resume pipeline");
                // Shown in its status, so the operator sees why it is not running.
                self.record_failure(
                    &id,
                    &format!("could not resume after a restart with module {module_id}: {e}"),
                );
            }
        }
    }

    /// Creates a pipeline, pinning it to the highest module version matching its
    /// requirement, and starts it when `enabled`.
    pub fn create(&self, mut spec: PipelineSpec) -> Result<PipelineStatus, PipelineError> {
        let endpoints = self.check(&spec)?;
        let modules = self.resolve_stages(&spec)?;
        // A canary given at creation is pinned like the module.
        if let Some(canary) = spec.canary.as_mut() {
            let module = self
                .inner
                .modules
                .resolve(&spec.module_name, &canary.module_version)?;
            if module.version == modules[0].version {
                return Err(PipelineError::Spec(SpecError {
                    field: "canary",
                    message: format!("{} is the version the pipeline is pinned to; give another version as the canary", module.version),
                }));
            }
            canary.module_version = module.version.to_string();
        }
        // Fail now, not at start, if a module does not load or refuses its params.
        let loaded = self.load(&modules, "validation", &spec)?;
        drop(loaded);
        // Fix the starting position of a local source now so that `latest` means
        // "after creation". (A Kafka source's group applies `start_from` itself.)
        let start = match &endpoints.source {
            Endpoint::Local(topic) => {
                let source = LocalSource::new(self.inner.storage.clone(), topic, None);
                let (first, end) = source
                    .bounds()
                    .map_err(|e| PipelineError::Io(e.to_string()))?;
                Some(match spec.start_from {
                    StartFrom::Earliest => first,
                    StartFrom::Latest => end,
                    StartFrom::Offset(o) => o,
                })
            }
            Endpoint::Kafka { .. } => None,
        };
        // The name check, the id choice and the insert happen under one lock, so
        // concurrent creates can neither share an id (the second would replace the
        // first, orphaning its worker) nor a name.
        let mut pipelines = self.lock();
        if pipelines
            .values()
            .any(|e| e.record.spec.pipeline_name == spec.pipeline_name)
        {
            return Err(PipelineError::DuplicateName(spec.pipeline_name));
        }
        // A module deleted since it was resolved must not be pinned: deletes take
        // this lock too (see `delete_module`).
        for module in &modules {
            if self.inner.modules.get(&module.module_id)?.is_none() {
                return Err(ModuleError::NotFound(module.module_id.clone()).into());
            }
        }
        // The counter is persisted before the id is used: an id is never handed out
        // twice, not even across a crash.
        let n = self.inner.last_id.load(Ordering::SeqCst) + 1;
        self.inner.storage.meta_put(
            MetaTable::Counters,
            LAST_PIPELINE_ID,
            n.to_string().as_bytes(),
        )?;
        self.inner.last_id.store(n, Ordering::SeqCst);
        let id = format!("pipeline-{n}");
        let record = PipelineRecord {
            pipeline_id: id.clone(),
            module_id: modules[0].module_id.clone(),
            module_version: modules[0].version.clone(),
            stages: if spec.is_chain() {
                modules.iter().map(pin).collect()
            } else {
                Vec::new()
            },
            desired: if spec.enabled {
                DesiredState::Running
            } else {
                DesiredState::Stopped
            },
            failure: None,
            created_at_ms: crate::message::now_millis(),
            canary_event: None,
            source_topic_id: match &endpoints.source {
                Endpoint::Local(topic) => self.local_topic_id(topic)?,
                Endpoint::Kafka { .. } => None,
            },
            spec,
        };
        self.inner
            .storage
            .delete_consumer_offset(&record.consumer_id())?;
        if let Some(start) = start {
            self.inner.storage.commit(Commit {
                appends: Vec::new(),
                offsets: vec![(record.consumer_id(), start)],
                ..Commit::default()
            })?;
        }
        self.persist(&record)?;
        let enabled = record.desired == DesiredState::Running;
        pipelines.insert(id.clone(), Entry::new(record));
        drop(pipelines);
        tracing::info!(target: "rustmq::etl::pipeline", pipeline_id = %id, "pipeline created");
        if enabled {
            self.start(&id)
        } else {
            self.status(&id)
        }
    }

    /// Starts a pipeline (no-op when it is running). Clears a previous failure.
    ///
    /// A pipeline whose local source topic was deleted and created again since its
    /// position was committed starts reading the new topic from its first message:
    /// starting it is the operator's answer to the failure that said so.
    pub fn start(&self, id_or_name: &str) -> Result<PipelineStatus, PipelineError> {
        let (id, ops) = self.ops(id_or_name)?;
        let _op = lock(&ops);
        self.start_locked(&id, Recreated::ReadFromStart)
    }

    /// [`Self::start`], with the pipeline's operation lock held; `recreated` says
    /// what to do when the source topic was created again.
    fn start_locked(
        &self,
        id: &str,
        recreated: Recreated,
    ) -> Result<PipelineStatus, PipelineError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(PipelineError::Io(
                "the broker is shutting down; the pipeline starts again when it restarts"
                    .to_string(),
            ));
        }
        let id = id.to_string();
        let (record, metrics, ended) = {
            let mut pipelines = self.lock();
            let entry = pipelines
                .get_mut(&id)
                .ok_or_else(|| PipelineError::NotFound(id.clone()))?;
            if let Some(run) = &entry.run {
                if run.state().is_live() {
                    drop(pipelines);
                    return self.status(&id);
                }
            }
            (
                entry.record.clone(),
                entry.metrics.clone(),
                entry.run.take(),
            )
        };
        // A worker that ended by itself (failed): its thread is done or finishing.
        if let Some(mut run) = ended {
            run.stop_and_join();
        }
        let record = self.follow_source_topic(record, recreated)?;
        let modules = self.pinned_modules(&record)?;
        let loaded = self.load(&modules, &record.pipeline_id, &record.spec)?;
        let control = Arc::new(Control::default());
        let state = Arc::new(Mutex::new(RunState::Running));
        let thread = {
            let state = state.clone();
            let manager = self.clone();
            let id = id.clone();
            let control = control.clone();
            std::thread::Builder::new()
                .name(worker_thread_name(&id))
                .spawn(move || {
                    let end = manager.run_worker(&record, loaded, metrics, control, &state);
                    match &end {
                        RunState::Failed(reason) => manager.record_failure(&id, reason),
                        RunState::Completed => manager.record_completion(&id),
                        _ => {}
                    }
                    *state.lock().unwrap_or_else(|p| p.into_inner()) = end;
                })
                .map_err(|e| PipelineError::Io(format!("could not start a worker thread: {e}")))?
        };
        let mut pipelines = self.lock();
        let entry = pipelines
            .get_mut(&id)
            .ok_or_else(|| PipelineError::NotFound(id.clone()))?;
        entry.record.desired = DesiredState::Running;
        entry.record.failure = None;
        let record = entry.record.clone();
        entry.run = Some(Run {
            control,
            state,
            thread: Some(thread),
        });
        drop(pipelines);
        self.persist(&record)?;
        self.status(&id)
    }

    /// The id of local topic `topic`, if it exists and has one.
    fn local_topic_id(&self, topic: &str) -> Result<Option<u64>, PipelineError> {
        Ok(self
            .inner
            .storage
            .topic(topic)?
            .map(|info| info.topic_id)
            .filter(|&id| id != 0))
    }

    /// Brings `record`'s source topic id up to date before a start: learns it when
    /// it was not known, and when the topic was created again either fails (a
    /// resume, a restart by PATCH) or moves the committed position to the new
    /// topic's first message (an operator's start). Persists what changed.
    fn follow_source_topic(
        &self,
        mut record: PipelineRecord,
        recreated: Recreated,
    ) -> Result<PipelineRecord, PipelineError> {
        let Endpoint::Local(topic) = Endpoints::of(&record.spec, &self.inner.kafka)?.source else {
            return Ok(record);
        };
        let Some(current) = self.local_topic_id(&topic)? else {
            return Ok(record);
        };
        match (record.source_topic_id, recreated) {
            (Some(known), _) if known == current => return Ok(record),
            (None, _) => {}
            (Some(known), Recreated::Fail) => {
                return Err(PipelineError::Io(format!(
                    "the source topic {topic:?} was deleted and created again (topic id {current} is not the {known} this pipeline read): its offsets started over; start the pipeline again to read the new topic from its first message"
                )))
            }
            (Some(known), Recreated::ReadFromStart) => {
                let start = self
                    .inner
                    .storage
                    .topic(&topic)?
                    .map_or(0, |info| info.start_offset);
                self.inner.storage.commit(Commit {
                    offsets: vec![(record.consumer_id(), start)],
                    ..Commit::default()
                })?;
                tracing::warn!(target: "rustmq::etl::pipeline", pipeline_id = %record.pipeline_id, topic = %topic, old_topic_id = known, topic_id = current, offset = start, "source topic was created again: reading the new topic from its first message");
            }
        }
        record.source_topic_id = Some(current);
        if let Some(entry) = self.lock().get_mut(&record.pipeline_id) {
            entry.record.source_topic_id = Some(current);
        }
        self.persist(&record)?;
        Ok(record)
    }

    /// The body of a worker thread: runs the pipeline's worker, and while the
    /// storage refuses writes (a full disk) shows the pipeline as stalled, waits for
    /// it, and runs a new worker from the committed offset and state.
    fn run_worker(
        &self,
        record: &PipelineRecord,
        mut loaded: Loaded,
        metrics: Arc<PipelineMetrics>,
        control: Arc<Control>,
        state: &Mutex<RunState>,
    ) -> RunState {
        let set = |s: RunState| *state.lock().unwrap_or_else(|p| p.into_inner()) = s;
        loop {
            let end = match self.worker(record, &metrics, &control) {
                Ok(parts) => {
                    let mut worker = parts.with(loaded);
                    let end = worker.run();
                    loaded = worker.loaded;
                    // The sink first: see `Worker::sink`.
                    drop(worker.sink);
                    drop(worker.source);
                    end
                }
                Err(end) => end,
            };
            let RunState::Stalled(reason) = &end else {
                return end;
            };
            tracing::warn!(target: "rustmq::etl::pipeline", pipeline_id = %record.pipeline_id, reason = %reason, "pipeline stalled");
            set(end.clone());
            if !self.wait_until_writable(&control) {
                return RunState::Stopped;
            }
            set(RunState::Running);
            tracing::info!(target: "rustmq::etl::pipeline", pipeline_id = %record.pipeline_id, "storage takes writes again: pipeline resumes from its committed offset");
        }
    }

    /// Waits until the storage takes writes (as large as the last one it refused);
    /// false if a stop came first. The free space of a filesystem has no
    /// notification to wait on, so it is asked every [`STALL_CHECK`].
    fn wait_until_writable(&self, control: &Control) -> bool {
        loop {
            if !control.sleep(STALL_CHECK) {
                return false;
            }
            if self.inner.storage.health().writable {
                return true;
            }
        }
    }

    /// Connects the pipeline's source and sink (Kafka clients wait for their
    /// cluster here, not in the request that started the pipeline) and loads its
    /// state: a worker but for its module.
    fn worker(
        &self,
        record: &PipelineRecord,
        metrics: &Arc<PipelineMetrics>,
        control: &Arc<Control>,
    ) -> Result<WorkerParts, RunState> {
        let connected = match connect::connect(
            record,
            &self.inner.storage,
            &self.inner.kafka,
            control,
            metrics,
            self.inner.commits_in_flight.load(Ordering::Relaxed),
        ) {
            Ok(c) => c,
            Err(_) if control.stop_requested() => return Err(RunState::Stopped),
            Err(reason) => {
                tracing::warn!(target: "rustmq::etl::pipeline", pipeline_id = %record.pipeline_id, reason = %reason, "pipeline could not connect");
                return Err(RunState::Failed(reason));
            }
        };
        metrics.set_kafka(connected.kafka.clone());
        let endpoints = match Endpoints::of(&record.spec, &self.inner.kafka) {
            Ok(e) => e,
            Err(e) => return Err(RunState::Failed(e.to_string())),
        };
        let state = if endpoints.all_local() {
            match self.inner.storage.pipeline_state(&record.pipeline_id) {
                Ok(entries) => SharedState::new(PipelineState::new(
                    entries,
                    self.inner.state_quota.load(Ordering::Relaxed),
                )),
                Err(e @ StorageError::Unavailable(_)) => {
                    return Err(RunState::Stalled(format!(
                        "could not load the pipeline's state: {e}"
                    )))
                }
                Err(e) => {
                    return Err(RunState::Failed(format!(
                        "could not load the pipeline's state: {e}"
                    )))
                }
            }
        } else {
            SharedState::unavailable("this pipeline uses a Kafka topic: durable state needs a pipeline between this broker's own topics, where one transaction holds outputs, state and offsets")
        };
        let header_limits = *self
            .inner
            .header_limits
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Ok(WorkerParts {
            record: record.clone(),
            connected,
            metrics: metrics.clone(),
            control: control.clone(),
            state,
            header_limits,
        })
    }

    /// Checks a definition, its topics included.
    fn check(&self, spec: &PipelineSpec) -> Result<Endpoints, PipelineError> {
        spec.validate(|_| Ok(()))?;
        Ok(Endpoints::of(spec, &self.inner.kafka)?)
    }

    /// Stops a pipeline at the next message boundary and waits for its worker's last
    /// commit.
    pub fn stop(&self, id_or_name: &str) -> Result<PipelineStatus, PipelineError> {
        let (id, ops) = self.ops(id_or_name)?;
        let _op = lock(&ops);
        self.stop_locked(&id)
    }

    /// [`Self::stop`], with the pipeline's operation lock held.
    fn stop_locked(&self, id: &str) -> Result<PipelineStatus, PipelineError> {
        let run = {
            let mut pipelines = self.lock();
            let entry = pipelines
                .get_mut(id)
                .ok_or_else(|| PipelineError::NotFound(id.to_string()))?;
            entry.record.desired = DesiredState::Stopped;
            self.persist(&entry.record)?;
            entry.run.take()
        };
        if let Some(mut run) = run {
            run.stop_and_join();
        }
        self.status(id)
    }

    /// Changes settings or the pinned module version. A running pipeline switches at
    /// its next batch boundary, losing and repeating nothing.
    pub fn update(
        &self,
        id_or_name: &str,
        patch: PipelinePatch,
    ) -> Result<PipelineStatus, PipelineError> {
        let (id, ops) = self.ops(id_or_name)?;
        let _op = lock(&ops);
        let mut record = self
            .lock()
            .get(&id)
            .ok_or_else(|| PipelineError::NotFound(id.clone()))?
            .record
            .clone();
        if let Some(c) = &patch.configuration {
            record.spec.configuration = c.apply(&record.spec.configuration);
        }
        if let Some(d) = patch.description {
            record.spec.description = d;
        }
        if let Some(t) = patch.error_topic {
            record.spec.error_topic = Some(t);
        }
        if let Some(routes) = patch.routes {
            record.spec.routes = routes;
        }
        let mut modules = self.pinned_modules(&record)?;
        if let Some(req) = &patch.module_version {
            let stage = patch_stage(&record, patch.stage)?;
            let name = match record.spec.modules.get_mut(stage) {
                Some(s) => {
                    s.module_version = req.clone();
                    s.module_name.clone()
                }
                None => {
                    record.spec.module_version = req.clone();
                    record.spec.module_name.clone()
                }
            };
            modules[stage] = self.inner.modules.resolve(&name, req)?;
            if let Some(pinned) = record.stages.get_mut(stage) {
                *pinned = pin(&modules[stage]);
            }
        } else if patch.stage.is_some() {
            return Err(PipelineError::Spec(SpecError {
                field: "stage",
                message: "names the stage a module_version applies to; give module_version too"
                    .into(),
            }));
        }
        self.patch_canary(&mut record, &modules[0].version, patch.canary)?;
        self.check(&record.spec)?;
        record.module_id = modules[0].module_id.clone();
        record.module_version = modules[0].version.clone();
        let error_topic_changed = {
            let pipelines = self.lock();
            let old = &pipelines
                .get(&id)
                .ok_or_else(|| PipelineError::NotFound(id.clone()))?
                .record
                .spec;
            old.error_topic != record.spec.error_topic || old.routes != record.spec.routes
        };
        let loaded = self.load(&modules, &id, &record.spec)?;
        let running = {
            let mut pipelines = self.lock();
            let entry = pipelines
                .get_mut(&id)
                .ok_or_else(|| PipelineError::NotFound(id.clone()))?;
            entry.record = record.clone();
            match &entry.run {
                Some(run) if run.state() == RunState::Running && !error_topic_changed => {
                    run.control.request_update(Update {
                        loaded,
                        configuration: record.spec.configuration.clone(),
                    });
                    false
                }
                Some(run) => run.state().is_live(),
                None => false,
            }
        };
        self.persist(&record)?;
        tracing::info!(target: "rustmq::etl::pipeline", pipeline_id = %id, module_id = %record.module_id, "pipeline updated");
        if running {
            // The sink itself changes: restart the worker (it resumes from the
            // committed offset, so nothing is lost or repeated).
            self.stop_locked(&id)?;
            return self.start_locked(&id, Recreated::Fail);
        }
        self.status(&id)
    }

    /// Applies a patch's `canary` (a new one, resolved to an exact version, or `null`
    /// for none) to `record`, which is to be pinned to `pinned`; a canary whose
    /// version becomes the pinned one ends as promoted.
    fn patch_canary(
        &self,
        record: &mut PipelineRecord,
        pinned: &semver::Version,
        patch: Option<Option<CanarySpec>>,
    ) -> Result<(), PipelineError> {
        let before = record.spec.canary.take();
        let after = match patch {
            None => before.clone(),
            Some(None) => None,
            Some(Some(mut canary)) => {
                canary.validate().map_err(|message| {
                    PipelineError::Spec(SpecError {
                        field: "canary",
                        message,
                    })
                })?;
                if record.spec.is_chain() {
                    return Err(PipelineError::Spec(SpecError {
                        field: "canary",
                        message: "a chain cannot run a canary yet; PATCH a stage's module_version instead".into(),
                    }));
                }
                let module = self
                    .inner
                    .modules
                    .resolve(&record.spec.module_name, &canary.module_version)?;
                canary.module_version = module.version.to_string();
                Some(canary)
            }
        };
        let pinned = pinned.to_string();
        let after = after.filter(|c| c.module_version != pinned || patch_is_new(&before, c));
        if let Some(c) = &after {
            if c.module_version == pinned {
                return Err(PipelineError::Spec(SpecError {
                    field: "canary",
                    message: format!("{} is the version the pipeline is pinned to; give another version as the canary", c.module_version),
                }));
            }
        }
        if let (Some(old), None) = (&before, &after) {
            record.canary_event = Some(CanaryEvent {
                event: if old.module_version == pinned {
                    "promoted"
                } else {
                    "removed"
                }
                .into(),
                module_version: old.module_version.clone(),
                at_ms: crate::message::now_millis(),
                reason: None,
            });
        }
        record.spec.canary = after;
        Ok(())
    }

    /// Stops a pipeline, waits for its worker's last commit, then deletes its state,
    /// its committed offset and its definition, in that order; the pipeline is gone
    /// from the list only then. Its id is never handed out again.
    pub fn delete(&self, id_or_name: &str) -> Result<(), PipelineError> {
        let (id, ops) = self.ops(id_or_name)?;
        let _op = lock(&ops);
        let run = self
            .lock()
            .get_mut(&id)
            .ok_or_else(|| PipelineError::NotFound(id.clone()))?
            .run
            .take();
        if let Some(mut run) = run {
            run.stop_and_join();
        }
        // The definition goes last: a delete cut short by a crash leaves a pipeline
        // that can be deleted again, never a state or position without one.
        self.inner.storage.delete_pipeline_state(&id)?;
        self.inner
            .storage
            .delete_consumer_offset(&spec::consumer_id(&id))?;
        self.inner.storage.meta_delete(MetaTable::Pipelines, &id)?;
        self.lock().remove(&id);
        tracing::info!(target: "rustmq::etl::pipeline", pipeline_id = %id, "pipeline deleted");
        Ok(())
    }

    /// One pipeline's status.
    pub fn status(&self, id_or_name: &str) -> Result<PipelineStatus, PipelineError> {
        let id = self.resolve_id(id_or_name)?;
        let pipelines = self.lock();
        let entry = pipelines
            .get(&id)
            .ok_or_else(|| PipelineError::NotFound(id.clone()))?;
        Ok(self.describe(entry))
    }

    /// Every pipeline's status, by id.
    pub fn list(&self) -> Vec<PipelineStatus> {
        let pipelines = self.lock();
        pipelines.values().map(|e| self.describe(e)).collect()
    }

    /// One pipeline's metrics.
    pub fn metrics(&self, id_or_name: &str) -> Result<MetricsSnapshot, PipelineError> {
        let id = self.resolve_id(id_or_name)?;
        let (metrics, topic) = {
            let pipelines = self.lock();
            let e = pipelines
                .get(&id)
                .ok_or_else(|| PipelineError::NotFound(id.clone()))?;
            (e.metrics.clone(), e.record.spec.source_topic.clone())
        };
        let end = self.inner.storage.end_offset(&topic).unwrap_or(0);
        Ok(metrics.snapshot(end))
    }

    /// One pipeline's last minutes, bucket by bucket.
    pub fn history(&self, id_or_name: &str) -> Result<window::MetricsHistory, PipelineError> {
        let id = self.resolve_id(id_or_name)?;
        let pipelines = self.lock();
        let e = pipelines
            .get(&id)
            .ok_or_else(|| PipelineError::NotFound(id.clone()))?;
        Ok(e.metrics.history())
    }

    /// Every pipeline's metrics, by id.
    pub fn all_metrics(&self) -> Vec<(String, MetricsSnapshot)> {
        let entries: Vec<(String, Arc<PipelineMetrics>, String)> = self
            .lock()
            .values()
            .map(|e| {
                (
                    e.record.pipeline_id.clone(),
                    e.metrics.clone(),
                    e.record.spec.source_topic.clone(),
                )
            })
            .collect();
        entries
            .into_iter()
            .map(|(id, m, topic)| {
                let end = self.inner.storage.end_offset(&topic).unwrap_or(0);
                (id, m.snapshot(end))
            })
            .collect()
    }

    /// Deletes a module unless a pipeline is pinned to it. Holding the pipeline lock
    /// while checking and deleting keeps a concurrent `create` from pinning the
    /// module in between.
    pub fn delete_module(&self, module_id: &str) -> Result<ModuleRecord, PipelineError> {
        let pipelines = self.lock();
        let pinned: Vec<String> = pipelines
            .values()
            .filter(|e| e.record.runs(module_id))
            .map(|e| e.record.pipeline_id.clone())
            .collect();
        if !pinned.is_empty() {
            return Err(PipelineError::ModuleInUse {
                module_id: module_id.to_string(),
                pipelines: pinned,
            });
        }
        Ok(self.inner.modules.delete(module_id)?)
    }

    /// The pipelines pinned to `module_id`.
    pub fn pinned_to(&self, module_id: &str) -> Vec<String> {
        self.lock()
            .values()
            .filter(|e| e.record.runs(module_id))
            .map(|e| e.record.pipeline_id.clone())
            .collect()
    }

    /// Stops every worker at a message boundary and waits for them (broker
    /// shutdown). Their desired state is kept, so they resume after a restart.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        // Every worker is asked at once, so they wind down together; then each
        // pipeline's operation lock is taken in turn, so a start still in progress
        // finishes (it cannot start a worker any more) before its entry is looked at.
        let all: Vec<(String, Arc<Mutex<()>>)> = {
            let pipelines = self.lock();
            for run in pipelines.values().filter_map(|e| e.run.as_ref()) {
                run.control.request_stop();
            }
            pipelines
                .iter()
                .map(|(id, e)| (id.clone(), e.ops.clone()))
                .collect()
        };
        for (id, ops) in all {
            let _op = lock(&ops);
            let run = self.lock().get_mut(&id).and_then(|e| e.run.take());
            if let Some(mut run) = run {
                run.stop_and_join();
            }
        }
    }

    fn describe(&self, entry: &Entry) -> PipelineStatus {
        let run_state = entry.run.as_ref().map(Run::state);
        let kafka = entry.metrics.kafka();
        let delivery = match &kafka {
            Some(k) => k.delivery,
            None => Endpoints::of(&entry.record.spec, &self.inner.kafka)
                .map(|e| e.best_delivery(&self.inner.kafka))
                .unwrap_or(crate::kafka::Delivery::AtLeastOnce),
        };
        let mut status = PipelineStatus::new(
            &entry.record,
            run_state,
            &self.inner.storage,
            delivery,
            kafka,
        );
        status.versions = entry.metrics.versions();
        // What the calls get, not what was asked for.
        status.configuration.timeout_ms =
            Some(self.effective_timeout_ms(&entry.record.spec.configuration));
        status
    }

    /// The module record of each stage of `spec`, resolved from its requirement.
    fn resolve_stages(&self, spec: &PipelineSpec) -> Result<Vec<ModuleRecord>, PipelineError> {
        spec.stages()
            .iter()
            .map(|s| {
                Ok(self
                    .inner
                    .modules
                    .resolve(&s.module_name, &s.module_version)?)
            })
            .collect()
    }

    /// The module records `record` is pinned to, in stage order.
    fn pinned_modules(&self, record: &PipelineRecord) -> Result<Vec<ModuleRecord>, PipelineError> {
        record
            .pinned()
            .iter()
            .map(|p| {
                self.inner
                    .modules
                    .get(&p.module_id)?
                    .ok_or_else(|| ModuleError::NotFound(p.module_id.clone()).into())
            })
            .collect()
    }

    /// Instantiates the pipeline's module, or its chain's (`modules` in stage
    /// order), each with its parameters and under the pipeline's deadline.
    fn load(
        &self,
        modules: &[ModuleRecord],
        pipeline_id: &str,
        spec: &PipelineSpec,
    ) -> Result<Loaded, PipelineError> {
        let timeout_ms = self.effective_timeout_ms(&spec.configuration);
        let mut stages = Vec::with_capacity(modules.len());
        for (module, stage) in modules.iter().zip(spec.stages()) {
            let compiled = self.inner.modules.compiled(module)?;
            // The module's `init` runs under the same deadline as its calls.
            let transform = compiled.instantiate_with_timeout(
                &module.module_id,
                pipeline_id,
                &stage.params,
                timeout_ms,
            )?;
            stages.push(Stage {
                transform,
                module_id: module.module_id.clone(),
                version: module.version.to_string(),
                counters: StageCounters::new(&module.module_id),
            });
        }
        if !spec.is_chain() {
            let stage = stages.pop().expect("a pipeline has a module");
            return Ok(Loaded {
                transform: stage.transform,
                module_id: stage.module_id,
                version: stage.version,
                chain: Vec::new(),
                counters: Vec::new(),
                canary: self.load_canary(pipeline_id, spec)?,
            });
        }
        let last = stages.last().expect("a chain has stages");
        let (module_id, version) = (last.module_id.clone(), last.version.clone());
        let chain_ids = stages.iter().map(|s| s.module_id.clone()).collect();
        let limits = self.inner.modules.runtime().limits();
        let chain =
            ChainTransform::new(stages, limits.max_output_messages, limits.max_output_bytes);
        Ok(Loaded {
            counters: chain.counters(),
            transform: Box::new(chain),
            module_id,
            version,
            chain: chain_ids,
            canary: None,
        })
    }

    /// The canary of `spec`, instantiated, if it has one.
    fn load_canary(
        &self,
        pipeline_id: &str,
        spec: &PipelineSpec,
    ) -> Result<Option<Box<Canary>>, PipelineError> {
        let Some(canary) = &spec.canary else {
            return Ok(None);
        };
        let module = self
            .inner
            .modules
            .resolve(&spec.module_name, &canary.module_version)?;
        let mut alone = spec.clone();
        alone.canary = None;
        let loaded = self.load(std::slice::from_ref(&module), pipeline_id, &alone)?;
        let manager = Arc::downgrade(&self.inner);
        let id = pipeline_id.to_string();
        let on_rollback = Arc::new(move |event: CanaryEvent| {
            if let Some(inner) = manager.upgrade() {
                PipelineManager { inner }.end_canary(&id, event);
            }
        });
        Ok(Some(Box::new(Canary::new(
            loaded,
            canary.clone(),
            on_rollback,
        ))))
    }

    /// Drops a rolled-back canary from the pipeline's definition and records why;
    /// its worker already stopped sending it messages.
    fn end_canary(&self, id: &str, event: CanaryEvent) {
        let Ok((id, ops)) = self.ops(id) else {
            return;
        };
        let _op = lock(&ops);
        let mut pipelines = self.lock();
        let Some(entry) = pipelines.get_mut(&id) else {
            return;
        };
        let running = entry.record.spec.canary.as_ref().map(|c| &c.module_version);
        if running != Some(&event.module_version) {
            return;
        }
        let mut record = entry.record.clone();
        record.spec.canary = None;
        record.canary_event = Some(event.clone());
        match self.persist(&record) {
            Ok(()) => {
                entry.record = record;
                tracing::warn!(target: "rustmq::etl::pipeline", pipeline_id = %id, canary = %event.module_version, reason = event.reason.as_deref().unwrap_or(""), "canary rolled back: the pipeline stays on its pinned version");
            }
            Err(e) => {
                tracing::error!(target: "rustmq::etl::pipeline", pipeline_id = %id, error = %e, "could not record a canary rollback; the canary stays off until the broker restarts")
            }
        }
    }

    /// Makes the canary the pinned version and ends it.
    pub fn promote(&self, id_or_name: &str) -> Result<PipelineStatus, PipelineError> {
        let canary = self
            .status(id_or_name)?
            .canary
            .ok_or_else(|| {
                PipelineError::Spec(SpecError {
                    field: "canary",
                    message: "this pipeline runs no canary; start one with PATCH {\"canary\": {\"module_version\": ..., \"percent\": ...}}".into(),
                })
            })?;
        self.update(
            id_or_name,
            PipelinePatch {
                module_version: Some(canary.module_version),
                canary: Some(None),
                ..PipelinePatch::default()
            },
        )
    }

    /// The deadline a pipeline's calls get: its `timeout_ms`, at most the broker's
    /// `execution_timeout_ms` (a pipeline may ask for less time, never more).
    fn effective_timeout_ms(&self, configuration: &spec::Configuration) -> u64 {
        let ceiling = self.inner.modules.runtime().limits().execution_timeout_ms;
        configuration
            .timeout_ms
            .map_or(ceiling, |ms| ms.clamp(1, ceiling))
    }

    fn record_failure(&self, id: &str, reason: &str) {
        let record = {
            let mut pipelines = self.lock();
            match pipelines.get_mut(id) {
                Some(entry) => {
                    entry.record.failure = Some(reason.to_string());
                    entry.record.clone()
                }
                None => return,
            }
        };
        if let Err(e) = self.persist(&record) {
            tracing::error!(target: "rustmq::etl::pipeline", pipeline_id = %id, error = %e, "could not persist the pipeline's failure");
        }
    }

    /// Persists that a bounded pipeline completed: its position is its end (even
    /// when its range held no message to commit), and it is not resumed at a restart.
    fn record_completion(&self, id: &str) {
        let record = {
            let mut pipelines = self.lock();
            match pipelines.get_mut(id) {
                Some(entry) => {
                    entry.record.desired = DesiredState::Stopped;
                    entry.record.clone()
                }
                None => return,
            }
        };
        if let Some(end) = record.spec.end_offset {
            let consumer = record.consumer_id();
            let at = self.inner.storage.consumer_offset(&consumer);
            if let Err(e) = at.and_then(|at| match at {
                Some(at) if at >= end => Ok(()),
                _ => self.inner.storage.set_consumer_offset(&consumer, end),
            }) {
                tracing::error!(target: "rustmq::etl::pipeline", pipeline_id = %id, error = %e, "could not persist the pipeline's end position");
            }
        }
        if let Err(e) = self.persist(&record) {
            tracing::error!(target: "rustmq::etl::pipeline", pipeline_id = %id, error = %e, "could not persist the pipeline's completion");
        }
    }

    /// The pipeline's id and its operation lock (see the module docs). Whoever locks
    /// it must look the pipeline up again: it may have been deleted in between.
    fn ops(&self, id_or_name: &str) -> Result<(String, Arc<Mutex<()>>), PipelineError> {
        let pipelines = self.lock();
        let (id, entry) = match pipelines.get_key_value(id_or_name) {
            Some(found) => found,
            None => pipelines
                .iter()
                .find(|(_, e)| e.record.spec.pipeline_name == id_or_name)
                .ok_or_else(|| PipelineError::NotFound(id_or_name.to_string()))?,
        };
        Ok((id.clone(), entry.ops.clone()))
    }

    fn resolve_id(&self, id_or_name: &str) -> Result<String, PipelineError> {
        let pipelines = self.lock();
        if pipelines.contains_key(id_or_name) {
            return Ok(id_or_name.to_string());
        }
        pipelines
            .values()
            .find(|e| e.record.spec.pipeline_name == id_or_name)
            .map(|e| e.record.pipeline_id.clone())
            .ok_or_else(|| PipelineError::NotFound(id_or_name.to_string()))
    }

    fn persist(&self, record: &PipelineRecord) -> Result<(), PipelineError> {
        let value = serde_json::to_vec(record).expect("a pipeline record always serialises");
        self.inner
            .storage
            .meta_put(MetaTable::Pipelines, &record.pipeline_id, &value)?;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        lock(&self.inner.pipelines)
    }
}

/// Locks `m`, going on past a panic of an earlier holder (the data it guards stays
/// consistent: every write to it is a single assignment or map operation).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `etl-N` for pipeline `pipeline-N`: Linux keeps 15 bytes of a thread's name
/// (what `top -H` and `/proc/*/task/*/comm` show), and `etl-pipeline-` alone is 13.
pub fn worker_thread_name(id: &str) -> String {
    match id_number(id) {
        Some(n) => format!("etl-{n}"),
        None => format!("etl-{id}"),
    }
}

/// The number of a `pipeline-N` id.
fn id_number(id: &str) -> Option<u64> {
    id.strip_prefix("pipeline-")?.parse().ok()
}
