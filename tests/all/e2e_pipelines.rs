//! Pipelines over real HTTP against the broker binary (issue 6): the guide's Steps
//! 4–6 with the guide's legacy module and with the component template, the metrics
//! endpoints, the guide's PATCH, routes by name, resume after a restart, and exactly
//! once across a SIGKILL.
//!
//! The pipeline engine's behaviours (fan-out, filter, DLQ, retries, poison, pinning,
//! hot swap) are tested in process in `pipelines.rs`; these tests prove the same
//! engine is reachable, durable and correct through the shipped binary.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::StatusCode;
use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::guests;
use rustmq_etl_tests::http::{
    admin_delete, admin_get, admin_patch, admin_post, client, consume, error_code, error_message,
    produce, read_all, send, upload_module, wait_until,
};
use serde_json::{json, Value};

const CONFIG: &str = "[etl]\nenabled = true\nmodules_path = \"modules\"\n";

/// How long a pipeline may take to catch up in a debug build.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(90);

use rustmq_etl_tests::guide::PIPELINE_JSON as GUIDE_PIPELINE;

/// The guide's Step 6.1 message.
fn guide_message() -> Value {
    json!({
        "key": "sensor-001",
        "value": "{\"temperature_celsius\": 23.5, \"humidity\": 65.2, \"sensor_id\": \"env001\"}",
        "headers": {
            "content-type": "application/json",
            "source": "iot-sensors",
            "client_ip": "192.168.1.100"
        }
    })
}

