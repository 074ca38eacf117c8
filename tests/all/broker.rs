//! The broker binary end to end: the guide's Step 6 commands, topics, bad input, the
//! status route, admin auth, config errors, crash safety and graceful shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::http::{body, client, consume, error_code, error_message, produce};
use serde_json::{json, Value};

#[test]
fn guide_step_6_round_trips_key_headers_and_value() {
    let b = BrokerProcess::start("");
    // Step 6.1, as the guide sends it.
    let value = "{\"temperature_celsius\": 23.5, \"humidity\": 65.2, \"sensor_id\": \"env001\"}";
    let (status, v) = produce(
        &b,
        "raw-events",
        &json!({
            "key": "sensor-001",
            "value": value,
            "headers": {
                "content-type": "application/json",
                "source": "iot-sensors",
                "client_ip": "192.168.1.100"
            }
        }),
    );
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"topic": "raw-events", "offset": 0}));
    // Step 6.2's query.
    let (status, v) = consume(&b, "raw-events", "offset=0&max_messages=10");
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["next_offset"], 1);
    let m = &v["messages"][0];
    assert_eq!(m["offset"], 0);
    assert_eq!(m["key"], "sensor-001");
    assert_eq!(m["value"], value);
    assert_eq!(m["headers"]["content-type"], "application/json");
    assert_eq!(m["headers"]["source"], "iot-sensors");
    assert_eq!(m["headers"]["client_ip"], "192.168.1.100");
    assert!(m["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
}

#[test]
fn batch_produce_assigns_dense_offsets_and_reads_page() {
    let b = BrokerProcess::start("");
    produce(&b, "t", &json!({"value": "first"}));
    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"key": format!("k{i}"), "value": format!("v{i}"), "timestamp": 1000 + i}))
        .collect();
    let (status, v) = produce(&b, "t", &json!({ "messages": batch }));
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"topic": "t", "offsets": [1, 2, 3, 4, 5]}));
    let (_, v) = consume(&b, "t", "offset=2&max_messages=2");
    let values: Vec<_> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].clone())
        .collect();
    assert_eq!(values, [json!("v1"), json!("v2")]);
    assert_eq!(v["messages"][0]["timestamp"], 1001);
    assert_eq!(v["next_offset"], 4);
    assert_eq!(v["end_offset"], 6);
}

#[test]
fn binary_values_come_back_as_base64() {
    let b = BrokerProcess::start("");
    let bytes = [0u8, 159, 146, 150, 255];
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let (status, _) = produce(&b, "bin", &json!({"value_base64": b64}));
    assert_eq!(status, StatusCode::OK);
    // Base64 of valid UTF-8 comes back as text.
    produce(&b, "bin", &json!({"value_base64": "aGk="}));
    let (_, v) = consume(&b, "bin", "offset=0");
    assert_eq!(v["messages"][0]["value_base64"], b64);
    assert!(v["messages"][0].get("value").is_none());
    assert_eq!(v["messages"][1]["value"], "hi");
}

#[test]
fn long_poll_waits_for_the_next_message() {
    let b = BrokerProcess::start("");
    produce(&b, "lp", &json!({"value": "a"}));
    // Nothing at offset 1 yet: a short wait returns empty.
    let (_, v) = consume(&b, "lp", "offset=1&wait_ms=50");
    assert_eq!(v["messages"], json!([]));
    assert_eq!(v["next_offset"], 1);
    let url = format!(
        "{}/api/v1/topics/lp/messages?offset=1&wait_ms=30000",
        b.data_url
    );
    let waiter = std::thread::spawn(move || body(client().get(url).send().unwrap()));
    // The waiter may or may not be parked yet; either way it must see "b".
    produce(&b, "lp", &json!({"value": "b"}));
    let (status, v) = waiter.join().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["messages"][0]["value"], "b");
    assert_eq!(v["next_offset"], 2);
}

