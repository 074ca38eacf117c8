//! The component runtime end to end: real guests built from source (the guest
//! template and the test guests under `tests/guests/`), run through `Runtime`,
//! `CompiledModule` and `Transform`, plus `rustmq-etl run` in-process.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rustmq_etl::cli::{self, Cli};
use rustmq_etl::runtime::{
    LoadError, ModuleKind, ProcessContext, Runtime, RuntimeLimits, Transform, TransformError,
};
use rustmq_etl_tests::guests::{BEHAVIOUR_GUEST, GUEST_TEMPLATE, UNKNOWN_IMPORT_GUEST};
use rustmq_etl_tests::topics::message;

fn limits() -> RuntimeLimits {
    RuntimeLimits {
        max_instances: 4,
        ..RuntimeLimits::default()
    }
}

fn start(
    path: &str,
    limits: RuntimeLimits,
    params: &[(&str, &str)],
) -> Result<Box<dyn Transform>, TransformError> {
    let runtime = Runtime::new(limits).unwrap();
    let module = runtime.compile(&std::fs::read(path).unwrap()).unwrap();
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    module.instantiate("test-module", "test-pipeline", &params)
}

fn ctx() -> ProcessContext {
    ProcessContext {
        pipeline_id: "test-pipeline".into(),
        source_topic: "raw-events".into(),
        source_offset: 7,
        attempt: 1,
    }
}

fn calls_header(t: &mut dyn Transform) -> String {
    let out = t.process(&message("count", "", &[]), &ctx()).unwrap();
    out.messages[0].header("calls").unwrap().to_string()
}

#[test]
fn guide_example_converts_25_celsius_to_77_fahrenheit_and_enriches() {
    let mut t = start(GUEST_TEMPLATE, limits(), &[]).unwrap();
    let input = message(
        "sensor-001",
        r#"{"temperature_celsius": 25.0, "sensor_id": "temp001"}"#,
        &[
            ("content-type", "application/json"),
            ("source", "iot-sensors"),
            ("client_ip", "192.168.1.100"),
        ],
    );
    let out = t.process(&input, &ctx()).unwrap();
    assert_eq!(out.error, None);
    assert!(out.should_continue);
    assert_eq!(out.messages.len(), 1);
    let m = &out.messages[0];
    let json: serde_json::Value = serde_json::from_slice(&m.value).unwrap();
    assert_eq!(json["temperature_fahrenheit"], 77.0);
    assert_eq!(json["_processed"], true);
    assert_eq!(m.header("enriched"), Some("true"));
    assert_eq!(m.header("processor"), Some("message-processor-v1"));
    assert_eq!(m.header("geo_country"), Some("Local"));
    // `processed_at` comes from the guest's WASI wall clock: seconds, close to ours.
    let stamped: i64 = m.header("processed_at").unwrap().parse().unwrap();
    let now = rustmq_etl::message::now_millis() / 1000;
    assert!(
        (now - stamped).abs() < 60,
        "processed_at {stamped} vs now {now}"
    );
    assert_eq!(m.key.as_deref(), Some("sensor-001"));
    assert_eq!(m.timestamp, 1640995200000);
}

#[test]
fn guide_example_filters_spam_and_messages_without_source() {
    let mut t = start(GUEST_TEMPLATE, limits(), &[]).unwrap();
    let spam = message("spam-key", "This is SPAM content", &[("source", "unknown")]);
    let out = t.process(&spam, &ctx()).unwrap();
    assert!(out.messages.is_empty());
    assert_eq!(out.error, None);
    assert!(out.should_continue);
    let no_source = message("k", "fine", &[]);
    assert!(t.process(&no_source, &ctx()).unwrap().messages.is_empty());
    let ok = message("k", "fine", &[("source", "s")]);
    assert_eq!(t.process(&ok, &ctx()).unwrap().messages.len(), 1);
}