fn upload(b: &BrokerProcess, name: &str, version: &str, path: &str) -> Value {
    let bytes = std::fs::read(path).unwrap();
    let (status, v) = upload_module(b, name, version, bytes);
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

fn pipeline_status(b: &BrokerProcess, id: &str) -> Value {
    let (status, v) = admin_get(b, &format!("/api/v1/etl/pipelines/{id}/status"));
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

/// Waits until pipeline `id` has committed up to `offset`, failing if it stops
/// running. Returns its metrics then (read after the commit is visible in them).
fn wait_committed(b: &BrokerProcess, id: &str, offset: u64) -> Value {
    wait_until(
        &format!("{id} to commit offset {offset}"),
        DRAIN_TIMEOUT,
        Duration::from_millis(20),
        || {
            let (status, m) = admin_get(b, &format!("/api/v1/etl/pipelines/{id}/metrics"));
            assert_eq!(status, StatusCode::OK, "{m}");
            if m["committed_offset"].as_u64() >= Some(offset) {
                return Ok(m);
            }
            let s = pipeline_status(b, id);
            assert_eq!(s["status"], "running", "pipeline stopped: {s}");
            Err(s.to_string())
        },
    )
}

/// The first message of `topic` at or after `offset`, waiting for it with the
/// message API's long poll.
fn consume_one(b: &BrokerProcess, topic: &str, offset: u64) -> Value {
    wait_until(
        &format!("a message at {topic}@{offset}"),
        DRAIN_TIMEOUT,
        Duration::ZERO,
        || {
            let (status, v) = consume(
                b,
                topic,
                &format!("offset={offset}&max_messages=10&wait_ms=1000"),
            );
            match v["messages"].as_array() {
                Some(m) if status == StatusCode::OK && !m.is_empty() => Ok(m[0].clone()),
                _ => Err(format!("{status} {v}")),
            }
        },
    )
}

/// Steps 4 to 6 of the guide with the module at `wasm`; returns the broker for
/// further checks. The pipeline is `pipeline-1`, named `message-transformation`.
fn guide_steps_4_to_6(wasm: &str) -> BrokerProcess {
    let b = BrokerProcess::start(CONFIG);
    // Step 4.1.
    let v = upload(&b, "message-processor", "1.0.0", wasm);
    assert_eq!(v["module_id"], "message-processor-v1.0.0");
    // Step 5.2: `-d @etl-pipeline.json`.
    let (status, v) = send(
        client()
            .post(format!("{}/api/v1/etl/pipelines", b.admin_url))
            .header("Content-Type", "application/json")
            .body(GUIDE_PIPELINE),
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["pipeline_id"], "pipeline-1");
    assert_eq!(v["status"], "created");
    // Step 5.3: start (already running: enabled) and status.
    let (status, v) = admin_post(&b, "/api/v1/etl/pipelines/pipeline-1/start", &json!({}));
    assert_eq!(status, StatusCode::OK, "{v}");
    let v = pipeline_status(&b, "pipeline-1");
    assert_eq!(v["status"], "running", "{v}");
    assert_eq!(v["module_id"], "message-processor-v1.0.0");
    assert_eq!(v["module_version"], "1.0.0");
    assert_eq!(v["source_topic"], "raw-events");

    // Step 6.1.
    let (status, v) = produce(&b, "raw-events", &guide_message());
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["offset"], 0);

    // Step 6.2: the transformed, enriched message.
    let m = consume_one(&b, "processed-events", 0);
    assert_eq!(m["key"], "sensor-001");
    let value: Value = serde_json::from_str(m["value"].as_str().unwrap()).unwrap();
    assert_eq!(value["_processed"], true, "{value}");
    let fahrenheit = value["temperature_fahrenheit"].as_f64().unwrap();
    assert!((fahrenheit - 74.3).abs() < 1e-9, "{value}");
    assert_eq!(value["temperature_celsius"], 23.5);
    assert_eq!(value["sensor_id"], "env001");
    let h = &m["headers"];
    assert_eq!(h["enriched"], "true", "{h}");
    assert_eq!(h["processor"], "message-processor-v1", "{h}");
    assert!(
        h["geo_country"].is_string() && h["geo_city"].is_string(),
        "{h}"
    );
    assert!(
        h["processed_at"].as_str().unwrap().parse::<i64>().is_ok(),
        "{h}"
    );
    assert_eq!(h["source"], "iot-sensors");
    assert_eq!(h["x-rustmq-module"], "message-processor-v1.0.0");
    assert_eq!(h["x-rustmq-module-version"], "1.0.0");

    // Step 6.3: the guide's metric fields count it.
    let m = wait_committed(&b, "pipeline-1", 1);
    assert_eq!(m["messages_processed"], 1, "{m}");
    assert_eq!(m["messages_filtered"], 0, "{m}");
    assert_eq!(m["messages_failed"], 0, "{m}");
    assert!(m["avg_processing_time_ms"].as_f64().unwrap() > 0.0, "{m}");
    assert!(m["throughput_msgs_per_sec"].as_f64().unwrap() > 0.0, "{m}");
    assert_eq!(m["messages_produced"], 1, "{m}");
    assert_eq!(m["lag"], 0, "{m}");

    // Troubleshooting: `jq '.etl.memory_usage_bytes'`.
    let (status, v) = admin_get(&b, "/api/v1/metrics");
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["etl"]["memory_usage_bytes"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["etl"]["messages_processed"], 1, "{v}");
    assert_eq!(v["etl"]["pipelines_running"], 1, "{v}");
    assert_eq!(v["pipelines"]["pipeline-1"]["messages_processed"], 1, "{v}");

    // Prometheus text with the pipeline's counters.
    let r = client()
        .get(format!("{}/metrics", b.admin_url))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.contains("text"), "{content_type}");
    let text = r.text().unwrap();
    for line in [
        "rustmq_etl_messages_processed_total{pipeline=\"pipeline-1\"} 1",
        "rustmq_etl_messages_failed_total{pipeline=\"pipeline-1\"} 0",
        "rustmq_etl_messages_produced_total{pipeline=\"pipeline-1\"} 1",
        "rustmq_etl_lag_messages{pipeline=\"pipeline-1\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(text.contains("# TYPE rustmq_etl_messages_processed counter"));
    b
}

#[test]
fn guide_steps_4_to_6_with_the_guides_legacy_module() {
    let b = guide_steps_4_to_6(guests::GUIDE_MODULE);

    // Routes accept the pipeline's name.
    let v = pipeline_status(&b, "message-transformation");
    assert_eq!(v["pipeline_id"], "pipeline-1");
    let (status, v) = admin_get(&b, "/api/v1/etl/pipelines/message-transformation/metrics");
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["messages_processed"], 1);

    // The guide's performance tuning PATCH.
    let (status, v) = admin_patch(
        &b,
        "/api/v1/etl/pipelines/pipeline-1",
        &json!({"configuration": {"timeout_ms": 500, "batch_size": 10}}),
    );
    assert_eq!(status, StatusCode::OK, "{v}");
    let v = pipeline_status(&b, "pipeline-1");
    assert_eq!(v["configuration"]["timeout_ms"], 500, "{v}");
    assert_eq!(v["configuration"]["batch_size"], 10, "{v}");
    assert_eq!(v["configuration"]["retry_policy"]["max_retries"], 3, "{v}");
    assert_eq!(v["status"], "running", "{v}");
    // More than the broker allows: status shows the deadline the calls get.
    let (status, v) = admin_patch(
        &b,
        "/api/v1/etl/pipelines/pipeline-1",
        &json!({"configuration": {"timeout_ms": 900000}}),
    );
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["configuration"]["timeout_ms"], 5000, "{v}");
    let (status, v) = admin_patch(
        &b,
        "/api/v1/etl/pipelines/pipeline-1",
        &json!({"configuration": {"timeout_ms": 500}}),
    );
    assert_eq!(status, StatusCode::OK, "{v}");
    // It keeps processing with the new settings.
    let batch: Vec<Value> = (0..3).map(|_| guide_message()).collect();
    let (status, v) = produce(&b, "raw-events", &json!({ "messages": batch }));
    assert_eq!(status, StatusCode::OK, "{v}");
    let m = wait_committed(&b, "pipeline-1", 4);
    assert_eq!(m["messages_processed"], 4, "{m}");
    assert_eq!(read_all(&b, "processed-events").len(), 4);

    // An unknown processing mode is refused by name.
    let mut spec: Value = serde_json::from_str(GUIDE_PIPELINE).unwrap();
    spec["pipeline_name"] = json!("another");
    spec["configuration"]["processing_mode"] = json!("micro_batch");
    let (status, v) = admin_post(&b, "/api/v1/etl/pipelines", &spec);
    assert_eq!(
        error_code(status, &v, StatusCode::BAD_REQUEST),
        "invalid_json_data"
    );
    let message = error_message(&v);
    assert!(
        message.contains("micro_batch") && message.contains("single_message"),
        "{message}"
    );
    let (status, v) = admin_patch(
        &b,
        "/api/v1/etl/pipelines/message-transformation",
        &json!({"configuration": {"processing_mode": "micro_batch"}}),
    );
    assert_eq!(
        error_code(status, &v, StatusCode::BAD_REQUEST),
        "invalid_json_data"
    );
    assert!(error_message(&v).contains("micro_batch"), "{v}");
    let (_, v) = admin_get(&b, "/api/v1/etl/pipelines");
    assert_eq!(v["count"], 1, "{v}");
}

