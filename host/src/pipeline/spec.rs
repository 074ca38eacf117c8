//! What a pipeline is: the definition a user posts (the guide's `etl-pipeline.json`),
//! its validation, and the record the broker persists.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::canary::{CanaryEvent, CanarySpec};

/// The largest `batch_size`: a batch is held in memory while it is processed, so this
/// bounds a pipeline's memory together with the message size cap.
pub const MAX_BATCH_SIZE: u32 = 10_000;
/// The most retries a policy may ask for.
pub const MAX_RETRIES: u32 = 100;
/// The longest backoff between two tries (also the cap of the exponential growth).
pub const MAX_BACKOFF_MS: u64 = 60_000;
/// The most topics a pipeline may declare in `routes`: each is one more place its
/// outputs (and, for Kafka, one more transaction partner) go.
pub const MAX_ROUTES: usize = 16;
/// The most parameters a pipeline may hand its module, and their sizes: they are
/// copied into every instance.
pub const MAX_PARAMS: usize = 256;
/// Longest parameter name or value.
pub const MAX_PARAM_LEN: usize = 64 * 1024;

/// A pipeline definition as posted to `POST /api/v1/etl/pipelines`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// A unique name; the pipeline can be addressed by it as well as by its id.
    pub pipeline_name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The topic read.
    pub source_topic: String,
    /// The topic the outputs are written to.
    pub destination_topic: String,
    /// Further topics a 1.1 module may route outputs to, by naming them in an
    /// output's `topic` (at most [`MAX_ROUTES`]). Routed writes commit with the rest
    /// of the batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// Where failed and dead-lettered messages go. Without one, a message that
    /// exhausts its retries stops the pipeline (status `failed`), losing nothing.
    #[serde(default)]
    pub error_topic: Option<String>,
    /// The module's name (a pipeline of one module; see `modules` for a chain).
    #[serde(default)]
    pub module_name: String,
    /// A semver requirement (`1.0.0` exact, `^1.2`, `*`, ...), resolved once at
    /// creation; the pipeline is then pinned to that exact version.
    #[serde(default)]
    pub module_version: String,
    /// A chain of modules instead of one (at most [`MAX_STAGES`]): each stage's
    /// outputs are the next stage's inputs, all within one commit per batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<StageSpec>,
    /// Processing settings.
    #[serde(default)]
    pub configuration: Configuration,
    /// Whether the pipeline runs as soon as it is created.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Where a new pipeline starts reading. For a Kafka source, `earliest` or
    /// `latest`, applied while its consumer group has no committed offsets.
    #[serde(default)]
    pub start_from: StartFrom,
    /// For a Kafka source: the consumer group shared by every broker running this
    /// pipeline (default `rustmq-etl.<pipeline_name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<String>,
    /// A bounded pipeline: it ends, with status `completed`, once it has committed
    /// every message of its source before this offset (a topic of this broker only).
    /// What a backfill runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_offset: Option<u64>,
    /// A redrive: the pipeline (by id) whose dead letters this one takes from its
    /// source, the error topic. Only that pipeline's messages are processed, without
    /// their failure headers; what fails again goes back to the error topic as that
    /// pipeline's, counted in `x-rustmq-redrives`. Set by `POST …/redrive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive_of: Option<String>,
    /// A canary version running beside the pinned one on a share of the messages
    /// (see `pipeline::canary`); set with `PATCH`, ended by `POST …/promote`, by a
    /// `PATCH` with `"canary": null`, or by its error rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
}

fn default_true() -> bool {
    true
}

pub use crate::runtime::chain::MAX_STAGES;

/// One stage of a chain (`modules` in the definition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// The module's name.
    pub module_name: String,
    /// Its version requirement, pinned at creation as for a single module.
    pub module_version: String,
    /// Parameters handed to this stage's `init`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

impl PipelineSpec {
    /// The stages the pipeline runs: its chain, or its one module with the
    /// configuration's parameters.
    pub fn stages(&self) -> Vec<StageSpec> {
        if !self.modules.is_empty() {
            return self.modules.clone();
        }
        vec![StageSpec {
            module_name: self.module_name.clone(),
            module_version: self.module_version.clone(),
            params: self.configuration.params.clone(),
        }]
    }

    /// Whether the pipeline runs a chain of modules (given as `modules`).
    pub fn is_chain(&self) -> bool {
        !self.modules.is_empty()
    }
}

