//! The bodies of the HTTP APIs, defined once: the server writes them and the
//! `rustmq-etl` command line reads them, so a renamed field fails to compile rather
//! than at a user's terminal. Types that a layer builds itself (a pipeline's status,
//! its metrics and state, a module's record, a topic, a message) are re-exported from
//! where they live; the envelopes around them are here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::kafka::progress::{KafkaSnapshot, PartitionLag};
pub use crate::kafka::Delivery;
pub use crate::message::{MessageOut, MessageOutRef};
pub use crate::modules::ModuleRecord;
pub use crate::pipeline::metrics::MetricsSnapshot;
pub use crate::pipeline::{PipelineStatus, RunStatus, StageStatus};
pub use crate::runtime::chain::StageMetrics;
pub use crate::state::{StateReset, StateView};
pub use crate::storage::{StorageHealth, TopicInfo};

/// Every error answer: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable snake_case code.
    pub code: String,
    /// What went wrong and, where possible, what to do.
    pub message: String,
}

/// `POST /api/v1/topics/{topic}/messages` with one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Produced {
    /// The topic.
    pub topic: String,
    /// The message's offset.
    pub offset: u64,
}

/// `POST /api/v1/topics/{topic}/messages` with `{"messages": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProducedBatch {
    /// The topic.
    pub topic: String,
    /// Each message's offset, in order.
    pub offsets: Vec<u64>,
}

/// `GET /api/v1/topics/{topic}/messages`: the server writes borrowed messages
/// ([`MessageOutRef`]), a client reads owned ones ([`MessageOut`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Consumed<M> {
    /// The messages read, in offset order.
    pub messages: Vec<M>,
    /// The offset to read from next.
    pub next_offset: u64,
    /// The first offset still stored.
    pub start_offset: u64,
    /// One past the last offset.
    pub end_offset: u64,
}

/// `GET /api/v1/topics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicList {
    /// Every topic, by name.
    pub topics: Vec<TopicInfo>,
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BrokerStatus {
    /// The broker's version.
    pub version: String,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// The message API's bound address (the console reaches it on the host it was
    /// loaded from, at this port).
    #[serde(default)]
    pub messages_addr: String,
    /// The store.
    pub storage: StorageStatus,
    /// The `[etl]` settings in force (the guide's step 1.3 reads `.etl.enabled`).
    pub etl: EtlSettings,
}

/// The store, in [`BrokerStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StorageStatus {
    /// The data directory.
    #[schema(value_type = String)]
    pub path: PathBuf,
    /// The database file's size.
    pub size_bytes: u64,
    /// How many topics there are.
    pub topics: usize,
    /// Whether writes are taken, and why not.
    #[serde(flatten)]
    pub health: StorageHealth,
}

/// The `[etl]` settings, in [`BrokerStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EtlSettings {
    /// Whether pipelines run.
    pub enabled: bool,
    /// Linear memory per instance.
    pub memory_limit_bytes: u64,
    /// Deadline of one call.
    pub execution_timeout_ms: u64,
    /// Guest calls at once, broker-wide.
    pub max_concurrent_executions: u32,
    /// Where modules are stored.
    #[schema(value_type = String)]
    pub modules_path: PathBuf,
    /// Largest upload.
    pub max_module_size_bytes: u64,
    /// Most messages one call may return.
    pub max_output_messages: u32,
    /// Most bytes one call may return.
    pub max_output_bytes: u64,
}

/// A module as the module routes show it: its record, what an upload or delete did
/// (`uploaded`, `unchanged`, `resolved`, `deleted`), and the pipelines pinned to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModuleView {
    /// The record.
    #[serde(flatten)]
    pub record: ModuleRecord,
    /// What the request did, on upload, resolve and delete.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<String>,
    /// The pipelines pinned to it, on list and get.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pinned_by: Option<Vec<String>>,
}

/// `GET /api/v1/etl/modules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModuleList {
    /// Every module.
    pub modules: Vec<ModuleView>,
    /// How many.
    pub count: usize,
}

/// `POST /api/v1/etl/pipelines`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PipelineCreated {
    /// The new pipeline's id.
    pub pipeline_id: String,
    /// Always `created`.
    pub status: String,
    /// Whether it runs now.
    pub state: RunStatus,
    /// The module it is pinned to.
    pub module_id: String,
    /// That module's exact version.
    pub module_version: String,
}

/// `GET /api/v1/etl/pipelines`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PipelineList {
    /// Every pipeline's status.
    pub pipelines: Vec<PipelineStatus>,
    /// How many.
    pub count: usize,
}

/// `DELETE /api/v1/etl/pipelines/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PipelineDeleted {
    /// The id or name the request gave.
    pub pipeline_id: String,
    /// Always `deleted`.
    pub status: String,
}

/// `GET /api/v1/metrics`: totals over the broker, and each pipeline's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BrokerMetrics {
    /// Totals.
    pub etl: EtlTotals,
    /// Per pipeline id.
    pub pipelines: BTreeMap<String, MetricsSnapshot>,
}

/// The totals of [`BrokerMetrics`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EtlTotals {
    /// Whether pipelines run.
    pub enabled: bool,
    /// Guest memory of every pipeline.
    pub memory_usage_bytes: u64,
    /// Pipelines defined.
    pub pipelines_total: usize,
    /// Pipelines running.
    pub pipelines_running: usize,
    /// Pipelines failed.
    pub pipelines_failed: usize,
    /// Modules uploaded.
    pub modules: usize,
    /// Modules compiled since the broker started.
    pub modules_compiled: u64,
    /// Modules loaded from the compiled cache.
    pub modules_loaded_from_cache: u64,
    /// Compiled-cache entries refused (and compiled again).
    pub compiled_cache_rejects: u64,
    /// Inputs processed.
    pub messages_processed: u64,
    /// Inputs filtered out.
    pub messages_filtered: u64,
    /// Inputs that failed.
    pub messages_failed: u64,
    /// Outputs written.
    pub messages_produced: u64,
    /// Retries.
    pub retries: u64,
    /// Batches processed again one message per call.
    pub batch_replays: u64,
    /// Instances replaced.
    pub instance_recycles: u64,
}