#[test]
fn the_metrics_history_counts_the_last_minutes_bucket_by_bucket() {
    let b = guide_steps_4_to_6(guests::GUIDE_MODULE);
    let mut broken = guide_message();
    broken["value"] = json!("{not json");
    let mut batch: Vec<Value> = (0..9).map(|_| guide_message()).collect();
    batch.push(broken);
    let (status, v) = produce(&b, "raw-events", &json!({ "messages": batch }));
    assert_eq!(status, StatusCode::OK, "{v}");
    wait_committed(&b, "pipeline-1", 11);
    let (status, h) = admin_get(
        &b,
        "/api/v1/etl/pipelines/message-transformation/metrics/history",
    );
    assert_eq!(status, StatusCode::OK, "{h}");
    assert_eq!(h["bucket_ms"], 5000);
    let samples = h["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 60, "five minutes of 5 s buckets");
    let at: Vec<u64> = samples
        .iter()
        .map(|s| s["at_ms"].as_u64().unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[1] == w[0] + 5000), "{at:?}");
    let sum = |field: &str| -> u64 { samples.iter().map(|s| s[field].as_u64().unwrap()).sum() };
    // The guide's message of steps 4 to 6, the nine good ones and the broken one.
    assert_eq!(sum("handled"), 11, "{h}");
    assert_eq!(sum("failed"), 1, "{h}");
    let busy: Vec<&Value> = samples.iter().filter(|s| s["handled"] != 0).collect();
    assert!(
        busy.iter()
            .all(|s| s["p99_processing_time_ms"].as_f64().unwrap() > 0.0
                && s["throughput_msgs_per_sec"].as_f64().unwrap() > 0.0),
        "{busy:?}"
    );
    assert!(samples[0]["p50_processing_time_ms"].is_null(), "{h}");
    let (status, v) = admin_get(&b, "/api/v1/etl/pipelines/nope/metrics/history");
    assert_eq!(
        error_code(status, &v, StatusCode::NOT_FOUND),
        "pipeline_not_found"
    );
}

#[test]
fn guide_steps_4_to_6_with_the_component_template_then_delete_the_pipeline() {
    let b = guide_steps_4_to_6(guests::GUEST_TEMPLATE);

    let (status, v) = admin_delete(&b, "/api/v1/etl/pipelines/message-transformation");
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "deleted");
    for id in ["pipeline-1", "message-transformation"] {
        let (status, v) = admin_get(&b, &format!("/api/v1/etl/pipelines/{id}/status"));
        assert_eq!(
            error_code(status, &v, StatusCode::NOT_FOUND),
            "pipeline_not_found"
        );
    }
    let (_, v) = admin_get(&b, "/api/v1/etl/pipelines");
    assert_eq!(v["count"], 0, "{v}");
    let (_, v) = admin_get(&b, "/api/v1/metrics");
    assert_eq!(v["etl"]["pipelines_total"], 0, "{v}");
    // Nothing consumes the source any more: the module is free to go.
    let (status, v) = admin_delete(&b, "/api/v1/etl/modules/message-processor-v1.0.0");
    assert_eq!(status, StatusCode::OK, "{v}");
}

