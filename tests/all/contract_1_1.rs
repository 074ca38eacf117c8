//! `rustmq:etl@1.1.0` end to end: batch calls, routed outputs and durable keyed
//! state, driven over HTTP against a real broker with guests built from source
//! (`tests/guests/`, written with the `rustmq-etl-guest` SDK unless noted).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use rustmq_etl_tests::broker::{cli_binary, BrokerProcess};
use rustmq_etl_tests::guests;
use rustmq_etl_tests::http::{
    admin_delete, admin_get, admin_patch, admin_post, error_code, produce, read_all, upload_module,
    wait_until,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

fn broker() -> BrokerProcess {
    BrokerProcess::start("[etl]\nenabled = true\n")
}

fn upload(b: &BrokerProcess, name: &str, version: &str, wasm: &str) {
    let (s, v) = upload_module(b, name, version, std::fs::read(wasm).unwrap());
    assert!(s.is_success(), "{s} {v}");
}

/// Creates pipeline `name` reading `name-in`, writing `name-out` and `name-err`,
/// with `extra` merged into the definition (and into its `configuration`).
fn pipeline(b: &BrokerProcess, name: &str, module: &str, extra: Value) -> String {
    let mut body = json!({
        "pipeline_name": name,
        "source_topic": format!("{name}-in"),
        "destination_topic": format!("{name}-out"),
        "error_topic": format!("{name}-err"),
        "module_name": module,
        "module_version": "^1",
        "configuration": {"batch_size": 10, "retry_policy": {"max_retries": 0, "backoff_ms": 1}},
    });
    for (k, v) in extra.as_object().unwrap() {
        if k == "configuration" {
            for (ck, cv) in v.as_object().unwrap() {
                body["configuration"][ck] = cv.clone();
            }
        } else {
            body[k] = v.clone();
        }
    }
    let (s, v) = admin_post(b, "/api/v1/etl/pipelines", &body);
    assert!(s.is_success(), "{s} {v}");
    v["pipeline_id"].as_str().unwrap().to_string()
}

fn produce_all(b: &BrokerProcess, topic: &str, msgs: &[(&str, &str)]) {
    let body = json!({
        "messages": msgs.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>()
    });
    let (s, v) = produce(b, topic, &body);
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// Waits until `topic` holds at least `n` messages and returns them all.
fn wait_for(b: &BrokerProcess, topic: &str, n: usize) -> Vec<Value> {
    wait_until(&format!("{n} messages in {topic}"), WAIT, POLL, || {
        let all = read_all(b, topic);
        if all.len() >= n {
            Ok(all)
        } else {
            Err(format!("{} messages", all.len()))
        }
    })
}

fn key_value(m: &Value) -> (String, String) {
    (
        m["key"].as_str().unwrap_or_default().to_string(),
        m["value"].as_str().unwrap_or_default().to_string(),
    )
}

fn header<'a>(m: &'a Value, name: &str) -> &'a str {
    m["headers"][name].as_str().unwrap_or_default()
}