#[test]
fn topics_can_be_created_listed_described_and_deleted() {
    let b = BrokerProcess::start("");
    let c = client();
    let topics = format!("{}/api/v1/topics", b.data_url);
    let (status, v) = body(
        c.post(&topics)
            .json(&json!({"name": "orders", "retention_ms": 3600000}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["name"], "orders");
    assert_eq!(v["end_offset"], 0);
    assert_eq!(v["retention"]["retention_ms"], 3600000);
    let (status, v) = body(
        c.post(&topics)
            .json(&json!({"name": "orders"}))
            .send()
            .unwrap(),
    );
    assert_eq!(
        error_code(status, &v, StatusCode::CONFLICT),
        "topic_already_exists"
    );
    produce(&b, "orders", &json!({"value": "x"}));
    let (_, v) = body(c.get(format!("{topics}/orders")).send().unwrap());
    assert_eq!(
        (v["end_offset"].clone(), v["message_count"].clone()),
        (json!(1), json!(1))
    );
    assert!(v["size_bytes"].as_u64().unwrap() > 0);
    let (_, v) = body(c.get(&topics).send().unwrap());
    assert_eq!(v["topics"][0]["name"], "orders");
    let r = c.delete(format!("{topics}/orders")).send().unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, v) = body(c.get(format!("{topics}/orders")).send().unwrap());
    assert_eq!(
        error_code(status, &v, StatusCode::NOT_FOUND),
        "topic_not_found"
    );
    let (status, v) = body(c.delete(format!("{topics}/orders")).send().unwrap());
    assert_eq!(
        error_code(status, &v, StatusCode::NOT_FOUND),
        "topic_not_found"
    );
}

#[test]
fn bad_input_gets_a_4xx_with_the_json_error_shape() {
    let b = BrokerProcess::start(
        "[server]\nmax_body_bytes = 2048\nmax_batch_messages = 3\nmax_headers_per_message = 4\n\
         max_header_bytes_per_message = 64\n",
    );
    let c = client();
    let post_raw = |topic: &str, raw: &str| {
        body(
            c.post(format!("{}/api/v1/topics/{topic}/messages", b.data_url))
                .header("Content-Type", "application/json")
                .body(raw.to_string())
                .send()
                .unwrap(),
        )
    };
    let bad = StatusCode::BAD_REQUEST;
    let (s, v) = post_raw("t", "{\"value\": ");
    assert_eq!(error_code(s, &v, bad), "malformed_json");
    let (s, v) = post_raw("t", "[1]");
    assert_eq!(error_code(s, &v, bad), "invalid_json_data");
    let (s, v) = produce(&b, "t", &json!({"key": "k"}));
    assert_eq!(error_code(s, &v, bad), "missing_value");
    let (s, v) = produce(&b, "t", &json!({"value": "a", "value_base64": "YQ=="}));
    assert_eq!(error_code(s, &v, bad), "invalid_message");
    let (s, v) = produce(&b, "t", &json!({"value_base64": "***"}));
    assert_eq!(error_code(s, &v, bad), "invalid_base64");
    let (s, v) = produce(&b, "t", &json!({"value": "a", "headers": {"n": 1}}));
    assert_eq!(error_code(s, &v, bad), "invalid_header");
    let (s, v) = produce(&b, "t", &json!({"value": "a", "colour": "red"}));
    assert_eq!(error_code(s, &v, bad), "invalid_json_data");
    let (s, v) = produce(&b, "t", &json!({"messages": []}));
    assert_eq!(error_code(s, &v, bad), "empty_batch");
    let (s, v) = produce(
        &b,
        "t",
        &json!({"messages": [{"value": "a"}, {"key": "k"}]}),
    );
    assert_eq!(error_code(s, &v, bad), "missing_value");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("messages[1]"));
    let four: Vec<Value> = (0..4).map(|_| json!({"value": "a"})).collect();
    let (s, v) = produce(&b, "t", &json!({ "messages": four }));
    assert_eq!(
        error_code(s, &v, StatusCode::PAYLOAD_TOO_LARGE),
        "batch_too_large"
    );
    let (s, v) = produce(&b, "t", &json!({"value": "x".repeat(4096)}));
    assert_eq!(
        error_code(s, &v, StatusCode::PAYLOAD_TOO_LARGE),
        "body_too_large"
    );
    let headers = |n: usize| -> Value {
        (0..n)
            .map(|i| (format!("h{i}"), json!("v")))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let (s, v) = produce(&b, "t", &json!({"value": "a", "headers": headers(5)}));
    assert_eq!(error_code(s, &v, bad), "too_many_headers");
    let text = v["error"]["message"].as_str().unwrap();
    assert!(
        text.contains("5 headers") && text.contains("server.max_headers_per_message"),
        "{text}"
    );
    let (s, v) = produce(
        &b,
        "t",
        &json!({"messages": [{"value": "a"}, {"value": "b", "headers": headers(5)}]}),
    );
    assert_eq!(error_code(s, &v, bad), "too_many_headers");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("messages[1]: "));
    let big = json!({"a": "x".repeat(40), "b": "y".repeat(40)});
    let (s, v) = produce(&b, "t", &json!({"value": "a", "headers": big}));
    assert_eq!(error_code(s, &v, bad), "headers_too_large");
    let text = v["error"]["message"].as_str().unwrap();
    assert!(
        text.contains("82 bytes") && text.contains("server.max_header_bytes_per_message"),
        "{text}"
    );
    for name in ["a%20b", "a*b", "%C3%A9", &"x".repeat(250)] {
        let (s, v) = produce(&b, name, &json!({"value": "a"}));
        assert_eq!(error_code(s, &v, bad), "invalid_topic_name", "{name}");
        let (s, v) = consume(&b, name, "offset=0");
        assert_eq!(error_code(s, &v, bad), "invalid_topic_name", "{name}");
    }
    let (s, v) = body(
        c.post(format!("{}/api/v1/topics", b.data_url))
            .json(&json!({"name": "a b"}))
            .send()
            .unwrap(),
    );
    assert_eq!(error_code(s, &v, bad), "invalid_topic_name");
    // Nothing above created or wrote anything.
    let (s, v) = consume(&b, "t", "offset=0");
    assert_eq!(error_code(s, &v, StatusCode::NOT_FOUND), "topic_not_found");
    produce(&b, "t", &json!({"value": "a"}));
    let (s, v) = consume(&b, "t", "offset=2");
    assert_eq!(
        error_code(s, &v, StatusCode::RANGE_NOT_SATISFIABLE),
        "offset_out_of_range"
    );
    for query in ["offset=-1", "offset=abc", "max_messages=0", "colour=red"] {
        let (s, v) = consume(&b, "t", query);
        assert_eq!(error_code(s, &v, bad), "invalid_query", "{query}");
    }
    let (s, v) = body(
        c.get(format!("{}/api/v1/nothing", b.data_url))
            .send()
            .unwrap(),
    );
    assert_eq!(error_code(s, &v, StatusCode::NOT_FOUND), "no_route");
    // A method a route does not take: the same JSON shape, on both ports.
    for url in [
        format!("{}/api/v1/topics/t/messages", b.data_url),
        format!("{}/api/v1/etl/pipelines", b.admin_url),
    ] {
        let (s, v) = body(c.put(&url).send().unwrap());
        assert_eq!(
            error_code(s, &v, StatusCode::METHOD_NOT_ALLOWED),
            "method_not_allowed"
        );
        assert!(error_message(&v).starts_with("PUT is not allowed"), "{v}");
    }
    let (_, v) = consume(&b, "t", "offset=0");
    assert_eq!(v["end_offset"], 1);
    // At the header limit, a message is taken.
    let (s, _) = produce(&b, "t", &json!({"value": "a", "headers": headers(4)}));
    assert_eq!(s, StatusCode::OK);
}

