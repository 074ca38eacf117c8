//! Contract 1.2 (`rustmq:etl/etl-buffer@1.2.0`: a batch crosses as one buffer) over
//! HTTP, with the `buffer-v12` guest: 1.0, 1.1 and 1.2 modules side by side in one
//! broker; a failing third message dead-letters only itself; a malformed answer is a
//! per-batch error, replayed one message per call; a pass output is byte-identical
//! to its input; a hot swap from 1.1 to 1.2 keeps the durable state; an SDK module
//! written in place passes messages on byte for byte.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::guests;
use rustmq_etl_tests::http::{
    admin_get, admin_patch, admin_post, produce, read_all, upload_module, wait_until,
};

fn upload(b: &BrokerProcess, name: &str, version: &str, wasm: &str) -> Value {
    let (code, v) = upload_module(b, name, version, std::fs::read(wasm).unwrap());
    assert_eq!(code, StatusCode::CREATED, "{v}");
    v
}

/// A batch-mode pipeline `name` from `<name>-in` to `<name>-out`, errors to
/// `<name>-errors`, no retries.
fn pipeline(b: &BrokerProcess, name: &str, module: &str, version: &str, batch: u32) {
    let (code, v) = admin_post(
        b,
        "/api/v1/etl/pipelines",
        &json!({
            "pipeline_name": name, "source_topic": format!("{name}-in"),
            "destination_topic": format!("{name}-out"), "error_topic": format!("{name}-errors"),
            "routes": [format!("{name}-side")],
            "module_name": module, "module_version": version,
            "configuration": {"batch_size": batch, "processing_mode": "batch",
                              "retry_policy": {"max_retries": 0, "backoff_ms": 1}}
        }),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
}

fn send(b: &BrokerProcess, topic: &str, messages: Vec<Value>) {
    let (code, v) = produce(b, topic, &json!({ "messages": messages }));
    assert_eq!(code, StatusCode::OK, "{v}");
}

fn values(b: &BrokerProcess, topic: &str) -> Vec<String> {
    read_all(b, topic)
        .iter()
        .map(|m| m["value"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits until pipeline `name` has committed `offset`; returns its metrics.
fn committed(b: &BrokerProcess, name: &str, offset: u64) -> Value {
    wait_until(
        &format!("{name} to commit {offset}"),
        Duration::from_secs(60),
        Duration::from_millis(20),
        || {
            let (_, m) = admin_get(b, &format!("/api/v1/etl/pipelines/{name}/metrics"));
            (m["committed_offset"].as_u64() >= Some(offset))
                .then_some(m.clone())
                .ok_or(m.to_string())
        },
    )
}

fn plain(values: &[&str]) -> Vec<Value> {
    values
        .iter()
        .map(|v| json!({"key": "k", "value": v}))
        .collect()
}

#[test]
fn modules_of_1_0_1_1_and_1_2_run_side_by_side_in_one_broker() {
    let b = BrokerProcess::start("[etl]\nenabled = true\n");
    let worlds: Vec<Value> = [
        ("v10", guests::IDENTITY),
        ("v11", guests::SINGLE_V11),
        ("v12", guests::BUFFER_V12),
    ]
    .iter()
    .map(|(name, wasm)| upload(&b, name, "1.0.0", wasm)["world"].clone())
    .collect();
    assert_eq!(
        worlds,
        [
            "rustmq:etl/etl@1.0.0",
            "rustmq:etl/etl@1.1.0",
            "rustmq:etl/etl-buffer@1.2.0"
        ]
    );
    for name in ["v10", "v11", "v12"] {
        pipeline(&b, name, name, "1.0.0", 10);
        send(&b, &format!("{name}-in"), plain(&["a", "b", "c"]));
    }
    for name in ["v10", "v11", "v12"] {
        committed(&b, name, 3);
        assert_eq!(
            values(&b, &format!("{name}-out")),
            ["a", "b", "c"],
            "{name}"
        );
    }
    let (_, m) = admin_get(&b, "/api/v1/etl/pipelines/v12/metrics");
    assert_eq!(m["batch_replays"], 0, "{m}");
}

#[test]
fn in_a_1_2_batch_the_third_message_failing_dead_letters_only_it() {
    let b = BrokerProcess::start("[etl]\nenabled = true\n");
    upload(&b, "m", "1.0.0", guests::BUFFER_V12);
    pipeline(&b, "p", "m", "1.0.0", 5);
    send(
        &b,
        "p-in",
        plain(&["a", "b", "fail", "drop", "route:p-side", "dead", "c"]),
    );
    let m = committed(&b, "p", 7);
    assert_eq!(values(&b, "p-out"), ["a", "b", "c"]);
    assert_eq!(values(&b, "p-side"), ["route:p-side"]);
    let errors = read_all(&b, "p-errors");
    let failed: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| {
            (
                e["value"].as_str().unwrap(),
                e["headers"]["x-rustmq-error"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        [("fail", "asked to fail"), ("dead", "asked to dead-letter")]
    );
    assert_eq!(errors[0]["headers"]["x-rustmq-source-offset"], "2");
    assert_eq!(m["messages_failed"], 2, "{m}");
    assert_eq!(m["messages_filtered"], 1, "{m}");
}

#[test]
fn a_malformed_answer_is_a_per_batch_error_replayed_one_message_per_call() {
    let b = BrokerProcess::start("[etl]\nenabled = true\n");
    upload(&b, "m", "1.0.0", guests::BUFFER_V12);
    pipeline(&b, "p", "m", "1.0.0", 10);
    let mut end = 0;
    for how in ["count", "range", "overlap", "magic"] {
        let bad = format!("bad:{how}");
        send(&b, "p-in", plain(&["x", &bad, "y"]));
        end += 3;
        committed(&b, "p", end);
    }
    // The batch is replayed one message per call: the good ones are delivered, and
    // a message whose own answer is malformed too goes to the error topic, saying
    // why. (With one message there is no second result to overlap the first.)
    let out = values(&b, "p-out");
    assert_eq!(
        out,
        ["x", "y", "x", "y", "x", "bad:overlap", "y", "x", "y"],
        "every good message delivered once"
    );
    let errors = read_all(&b, "p-errors");
    let failed: Vec<&str> = errors
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["bad:count", "bad:range", "bad:magic"]);
    assert!(
        errors[1]["headers"]["x-rustmq-error"]
            .as_str()
            .unwrap()
            .contains("process-buffer's answer: a value: bytes"),
        "{errors:?}"
    );
    let (_, m) = admin_get(&b, "/api/v1/etl/pipelines/p/metrics");
    assert!(m["batch_replays"].as_u64().unwrap() >= 4, "{m}");
    // (What each malformed answer is told is pinned in `batch-buffer` and
    // `runtime::buffer`.)
    let log = b.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_pass_output_is_byte_identical_to_its_input() {
    let b = BrokerProcess::start("[etl]\nenabled = true\n");
    upload(&b, "m", "1.0.0", guests::BUFFER_V12);
    pipeline(&b, "p", "m", "1.0.0", 10);
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&binary);
    send(
        &b,
        "p-in",
        vec![
            json!({"key": "clé", "value_base64": encoded, "timestamp": 1234567,
                    "headers": {"mode": "pass", "h": "v", "z": "ünï"}}),
        ],
    );
    committed(&b, "p", 1);
    let out = read_all(&b, "p-out");
    let input = read_all(&b, "p-in");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["value_base64"], input[0]["value_base64"]);
    assert_eq!(out[0]["key"], "clé");
    assert_eq!(out[0]["timestamp"], 1234567);
    let mut headers = out[0]["headers"].as_object().unwrap().clone();
    headers.retain(|k, _| !k.starts_with("x-rustmq-"));
    assert_eq!(Value::Object(headers), input[0]["headers"]);
}

/// The messages of `topic` as the producer gave them: key, bytes, timestamp and
/// headers, the broker's `x-rustmq-` headers left out.
fn as_sent(b: &BrokerProcess, topic: &str) -> Vec<Value> {
    read_all(b, topic)
        .into_iter()
        .map(|m| {
            let mut headers = m["headers"].as_object().cloned().unwrap_or_default();
            headers.retain(|k, _| !k.starts_with("x-rustmq-"));
            json!({"key": m["key"], "value_base64": m["value_base64"],
                   "timestamp": m["timestamp"], "headers": headers})
        })
        .collect()
}

#[test]
fn an_sdk_module_in_place_filters_and_routes_messages_byte_for_byte() {
    let b = BrokerProcess::start("[etl]\nenabled = true\n");
    upload(&b, "m", "1.0.0", guests::SDK_IN_PLACE);
    pipeline(&b, "p", "m", "1.0.0", 10);
    use base64::Engine as _;
    let binary = base64::engine::general_purpose::STANDARD.encode((0..=255u8).collect::<Vec<_>>());
    let messages = vec![
        json!({"key": "clé", "value_base64": binary, "timestamp": 1234567,
               "headers": {"h": "v", "z": "ünï"}}),
        json!({"value": "drop"}),
        json!({"key": "r", "value": "to the side", "timestamp": 7,
               "headers": {"route": "p-side", "n": "1"}}),
        json!({"value": "last", "timestamp": 8}),
    ];
    send(&b, "p-in", messages);
    committed(&b, "p", 4);
    let input = as_sent(&b, "p-in");
    assert_eq!(
        as_sent(&b, "p-out"),
        vec![input[0].clone(), input[3].clone()]
    );
    assert_eq!(as_sent(&b, "p-side"), vec![input[2].clone()]);
    assert!(read_all(&b, "p-errors").is_empty());
    let (_, m) = admin_get(&b, "/api/v1/etl/pipelines/p/metrics");
    assert_eq!(m["messages_filtered"], 1, "{m}");
    assert_eq!(m["batch_replays"], 0, "{m}");
}

#[test]
fn a_hot_swap_from_1_1_to_1_2_keeps_the_durable_state() {
    let b = BrokerProcess::start("[etl]\nenabled = true\n");
    upload(&b, "c", "1.0.0", guests::COUNTER);
    upload(&b, "c", "2.0.0", guests::BUFFER_V12);
    pipeline(&b, "p", "c", "1.0.0", 10);
    send(&b, "p-in", plain(&["count", "count", "count"]));
    committed(&b, "p", 3);
    let (code, v) = admin_patch(
        &b,
        "/api/v1/etl/pipelines/p",
        &json!({"module_version": "2.0.0"}),
    );
    assert_eq!(code, StatusCode::OK, "{v}");
    send(&b, "p-in", plain(&["count", "count", "count"]));
    committed(&b, "p", 6);
    let out = read_all(&b, "p-out");
    let counts: Vec<(&str, &str)> = out
        .iter()
        .map(|m| {
            (
                m["headers"]["x-count"].as_str().unwrap(),
                m["headers"]["x-rustmq-module-version"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("1", "1.0.0"),
            ("2", "1.0.0"),
            ("3", "1.0.0"),
            ("4", "2.0.0"),
            ("5", "2.0.0"),
            ("6", "2.0.0")
        ]
    );
    let (_, state) = admin_get(&b, "/api/v1/etl/pipelines/p/state");
    assert_eq!(state["entries"][0]["value"], "6", "{state}");
}

#[test]
fn the_cli_inspects_a_1_2_module_and_runs_its_batches_locally() {
    let cli = rustmq_etl_tests::broker::cli_binary();
    let inspect = std::process::Command::new(cli)
        .args(["inspect", guests::BUFFER_V12])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{text}");
    assert!(
        text.contains("world:    rustmq:etl/etl-buffer@1.2.0"),
        "{text}"
    );
    let inputs = plain(&["hello", "pass", "fail", "count"]);
    let answers = rustmq_etl_tests::guide::run_locally_with(
        &[std::path::Path::new(guests::BUFFER_V12)],
        &["--batch-size", "4"],
        &inputs,
    );
    let values: Vec<Value> = answers
        .iter()
        .map(|a| json!([a["messages"][0]["value"], a["error"]]))
        .collect();
    assert_eq!(
        values,
        [
            json!(["hello", null]),
            json!(["pass", null]),
            json!([null, "asked to fail"]),
            json!(["1", null])
        ]
    );
}
