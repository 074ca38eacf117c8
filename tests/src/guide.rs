//! The deployment guide's literal inputs, shared by the tests that replay it.

/// The guide's Step 5.1 `etl-pipeline.json`, verbatim.
pub const PIPELINE_JSON: &str = r#"{
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
    "retry_policy": {
      "max_retries": 3,
      "backoff_ms": 100
    }
  },
  "enabled": true
}"#;