#[test]
fn status_reports_version_uptime_storage_and_etl_settings() {
    let b = BrokerProcess::start(
        "[etl]\nenabled = true\nmemory_limit_bytes = 67108864\nexecution_timeout_ms = 5000\n\
         max_concurrent_executions = 100\nmodules_path = \"wasm\"\n",
    );
    let (status, v) = body(
        client()
            .get(format!("{}/api/v1/status", b.admin_url))
            .send()
            .unwrap(),
    );
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["etl"]["enabled"], true);
    assert_eq!(v["etl"]["memory_limit_bytes"], 67108864);
    assert_eq!(v["etl"]["execution_timeout_ms"], 5000);
    assert_eq!(v["etl"]["max_concurrent_executions"], 100);
    let modules = v["etl"]["modules_path"].as_str().unwrap();
    assert_eq!(std::path::Path::new(modules), b.home().join("wasm"));
    assert_eq!(
        std::path::Path::new(v["storage"]["path"].as_str().unwrap()),
        b.data_dir
    );
    assert!(v["version"].as_str().is_some());
    assert!(v["uptime_secs"].as_u64().is_some());
}

#[test]
fn admin_api_requires_the_configured_token() {
    let b = BrokerProcess::start_with_env("", &[("RUSTMQ_ADMIN_TOKEN", "s3cret")]);
    let url = format!("{}/api/v1/status", b.admin_url);
    let (s, v) = body(client().get(&url).send().unwrap());
    assert_eq!(error_code(s, &v, StatusCode::UNAUTHORIZED), "unauthorized");
    let (s, v) = body(client().get(&url).bearer_auth("wrong").send().unwrap());
    assert_eq!(error_code(s, &v, StatusCode::UNAUTHORIZED), "unauthorized");
    let (s, v) = body(client().get(&url).bearer_auth("s3cret").send().unwrap());
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["etl"]["enabled"], true);
    // The message API is not behind the admin token...
    let (s, _) = produce(&b, "t", &json!({"value": "a"}));
    assert_eq!(s, StatusCode::OK);
    // ...except deleting a topic, which destroys data.
    let topic = format!("{}/api/v1/topics/t", b.data_url);
    let (s, v) = body(client().delete(&topic).send().unwrap());
    assert_eq!(error_code(s, &v, StatusCode::UNAUTHORIZED), "unauthorized");
    let (_, v) = consume(&b, "t", "offset=0");
    assert_eq!(v["end_offset"], 1, "the topic is still there: {v}");
    let r = client()
        .delete(&topic)
        .bearer_auth("s3cret")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[test]
