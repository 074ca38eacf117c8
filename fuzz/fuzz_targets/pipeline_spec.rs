//! The pipeline definition parser (`POST` and `PATCH /api/v1/etl/pipelines`): arbitrary
//! bodies never panic; a definition that parses and validates writes back as JSON that
//! parses to the same definition; a patch applied to a valid configuration is checked
//! like one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustmq_etl::api::parse_json;
use rustmq_etl::pipeline::spec::{Configuration, PipelinePatch, PipelineSpec};
use rustmq_etl::storage::Storage;

fuzz_target!(|body: &[u8]| {
    if let Ok(spec) = parse_json::<PipelineSpec>(body) {
        let topic_ok = |t: &str| Storage::validate_topic_name(t).map_err(|e| e.to_string());
        if spec.validate(topic_ok).is_ok() {
            let json = serde_json::to_vec(&spec).expect("write");
            let again: PipelineSpec = parse_json(&json).expect("a valid spec reads back");
            assert_eq!(again, spec);
            again.validate(topic_ok).expect("and still validates");
        }
    }
    if let Ok(patch) = parse_json::<PipelinePatch>(body) {
        if let Some(change) = &patch.configuration {
            let _ = change.apply(&Configuration::default()).validate();
        }
    }
});
