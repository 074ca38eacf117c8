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

/// Runs `rustmq-etl run` with `modules` (one, or a chain's stages in order) over
/// `inputs` as JSON lines, and returns its answer lines.
pub fn run_locally(
    modules: &[&std::path::Path],
    inputs: &[serde_json::Value],
) -> Vec<serde_json::Value> {
    run_locally_with(modules, &[], inputs)
}

/// [`run_locally`] with more `rustmq-etl run` arguments (`--batch-size N`, ...).
pub fn run_locally_with(
    modules: &[&std::path::Path],
    args: &[&str],
    inputs: &[serde_json::Value],
) -> Vec<serde_json::Value> {
    use std::io::Write as _;
    let mut cmd = std::process::Command::new(crate::broker::cli_binary());
    cmd.arg("run").args(args);
    for module in modules {
        cmd.arg("--module").arg(module);
    }
    let mut run = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run rustmq-etl");
    {
        let mut stdin = run.stdin.take().expect("piped stdin");
        for input in inputs {
            writeln!(stdin, "{input}").expect("write an input line");
        }
    }
    let out = run.wait_with_output().expect("wait for rustmq-etl");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Runs `module` with `rustmq-etl run` over the guide's reading (25 °C, JSON) and
/// checks that it answers with the temperature in Fahrenheit, as the guide's
/// processor does in every template.
pub fn assert_runs_the_guide_reading(module: &std::path::Path) {
    let reading = serde_json::json!({
        "key": "k",
        "value": "{\"temperature_celsius\": 25.0}",
        "headers": {"content-type": "application/json", "source": "t"}
    });
    let lines = run_locally(&[module], &[reading]);
    let line = &lines[0];
    let value: serde_json::Value = serde_json::from_str(
        line["messages"][0]["value"]
            .as_str()
            .expect("one output with a text value"),
    )
    .expect("a JSON value");
    assert_eq!(value["temperature_fahrenheit"], 77.0, "{line}");
}