/// The `scripted` pipeline `name` from `in` to `out` (errors to `errors`).
fn scripted_pipeline(name: &str, batch_size: u32) -> Value {
    json!({
        "pipeline_name": name,
        "source_topic": "in",
        "destination_topic": "out",
        "error_topic": "errors",
        "module_name": "scripted",
        "module_version": "^1",
        "configuration": {
            "batch_size": batch_size,
            "retry_policy": {"max_retries": 1, "backoff_ms": 1}
        }
    })
}

fn produce_values(b: &BrokerProcess, first: usize, values: &[String]) {
    for (n, chunk) in values.chunks(500).enumerate() {
        let batch: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| json!({"key": format!("m{}", first + n * 500 + i), "value": v}))
            .collect();
        let (status, v) = produce(b, "in", &json!({ "messages": batch }));
        assert_eq!(status, StatusCode::OK, "{v}");
    }
}

fn keys(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["key"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn running_pipeline_resumes_after_sigterm_and_restart_from_its_committed_offset() {
    let mut b = BrokerProcess::start(CONFIG);
    upload(&b, "scripted", "1.0.0", guests::SCRIPTED);
    let values: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    produce_values(&b, 0, &values);
    let (status, v) = admin_post(&b, "/api/v1/etl/pipelines", &scripted_pipeline("resume", 7));
    assert_eq!(status, StatusCode::CREATED, "{v}");
    wait_committed(&b, "resume", 20);

    let exit = b.sigterm();
    assert!(exit.success(), "{exit:?}");
    b.restart();
    let v = pipeline_status(&b, "resume");
    assert_eq!(v["status"], "running", "{v}");
    assert_eq!(v["committed_offset"], 20, "{v}");
    let (_, v) = admin_get(&b, "/api/v1/metrics");
    assert_eq!(v["etl"]["modules_compiled"], 0, "{v}");

    let more: Vec<String> = (20..30).map(|i| format!("v{i}")).collect();
    produce_values(&b, 20, &more);
    let m = wait_committed(&b, "resume", 30);
    // Counters restart with the broker; offsets do not.
    assert_eq!(m["messages_processed"], 10, "{m}");
    let out = read_all(&b, "out");
    let want: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    assert_eq!(keys(&out), want, "each message once, in order");
}

#[test]
fn sigkill_mid_batch_then_restart_accounts_for_every_message_exactly_once() {
    const COUNT: usize = 3000;
    let mut b = BrokerProcess::start(CONFIG);
    upload(&b, "scripted", "1.0.0", guests::SCRIPTED);
    let value = |i: usize| match i % 10 {
        3 => "fail".to_string(),
        7 => "dead".to_string(),
        _ => format!("ok-{i}"),
    };
    let values: Vec<String> = (0..COUNT).map(value).collect();
    produce_values(&b, 0, &values);
    let (status, v) = admin_post(&b, "/api/v1/etl/pipelines", &scripted_pipeline("crash", 50));
    assert_eq!(status, StatusCode::CREATED, "{v}");

    // Kill once some batches are committed and the rest is still to do.
    let seen = wait_until(
        "the pipeline to be part-way",
        DRAIN_TIMEOUT,
        Duration::from_millis(5),
        || {
            let v = pipeline_status(&b, "crash");
            match v["committed_offset"].as_u64() {
                Some(c) if c >= 200 => Ok(v),
                _ => Err(v.to_string()),
            }
        },
    );
    b.sigkill();
    assert!(
        seen["lag"].as_u64().unwrap() > 0,
        "the pipeline finished before the kill; the test needs more messages: {seen}"
    );

    b.restart();
    let v = pipeline_status(&b, "crash");
    assert_eq!(v["status"], "running", "{v}");
    wait_committed(&b, "crash", COUNT as u64);

    // Destination: every good message once, nothing else.
    let mut by_index: BTreeMap<usize, Vec<&'static str>> = BTreeMap::new();
    let out = read_all(&b, "out");
    for m in &out {
        let key = m["key"].as_str().unwrap();
        let i: usize = key.strip_prefix('m').unwrap().parse().unwrap();
        assert_eq!(m["value"], value(i), "{m}");
        by_index.entry(i).or_default().push("out");
    }
    // Error topic: every fail/dead message once, by its source offset.
    let errors = read_all(&b, "errors");
    for m in &errors {
        let h = &m["headers"];
        let i: usize = h["x-rustmq-source-offset"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let cause = h["x-rustmq-error-cause"].as_str().unwrap();
        let want = if i % 10 == 3 {
            "module_error"
        } else {
            "dead_letter"
        };
        assert_eq!(cause, want, "{m}");
        assert_eq!(h["x-rustmq-source-topic"], "in");
        by_index.entry(i).or_default().push("errors");
    }
    let twice: Vec<_> = by_index.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");
    let missing: BTreeSet<usize> = (0..COUNT).filter(|i| !by_index.contains_key(i)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(out.len() + errors.len(), COUNT);
    assert_eq!(errors.len(), COUNT / 5);
}