#[test]
fn guide_example_reports_invalid_json_as_a_failure() {
    let mut t = start(GUEST_TEMPLATE, limits(), &[]).unwrap();
    let bad = message(
        "k",
        "not json",
        &[("content-type", "application/json"), ("source", "s")],
    );
    let out = t.process(&bad, &ctx()).unwrap();
    assert!(out.messages.is_empty());
    assert!(!out.should_continue);
    assert!(out.error.unwrap().contains("Invalid JSON"));
}

#[test]
fn template_init_refuses_a_malformed_parameter() {
    let err = start(GUEST_TEMPLATE, limits(), &[("max_value_bytes", "lots")])
        .err()
        .unwrap();
    match err {
        TransformError::InitRefused(reason) => {
            assert!(reason.contains("max_value_bytes"), "{reason}")
        }
        other => panic!("expected InitRefused, got {other:?}"),
    }
}

#[test]
fn init_refusing_parameters_is_a_clear_error() {
    let err = start(BEHAVIOUR_GUEST, limits(), &[("refuse", "no database url")])
        .err()
        .unwrap();
    assert_eq!(err.cause(), "init_refused");
    assert!(
        err.to_string()
            .contains("refusing to start: no database url"),
        "{err}"
    );
}

#[test]
fn fan_out_returns_every_message_in_order() {
    let mut t = start(BEHAVIOUR_GUEST, limits(), &[]).unwrap();
    let out = t.process(&message("fanout", "3", &[]), &ctx()).unwrap();
    let indexes: Vec<_> = out
        .messages
        .iter()
        .map(|m| m.header("index").unwrap().to_string())
        .collect();
    assert_eq!(indexes, ["0", "1", "2"]);
}

#[test]
fn fan_out_over_the_cap_is_refused_and_the_next_call_works() {
    let limits = RuntimeLimits {
        max_output_messages: 2,
        ..limits()
    };
    let mut t = start(BEHAVIOUR_GUEST, limits, &[]).unwrap();
    let err = t.process(&message("fanout", "3", &[]), &ctx()).unwrap_err();
    assert_eq!(err.cause(), "abi");
    assert!(err.to_string().contains("fan-out limit of 2"), "{err}");
    assert_eq!(
        t.process(&message("fanout", "2", &[]), &ctx())
            .unwrap()
            .messages
            .len(),
        2
    );
}

#[test]
fn output_over_the_byte_cap_is_refused() {
    let limits = RuntimeLimits {
        max_output_bytes: 64,
        ..limits()
    };
    let mut t = start(BEHAVIOUR_GUEST, limits, &[]).unwrap();
    let err = t
        .process(&message("echo", &"x".repeat(100), &[]), &ctx())
        .unwrap_err();
    assert_eq!(err.cause(), "abi");
}

#[test]
fn infinite_loop_is_stopped_at_the_deadline() {
    let limits = RuntimeLimits {
        execution_timeout_ms: 200,
        ..limits()
    };
    let mut t = start(BEHAVIOUR_GUEST, limits, &[]).unwrap();
    let started = Instant::now();
    let err = t.process(&message("loop", "", &[]), &ctx()).unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err, TransformError::Timeout { limit_ms: 200 });
    assert!(
        elapsed >= Duration::from_millis(190),
        "stopped after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "stopped after {elapsed:?}"
    );
    assert_eq!(calls_header(t.as_mut()), "1");
}

#[test]
fn a_shorter_pipeline_timeout_applies_to_later_calls() {
    let mut t = start(BEHAVIOUR_GUEST, limits(), &[]).unwrap();
    t.set_timeout_ms(50);
    let started = Instant::now();
    let err = t.process(&message("loop", "", &[]), &ctx()).unwrap_err();
    assert_eq!(err, TransformError::Timeout { limit_ms: 50 });
    assert!(started.elapsed() < Duration::from_millis(4000));
}

