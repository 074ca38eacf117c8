//! The `rustmq-etl` command line against a real broker: the deployment guide's flow
//! (upload, create pipeline, produce, consume the transformed message) driven only
//! through the CLI, its exit codes for scripts, and `new` producing a project that
//! builds for wasm32-wasip2 and runs.

use std::path::Path;
use std::process::{Command, Output};

use rustmq_etl_tests::broker::{cli_binary, BrokerProcess};
use rustmq_etl_tests::guests;
use serde_json::Value;

use rustmq_etl_tests::guide::PIPELINE_JSON as GUIDE_PIPELINE;

/// Runs `rustmq-etl` against `broker` with `args`.
fn cli(broker: &BrokerProcess, args: &[&str]) -> Output {
    cli_env(broker, args, &[])
}

fn cli_env(broker: &BrokerProcess, args: &[&str], env: &[(&str, &str)]) -> Output {
    rustmq_etl_tests::broker::run_cli(broker, args, env)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts exit status 0 and returns stdout.
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "rustmq-etl failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

#[test]
fn cli_runs_the_guide_flow_from_upload_to_the_transformed_message() {
    let broker = BrokerProcess::start("");
    let home = tempfile::tempdir().unwrap();
    let module = guests::GUEST_TEMPLATE;

    let uploaded = ok(cli(
        &broker,
        &[
            "module",
            "upload",
            module,
            "--name",
            "message-processor",
            "--version",
            "1.0.0",
        ],
    ));
    assert!(
        uploaded.starts_with("uploaded message-processor-v1.0.0 (component, "),
        "{uploaded}"
    );

    let listed = ok(cli(&broker, &["module", "list"]));
    assert!(listed.starts_with("MODULE ID"), "{listed}");
    assert!(listed.contains("message-processor-v1.0.0"), "{listed}");

    let definition = home.path().join("etl-pipeline.json");
    std::fs::write(&definition, GUIDE_PIPELINE).unwrap();
    let created = ok(cli(
        &broker,
        &["pipeline", "create", definition.to_str().unwrap()],
    ));
    assert_eq!(
        created,
        "created pipeline-1 (running, module message-processor-v1.0.0)\n"
    );

    let produced = ok(cli(
        &broker,
        &[
            "produce",
            "raw-events",
            "--key",
            "sensor-001",
            "-H",
            "content-type=application/json",
            "-H",
            "source=iot-sensors",
            "-H",
            "client_ip=192.168.1.100",
            "--value",
            r#"{"temperature_celsius": 23.5, "humidity": 65.2, "sensor_id": "env001"}"#,
        ],
    ));
    assert_eq!(produced, "produced to raw-events at offset 0\n");

    // Blocks on the API's long-poll until the pipeline has written its output.
    let consumed = ok(cli(
        &broker,
        &[
            "consume",
            "processed-events",
            "--follow",
            "--count",
            "1",
            "--timeout-secs",
            "60",
            "--json",
        ],
    ));
    let lines: Vec<&str> = consumed.lines().collect();
    assert_eq!(lines.len(), 1, "{consumed}");
    let message: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(message["key"], "sensor-001");
    assert_eq!(message["headers"]["enriched"], "true");
    assert_eq!(message["headers"]["geo_country"], "Local");
    let value: Value = serde_json::from_str(message["value"].as_str().unwrap()).unwrap();
    assert_eq!(value["_processed"], true);
    assert_eq!(value["temperature_fahrenheit"], 74.3);

    let human = ok(cli(&broker, &["consume", "processed-events"]));
    assert!(
        human.starts_with("offset 0  key sensor-001  timestamp "),
        "{human}"
    );
    assert!(human.contains("  enriched: true\n"), "{human}");

    let status: Value = serde_json::from_str(&ok(cli(
        &broker,
        &["pipeline", "status", "message-transformation", "--json"],
    )))
    .unwrap();
    assert_eq!(status["pipeline_id"], "pipeline-1");
    assert_eq!(status["status"], "running");

    let stopped = ok(cli(&broker, &["pipeline", "stop", "pipeline-1"]));
    assert_eq!(stopped, "pipeline-1 (message-transformation): stopped\n");
    let updated = ok(cli(
        &broker,
        &["pipeline", "update", "pipeline-1", "--timeout-ms", "500"],
    ));
    assert!(
        updated.starts_with("pipeline-1 (message-transformation): "),
        "{updated}"
    );
    let metrics = ok(cli(&broker, &["pipeline", "metrics", "pipeline-1"]));
    assert!(metrics.contains("messages_processed:"), "{metrics}");

    // A pinned module cannot go; the refusal is exit 1 with the broker's code.
    let refused = cli(&broker, &["module", "delete", "message-processor-v1.0.0"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("(module_in_use)"));

    assert_eq!(
        ok(cli(&broker, &["pipeline", "delete", "pipeline-1"])),
        "deleted pipeline-1\n"
    );
    assert_eq!(
        ok(cli(
            &broker,
            &["module", "delete", "message-processor-v1.0.0"]
        )),
        "deleted message-processor-v1.0.0\n"
    );
}

#[test]
fn cli_exit_codes_tell_not_found_unauthorized_and_unreachable_apart() {
    let broker = BrokerProcess::start("[admin]\ntoken = \"s3cret\"\n");

    let missing = cli_env(
        &broker,
        &["module", "get", "nope-v1.0.0"],
        &[("RUSTMQ_ADMIN_TOKEN", "s3cret")],
    );
    assert_eq!(missing.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.trim_end().ends_with("(module_not_found)"),
        "{stderr}"
    );

    let unauthorized = cli(&broker, &["pipeline", "list"]);
    assert_eq!(unauthorized.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&unauthorized.stderr).contains("(unauthorized)"));

    let listed = cli_env(
        &broker,
        &["pipeline", "list", "--json"],
        &[("RUSTMQ_ADMIN_TOKEN", "s3cret")],
    );
    let listed: Value = serde_json::from_str(&ok(listed)).unwrap();
    assert_eq!(listed["count"], 0);

    // The message API needs no token.
    assert_eq!(
        ok(cli(&broker, &["produce", "t", "--value", "v"])),
        "produced to t at offset 0\n"
    );
    let no_topic = cli(&broker, &["consume", "no-such-topic"]);
    assert_eq!(no_topic.status.code(), Some(4));

    let data_url = broker.data_url.clone();
    drop(broker);
    let unreachable = Command::new(cli_binary())
        .args(["consume", "t", "--url", &data_url])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot connect to the broker"));
}

#[test]
fn new_scaffolds_a_project_that_builds_for_wasm32_wasip2_and_runs() {
    let home = tempfile::tempdir().unwrap();
    let project = home.path().join("demo");
    let out = Command::new(cli_binary())
        .args(["new", "demo-transform", "--path"])
        .arg(&project)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A target directory kept between runs, so only the first run downloads and
    // compiles wit-bindgen.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("scaffold-test");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .args([
            "build",
            "--locked",
            "--release",
            "--target",
            "wasm32-wasip2",
        ])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("run cargo build");
    assert!(
        build.status.success(),
        "the scaffolded project does not build:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release/demo_transform.wasm");

    let inspected = Command::new(cli_binary())
        .arg("inspect")
        .arg(&wasm)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&inspected.stdout);
    assert!(inspected.status.success(), "{listing}");
    assert!(listing.contains("kind:     component"), "{listing}");
    assert!(
        listing.contains("world:    rustmq:etl/etl-buffer@1.2.0"),
        "{listing}"
    );
    assert!(listing.contains("runnable: yes"), "{listing}");

    rustmq_etl_tests::guide::assert_runs_the_guide_reading(&wasm);
}

