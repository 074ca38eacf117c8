//! Faults around the broker process: a loop of SIGKILLs at pseudo-random points of a
//! running pipeline (every source message must end up exactly once in the
//! destination or error topic, in order), bad storage at start (a clear error and a
//! non-zero exit, never a panic), and the HTTP edges an attacker reaches first:
//! every admin route behind the token, loopback-only defaults, the upload cap
//! applied before the body is buffered, modules pinned against deletion.
//!
//! - `crash`: the SIGKILL loop.
//! - `start`: bad storage at start.
//! - `edges`: the HTTP edges.

mod crash;
mod edges;
mod start;

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::StatusCode;
use rustmq_etl_tests::broker::BrokerProcess;
use serde_json::{json, Value};

pub(super) fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

pub(super) fn json_of(r: reqwest::blocking::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub(super) fn upload(
    b: &BrokerProcess,
    token: Option<&str>,
    name: &str,
    version: &str,
    path: &str,
) {
    let mut req = client()
        .post(format!("{}/api/v1/etl/modules", b.admin_url))
        .header("X-Module-Name", name)
        .header("X-Module-Version", version)
        .body(std::fs::read(path).unwrap());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let (s, v) = json_of(req.send().unwrap());
    assert!(s.is_success(), "{s} {v}");
}

pub(super) fn create_pipeline(
    b: &BrokerProcess,
    token: Option<&str>,
    name: &str,
    module: &str,
) -> String {
    let body = json!({
        "pipeline_name": name,
        "source_topic": format!("{name}-in"),
        "destination_topic": format!("{name}-out"),
        "error_topic": format!("{name}-err"),
        "module_name": module,
        "module_version": "^1",
        "configuration": {"batch_size": 7, "retry_policy": {"max_retries": 0, "backoff_ms": 1}},
        "enabled": true
    });
    let mut req = client()
        .post(format!("{}/api/v1/etl/pipelines", b.admin_url))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let (s, v) = json_of(req.send().unwrap());
    assert!(s.is_success(), "{s} {v}");
    v["pipeline_id"].as_str().unwrap().to_string()
}

pub(super) fn produce_batch(b: &BrokerProcess, topic: &str, msgs: &[(String, &str)]) {
    let body = json!({
        "messages": msgs.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>()
    });
    let (s, v) = json_of(
        client()
            .post(format!("{}/api/v1/topics/{topic}/messages", b.data_url))
            .json(&body)
            .send()
            .unwrap(),
    );
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// Every message key in `topic`, in offset order.
pub(super) fn keys(b: &BrokerProcess, topic: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let (s, v) = json_of(
            client()
                .get(format!(
                    "{}/api/v1/topics/{topic}/messages?offset={offset}&max_messages=1000",
                    b.data_url
                ))
                .send()
                .unwrap(),
        );
        if s == StatusCode::NOT_FOUND {
            return out;
        }
        assert_eq!(s, StatusCode::OK, "{v}");
        let messages = v["messages"].as_array().unwrap();
        if messages.is_empty() {
            return out;
        }
        out.extend(
            messages
                .iter()
                .map(|m| m["key"].as_str().unwrap().to_string()),
        );
        offset = v["next_offset"].as_u64().unwrap();
    }
}