/// Processing settings (`configuration` in the definition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Configuration {
    /// How many messages are read and committed together.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// `single_message` (one module call per message, the default) or `batch`
    /// (one call per batch for modules that export `process-batch`).
    #[serde(default)]
    pub processing_mode: ProcessingMode,
    /// Deadline of one module call; capped by the broker's `etl.execution_timeout_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// What to do when a call fails.
    #[serde(default)]
    pub retry_policy: RetryPolicy,
    /// Parameters handed to the module's `init` and readable through `get-param`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

fn default_batch_size() -> u32 {
    100
}

impl Default for Configuration {
    fn default() -> Self {
        Configuration {
            batch_size: default_batch_size(),
            processing_mode: ProcessingMode::default(),
            timeout_ms: None,
            retry_policy: RetryPolicy::default(),
            params: BTreeMap::new(),
        }
    }
}

/// How messages are handed to the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingMode {
    /// One call per message (the guide's mode).
    #[default]
    SingleMessage,
    /// One call per batch (`process-batch`); modules without that export are
    /// called once per message. Retries are made one message per call.
    Batch,
}

/// Retries of a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Tries after the first.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one, up to
    /// [`MAX_BACKOFF_MS`].
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
}

fn default_retries() -> u32 {
    3
}

fn default_backoff() -> u64 {
    100
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: default_retries(),
            backoff_ms: default_backoff(),
        }
    }
}

impl RetryPolicy {
    /// The wait before try number `attempt + 1` (attempt counts from 1).
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        std::time::Duration::from_millis(self.backoff_ms.saturating_mul(factor).min(MAX_BACKOFF_MS))
    }
}

/// Where a new pipeline starts reading its source topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The oldest retained message.
    #[default]
    Earliest,
    /// Only messages produced after creation.
    Latest,
    /// A given offset.
    Offset(u64),
}

impl utoipa::PartialSchema for StartFrom {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .description(Some(
                "\"earliest\" (the default), \"latest\", or an offset to start from",
            ))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["earliest", "latest"])),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .into()
    }
}

impl utoipa::ToSchema for StartFrom {}

impl Serialize for StartFrom {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StartFrom::Earliest => s.serialize_str("earliest"),
            StartFrom::Latest => s.serialize_str("latest"),
            StartFrom::Offset(o) => s.serialize_u64(*o),
        }
    }
}

impl<'de> Deserialize<'de> for StartFrom {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Offset(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Offset(o) => Ok(StartFrom::Offset(o)),
            Raw::Word(w) if w == "earliest" => Ok(StartFrom::Earliest),
            Raw::Word(w) if w == "latest" => Ok(StartFrom::Latest),
            Raw::Word(w) => w.parse().map(StartFrom::Offset).map_err(|_| {
                serde::de::Error::custom(format!(
                    "start_from must be \"earliest\", \"latest\" or an offset, not {w:?}"
                ))
            }),
        }
    }
}