#[test]
fn the_local_runner_and_a_default_broker_give_a_module_the_same_verdict_on_its_limits() {
    use rustmq_etl_tests::http::{
        admin_get, admin_post, produce, read_all, upload_module, wait_until,
    };
    use serde_json::json;
    use std::time::Duration;

    let max = rustmq_etl::runtime::RuntimeLimits::default().max_output_messages;
    let inputs = [format!("fanout:{max}"), format!("fanout:{}", max + 1)];

    // Locally.
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|value| json!({"key": "k", "value": value}))
        .collect();
    let lines = rustmq_etl_tests::guide::run_locally(&[Path::new(guests::SCRIPTED)], &inputs);
    let local_cause = lines[1]["failure"]["cause"].as_str().unwrap().to_string();

    // On a broker with the default config.
    let b = BrokerProcess::start("");
    let (_, status) = admin_get(&b, "/api/v1/status");
    assert_eq!(status["etl"]["max_output_messages"], max, "{status}");
    let (code, v) = upload_module(
        &b,
        "scripted",
        "1.0.0",
        std::fs::read(guests::SCRIPTED).unwrap(),
    );
    assert_eq!(code, reqwest::StatusCode::CREATED, "{v}");
    let (code, v) = admin_post(
        &b,
        "/api/v1/etl/pipelines",
        &json!({
            "pipeline_name": "limits",
            "source_topic": "limits-in",
            "destination_topic": "limits-out",
            "error_topic": "limits-err",
            "module_name": "scripted",
            "module_version": "^1",
            "configuration": {"retry_policy": {"max_retries": 0, "backoff_ms": 1}}
        }),
    );
    assert_eq!(code, reqwest::StatusCode::CREATED, "{v}");
    for input in &inputs {
        let (code, v) = produce(&b, "limits-in", input);
        assert_eq!(code, reqwest::StatusCode::OK, "{v}");
    }
    let errors = wait_until(
        "the second message in the error topic",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            let errors = read_all(&b, "limits-err");
            (!errors.is_empty())
                .then_some(errors)
                .ok_or_else(String::new)
        },
    );
    assert_eq!(read_all(&b, "limits-out").len(), max, "the first passes");
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0]["headers"]["x-rustmq-error-cause"],
        local_cause.as_str()
    );
}
