//! Canary versions over HTTP: a canary at 50 % by key sends each key to one version
//! only, both versions' numbers show side by side, and promoting pins the canary's
//! version; a canary that traps on every message is rolled back by its error rate
//! within its window, losing no message, and stays off after a restart.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use rustmq_etl_tests::broker::{run_cli, BrokerProcess};
use rustmq_etl_tests::guests;
use rustmq_etl_tests::http::{
    admin_get, admin_patch, admin_post, error_code, produce, read_all, upload_module, wait_until,
};

fn upload(b: &BrokerProcess, version: &str, wasm: &str) {
    let (code, v) = upload_module(b, "m", version, std::fs::read(wasm).unwrap());
    assert_eq!(code, StatusCode::CREATED, "{v}");
}

/// A broker with pipeline `p` from `in` to `out` (errors to `errors`) pinned to
/// `m@1.0.0`, and `m@<canary>` uploaded from `canary_wasm`.
fn broker(canary: &str, canary_wasm: &str) -> BrokerProcess {
    let b = BrokerProcess::start("[etl]\nenabled = true\n");
    upload(&b, "1.0.0", guests::IDENTITY);
    upload(&b, canary, canary_wasm);
    let (code, v) = admin_post(
        &b,
        "/api/v1/etl/pipelines",
        &json!({
            "pipeline_name": "p", "source_topic": "in", "destination_topic": "out",
            "error_topic": "errors", "module_name": "m", "module_version": "1.0.0",
            "configuration": {"batch_size": 16, "retry_policy": {"max_retries": 0, "backoff_ms": 1}}
        }),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    b
}

fn status(b: &BrokerProcess) -> Value {
    let (code, s) = admin_get(b, "/api/v1/etl/pipelines/p/status");
    assert_eq!(code, StatusCode::OK, "{s}");
    s
}

/// Waits until `out` holds `count` messages; returns them.
fn outputs(b: &BrokerProcess, count: usize) -> Vec<Value> {
    wait_until(
        &format!("{count} outputs"),
        Duration::from_secs(60),
        Duration::from_millis(20),
        || {
            let out = read_all(b, "out");
            if out.len() >= count {
                Ok(out)
            } else {
                Err(format!("{} outputs; status {}", out.len(), status(b)))
            }
        },
    )
}

fn produce_keyed(b: &BrokerProcess, value: &str, keys: usize, per_key: usize) {
    let messages: Vec<Value> = (0..keys * per_key)
        .map(|i| json!({"key": format!("k{}", i % keys), "value": value}))
        .collect();
    let (code, v) = produce(b, "in", &json!({ "messages": messages }));
    assert_eq!(code, StatusCode::OK, "{v}");
}

#[test]
fn a_canary_at_half_by_key_sends_each_key_to_one_version_and_promote_pins_it() {
    let b = broker("1.1.0", guests::IDENTITY);
    // Out of bounds, and unknown versions, are refused with what to do.
    let (code, v) = admin_patch(
        &b,
        "/api/v1/etl/pipelines/p",
        &json!({"canary": {"module_version": "1.1.0", "percent": 0}}),
    );
    assert_eq!(
        error_code(code, &v, StatusCode::BAD_REQUEST),
        "invalid_pipeline"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("1 ..= 99"),
        "{v}"
    );
    let (code, v) = admin_patch(
        &b,
        "/api/v1/etl/pipelines/p",
        &json!({"canary": {"module_version": "1.0.0", "percent": 10}}),
    );
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    let (code, v) = admin_patch(
        &b,
        "/api/v1/etl/pipelines/p",
        &json!({"canary": {"module_version": "9.9.9", "percent": 10}}),
    );
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");

    let (code, v) = admin_patch(
        &b,
        "/api/v1/etl/pipelines/p",
        &json!({"canary": {"module_version": "^1.1", "percent": 50, "by": "key"}}),
    );
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(
        v["canary"]["module_version"], "1.1.0",
        "pinned exactly: {v}"
    );
    assert_eq!(v["module_version"], "1.0.0");

    let (keys, per_key) = (40, 5);
    produce_keyed(&b, "v", keys, per_key);
    let out = outputs(&b, keys * per_key);
    assert_eq!(out.len(), keys * per_key, "each message once");
    let mut version_of: BTreeMap<String, String> = BTreeMap::new();
    for m in &out {
        let version = m["headers"]["x-rustmq-module-version"].as_str().unwrap();
        assert_eq!(
            m["headers"]["x-rustmq-module"].as_str().unwrap(),
            format!("m-v{version}"),
            "{m}"
        );
        let key = m["key"].as_str().unwrap().to_string();
        let seen = version_of.entry(key.clone()).or_insert(version.to_string());
        assert_eq!(seen, version, "key {key} saw two versions");
    }
    let on_canary = version_of.values().filter(|v| *v == "1.1.0").count();
    assert!(
        (8..=32).contains(&on_canary),
        "{on_canary} of {keys} keys on the canary at 50 %"
    );

    // Both versions' numbers, side by side.
    let s = wait_until(
        "the counts of both versions",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let s = status(&b);
            let handled: u64 = s["versions"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .map(|v| v["messages_handled"].as_u64().unwrap())
                        .sum()
                })
                .unwrap_or(0);
            (handled == (keys * per_key) as u64)
                .then_some(s.clone())
                .ok_or(s.to_string())
        },
    );
    let versions = s["versions"].as_array().unwrap();
    assert_eq!(versions[0]["role"], "stable");
    assert_eq!(versions[0]["module_version"], "1.0.0");
    assert_eq!(versions[1]["role"], "canary");
    assert_eq!(
        versions[1]["messages_handled"],
        (on_canary * per_key) as u64,
        "{s}"
    );
    assert_eq!(versions[1]["window_error_rate"], 0.0);
    let (_, metrics) = admin_get(&b, "/api/v1/etl/pipelines/p/metrics");
    assert_eq!(metrics["versions"], s["versions"]);

    // Promote: the canary's version is pinned, the canary ends.
    let (code, v) = admin_post(&b, "/api/v1/etl/pipelines/p/promote", &json!({}));
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["module_version"], "1.1.0", "{v}");
    assert!(v.get("canary").is_none(), "{v}");
    assert_eq!(v["canary_event"]["event"], "promoted");
    produce_keyed(&b, "after", keys, 1);
    let out = outputs(&b, keys * per_key + keys);
    assert!(out[keys * per_key..]
        .iter()
        .all(|m| m["headers"]["x-rustmq-module-version"] == "1.1.0"));
    let (code, v) = admin_post(&b, "/api/v1/etl/pipelines/p/promote", &json!({}));
    assert_eq!(code, StatusCode::BAD_REQUEST, "no canary to promote: {v}");
}

