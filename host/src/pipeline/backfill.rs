//! Backfills: a pipeline's module run over a range of its source into a side topic,
//! beside the live pipeline ([`PipelineManager::backfill`],
//! `POST /api/v1/etl/pipelines/{id}/backfill`).
//!
//! A backfill is a bounded pipeline of its own (`end_offset`): its own position,
//! metrics and status (`completed` at the end, `committed_offset` towards
//! `end_offset` while it runs), exactly once within its range, and it ends by itself.

use serde::{Deserialize, Serialize};

use super::endpoint::Endpoint;
use super::reset::ResetTo;
use super::spec::{PipelineRecord, PipelineSpec, SpecError, StartFrom};
use super::{Endpoints, PipelineError, PipelineManager, PipelineStatus};
use crate::storage::Seek;

/// The body of `POST /api/v1/etl/pipelines/{id}/backfill`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// The first message of the range (as a reset's `to`: `"earliest"`, an offset,
    /// `{"timestamp_ms": T}`).
    pub from: ResetTo,
    /// The end of the range, exclusive (`"latest"` is the topic's end now).
    pub to: ResetTo,
    /// The side topic the outputs go to (failures go to `<into>-errors` when the
    /// pipeline has an error topic).
    pub into: String,
    /// The module version to run (default: the one the pipeline is pinned to); a
    /// pipeline of one module only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_version: Option<String>,
}

/// A definition error of a derived pipeline's request.
pub(super) fn bad(field: &'static str, message: String) -> PipelineError {
    PipelineError::Spec(SpecError { field, message })
}

/// Pins `spec` (derived from `record`) to the exact versions `record` runs, or its
/// one module to `module_version`.
pub(super) fn pin_versions(
    spec: &mut PipelineSpec,
    record: &PipelineRecord,
    module_version: Option<&str>,
) -> Result<(), PipelineError> {
    match (module_version, spec.modules.is_empty()) {
        (Some(version), true) => spec.module_version = version.to_string(),
        (Some(_), false) => return Err(PipelineError::Spec(SpecError {
            field: "module_version",
            message:
                "a chain runs the versions its stages are pinned to here; leave module_version out"
                    .into(),
        })),
        (None, true) => spec.module_version = format!("={}", record.module_version),
        (None, false) => {
            for (stage, pinned) in spec.modules.iter_mut().zip(&record.stages) {
                stage.module_version = format!("={}", pinned.module_version);
            }
        }
    }
    Ok(())
}

impl PipelineManager {
    /// Starts a backfill of pipeline `id_or_name`: a new bounded pipeline named
    /// `<name>.backfill-<n>` that runs the pipeline's module (or `module_version`)
    /// over `from..to` of its source into `into`, and completes by itself. The live
    /// pipeline is not touched.
    pub fn backfill(
        &self,
        id_or_name: &str,
        request: BackfillRequest,
    ) -> Result<PipelineStatus, PipelineError> {
        let record = self.record_of(id_or_name)?;
        let Endpoint::Local(topic) = Endpoints::of(&record.spec, &self.inner.kafka)?.source else {
            return Err(bad(
                "from",
                "a backfill reads a topic of this broker; for a Kafka source, run a pipeline with its own consumer group".into(),
            ));
        };
        let (from, to) = self.range(&topic, request.from.into(), request.to.into())?;
        let mut spec: PipelineSpec = record.spec.clone();
        spec.pipeline_name = self.child_name(&record.spec.pipeline_name, "backfill");
        spec.description = format!(
            "backfill of {} ({}), offsets {from}..{to}",
            record.spec.pipeline_name, record.pipeline_id
        );
        spec.error_topic = record
            .spec
            .error_topic
            .as_ref()
            .map(|_| format!("{}-errors", request.into));
        spec.destination_topic = request.into;
        // Routed outputs would land in the live pipeline's topics.
        spec.routes.clear();
        spec.start_from = StartFrom::Offset(from);
        spec.end_offset = Some(to);
        // It runs the one version it is given, not the parent's canary.
        spec.canary = None;
        spec.enabled = true;
        spec.consumer_group = None;
        pin_versions(&mut spec, &record, request.module_version.as_deref())?;
        self.create(spec)
    }

    /// The record of pipeline `id_or_name`.
    pub(super) fn record_of(&self, id_or_name: &str) -> Result<PipelineRecord, PipelineError> {
        let id = self.status(id_or_name)?.pipeline_id;
        Ok(self
            .lock()
            .get(&id)
            .ok_or(PipelineError::NotFound(id))?
            .record
            .clone())
    }

    /// The offsets `from` and `to` name in `topic`, refused when `to` comes first.
    pub(super) fn range(
        &self,
        topic: &str,
        from: Seek,
        to: Seek,
    ) -> Result<(u64, u64), PipelineError> {
        let from = self.inner.storage.seek(topic, from)?;
        let to = self.inner.storage.seek(topic, to)?;
        if to < from {
            return Err(bad(
                "to",
                format!("the range ends at offset {to}, before it starts at {from}"),
            ));
        }
        Ok((from, to))
    }

    /// `<name>.<kind>-<n>`, the first `n` from 1 no pipeline is named with.
    pub(super) fn child_name(&self, name: &str, kind: &str) -> String {
        let pipelines = self.lock();
        (1..)
            .map(|n| format!("{name}.{kind}-{n}"))
            .find(|candidate| {
                !pipelines
                    .values()
                    .any(|e| &e.record.spec.pipeline_name == candidate)
            })
            .expect("a free name")
    }
}