/// A change posted to `PATCH /api/v1/etl/pipelines/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelinePatch {
    /// Settings to change; absent fields keep their value.
    #[serde(default)]
    pub configuration: Option<ConfigurationPatch>,
    /// A new version requirement: upgrade or roll back (in a chain, of stage
    /// `stage`).
    #[serde(default)]
    pub module_version: Option<String>,
    /// In a chain, the stage (from 0) `module_version` applies to.
    #[serde(default)]
    pub stage: Option<usize>,
    /// A new description.
    #[serde(default)]
    pub description: Option<String>,
    /// A new error topic.
    #[serde(default)]
    pub error_topic: Option<String>,
    /// New routes (replacing the old ones).
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    /// A canary to start (or to change), or `null` to remove the one running.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable)]
    pub canary: Option<Option<CanarySpec>>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Partial [`Configuration`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationPatch {
    /// See [`Configuration::batch_size`].
    pub batch_size: Option<u32>,
    /// See [`Configuration::processing_mode`].
    pub processing_mode: Option<ProcessingMode>,
    /// See [`Configuration::timeout_ms`].
    pub timeout_ms: Option<u64>,
    /// See [`Configuration::retry_policy`].
    pub retry_policy: Option<RetryPolicy>,
    /// Replaces the parameters when present.
    pub params: Option<BTreeMap<String, String>>,
}

impl ConfigurationPatch {
    /// `base` with this patch applied.
    pub fn apply(&self, base: &Configuration) -> Configuration {
        Configuration {
            batch_size: self.batch_size.unwrap_or(base.batch_size),
            processing_mode: self.processing_mode.unwrap_or(base.processing_mode),
            timeout_ms: self.timeout_ms.or(base.timeout_ms),
            retry_policy: self.retry_policy.unwrap_or(base.retry_policy),
            params: self.params.clone().unwrap_or_else(|| base.params.clone()),
        }
    }
}

/// A definition error: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The offending field, as a JSON path (`configuration.batch_size`).
    pub field: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> SpecError {
    SpecError {
        field,
        message: message.into(),
    }
}

impl PipelineSpec {
    /// Checks every field; `topic_ok` is the broker's topic-name rule.
    pub fn validate(&self, topic_ok: impl Fn(&str) -> Result<(), String>) -> Result<(), SpecError> {
        let name_ok = !self.pipeline_name.is_empty()
            && self.pipeline_name.len() <= 128
            && self
                .pipeline_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !name_ok {
            return Err(bad(
                "pipeline_name",
                "use 1 to 128 characters of letters, digits, '.', '_' and '-'",
            ));
        }
        // Routes take an id or a name: a name shaped like an id could name another
        // pipeline's id.
        if self
            .pipeline_name
            .strip_prefix("pipeline-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad(
                "pipeline_name",
                format!(
                    "{:?} has the shape of a pipeline id (pipeline-N), which the routes would take for an id; choose another name",
                    self.pipeline_name
                ),
            ));
        }
        topic_ok(&self.source_topic).map_err(|m| bad("source_topic", m))?;
        topic_ok(&self.destination_topic).map_err(|m| bad("destination_topic", m))?;
        if let Some(t) = &self.error_topic {
            topic_ok(t).map_err(|m| bad("error_topic", m))?;
            // A bounded pipeline (a redrive) never reads what it appends past its end.
            if t == &self.source_topic && self.end_offset.is_none() {
                return Err(bad(
                    "error_topic",
                    "must differ from source_topic (failures would be read again)",
                ));
            }
        }
        if self.routes.len() > MAX_ROUTES {
            return Err(bad(
                "routes",
                format!(
                    "declares {} topics; a pipeline may route to at most {MAX_ROUTES} (chain pipelines for more)",
                    self.routes.len()
                ),
            ));
        }
        for (i, route) in self.routes.iter().enumerate() {
            topic_ok(route).map_err(|m| bad("routes", m))?;
            if route == &self.source_topic {
                return Err(bad(
                    "routes",
                    format!(
                        "{route:?} is the source topic (the pipeline would read its own output)"
                    ),
                ));
            }
            if self.routes[..i].contains(route) {
                return Err(bad("routes", format!("{route:?} is declared twice")));
            }
        }
        if self.destination_topic == self.source_topic {
            return Err(bad(
                "destination_topic",
                "must differ from source_topic (the pipeline would read its own output forever)",
            ));
        }
        self.validate_modules()?;
        if let Some(canary) = &self.canary {
            canary.validate().map_err(|m| bad("canary", m))?;
            if self.is_chain() {
                return Err(bad(
                    "canary",
                    "a chain cannot run a canary yet; PATCH a stage's module_version instead",
                ));
            }
            if self.end_offset.is_some() {
                return Err(bad(
                    "canary",
                    "a bounded pipeline (a backfill or a redrive) runs one version",
                ));
            }
        }
        if let Some(end) = self.end_offset {
            if self.source_topic.starts_with(super::endpoint::KAFKA_SCHEME) {
                return Err(bad(
                    "end_offset",
                    "a bounded pipeline reads a topic of this broker; a Kafka source has no single offset to end at",
                ));
            }
            if let StartFrom::Offset(start) = self.start_from {
                if end < start {
                    return Err(bad(
                        "end_offset",
                        format!("{end} is before start_from {start}: the range would be empty"),
                    ));
                }
            }
        }
        if let Some(group) = &self.consumer_group {
            if !crate::kafka::config::valid_name(group) {
                return Err(bad(
                    "consumer_group",
                    "use 1 to 128 letters, digits, '.', '_' and '-'",
                ));
            }
        }
        self.configuration.validate()
    }
}