#[test]
fn a_canary_that_traps_on_every_message_is_rolled_back_within_its_window_and_loses_nothing() {
    // The canary is the scripted module, which traps on "trap"; the pinned identity
    // hands it on.
    let mut b = broker("2.0.0", guests::SCRIPTED);
    let (code, v) = admin_patch(
        &b,
        "/api/v1/etl/pipelines/p",
        &json!({"canary": {"module_version": "2.0.0", "percent": 50,
                           "max_error_rate": 0.2, "window_secs": 30, "min_messages": 5}}),
    );
    assert_eq!(code, StatusCode::OK, "{v}");
    let count = 200;
    produce_keyed(&b, "trap", 50, count / 50);
    let out = outputs(&b, count);
    assert_eq!(
        out.len(),
        count,
        "every message once, none lost to the canary"
    );
    assert!(
        out.iter()
            .all(|m| m["headers"]["x-rustmq-module-version"] == "1.0.0"),
        "the pinned version made every output"
    );
    assert!(
        read_all(&b, "errors").is_empty(),
        "no message dead-lettered"
    );
    let s = wait_until(
        "the rollback to be recorded",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let s = status(&b);
            s.get("canary_event")
                .is_some()
                .then_some(s.clone())
                .ok_or(s.to_string())
        },
    );
    assert!(s.get("canary").is_none(), "{s}");
    assert_eq!(s["canary_event"]["event"], "rolled_back", "{s}");
    assert_eq!(s["canary_event"]["module_version"], "2.0.0");
    let reason = s["canary_event"]["reason"].as_str().unwrap();
    assert!(reason.contains("max_error_rate 20.0 %"), "{reason}");
    assert_eq!(s["module_version"], "1.0.0");
    assert_eq!(s["status"], "running");
    // Rolled back at its first judgement: five failures, not the hundred it would
    // have had.
    assert!(reason.starts_with("5 of its 5 messages"), "{reason}");

    // The rollback is part of the definition: a restart keeps the canary off.
    b.restart();
    let s = status(&b);
    assert!(s.get("canary").is_none(), "{s}");
    assert_eq!(s["canary_event"]["event"], "rolled_back");
    produce_keyed(&b, "trap", 10, 1);
    let out = outputs(&b, count + 10);
    assert_eq!(out.len(), count + 10);
}

#[test]
fn the_cli_starts_shows_and_promotes_a_canary() {
    let b = broker("1.1.0", guests::IDENTITY);
    let cli = |args: &[&str]| {
        let out = run_cli(&b, args, &[]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let text = cli(&[
        "pipeline",
        "canary",
        "p",
        "--module-version",
        "1.1.0",
        "--percent",
        "30",
        "--by",
        "key",
        "--max-error-rate",
        "0.05",
    ]);
    assert!(
        text.contains("canary 1.1.0 on 30 % by key, rolled back above 5.0 % errors in 60 s"),
        "{text}"
    );
    produce_keyed(&b, "v", 20, 2);
    outputs(&b, 40);
    let text = wait_until(
        "the status to show both versions",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let text = cli(&["pipeline", "status", "p"]);
            (text.contains("ROLE") && text.contains("stable") && text.contains("canary"))
                .then_some(text.clone())
                .ok_or(text)
        },
    );
    assert!(text.contains("ERRORS (WINDOW)"), "{text}");
    let text = cli(&["pipeline", "promote", "p"]);
    assert!(
        text.contains("pinned to 1.1.0, no canary (canary 1.1.0 promoted)"),
        "{text}"
    );
    let text = cli(&["pipeline", "canary", "p", "--remove"]);
    assert!(text.contains("no canary"), "{text}");
}