fn config_errors_exit_non_zero_and_say_what_is_wrong() {
    let (status, stderr) =
        BrokerProcess::run_to_exit("[etl]\nenabled = true\nmemroy_limit_bytes = 1\n", &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("memroy_limit_bytes") && stderr.contains("broker.toml"),
        "{stderr}"
    );
    let (status, stderr) = BrokerProcess::run_to_exit("[etl]\nexecution_timeout_ms = 0\n", &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("etl.execution_timeout_ms"), "{stderr}");
    let (status, stderr) =
        BrokerProcess::run_to_exit("", &[("RUSTMQ_ETL_MEMORY_LIMIT_BYTES", "lots")]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("RUSTMQ_ETL_MEMORY_LIMIT_BYTES"), "{stderr}");
    // An admin API beyond loopback with no token: refused before anything binds.
    let (status, stderr) =
        BrokerProcess::run_to_exit("", &[("RUSTMQ_SERVER_ADMIN_ADDR", "0.0.0.0:0")]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("server.admin_addr") && stderr.contains("[admin] token"),
        "{stderr}"
    );
}

/// Produces from several threads until told to stop or the broker goes away;
/// every acknowledged `(value, offset)` is sent on `acked`.
fn produce_load(
    url: String,
    producers: usize,
    stop: Arc<AtomicBool>,
    acked: mpsc::Sender<(String, u64)>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..producers)
        .map(|p| {
            let (url, stop, acked) = (url.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let c = Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let value = format!("p{p}-{i:06}");
                    let Ok(r) = c.post(&url).json(&json!({ "value": value })).send() else {
                        return;
                    };
                    if r.status() != StatusCode::OK {
                        return;
                    }
                    let Ok(v) = r.json::<Value>() else { return };
                    let _ = acked.send((value, v["offset"].as_u64().unwrap()));
                }
            })
        })
        .collect()
}