#[test]
fn memory_growth_past_the_limit_is_stopped() {
    let limits = RuntimeLimits {
        memory_limit_bytes: 16 << 20,
        ..limits()
    };
    let mut t = start(BEHAVIOUR_GUEST, limits, &[]).unwrap();
    let err = t.process(&message("grow", "", &[]), &ctx()).unwrap_err();
    assert_eq!(
        err,
        TransformError::MemoryLimit {
            limit_bytes: 16 << 20
        }
    );
    assert_eq!(t.memory_bytes(), 0, "the failed instance is gone");
    assert_eq!(calls_header(t.as_mut()), "1");
    assert!(t.memory_bytes() > 0);
}

#[test]
fn a_trap_does_not_poison_the_next_call() {
    let mut t = start(BEHAVIOUR_GUEST, limits(), &[]).unwrap();
    // The instance is reused: module state survives between calls.
    assert_eq!(calls_header(t.as_mut()), "1");
    assert_eq!(calls_header(t.as_mut()), "2");
    let err = t.process(&message("trap", "", &[]), &ctx()).unwrap_err();
    assert_eq!(err.cause(), "trap");
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert_eq!(t.recycles(), 1);
    // A fresh instance (counter restarted) answers the next call.
    assert_eq!(calls_header(t.as_mut()), "1");
    assert_eq!(t.recycles(), 1);
}

#[test]
fn guest_reads_parameters_and_may_log() {
    let mut t = start(BEHAVIOUR_GUEST, limits(), &[("greeting", "hello")]).unwrap();
    let out = t.process(&message("log", "", &[]), &ctx()).unwrap();
    assert_eq!(out.messages[0].value, b"hello");
}

#[test]
fn component_importing_an_unknown_interface_is_refused_with_its_name() {
    let runtime = Runtime::new(limits()).unwrap();
    let bytes = std::fs::read(UNKNOWN_IMPORT_GUEST).unwrap();
    let err = runtime.compile(&bytes).err().unwrap();
    match &err {
        LoadError::UnsupportedImports { imports, .. } => {
            assert_eq!(imports, &["acme:geo/lookup@1.0.0"])
        }
        other => panic!("expected UnsupportedImports, got {other:?}"),
    }
    assert!(err.to_string().contains("acme:geo/lookup@1.0.0"));
    let info = runtime.inspect(&bytes).unwrap();
    assert!(info
        .warnings
        .iter()
        .any(|w| w.contains("acme:geo/lookup@1.0.0")));
}

#[test]
fn inspect_describes_a_component_without_compiling_it() {
    let runtime = Runtime::new(limits()).unwrap();
    let info = runtime
        .inspect(&std::fs::read(GUEST_TEMPLATE).unwrap())
        .unwrap();
    assert_eq!(info.kind, ModuleKind::Component);
    // The template is written with the SDK, which targets the batch buffer world.
    assert_eq!(info.world.as_deref(), Some("rustmq:etl/etl-buffer@1.2.0"));
    assert!(
        info.exports.contains(&"init".to_string()) && info.exports.contains(&"process".to_string())
    );
    assert!(info.exports.contains(&"process-buffer".to_string()));
    assert!(info.imports.iter().any(|i| i.starts_with("wasi:")));
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["kind"], "component");
}

#[test]
fn inspect_names_the_contract_version_a_component_was_built_for() {
    let runtime = Runtime::new(limits()).unwrap();
    for (wasm, world) in [
        (rustmq_etl_tests::guests::IDENTITY, "rustmq:etl/etl@1.0.0"),
        (rustmq_etl_tests::guests::SINGLE_V11, "rustmq:etl/etl@1.1.0"),
        (
            rustmq_etl_tests::guests::BAD_BATCH,
            "rustmq:etl/etl-batch@1.1.0",
        ),
        (
            rustmq_etl_tests::guests::COUNTER,
            "rustmq:etl/etl-buffer@1.2.0",
        ),
    ] {
        let info = runtime.inspect(&std::fs::read(wasm).unwrap()).unwrap();
        assert_eq!(info.world.as_deref(), Some(world), "{wasm}");
        assert!(info.warnings.is_empty(), "{wasm}: {:?}", info.warnings);
    }
}