/// The committed state of a pipeline, as the admin API shows it.
fn state(b: &BrokerProcess, id: &str) -> BTreeMap<String, String> {
    let (s, v) = admin_get(b, &format!("/api/v1/etl/pipelines/{id}/state"));
    assert_eq!(s, StatusCode::OK, "{v}");
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn metrics(b: &BrokerProcess, id: &str) -> Value {
    let (s, v) = admin_get(b, &format!("/api/v1/etl/pipelines/{id}/metrics"));
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

#[test]
fn a_batch_whose_third_message_traps_retries_and_dead_letters_only_that_message() {
    let b = broker();
    upload(&b, "counter", "1.0.0", guests::COUNTER);
    // All five are there before the pipeline starts, so its first fetch takes them
    // as one batch.
    produce_all(
        &b,
        "trapbatch-in",
        &[
            ("k0", "x"),
            ("k1", "x"),
            ("k2", "trap"),
            ("k3", "x"),
            ("k4", "x"),
        ],
    );
    let id = pipeline(
        &b,
        "trapbatch",
        "counter",
        json!({"configuration": {"processing_mode": "batch", "batch_size": 5,
               "retry_policy": {"max_retries": 2, "backoff_ms": 1}}}),
    );
    let errors = wait_for(&b, "trapbatch-err", 1);
    let out = wait_for(&b, "trapbatch-out", 4);
    let got: Vec<(String, String)> = out.iter().map(key_value).collect();
    let want: Vec<(String, String)> = ["k0", "k1", "k3", "k4"]
        .iter()
        .map(|k| (k.to_string(), "1".to_string()))
        .collect();
    assert_eq!(
        got, want,
        "every message but the trapping one, counted once"
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(e["key"], "k2");
    assert_eq!(header(e, "x-rustmq-error-cause"), "trap", "{e}");
    assert_eq!(header(e, "x-rustmq-attempts"), "3", "{e}");
    assert_eq!(header(e, "x-rustmq-source-offset"), "2", "{e}");
    let m = metrics(&b, &id);
    assert_eq!(m["retries"], 2, "{m}");
    assert!(m["batch_replays"].as_u64().unwrap() >= 1, "{m}");
    // The trapped batch call's state changes were discarded: k2 never counted.
    let s = state(&b, &id);
    let want: BTreeMap<String, String> = ["k0", "k1", "k3", "k4"]
        .iter()
        .map(|k| (k.to_string(), "1".to_string()))
        .collect();
    assert_eq!(s, want);
}

#[test]
fn a_batch_answer_of_the_wrong_length_is_a_clear_error() {
    let b = broker();
    // Not an SDK guest: its `process-batch` answers one result too many.
    upload(&b, "bad-batch", "1.0.0", guests::BAD_BATCH);
    produce_all(&b, "badlen-in", &[("a", "1"), ("b", "2"), ("c", "3")]);
    pipeline(
        &b,
        "badlen",
        "bad-batch",
        json!({"configuration": {"processing_mode": "batch"}}),
    );
    let errors = wait_for(&b, "badlen-err", 3);
    let keys: Vec<&str> = errors.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    for e in &errors {
        assert_eq!(header(e, "x-rustmq-error-cause"), "abi", "{e}");
        assert!(
            header(e, "x-rustmq-error").contains("answered 2 results for a batch of 1 messages"),
            "{e}"
        );
    }
    assert!(read_all(&b, "badlen-out").is_empty());
}

#[test]
fn routed_outputs_reach_declared_routes_and_an_undeclared_route_is_a_per_message_error() {
    let b = broker();
    upload(&b, "router", "1.0.0", guests::ROUTER);
    let readings = [
        ("r1", r#"{"reading": 50}"#),
        ("r2", r#"{"reading": 150}"#),
        ("r3", r#"{"reading": 99}"#),
    ];
    // Routes declared: the high reading goes to `alerts`, in batch mode.
    produce_all(&b, "routed-in", &readings);
    pipeline(
        &b,
        "routed",
        "router",
        json!({"routes": ["routed-alerts"],
               "configuration": {"processing_mode": "batch", "params": {"alerts_topic": "routed-alerts"}}}),
    );
    let alerts = wait_for(&b, "routed-alerts", 1);
    let out = wait_for(&b, "routed-out", 2);
    assert_eq!(
        alerts.iter().map(|m| m["key"].clone()).collect::<Vec<_>>(),
        ["r2"]
    );
    assert_eq!(
        out.iter().map(|m| m["key"].clone()).collect::<Vec<_>>(),
        ["r1", "r3"]
    );
    assert_eq!(header(&alerts[0], "x-rustmq-module"), "router-v1.0.0");

    // The module names a topic the pipeline does not declare.
    produce_all(&b, "unrouted-in", &readings);
    pipeline(
        &b,
        "unrouted",
        "router",
        json!({"routes": ["unrouted-alerts"],
               "configuration": {"params": {"alerts_topic": "somewhere-else"}}}),
    );
    let errors = wait_for(&b, "unrouted-err", 1);
    let out = wait_for(&b, "unrouted-out", 2);
    assert_eq!(
        out.iter().map(|m| m["key"].clone()).collect::<Vec<_>>(),
        ["r1", "r3"]
    );
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e["key"], "r2");
    assert_eq!(header(e, "x-rustmq-error-cause"), "undeclared_route", "{e}");
    let text = header(e, "x-rustmq-error");
    assert!(
        text.contains("\"somewhere-else\"") && text.contains("routes"),
        "{text}"
    );
    assert!(read_all(&b, "somewhere-else").is_empty());
}

#[test]
fn too_many_or_duplicate_routes_are_refused_with_the_field_named() {
    let b = broker();
    upload(&b, "router", "1.0.0", guests::ROUTER);
    let routes: Vec<String> = (0..17).map(|i| format!("r{i}")).collect();
    let (s, v) = admin_post(
        &b,
        "/api/v1/etl/pipelines",
        &json!({"pipeline_name": "many", "source_topic": "a", "destination_topic": "b",
                "module_name": "router", "module_version": "1.0.0", "routes": routes}),
    );
    assert_eq!(
        error_code(s, &v, StatusCode::BAD_REQUEST),
        "invalid_pipeline"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or(&v.to_string())
            .contains("routes"),
        "{v}"
    );
    let (s, v) = admin_post(
        &b,
        "/api/v1/etl/pipelines",
        &json!({"pipeline_name": "dup", "source_topic": "a", "destination_topic": "b",
                "module_name": "router", "module_version": "1.0.0", "routes": ["x", "x"]}),
    );
    assert_eq!(
        error_code(s, &v, StatusCode::BAD_REQUEST),
        "invalid_pipeline"
    );
    assert!(v.to_string().contains("declared twice"), "{v}");
}

/// Per key, the counts the destination holds, in order.
fn counts_by_key(out: &[Value]) -> BTreeMap<String, Vec<u64>> {
    let mut by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for m in out {
        let (k, v) = key_value(m);
        by_key.entry(k).or_default().push(v.parse().unwrap());
    }
    by_key
}

#[test]
fn sigkill_during_a_stateful_pipeline_leaves_state_equal_to_the_committed_outputs() {
    let mut b = broker();
    upload(&b, "counter", "1.0.0", guests::COUNTER);
    let id = pipeline(
        &b,
        "stateful",
        "counter",
        json!({"configuration": {"processing_mode": "batch", "batch_size": 7}}),
    );
    let keys = ["a", "b", "c", "d", "e"];
    let mut produced = 0usize;
    let mut rng = 0x5eed_u64;
    for round in 0..6 {
        let chunk: Vec<(String, String)> = (produced..produced + 60)
            .map(|i| (keys[i % keys.len()].to_string(), "x".to_string()))
            .collect();
        produced += chunk.len();
        for part in chunk.chunks(15) {
            let part: Vec<(&str, &str)> =
                part.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            produce_all(&b, "stateful-in", &part);
        }
        // Kill at a pseudo-random point while the pipeline works through them.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(rng % 120));
        b.sigkill();
        b.restart();
        let out = wait_for(&b, "stateful-out", produced);
        assert_eq!(out.len(), produced, "round {round}: outputs duplicated");
        let by_key = counts_by_key(&out);
        let s = state(&b, &id);
        for (key, counts) in &by_key {
            let n = counts.len() as u64;
            assert_eq!(
                counts,
                &(1..=n).collect::<Vec<_>>(),
                "round {round}: key {key} counted with a gap or a repeat"
            );
            assert_eq!(
                s.get(key).map(String::as_str),
                Some(n.to_string().as_str()),
                "round {round}: the state of {key} disagrees with its {n} committed outputs"
            );
        }
        assert_eq!(s.len(), keys.len());
    }
}

#[test]
fn a_hot_swap_to_a_new_module_version_keeps_the_state() {
    let b = broker();
    upload(&b, "counter", "1.0.0", guests::COUNTER);
    upload(&b, "counter", "1.1.0", guests::COUNTER);
    let id = pipeline(&b, "swap", "counter", json!({"module_version": "1.0.0"}));
    produce_all(&b, "swap-in", &[("a", "x"), ("a", "x"), ("b", "x")]);
    wait_for(&b, "swap-out", 3);
    let (s, v) = admin_patch(
        &b,
        &format!("/api/v1/etl/pipelines/{id}"),
        &json!({"module_version": "1.1.0"}),
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    produce_all(&b, "swap-in", &[("a", "x"), ("b", "x")]);
    let out = wait_for(&b, "swap-out", 5);
    let got: Vec<(String, String, String)> = out
        .iter()
        .map(|m| {
            let (k, v) = key_value(m);
            (k, v, header(m, "x-rustmq-module-version").to_string())
        })
        .collect();
    let want = [
        ("a", "1", "1.0.0"),
        ("a", "2", "1.0.0"),
        ("b", "1", "1.0.0"),
        ("a", "3", "1.1.0"),
        ("b", "2", "1.1.0"),
    ]
    .map(|(k, v, m)| (k.to_string(), v.to_string(), m.to_string()));
    assert_eq!(got, want);
}

#[test]
fn a_state_quota_exceeded_is_a_clear_per_message_error() {
    // Three 300-byte values fit (each costs its key, its value and 160 bytes), a
    // fourth does not, a small fifth does.
    let b = BrokerProcess::start("[etl]\nenabled = true\nstate_quota_bytes = 1600\n");
    upload(&b, "stash", "1.0.0", guests::STASH);
    let big = "v".repeat(300);
    produce_all(
        &b,
        "quota-in",
        &[
            ("k0", &big),
            ("k1", &big),
            ("k2", &big),
            ("k3", &big),
            ("s", "x"),
        ],
    );
    let id = pipeline(&b, "quota", "stash", json!({}));
    let errors = wait_for(&b, "quota-err", 1);
    let out = wait_for(&b, "quota-out", 4);
    let keys: Vec<&str> = out.iter().map(|m| m["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["k0", "k1", "k2", "s"]);
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e["key"], "k3");
    assert_eq!(header(e, "x-rustmq-error-cause"), "state_limit", "{e}");
    assert!(
        header(e, "x-rustmq-error").contains("quota of 1600 bytes"),
        "{e}"
    );
    let s = state(&b, &id);
    assert_eq!(s.keys().collect::<Vec<_>>(), ["k0", "k1", "k2", "s"]);
}

#[test]
fn state_is_inspected_and_reset_over_the_admin_api_only_while_stopped() {
    let b = broker();
    upload(&b, "counter", "1.0.0", guests::COUNTER);
    let id = pipeline(&b, "reset", "counter", json!({}));
    produce_all(&b, "reset-in", &[("a", "x"), ("a", "x")]);
    wait_for(&b, "reset-out", 2);
    assert_eq!(
        state(&b, &id),
        BTreeMap::from([("a".to_string(), "2".to_string())])
    );
    let shown = Command::new(cli_binary())
        .args(["pipeline", "state", "reset"])
        .env("RUSTMQ_CLI_ADMIN_URL", &b.admin_url)
        .env_remove("RUSTMQ_ADMIN_TOKEN")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["a", "2"]),
        "{text}"
    );
    assert!(text.contains("1 keys, 162 bytes"), "{text}");
    let (s, v) = admin_delete(&b, &format!("/api/v1/etl/pipelines/{id}/state"));
    assert_eq!(error_code(s, &v, StatusCode::CONFLICT), "pipeline_running");
    assert!(v.to_string().contains("stop it"), "{v}");
    let (s, v) = admin_post(&b, &format!("/api/v1/etl/pipelines/{id}/stop"), &json!({}));
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = admin_delete(&b, &format!("/api/v1/etl/pipelines/{id}/state"));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["deleted_keys"], 1);
    assert!(state(&b, &id).is_empty());
    let (s, v) = admin_post(&b, &format!("/api/v1/etl/pipelines/{id}/start"), &json!({}));
    assert_eq!(s, StatusCode::OK, "{v}");
    produce_all(&b, "reset-in", &[("a", "x")]);
    let out = wait_for(&b, "reset-out", 3);
    assert_eq!(key_value(&out[2]), ("a".to_string(), "1".to_string()));
}

#[test]
fn the_state_listing_pages_and_the_cli_reads_every_page() {
    let b = broker();
    upload(&b, "counter", "1.0.0", guests::COUNTER);
    let id = pipeline(&b, "paged", "counter", json!({}));
    let keys: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
    let msgs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "x")).collect();
    produce_all(&b, "paged-in", &msgs);
    wait_for(&b, "paged-out", 25);

    let mut seen = Vec::new();
    let mut query = "limit=10".to_string();
    let mut pages = 0;
    loop {
        let (s, v) = admin_get(&b, &format!("/api/v1/etl/pipelines/{id}/state?{query}"));
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["keys"], 25, "every page counts the whole state: {v}");
        let entries = v["entries"].as_array().unwrap();
        assert!(entries.len() <= 10, "{v}");
        seen.extend(
            entries
                .iter()
                .map(|e| e["key"].as_str().unwrap().to_string()),
        );
        pages += 1;
        match v["next_after"].as_str() {
            Some(after) => query = format!("limit=10&after={after}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, keys, "every key once, in order");

    for bad in ["limit=0", "limit=10001", "page=2"] {
        let (s, v) = admin_get(&b, &format!("/api/v1/etl/pipelines/{id}/state?{bad}"));
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }

    let shown = Command::new(cli_binary())
        .args(["pipeline", "state", "paged", "--page-size", "7", "--json"])
        .env("RUSTMQ_CLI_ADMIN_URL", &b.admin_url)
        .env_remove("RUSTMQ_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let v: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 25, "{v}");
}

#[test]
fn a_batch_call_holds_a_slot_no_longer_than_max_batch_call_ms() {
    // Ten messages of 300 ms each: a 3 s batch call. With the default cap (1 s) the
    // call is cut and the batch processed one message per call; with a cap above
    // it, the one call goes through.
    for (config, replays) in [("", 1), ("max_batch_call_ms = 10000\n", 0)] {
        let b = BrokerProcess::start(&format!("[etl]\nenabled = true\n{config}"));
        upload(&b, "counter", "1.0.0", guests::COUNTER);
        let msgs: Vec<(&str, &str)> = (0..10).map(|_| ("k", "sleep:300")).collect();
        produce_all(&b, "capped-in", &msgs);
        let id = pipeline(
            &b,
            "capped",
            "counter",
            json!({"configuration": {"processing_mode": "batch", "timeout_ms": 1000}}),
        );
        let out = wait_for(&b, "capped-out", 10);
        let counts: Vec<String> = out.iter().map(|m| key_value(m).1).collect();
        let expected: Vec<String> = (1..=10).map(|n| n.to_string()).collect();
        assert_eq!(counts, expected, "{config:?}");
        let m = metrics(&b, &id);
        assert_eq!(m["batch_replays"], replays, "{config:?}: {m}");
        assert_eq!(m["messages_failed"], 0, "{config:?}: {m}");
    }
}

#[test]
fn dedup_passes_each_key_once() {
    let b = broker();
    upload(&b, "dedup", "1.0.0", guests::DEDUP);
    produce_all(
        &b,
        "dedup-in",
        &[("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("b", "5")],
    );
    let id = pipeline(
        &b,
        "dedup",
        "dedup",
        json!({"configuration": {"processing_mode": "batch"}}),
    );
    wait_until("the dedup pipeline to read all five", WAIT, POLL, || {
        let m = metrics(&b, &id);
        if m["committed_offset"] == 5 {
            Ok(())
        } else {
            Err(m.to_string())
        }
    });
    let out = read_all(&b, "dedup-out");
    let got: Vec<(String, String)> = out.iter().map(key_value).collect();
    let want = [("a", "1"), ("b", "2"), ("c", "4")].map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(got, want);
}

#[test]
fn a_1_1_module_without_a_batch_export_runs_in_both_modes() {
    let b = broker();
    upload(&b, "single-v11", "1.0.0", guests::SINGLE_V11);
    for mode in ["single_message", "batch"] {
        let name = format!("plain-{}", mode.replace('_', "-"));
        let input = format!("{name}-in");
        produce_all(&b, &input, &[("a", "1"), ("b", "2")]);
        pipeline(
            &b,
            &name,
            "single-v11",
            json!({"configuration": {"processing_mode": mode}}),
        );
        let out = wait_for(&b, &format!("{name}-out"), 2);
        let got: Vec<(String, String)> = out.iter().map(key_value).collect();
        assert_eq!(
            got,
            [("a", "1"), ("b", "2")].map(|(k, v)| (k.to_string(), v.to_string())),
            "{mode}"
        );
    }
}

#[test]
fn rustmq_etl_run_supports_batch_mode_and_in_memory_state() {
    let mut run = Command::new(cli_binary())
        .args([
            "run",
            "--module",
            guests::COUNTER,
            "--batch-size",
            "3",
            "--print-state",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let stdin = run.stdin.as_mut().unwrap();
        for (k, v) in [("a", "x"), ("a", "x"), ("b", "trap"), ("a", "x")] {
            writeln!(stdin, "{}", json!({"key": k, "value": v})).unwrap();
        }
    }
    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[0]["messages"][0]["value"], "1");
    assert_eq!(lines[1]["messages"][0]["value"], "2");
    assert_eq!(lines[2]["failure"]["cause"], "trap", "{}", lines[2]);
    assert_eq!(lines[3]["messages"][0]["value"], "3");
    assert_eq!(lines[4]["state"], json!({"a": "3"}));
}
