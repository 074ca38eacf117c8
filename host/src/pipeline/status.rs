//! [`PipelineStatus`]: what `GET /api/v1/etl/pipelines/{id}/status` shows, built
//! from the persisted record, the worker's state and the stored offsets.

use super::canary::{CanaryEvent, CanarySpec, VersionMetrics};
use serde::{Deserialize, Serialize};

use super::spec::{self, PipelineRecord};
use super::worker::RunState;
use crate::kafka::progress::KafkaSnapshot;
use crate::kafka::Delivery;
use crate::storage::Storage;

/// Whether a pipeline is running, as its status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Processing, or waiting for messages.
    Running,
    /// Stopped on request (or never started).
    Stopped,
    /// Stopped by a failure (`failure` says which); start it again once fixed.
    Failed,
    /// Waiting for the storage to take writes again; it goes on by itself.
    Stalled,
    /// A bounded pipeline (a backfill) that committed every message before its
    /// `end_offset`.
    Completed,
}

impl RunStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
            RunStatus::Stalled => "stalled",
            RunStatus::Completed => "completed",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with the wire spelling (`status == "running"`).
impl PartialEq<&str> for RunStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What `GET .../status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PipelineStatus {
    /// `pipeline-<n>`.
    pub pipeline_id: String,
    /// The unique name.
    pub pipeline_name: String,
    /// `running`, `stopped`, `failed`, `stalled` (waiting for the storage to take
    /// writes again; it goes on by itself), or `completed` (a bounded pipeline that
    /// reached its `end_offset`).
    pub status: RunStatus,
    /// Why it failed or stalled, when it did.
    pub failure: Option<String>,
    /// Free text.
    pub description: String,
    /// Source topic.
    pub source_topic: String,
    /// Destination topic.
    pub destination_topic: String,
    /// Error topic.
    pub error_topic: Option<String>,
    /// The topics the module may route outputs to.
    pub routes: Vec<String>,
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
    /// The next source offset to process (everything before is committed); for a
    /// Kafka source, see `kafka.partitions`.
    pub committed_offset: u64,
    /// Source end offset (a bounded pipeline's `end_offset`, when sooner) minus
    /// committed offset (for a Kafka source, summed over the partitions this broker
    /// owns).
    pub lag: u64,
    /// A bounded pipeline's range (a backfill's): from `start_offset` to before
    /// `end_offset`; its progress is `committed_offset` within it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub start_offset: Option<u64>,
    /// See `start_offset`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub end_offset: Option<u64>,
    /// `exactly_once` or `at_least_once`: what the pipeline's endpoints give (see
    /// docs/scaling.md).
    pub delivery: Delivery,
    /// A Kafka source's consumer group, partitions, positions, lag, rebalances and
    /// the cluster error of the moment, while the pipeline runs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kafka: Option<KafkaSnapshot>,
    /// Creation time, ms since the epoch.
    pub created_at_ms: i64,
    /// A chain's stages, in order (the `module_*` fields above are its first
    /// stage's); empty for a pipeline of one module.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageStatus>,
    /// The canary running beside the pinned version, if any (its `module_version`
    /// is the exact version), with both versions' numbers in `versions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
    /// While a canary runs: the pinned version's and the canary's numbers, side by
    /// side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<VersionMetrics>,
    /// How the last canary ended (`rolled_back`, `promoted` or `removed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_event: Option<CanaryEvent>,
}

/// One stage of a chain, in a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageStatus {
    /// Its index, from 0.
    pub stage: usize,
    /// The module name.
    pub module_name: String,
    /// The requirement given.
    pub module_requirement: String,
    /// The exact version it is pinned to.
    pub module_version: String,
    /// The exact module id it is pinned to.
    pub module_id: String,
}

impl PipelineStatus {
    /// The status of the pipeline `record`, whose worker (if any) reports
    /// `run_state`; offsets are read from `storage`, or from `kafka` for a Kafka
    /// source; `delivery` is the guarantee in force.
    pub(crate) fn new(
        record: &PipelineRecord,
        run_state: Option<RunState>,
        storage: &Storage,
        delivery: Delivery,
        kafka: Option<KafkaSnapshot>,
    ) -> Self {
        let r = record;
        let committed = storage
            .consumer_offset(&r.consumer_id())
            .ok()
            .flatten()
            .unwrap_or(0);
        let reached_end = r.spec.end_offset.is_some_and(|end| committed >= end);
        let (status, failure) = match run_state {
            Some(RunState::Running) => (RunStatus::Running, None),
            Some(RunState::Failed(reason)) => (RunStatus::Failed, Some(reason)),
            Some(RunState::Stalled(reason)) => (RunStatus::Stalled, Some(reason)),
            Some(RunState::Completed) => (RunStatus::Completed, None),
            _ if r.failure.is_some() => (RunStatus::Failed, r.failure.clone()),
            _ if reached_end => (RunStatus::Completed, None),
            _ => (RunStatus::Stopped, None),
        };
        let end = storage.end_offset(&r.spec.source_topic).unwrap_or(0);
        let end = r.spec.end_offset.map_or(end, |bound| bound.min(end));
        PipelineStatus {
            pipeline_id: r.pipeline_id.clone(),
            pipeline_name: r.spec.pipeline_name.clone(),
            status,
            failure,
            description: r.spec.description.clone(),
            source_topic: r.spec.source_topic.clone(),
            destination_topic: r.spec.destination_topic.clone(),
            error_topic: r.spec.error_topic.clone(),
            routes: r.spec.routes.clone(),
            module_name: r.spec.stages()[0].module_name.clone(),
            module_requirement: r.spec.stages()[0].module_version.clone(),
            module_version: r.module_version.to_string(),
            module_id: r.module_id.clone(),
            configuration: r.spec.configuration.clone(),
            committed_offset: committed,
            lag: match &kafka {
                Some(k) => k.lag,
                None => end.saturating_sub(committed),
            },
            start_offset: match (r.spec.end_offset, r.spec.start_from) {
                (Some(_), spec::StartFrom::Offset(start)) => Some(start),
                _ => None,
            },
            end_offset: r.spec.end_offset,
            delivery,
            kafka,
            created_at_ms: r.created_at_ms,
            stages: r
                .stages
                .iter()
                .zip(&r.spec.modules)
                .enumerate()
                .map(|(stage, (pinned, spec))| StageStatus {
                    stage,
                    module_name: spec.module_name.clone(),
                    module_requirement: spec.module_version.clone(),
                    module_version: pinned.module_version.to_string(),
                    module_id: pinned.module_id.clone(),
                })
                .collect(),
            canary: r.spec.canary.clone(),
            versions: Vec::new(),
            canary_event: r.canary_event.clone(),
        }
    }
}
