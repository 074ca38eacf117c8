//! Replaying a pipeline's source: [`PipelineManager::reset`] moves its committed
//! position (`POST /api/v1/etl/pipelines/{id}/reset`).

use serde::{Deserialize, Serialize};

use super::endpoint::Endpoint;
use super::spec::SpecError;
use super::{lock, Endpoints, PipelineError, PipelineManager, PipelineStatus, Recreated};
use crate::storage::Seek;

impl PipelineManager {
    /// Moves a pipeline's committed position in its source topic to `to`. A running
    /// pipeline stops at a batch boundary (its last batch committed), takes the new
    /// position and starts again from it; a stopped or failed one keeps its state and
    /// reads from there when started. What it already wrote downstream stays: a reset
    /// to an earlier position delivers those messages again, and its durable state is
    /// kept (reset that with [`PipelineManager::reset_state`]). Only a topic of this
    /// broker has a position here: a Kafka source's is its consumer group's.
    pub fn reset(&self, id_or_name: &str, to: ResetTo) -> Result<PipelineStatus, PipelineError> {
        let to = Seek::from(to);
        let (id, ops) = self.ops(id_or_name)?;
        let _op = lock(&ops);
        let record = self
            .lock()
            .get(&id)
            .ok_or_else(|| PipelineError::NotFound(id.clone()))?
            .record
            .clone();
        let topic = match Endpoints::of(&record.spec, &self.inner.kafka)?.source {
            Endpoint::Local(topic) => topic,
            Endpoint::Kafka { .. } => {
                return Err(PipelineError::Spec(SpecError {
                    field: "to",
                    message: format!(
                        "pipeline {:?} reads a Kafka topic, whose position is its consumer group {:?}'s: stop the pipeline and reset the group's offsets with Kafka's tools (kafka-consumer-groups.sh --reset-offsets)",
                        record.spec.pipeline_name,
                        super::connect::consumer_group(&record.spec),
                    ),
                }))
            }
        };
        // A target that does not exist changes nothing.
        self.inner.storage.seek(&topic, to)?;
        let run = self.lock().get_mut(&id).and_then(|entry| entry.run.take());
        let was_live = run.as_ref().is_some_and(|r| r.state().is_live());
        if let Some(mut run) = run {
            run.stop_and_join();
        }
        // Resolved again now that nothing reads: `latest` and a time mean now.
        let moved = self.inner.storage.seek(&topic, to).and_then(|offset| {
            self.inner
                .storage
                .set_consumer_offset(&record.consumer_id(), offset)
                .map(|()| offset)
        });
        let restarted = if was_live {
            Some(self.start_locked(&id, Recreated::Fail))
        } else {
            None
        };
        let offset = moved?;
        tracing::info!(target: "rustmq::etl::pipeline", pipeline_id = %id, topic = %topic, offset, ?to, "pipeline position reset");
        match restarted {
            Some(status) => status,
            None => self.status(&id),
        }
    }
}

/// The body of `POST /api/v1/etl/pipelines/{id}/reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// Where the pipeline's committed position moves.
    pub to: ResetTo,
}

/// Where a reset moves a pipeline: `"earliest"`, `"latest"`, an offset, or
/// `{"timestamp_ms": T}` (the first message appended at or after T).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The first message still stored.
    Earliest,
    /// The end of the topic: only messages produced from now on.
    Latest,
    /// That offset.
    Offset(u64),
    /// The first message appended at or after this time, ms since the epoch.
    TimestampMs(i64),
}

impl From<ResetTo> for Seek {
    fn from(to: ResetTo) -> Seek {
        match to {
            ResetTo::Earliest => Seek::Earliest,
            ResetTo::Latest => Seek::Latest,
            ResetTo::Offset(offset) => Seek::Offset(offset),
            ResetTo::TimestampMs(ms) => Seek::AppendedAt(ms),
        }
    }
}

/// `{"timestamp_ms": T}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Timestamp {
    timestamp_ms: i64,
}

impl Serialize for ResetTo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            ResetTo::Earliest => s.serialize_str("earliest"),
            ResetTo::Latest => s.serialize_str("latest"),
            ResetTo::Offset(offset) => s.serialize_u64(offset),
            ResetTo::TimestampMs(timestamp_ms) => Timestamp { timestamp_ms }.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ResetTo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Offset(u64),
            Time(Timestamp),
        }
        let bad = || {
            serde::de::Error::custom(
                "\"to\" must be \"earliest\", \"latest\", an offset, or {\"timestamp_ms\": T}",
            )
        };
        match Raw::deserialize(d).map_err(|_| bad())? {
            Raw::Word(w) if w == "earliest" => Ok(ResetTo::Earliest),
            Raw::Word(w) if w == "latest" => Ok(ResetTo::Latest),
            Raw::Word(_) => Err(bad()),
            Raw::Offset(offset) => Ok(ResetTo::Offset(offset)),
            Raw::Time(t) => Ok(ResetTo::TimestampMs(t.timestamp_ms)),
        }
    }
}

impl utoipa::PartialSchema for ResetTo {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .description(Some(
                "\"earliest\", \"latest\", an offset, or {\"timestamp_ms\": T}: the first message appended at or after T",
            ))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["earliest", "latest"])),
            )
            .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
            .item(
                ObjectBuilder::new()
                    .property(
                        "timestamp_ms",
                        ObjectBuilder::new().schema_type(Type::Integer),
                    )
                    .required("timestamp_ms")
                    .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false))),
            )
            .into()
    }
}

impl utoipa::ToSchema for ResetTo {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reset_target_reads_and_writes_as_documented() {
        for (json, to) in [
            (r#""earliest""#, ResetTo::Earliest),
            (r#""latest""#, ResetTo::Latest),
            ("42", ResetTo::Offset(42)),
            (
                r#"{"timestamp_ms":1700000000000}"#,
                ResetTo::TimestampMs(1_700_000_000_000),
            ),
        ] {
            assert_eq!(serde_json::from_str::<ResetTo>(json).unwrap(), to);
            assert_eq!(serde_json::to_string(&to).unwrap(), json);
        }
        for bad in [r#""first""#, "-1", r#"{"ts":1}"#, "1.5", "null"] {
            let e = serde_json::from_str::<ResetTo>(bad)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("\"earliest\", \"latest\", an offset"),
                "{bad}: {e}"
            );
        }
    }
}