fn read_all(b: &BrokerProcess, topic: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let (status, v) = consume(b, topic, &format!("offset={offset}&max_messages=1000"));
        assert_eq!(status, StatusCode::OK, "{v}");
        let messages = v["messages"].as_array().unwrap();
        if messages.is_empty() {
            return out;
        }
        for m in messages {
            out.push((
                m["offset"].as_u64().unwrap(),
                m["value"].as_str().unwrap().to_string(),
            ));
        }
        offset = v["next_offset"].as_u64().unwrap();
    }
}

/// Checks the log against what was acknowledged: every ack at its offset, offsets
/// dense, no value twice, each producer's values in order.
fn check_log(log: &[(u64, String)], acked: &[(String, u64)]) {
    let offsets: Vec<u64> = log.iter().map(|(o, _)| *o).collect();
    assert_eq!(
        offsets,
        (0..log.len() as u64).collect::<Vec<_>>(),
        "offsets are dense"
    );
    let by_offset: HashMap<u64, &str> = log.iter().map(|(o, v)| (*o, v.as_str())).collect();
    for (value, offset) in acked {
        assert_eq!(
            by_offset.get(offset),
            Some(&value.as_str()),
            "acked {value}@{offset}"
        );
    }
    let mut seen = std::collections::HashSet::new();
    let mut last: HashMap<&str, &str> = HashMap::new();
    for (_, value) in log {
        assert!(seen.insert(value.as_str()), "{value} stored twice");
        let (producer, seq) = value.split_once('-').unwrap();
        if let Some(prev) = last.insert(producer, seq) {
            assert!(prev < seq, "{producer}: {prev} before {seq}");
        }
    }
}

#[test]
fn sigkill_during_produce_load_loses_no_acknowledged_message() {
    let mut b = BrokerProcess::start("");
    let url = format!("{}/api/v1/topics/crash/messages", b.data_url);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let producers = produce_load(url, 8, stop.clone(), tx);
    let mut acked: Vec<(String, u64)> = rx.iter().take(300).collect();
    b.sigkill();
    stop.store(true, Ordering::Relaxed);
    producers.into_iter().for_each(|p| p.join().unwrap());
    acked.extend(rx.try_iter());
    b.restart();
    let log = read_all(&b, "crash");
    assert!(
        log.len() >= acked.len(),
        "{} stored, {} acked",
        log.len(),
        acked.len()
    );
    check_log(&log, &acked);
    // The log continues where it ended.
    let (status, v) = produce(&b, "crash", &json!({"value": "after"}));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["offset"], log.len() as u64);
}

#[test]
fn sigterm_shuts_down_gracefully_with_nothing_lost() {
    let mut b = BrokerProcess::start("");
    let url = format!("{}/api/v1/topics/graceful/messages", b.data_url);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let producers = produce_load(url, 4, stop.clone(), tx);
    let mut acked: Vec<(String, u64)> = rx.iter().take(100).collect();
    let status = b.sigterm();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        b.log()
    );
    stop.store(true, Ordering::Relaxed);
    producers.into_iter().for_each(|p| p.join().unwrap());
    acked.extend(rx.try_iter());
    assert!(b.log().contains("broker stopped"));
    b.restart();
    let log = read_all(&b, "graceful");
    check_log(&log, &acked);
}