impl PipelineSpec {
    /// One module (`module_name` and `module_version`) or a chain (`modules`), never
    /// both.
    fn validate_modules(&self) -> Result<(), SpecError> {
        if self.modules.is_empty() {
            if self.module_name.is_empty() {
                return Err(bad(
                    "module_name",
                    "name an uploaded module (or give a chain as \"modules\")",
                ));
            }
            if self.module_version.is_empty() {
                return Err(bad(
                    "module_version",
                    "give a version requirement such as \"1.0.0\" or \"^1\"",
                ));
            }
            return Ok(());
        }
        if !self.module_name.is_empty() || !self.module_version.is_empty() {
            return Err(bad(
                "modules",
                "give either module_name and module_version (one module) or modules (a chain), not both",
            ));
        }
        if self.modules.len() > MAX_STAGES {
            return Err(bad(
                "modules",
                format!(
                    "a chain has at most {MAX_STAGES} stages, not {}",
                    self.modules.len()
                ),
            ));
        }
        if !self.configuration.params.is_empty() {
            return Err(bad(
                "configuration.params",
                "in a chain each stage takes its own \"params\" (in \"modules\"); move them there",
            ));
        }
        for (i, stage) in self.modules.iter().enumerate() {
            if stage.module_name.is_empty() || stage.module_version.is_empty() {
                return Err(bad(
                    "modules",
                    format!("stage {i} needs a module_name and a module_version"),
                ));
            }
            check_params(&stage.params, "modules.params")?;
        }
        Ok(())
    }
}

/// At most [`MAX_PARAMS`] parameters of at most [`MAX_PARAM_LEN`] bytes each.
fn check_params(params: &BTreeMap<String, String>, field: &'static str) -> Result<(), SpecError> {
    if params.len() > MAX_PARAMS
        || params
            .iter()
            .any(|(k, v)| k.len() > MAX_PARAM_LEN || v.len() > MAX_PARAM_LEN)
    {
        return Err(bad(
            field,
            format!("at most {MAX_PARAMS} parameters of at most {MAX_PARAM_LEN} bytes each"),
        ));
    }
    Ok(())
}

impl Configuration {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err(bad(
                "configuration.batch_size",
                format!(
                    "must be between 1 and {MAX_BATCH_SIZE}, not {}",
                    self.batch_size
                ),
            ));
        }
        if self.timeout_ms == Some(0) {
            return Err(bad("configuration.timeout_ms", "must be at least 1"));
        }
        if self.retry_policy.max_retries > MAX_RETRIES {
            return Err(bad(
                "configuration.retry_policy.max_retries",
                format!("must be at most {MAX_RETRIES}"),
            ));
        }
        if self.retry_policy.backoff_ms > MAX_BACKOFF_MS {
            return Err(bad(
                "configuration.retry_policy.backoff_ms",
                format!("must be at most {MAX_BACKOFF_MS}"),
            ));
        }
        check_params(&self.params, "configuration.params")
    }
}

/// The state a user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    /// Run (and run again after a restart).
    Running,
    /// Do not run.
    Stopped,
}

/// What the broker persists per pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineRecord {
    /// `pipeline-<n>`.
    pub pipeline_id: String,
    /// The definition, as last changed.
    pub spec: PipelineSpec,
    /// The exact module the pipeline is pinned to (`name-v1.2.3`).
    pub module_id: String,
    /// The exact version it is pinned to.
    pub module_version: semver::Version,
    /// A chain's stages, each pinned (the first is also `module_id`); empty for a
    /// pipeline of one module.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<PinnedStage>,
    /// Running or stopped, as asked.
    pub desired: DesiredState,
    /// Why the pipeline last failed, if it did and has not been restarted since.
    #[serde(default)]
    pub failure: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_at_ms: i64,
    /// The incarnation of the local source topic the committed position belongs to
    /// (see `TopicInfo::topic_id`); `None` until the topic is first seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_topic_id: Option<u64>,
    /// How the last canary ended, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_event: Option<CanaryEvent>,
}

/// The exact module a stage of a chain is pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedStage {
    /// `name-v1.2.3`.
    pub module_id: String,
    /// `1.2.3`.
    pub module_version: semver::Version,
}

impl PipelineRecord {
    /// Every module the pipeline runs, in stage order.
    pub fn pinned(&self) -> Vec<PinnedStage> {
        if self.stages.is_empty() {
            return vec![PinnedStage {
                module_id: self.module_id.clone(),
                module_version: self.module_version.clone(),
            }];
        }
        self.stages.clone()
    }

    /// Whether the pipeline runs `module_id` in any stage.
    pub fn runs(&self, module_id: &str) -> bool {
        self.module_id == module_id || self.stages.iter().any(|s| s.module_id == module_id)
    }

