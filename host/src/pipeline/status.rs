//! [`PipelineStatus`]: what `GET /api/v1/etl/pipelines/{id}/status` shows, built
//! from the persisted record, the worker's state and the stored offsets.

use serde::Serialize;

use super::spec::{self, PipelineRecord};
use super::worker::RunState;
use crate::storage::Storage;

/// What `GET .../status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineStatus {
    /// `pipeline-<n>`.
    pub pipeline_id: String,
    /// The unique name.
    pub pipeline_name: String,
    /// `running`, `stopped` or `failed`.
    pub status: &'static str,
    /// Why it failed, when it did.
    pub failure: Option<String>,
    /// Free text.
    pub description: String,
    /// Source topic.
    pub source_topic: String,
    /// Destination topic.
    pub destination_topic: String,
    /// Error topic.
    pub error_topic: Option<String>,
    /// The module name.
    pub module_name: String,
    /// The requirement given (`^1`, `1.0.0`, ...).
    pub module_requirement: String,
    /// The exact version the pipeline is pinned to.
    pub module_version: String,
    /// The exact module id it is pinned to.
    pub module_id: String,
    /// Settings.
    pub configuration: spec::Configuration,
    /// The next source offset to process (everything before is committed).
    pub committed_offset: u64,
    /// Source end offset minus committed offset.
    pub lag: u64,
    /// Creation time, ms since the epoch.
    pub created_at_ms: i64,
}

impl PipelineStatus {
    /// The status of the pipeline `record`, whose worker (if any) reports
    /// `run_state`; offsets are read from `storage`.
    pub(crate) fn new(
        record: &PipelineRecord,
        run_state: Option<RunState>,
        storage: &Storage,
    ) -> Self {
        let r = record;
        let (status, failure) = match run_state {
            Some(RunState::Running) => ("running", None),
            Some(RunState::Failed(reason)) => ("failed", Some(reason)),
            _ if r.failure.is_some() => ("failed", r.failure.clone()),
            _ => ("stopped", None),
        };
        let committed = storage
            .consumer_offset(&r.consumer_id())
            .ok()
            .flatten()
            .unwrap_or(0);
        let end = storage.end_offset(&r.spec.source_topic).unwrap_or(0);
        PipelineStatus {
            pipeline_id: r.pipeline_id.clone(),
            pipeline_name: r.spec.pipeline_name.clone(),
            status,
            failure,
            description: r.spec.description.clone(),
            source_topic: r.spec.source_topic.clone(),
            destination_topic: r.spec.destination_topic.clone(),
            error_topic: r.spec.error_topic.clone(),
            module_name: r.spec.module_name.clone(),
            module_requirement: r.spec.module_version.clone(),
            module_version: r.module_version.to_string(),
            module_id: r.module_id.clone(),
            configuration: r.spec.configuration.clone(),
            committed_offset: committed,
            lag: end.saturating_sub(committed),
            created_at_ms: r.created_at_ms,
        }
    }
}