#[test]
fn core_modules_are_recognised_as_legacy() {
    let runtime = Runtime::new(limits()).unwrap();
    // An empty core module: magic number and version 1.
    let info = runtime.inspect(b"\0asm\x01\0\0\0").unwrap();
    assert_eq!(info.kind, ModuleKind::LegacyCore);
}

#[test]
fn non_wasm_bytes_are_refused() {
    let runtime = Runtime::new(limits()).unwrap();
    assert!(matches!(
        runtime.compile(b"{\"hello\": 1}"),
        Err(LoadError::NotWasm(_))
    ));
    assert!(matches!(
        runtime.compile(b"\0asm\x0d\0\x01\0garbage"),
        Err(LoadError::Invalid(_) | LoadError::Compile(_))
    ));
}

#[test]
fn serialized_component_runs_after_deserializing() {
    let runtime = Runtime::new(limits()).unwrap();
    let module = runtime
        .compile(&std::fs::read(BEHAVIOUR_GUEST).unwrap())
        .unwrap();
    let bytes = runtime.serialize(&module).unwrap();
    // SAFETY: the bytes were just produced by this runtime.
    let restored = unsafe { runtime.deserialize(ModuleKind::Component, &bytes) }.unwrap();
    assert_eq!(restored.kind(), ModuleKind::Component);
    let mut t = restored.instantiate("m", "p", &BTreeMap::new()).unwrap();
    assert_eq!(calls_header(t.as_mut()), "1");
}

#[test]
fn cli_run_prints_one_result_line_per_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("samples.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"key": "sensor-001", "value": "{\"temperature_celsius\": 25.0}", "headers": {"content-type": "application/json", "source": "iot"}}"#,
            "\n",
            r#"{"key": "spam", "value": "This is SPAM content", "headers": {"source": "unknown"}}"#,
            "\n\n",
            r#"{"key": "bad"}"#,
            "\n",
        ),
    )
    .unwrap();
    let cli = Cli::parse_args([
        "rustmq-etl",
        "run",
        "--module",
        GUEST_TEMPLATE,
        "--input",
        input.to_str().unwrap(),
    ])
    .unwrap();
    let mut out = Vec::new();
    cli::execute(cli, &mut std::io::empty(), &mut out).unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["offset"], 0);
    assert_eq!(lines[0]["error"], serde_json::Value::Null);
    let value: serde_json::Value =
        serde_json::from_str(lines[0]["messages"][0]["value"].as_str().unwrap()).unwrap();
    assert_eq!(value["temperature_fahrenheit"], 77.0);
    assert_eq!(lines[0]["messages"][0]["headers"]["enriched"], "true");
    assert_eq!(lines[1]["messages"], serde_json::json!([]));
    assert_eq!(lines[2]["failure"]["cause"], "bad_input");
}

#[test]
fn cli_run_reads_stdin_and_passes_params_and_timeout() {
    let cli = Cli::parse_args([
        "rustmq-etl",
        "run",
        "--module",
        BEHAVIOUR_GUEST,
        "--param",
        "greeting=hi",
        "--timeout-ms",
        "100",
    ])
    .unwrap();
    let mut stdin = std::io::Cursor::new(
        "{\"key\": \"log\", \"value\": \"\"}\n{\"key\": \"loop\", \"value\": \"\"}\n",
    );
    let mut out = Vec::new();
    cli::execute(cli, &mut stdin, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["messages"][0]["value"], "hi");
    assert_eq!(lines[1]["failure"]["cause"], "timeout");
}

#[test]
fn cli_run_fails_when_the_module_cannot_be_loaded() {
    let cli = Cli::parse_args(["rustmq-etl", "run", "--module", UNKNOWN_IMPORT_GUEST]).unwrap();
    let err = cli::execute(cli, &mut std::io::empty(), &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("acme:geo/lookup@1.0.0"), "{err}");
}