    /// The consumer id its committed source offset is stored under.
    pub fn consumer_id(&self) -> String {
        consumer_id(&self.pipeline_id)
    }
}

/// The consumer id for a pipeline id.
pub fn consumer_id(pipeline_id: &str) -> String {
    format!("pipeline:{pipeline_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE: &str = r#"{
      "pipeline_name": "message-transformation",
      "description": "Transform and enrich incoming messages",
      "source_topic": "raw-events",
      "destination_topic": "processed-events",
      "error_topic": "etl-errors",
      "module_name": "message-processor",
      "module_version": "1.0.0",
      "configuration": {
        "batch_size": 1,
        "processing_mode": "single_message",
        "timeout_ms": 1000,
        "retry_policy": { "max_retries": 3, "backoff_ms": 100 }
      },
      "enabled": true
    }"#;

    fn any_topic(_: &str) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn guide_pipeline_json_parses_and_validates() {
        let spec: PipelineSpec = serde_json::from_str(GUIDE).unwrap();
        assert_eq!(spec.configuration.batch_size, 1);
        assert_eq!(spec.configuration.retry_policy.max_retries, 3);
        assert_eq!(spec.start_from, StartFrom::Earliest);
        spec.validate(any_topic).unwrap();
    }

    #[test]
    fn unknown_processing_mode_is_rejected_by_name() {
        let text = GUIDE.replace("single_message", "batch_magic");
        let err = serde_json::from_str::<PipelineSpec>(&text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch_magic"), "{err}");
        assert!(err.contains("single_message"), "{err}");
    }

    #[test]
    fn misspelt_field_is_rejected() {
        let text = GUIDE.replace("\"batch_size\"", "\"batchsize\"");
        let err = serde_json::from_str::<PipelineSpec>(&text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("batchsize"), "{err}");
    }

    #[test]
    fn out_of_range_settings_name_the_field() {
        let mut spec: PipelineSpec = serde_json::from_str(GUIDE).unwrap();
        spec.configuration.batch_size = 0;
        assert_eq!(
            spec.validate(any_topic).unwrap_err().field,
            "configuration.batch_size"
        );
        spec.configuration.batch_size = 1;
        spec.destination_topic = spec.source_topic.clone();
        assert_eq!(
            spec.validate(any_topic).unwrap_err().field,
            "destination_topic"
        );
    }

    #[test]
    fn a_name_shaped_like_a_pipeline_id_is_refused() {
        let mut spec: PipelineSpec = serde_json::from_str(GUIDE).unwrap();
        for name in ["pipeline-17", "pipeline-0"] {
            spec.pipeline_name = name.to_string();
            let err = spec.validate(any_topic).unwrap_err();
            assert_eq!(err.field, "pipeline_name");
            assert!(err.message.contains("pipeline id"), "{}", err.message);
        }
        for name in ["pipeline-", "pipeline-x1", "my-pipeline-17"] {
            spec.pipeline_name = name.to_string();
            assert!(spec.validate(any_topic).is_ok(), "{name}");
        }
    }

    #[test]
    fn start_from_accepts_words_and_offsets() {
        for (json, want) in [
            ("\"earliest\"", StartFrom::Earliest),
            ("\"latest\"", StartFrom::Latest),
            ("42", StartFrom::Offset(42)),
            ("\"42\"", StartFrom::Offset(42)),
        ] {
            assert_eq!(serde_json::from_str::<StartFrom>(json).unwrap(), want);
        }
        assert!(serde_json::from_str::<StartFrom>("\"soon\"").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_retries: 5,
            backoff_ms: 100,
        };
        assert_eq!(p.backoff(1).as_millis(), 100);
        assert_eq!(p.backoff(2).as_millis(), 200);
        assert_eq!(p.backoff(3).as_millis(), 400);
        let big = RetryPolicy {
            max_retries: 5,
            backoff_ms: 50_000,
        };
        assert_eq!(big.backoff(4).as_millis() as u64, MAX_BACKOFF_MS);
    }

    #[test]
    fn configuration_patch_keeps_unset_fields() {
        let base = Configuration::default();
        let patch: ConfigurationPatch =
            serde_json::from_str(r#"{"timeout_ms": 500, "batch_size": 10}"#).unwrap();
        let merged = patch.apply(&base);
        assert_eq!(merged.batch_size, 10);
        assert_eq!(merged.timeout_ms, Some(500));
        assert_eq!(merged.retry_policy, base.retry_policy);
    }
}
