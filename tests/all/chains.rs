//! Chains of modules in one pipeline, driven over HTTP against the broker binary
//! with guests built from source: filter → fan-out → enrich gives exactly the
//! expected outputs (each stage with its own durable state), a trap at a stage
//! dead-letters the source message naming that stage, one stage is upgraded alone,
//! and bad chain definitions get a clear 400.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::guests;
use rustmq_etl_tests::http::{
    admin_get, admin_patch, admin_post, error_code, produce, read_all, upload_module, wait_until,
};

fn upload(b: &BrokerProcess, name: &str, version: &str, path: &str) {
    let (code, v) = upload_module(b, name, version, std::fs::read(path).unwrap());
    assert!(code.is_success(), "{v}");
}

/// dedup (drops repeated keys) → scripted (`fanout:N` makes N copies) → counter
/// (the count per key as the value and in `x-count`).
fn chain_definition(name: &str) -> Value {
    json!({
        "pipeline_name": name,
        "source_topic": format!("{name}-in"),
        "destination_topic": format!("{name}-out"),
        "error_topic": format!("{name}-err"),
        "modules": [
            {"module_name": "dedup", "module_version": "^1"},
            {"module_name": "scripted", "module_version": "^1"},
            {"module_name": "counter", "module_version": "^1"}
        ],
        "configuration": {"batch_size": 10, "retry_policy": {"max_retries": 1, "backoff_ms": 1}}
    })
}

fn header<'a>(m: &'a Value, name: &str) -> &'a str {
    m["headers"][name].as_str().unwrap_or_default()
}

fn committed(b: &BrokerProcess, id: &str, offset: u64) -> Value {
    wait_until(
        "the chain to commit",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            let (_, s) = admin_get(b, &format!("/api/v1/etl/pipelines/{id}/status"));
            (s["committed_offset"].as_u64() >= Some(offset))
                .then(|| s.clone())
                .ok_or(s.to_string())
        },
    )
}

