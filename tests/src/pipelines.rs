//! Pipeline definitions for in-process tests (storage, module store and manager
//! wired as the broker wires them).

use rustmq_etl::pipeline::spec::{Configuration, PipelineSpec, RetryPolicy, StartFrom};

/// A running pipeline `name` of module `module` (any 1.x version), from topic
/// `{name}-in` to `{name}-out` with error topic `{name}-err`, in batches of 10, each
/// failure retried `max_retries` times 1 ms apart, from the start of its topic.
pub fn spec(name: &str, module: &str, max_retries: u32) -> PipelineSpec {
    PipelineSpec {
        pipeline_name: name.to_string(),
        description: String::new(),
        source_topic: format!("{name}-in"),
        destination_topic: format!("{name}-out"),
        error_topic: Some(format!("{name}-err")),
        module_name: module.to_string(),
        module_version: "^1".to_string(),
        modules: Vec::new(),
        configuration: Configuration {
            batch_size: 10,
            retry_policy: RetryPolicy {
                max_retries,
                backoff_ms: 1,
            },
            ..Configuration::default()
        },
        enabled: true,
        start_from: StartFrom::Earliest,
        consumer_group: None,
        end_offset: None,
        redrive_of: None,
        canary: None,
        routes: Vec::new(),
    }
}
