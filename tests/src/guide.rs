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

/// Runs `module` with `rustmq-etl run` over the guide's reading (25 °C, JSON) and
/// checks that it answers with the temperature in Fahrenheit, as the guide's
/// processor does in every template.
pub fn assert_runs_the_guide_reading(module: &std::path::Path) {
    use std::io::Write as _;
    let mut run = std::process::Command::new(crate::broker::cli_binary())
        .arg("run")
        .arg("--module")
        .arg(module)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run rustmq-etl");
    run.stdin
        .take()
        .expect("piped stdin")
        .write_all(br#"{"key":"k","value":"{\"temperature_celsius\": 25.0}","headers":{"content-type":"application/json","source":"t"}}"#)
        .expect("write the reading");
    let out = run.wait_with_output().expect("wait for rustmq-etl");
    assert!(out.status.success(), "{out:?}");
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON line");
    let value: serde_json::Value = serde_json::from_str(
        line["messages"][0]["value"]
            .as_str()
            .expect("one output with a text value"),
    )
    .expect("a JSON value");
    assert_eq!(value["temperature_fahrenheit"], 77.0, "{line}");
}
