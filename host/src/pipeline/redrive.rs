//! Dead-letter redrive: a pipeline's failed messages taken from its error topic and
//! run through its module again ([`PipelineManager::redrive`],
//! `POST /api/v1/etl/pipelines/{id}/redrive`).
//!
//! A redrive is a bounded pipeline of its own (see `backfill`) whose source is the
//! error topic, up to its end when the redrive starts, and whose destination and
//! routes are the pipeline's. It takes only that pipeline's dead letters (an error
//! topic may be shared), removes their failure headers, and commits its outputs with
//! its position, so a crash mid-redrive neither loses nor repeats one. A message that
//! fails again goes back to the error topic (after the redriven range) as the
//! pipeline's dead letter, with `x-rustmq-redrives` counting its redrives.

use serde::{Deserialize, Serialize};

use super::backfill::{bad, pin_versions};
use super::endpoint::Endpoint;
use super::reset::ResetTo;
use super::spec::{PipelineSpec, StartFrom};
use super::{Endpoints, PipelineError, PipelineManager, PipelineStatus};
use crate::storage::Seek;

/// The body of `POST /api/v1/etl/pipelines/{id}/redrive` (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// The first error-topic message to consider (default `"earliest"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ResetTo>,
    /// The end of the range, exclusive (default `"latest"`, the end now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<ResetTo>,
    /// The module version to run (default: the one the pipeline is pinned to): a
    /// fixed version, say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_version: Option<String>,
}

impl PipelineManager {
    /// Starts a redrive of pipeline `id_or_name`'s dead letters: a bounded pipeline
    /// named `<name>.redrive-<n>` over its error topic. The pipeline itself is not
    /// touched.
    pub fn redrive(
        &self,
        id_or_name: &str,
        request: RedriveRequest,
    ) -> Result<PipelineStatus, PipelineError> {
        let record = self.record_of(id_or_name)?;
        let Some(error_topic) = record.spec.error_topic.clone() else {
            return Err(bad(
                "error_topic",
                format!(
                    "pipeline {:?} has no error topic, so no dead letters to redrive",
                    record.spec.pipeline_name
                ),
            ));
        };
        let mut spec: PipelineSpec = record.spec.clone();
        spec.source_topic = error_topic.clone();
        if let Endpoint::Kafka { .. } = Endpoints::of(&spec, &self.inner.kafka)?.source {
            return Err(bad(
                "error_topic",
                "the error topic is on a Kafka cluster; a redrive reads a topic of this broker"
                    .into(),
            ));
        }
        let (from, to) = self.range(
            &error_topic,
            request.from.map_or(Seek::Earliest, Seek::from),
            request.to.map_or(Seek::Latest, Seek::from),
        )?;
        spec.pipeline_name = self.child_name(&record.spec.pipeline_name, "redrive");
        spec.description = format!(
            "redrive of {} ({}): {error_topic} offsets {from}..{to}",
            record.spec.pipeline_name, record.pipeline_id
        );
        spec.start_from = StartFrom::Offset(from);
        spec.end_offset = Some(to);
        // It runs the one version it is given, not the parent's canary.
        spec.canary = None;
        spec.redrive_of = Some(record.pipeline_id.clone());
        spec.enabled = true;
        spec.consumer_group = None;
        pin_versions(&mut spec, &record, request.module_version.as_deref())?;
        self.create(spec)
    }
}