#[test]
fn filter_fan_out_and_enrich_compose_with_state_per_stage_and_a_trap_names_its_stage() {
    let b = BrokerProcess::start("");
    upload(&b, "dedup", "1.0.0", guests::DEDUP);
    upload(&b, "scripted", "1.0.0", guests::SCRIPTED);
    upload(&b, "counter", "1.0.0", guests::COUNTER);
    let (code, v) = admin_post(&b, "/api/v1/etl/pipelines", &chain_definition("chain"));
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let id = v["pipeline_id"].as_str().unwrap().to_string();
    for (key, value) in [
        ("a", "fanout:2"),
        ("a", "fanout:2"),
        ("b", "plain"),
        ("c", "trap"),
    ] {
        let (code, v) = produce(&b, "chain-in", &json!({"key": key, "value": value}));
        assert_eq!(code, StatusCode::OK, "{v}");
    }
    let status = committed(&b, &id, 4);
    let stages: Vec<&str> = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["module_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["dedup-v1.0.0", "scripted-v1.0.0", "counter-v1.0.0"]
    );

    // The repeated `a` was filtered by stage 0; the first `a` fanned out into two
    // copies at stage 1, which stage 2 counted 1 and 2. Stage 2 counts in its own
    // scope: dedup's "1" stored under the same key is not its count.
    let out = read_all(&b, "chain-out");
    let got: Vec<(&str, &str)> = out
        .iter()
        .map(|m| (m["key"].as_str().unwrap(), m["value"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [("a", "1"), ("a", "2"), ("b", "1")]);
    for m in &out {
        assert_eq!(header(m, "x-rustmq-module"), "counter-v1.0.0");
        assert_eq!(
            header(m, "x-rustmq-chain"),
            "dedup-v1.0.0,scripted-v1.0.0,counter-v1.0.0"
        );
    }

    // The trap at stage 1: the source message itself, with the stage named.
    let errors = read_all(&b, "chain-err");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(
        (e["key"].as_str(), e["value"].as_str()),
        (Some("c"), Some("trap"))
    );
    assert_eq!(header(e, "x-rustmq-error-cause"), "trap");
    assert_eq!(header(e, "x-rustmq-error-stage"), "1");
    assert_eq!(header(e, "x-rustmq-error-module"), "scripted-v1.0.0");
    assert_eq!(header(e, "x-rustmq-error-module-version"), "1.0.0");
    assert_eq!(header(e, "x-rustmq-attempts"), "2");

    // Each stage's counts.
    let (_, m) = admin_get(&b, &format!("/api/v1/etl/pipelines/{id}/metrics"));
    let s = m["stages"].as_array().unwrap();
    assert_eq!(s.len(), 3, "{m}");
    assert_eq!(s[0]["messages_filtered"], 1, "{m}");
    assert_eq!(s[1]["messages_failed"], 2, "{m}");
    assert_eq!(s[2]["messages_processed"], 3, "{m}");
    let (code, prometheus) = {
        let r = rustmq_etl_tests::http::client()
            .get(format!("{}/metrics", b.admin_url))
            .send()
            .unwrap();
        (r.status(), r.text().unwrap())
    };
    assert_eq!(code, StatusCode::OK);
    assert!(
        prometheus.contains(&format!(
            "rustmq_etl_stage_messages_processed_total{{pipeline=\"{id}\",stage=\"2\",module=\"counter-v1.0.0\"}} 3"
        )),
        "{prometheus}"
    );

    // Upgrade stage 2 alone: what comes after carries the new version.
    upload(&b, "counter", "1.1.0", guests::COUNTER);
    let (code, v) = admin_patch(
        &b,
        &format!("/api/v1/etl/pipelines/{id}"),
        &json!({"module_version": "1.1.0"}),
    );
    assert_eq!(
        error_code(code, &v, StatusCode::BAD_REQUEST),
        "invalid_pipeline"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("stage"),
        "{v}"
    );
    let (code, v) = admin_patch(
        &b,
        &format!("/api/v1/etl/pipelines/{id}"),
        &json!({"stage": 2, "module_version": "1.1.0"}),
    );
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["stages"][2]["module_id"], "counter-v1.1.0", "{v}");
    assert_eq!(v["stages"][0]["module_id"], "dedup-v1.0.0", "{v}");
    let (code, v) = produce(&b, "chain-in", &json!({"key": "d", "value": "plain"}));
    assert_eq!(code, StatusCode::OK, "{v}");
    committed(&b, &id, 5);
    let out = read_all(&b, "chain-out");
    assert_eq!(out.len(), 4);
    assert_eq!(header(&out[3], "x-rustmq-module"), "counter-v1.1.0");
    assert_eq!(
        header(&out[3], "x-rustmq-chain"),
        "dedup-v1.0.0,scripted-v1.0.0,counter-v1.1.0"
    );
}

#[test]
fn bad_chain_definitions_get_a_clear_400_and_create_nothing() {
    let b = BrokerProcess::start("");
    upload(&b, "scripted", "1.0.0", guests::SCRIPTED);
    let mut both = chain_definition("both");
    both["module_name"] = json!("scripted");
    both["module_version"] = json!("^1");
    let mut long = chain_definition("long");
    long["modules"] = json!(vec![
        json!({"module_name": "scripted", "module_version": "^1"});
        9
    ]);
    let mut params = chain_definition("params");
    params["configuration"]["params"] = json!({"tag": "x"});
    for (definition, says) in [
        (both, "not both"),
        (long, "at most 8 stages"),
        (params, "its own \"params\""),
    ] {
        let (code, v) = admin_post(&b, "/api/v1/etl/pipelines", &definition);
        assert_eq!(
            error_code(code, &v, StatusCode::BAD_REQUEST),
            "invalid_pipeline"
        );
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    let (_, list) = admin_get(&b, "/api/v1/etl/pipelines");
    assert_eq!(list["count"], 0, "{list}");
}

#[test]
fn the_local_runner_and_the_broker_agree_on_a_chains_outputs() {
    let inputs = [("a", "fanout:2"), ("a", "fanout:2"), ("b", "plain")];
    let outputs_of = |messages: &[Value]| -> Vec<(String, String, String)> {
        messages
            .iter()
            .map(|m| {
                (
                    m["key"].as_str().unwrap().to_string(),
                    m["value"].as_str().unwrap().to_string(),
                    header(m, "x-count").to_string(),
                )
            })
            .collect()
    };

    let modules = [guests::DEDUP, guests::SCRIPTED, guests::COUNTER].map(std::path::Path::new);
    let lines: Vec<Value> = inputs
        .iter()
        .map(|(key, value)| json!({"key": key, "value": value}))
        .collect();
    let local: Vec<Value> = rustmq_etl_tests::guide::run_locally(&modules, &lines)
        .iter()
        .flat_map(|line| line["messages"].as_array().cloned().unwrap_or_default())
        .collect();

    let b = BrokerProcess::start("");
    upload(&b, "dedup", "1.0.0", guests::DEDUP);
    upload(&b, "scripted", "1.0.0", guests::SCRIPTED);
    upload(&b, "counter", "1.0.0", guests::COUNTER);
    let (code, v) = admin_post(&b, "/api/v1/etl/pipelines", &chain_definition("agree"));
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let id = v["pipeline_id"].as_str().unwrap().to_string();
    for (key, value) in inputs {
        let (code, v) = produce(&b, "agree-in", &json!({"key": key, "value": value}));
        assert_eq!(code, StatusCode::OK, "{v}");
    }
    committed(&b, &id, inputs.len() as u64);
    let remote = read_all(&b, "agree-out");
    assert_eq!(outputs_of(&local), outputs_of(&remote));
    assert_eq!(outputs_of(&local).len(), 3);
}

#[test]
fn upgrading_one_stage_under_flow_loses_nothing_and_each_output_names_the_chain_that_made_it() {
    let b = BrokerProcess::start("");
    upload(&b, "scripted", "1.0.0", guests::SCRIPTED);
    upload(&b, "scripted", "1.1.0", guests::SCRIPTED);
    let stage = json!({"module_name": "scripted", "module_version": "=1.0.0"});
    let (code, v) = admin_post(
        &b,
        "/api/v1/etl/pipelines",
        &json!({
            "pipeline_name": "flow",
            "source_topic": "flow-in",
            "destination_topic": "flow-out",
            "modules": [stage, stage, stage],
            "configuration": {"batch_size": 5}
        }),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let id = v["pipeline_id"].as_str().unwrap().to_string();
    let total = 300;
    let producer = {
        let url = b.data_url.clone();
        std::thread::spawn(move || {
            for i in 0..total {
                let r = rustmq_etl_tests::http::client()
                    .post(format!("{url}/api/v1/topics/flow-in/messages"))
                    .json(&json!({"key": format!("k{i:04}"), "value": "pass"}))
                    .send()
                    .unwrap();
                assert!(r.status().is_success());
            }
        })
    };
    // Upgrade the last stage once the flow is under way.
    committed(&b, &id, 20);
    let (code, v) = admin_patch(
        &b,
        &format!("/api/v1/etl/pipelines/{id}"),
        &json!({"stage": 2, "module_version": "=1.1.0"}),
    );
    assert_eq!(code, StatusCode::OK, "{v}");
    producer.join().unwrap();
    committed(&b, &id, total);
    let out = read_all(&b, "flow-out");
    let keys: Vec<String> = out
        .iter()
        .map(|m| m["key"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (0..total).map(|i| format!("k{i:04}")).collect();
    assert_eq!(keys, want, "every input once, in order");
    let old = "scripted-v1.0.0,scripted-v1.0.0,scripted-v1.0.0";
    let new = "scripted-v1.0.0,scripted-v1.0.0,scripted-v1.1.0";
    let chains: Vec<&str> = out.iter().map(|m| header(m, "x-rustmq-chain")).collect();
    let switched = chains
        .iter()
        .position(|c| *c == new)
        .expect("the upgrade took effect");
    assert!(chains[..switched].iter().all(|c| *c == old), "{chains:?}");
    assert!(chains[switched..].iter().all(|c| *c == new), "{chains:?}");
    for m in &out[switched..] {
        assert_eq!(header(m, "x-rustmq-module-version"), "1.1.0");
    }
}
