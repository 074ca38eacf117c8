//! Pipelines on a real Kafka-protocol broker (issue 18), driven through the shipped
//! `rustmq-broker` binary over HTTP, with real guest modules.
//!
//! Every test takes its server from `rustmq_etl_tests::kafka` (tansu on loopback by
//! default, noida-db for abort isolation, or the cluster named by
//! `RUSTMQ_TEST_KAFKA_BOOTSTRAP`), so the same tests run against Apache Kafka or
//! Redpanda unchanged. What each test server can and cannot prove is written in
//! docs/scaling.md.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::StatusCode;
use rustmq_etl_tests::broker::{cli_binary, BrokerProcess};
use rustmq_etl_tests::guests;
use rustmq_etl_tests::http::{
    admin_get, admin_post, client, error_message, produce, read_all, upload_module, wait_until,
};
use rustmq_etl_tests::kafka::{unique_topic, Consumed, Isolation, KafkaServer, Record, ServerKind};
use serde_json::{json, Value};

/// How long a pipeline may take to drain a topic in a debug build.
const DRAIN: Duration = Duration::from_secs(120);

/// A broker config declaring `server` as cluster `test`. Short client timeouts so
/// that a lost worker or a stopped server is noticed within seconds, as a test needs.
fn config(server: &KafkaServer, transactions: &str) -> String {
    format!(
        r#"[etl]
modules_path = "modules"

[kafka.clusters.test]
bootstrap_servers = "{}"
transactions = "{transactions}"

[kafka.clusters.test.properties]
"broker.address.family" = "v4"
"socket.timeout.ms" = 5000
"reconnect.backoff.max.ms" = 1000

[kafka.clusters.test.consumer_properties]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 500
"#,
        server.bootstrap()
    )
}

/// A broker on `kafka` (transactions "auto") with module `name` 1.0.0 from `wasm`.
fn broker_with(kafka: &KafkaServer, name: &str, wasm: &str) -> BrokerProcess {
    let b = BrokerProcess::start(&config(kafka, "auto"));
    upload(&b, name, wasm);
    b
}

fn upload(b: &BrokerProcess, name: &str, path: &str) {
    let (status, v) = upload_module(b, name, "1.0.0", std::fs::read(path).unwrap());
    assert_eq!(status, StatusCode::CREATED, "{v}");
}

/// A pipeline definition from Kafka topic `source` to `destination` of cluster
/// `test` (and to `errors`, when given), with module `module` 1.0.0.
fn kafka_pipeline(
    name: &str,
    module: &str,
    source: &str,
    destination: &str,
    errors: Option<&str>,
    configuration: Value,
) -> Value {
    let mut d = json!({
        "pipeline_name": name,
        "source_topic": format!("kafka://test/{source}"),
        "destination_topic": format!("kafka://test/{destination}"),
        "module_name": module,
        "module_version": "1.0.0",
        "configuration": configuration,
    });
    if let Some(e) = errors {
        d["error_topic"] = json!(format!("kafka://test/{e}"));
    }
    d
}

fn create_pipeline(b: &BrokerProcess, body: &Value) -> String {
    let (status, v) = admin_post(b, "/api/v1/etl/pipelines", body);
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v["pipeline_id"].as_str().unwrap().to_string()
}

fn status(b: &BrokerProcess, id: &str) -> Value {
    let (s, v) = admin_get(b, &format!("/api/v1/etl/pipelines/{id}/status"));
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn key_of(c: &Consumed) -> String {
    text(c.key.as_deref().unwrap_or_default())
}

fn header<'a>(c: &'a Consumed, name: &str) -> Option<&'a [u8]> {
    c.headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

/// The guide's sensor reading number `i`, keyed by one of 16 sensors, carrying its
/// sequence number within its key.
fn reading(i: usize) -> Record {
    let sensor = i % 16;
    let seq = i / 16;
    let mut r = Record::keyed(
        &format!("sensor-{sensor:03}"),
        &format!(
            r#"{{"temperature_celsius": {}.5, "sensor_id": "env{sensor:03}", "seq": {seq}}}"#,
            i % 40
        ),
    );
    r.headers = vec![
        ("content-type".into(), b"application/json".to_vec()),
        ("source".into(), b"iot-sensors".to_vec()),
    ];
    r
}

/// Waits until `id` runs with a Kafka source owning some partitions; returns them.
fn wait_assigned(b: &BrokerProcess, id: &str) -> BTreeSet<i64> {
    wait_until(
        &format!("{id} to be assigned partitions"),
        DRAIN,
        Duration::from_millis(100),
        || {
            let s = status(b, id);
            assert_ne!(s["status"], "failed", "{s}");
            let parts: BTreeSet<i64> = s["kafka"]["assigned_partitions"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default();
            if parts.is_empty() {
                Err(s.to_string())
            } else {
                Ok(parts)
            }
        },
    )
}

#[test]
fn kafka_to_kafka_pipeline_transforms_every_message_of_four_partitions_in_key_order() {
    let kafka = KafkaServer::start();
    let (input, output, errors) = (
        unique_topic("readings"),
        unique_topic("processed"),
        unique_topic("errors"),
    );
    kafka.create_topic(&input, 4);
    kafka.create_topic(&output, 4);
    kafka.create_topic(&errors, 1);
    const N: usize = 400;
    kafka.produce(&input, &(0..N).map(reading).collect::<Vec<_>>());

    let b = broker_with(&kafka, "message-processor", guests::GUEST_TEMPLATE);
    let id = create_pipeline(
        &b,
        &kafka_pipeline(
            "sensors",
            "message-processor",
            &input,
            &output,
            Some(&errors),
            json!({"batch_size": 50}),
        ),
    );
    let out = kafka.read_all(&output, Isolation::ReadCommitted, N, DRAIN);
    assert_eq!(out.len(), N, "every reading once in the destination");
    let mut last_seq: BTreeMap<String, i64> = BTreeMap::new();
    for c in &out {
        let v: Value = serde_json::from_slice(&c.value).unwrap();
        assert_eq!(v["_processed"], true, "{v}");
        let celsius = v["temperature_celsius"].as_f64().unwrap();
        let fahrenheit = v["temperature_fahrenheit"].as_f64().unwrap();
        assert!(
            (fahrenheit - (celsius * 9.0 / 5.0 + 32.0)).abs() < 0.051,
            "{v}"
        );
        assert_eq!(header(c, "enriched"), Some(&b"true"[..]));
        assert_eq!(
            header(c, "x-rustmq-module"),
            Some(&b"message-processor-v1.0.0"[..])
        );
        // A key's readings come from one source partition and go to one output
        // partition: their order must survive.
        let seq = v["seq"].as_i64().unwrap();
        if let Some(prev) = last_seq.insert(key_of(c), seq) {
            assert!(seq > prev, "key {} went from {prev} to {seq}", key_of(c));
        }
    }
    assert_eq!(last_seq.len(), 16);

    // The status shows the group, the four partitions and the commit mode.
    let s = wait_until(
        "the lag to reach 0",
        DRAIN,
        Duration::from_millis(200),
        || {
            let s = status(&b, &id);
            if s["lag"] == 0
                && s["kafka"]["partitions"]
                    .as_array()
                    .is_some_and(|p| p.iter().all(|p| p["committed_offset"].is_i64()))
            {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        },
    );
    assert_eq!(s["status"], "running", "{s}");
    assert_eq!(s["kafka"]["consumer_group"], "rustmq-etl.sensors");
    assert_eq!(s["kafka"]["assigned_partitions"], json!([0, 1, 2, 3]));
    let committed: i64 = s["kafka"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["committed_offset"].as_i64().unwrap())
        .sum();
    assert_eq!(committed, N as i64, "{s}");
    let delivery = s["delivery"].as_str().unwrap().to_string();
    assert_eq!(
        delivery, "exactly_once",
        "both test servers support transactions: {s}"
    );

    // Prometheus and the CLI show the same.
    let prom = client()
        .get(format!("{}/metrics", b.admin_url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        prom.contains(&format!(
            "rustmq_etl_kafka_assigned_partitions{{pipeline=\"{id}\"}} 4"
        )),
        "{prom}"
    );
    assert!(
        prom.contains(&format!(
            "rustmq_etl_kafka_partition_lag_messages{{pipeline=\"{id}\",partition=\"3\"}} 0"
        )),
        "{prom}"
    );
    let cli = std::process::Command::new(cli_binary())
        .args(["pipeline", "metrics", "sensors"])
        .env("RUSTMQ_CLI_ADMIN_URL", &b.admin_url)
        .output()
        .unwrap();
    let shown = text(&cli.stdout);
    assert!(cli.status.success(), "{shown} {}", text(&cli.stderr));
    assert!(shown.contains("rustmq-etl.sensors"), "{shown}");
    assert!(shown.contains("exactly_once"), "{shown}");
    assert!(shown.contains("3: committed"), "{shown}");
}

#[test]
fn a_poison_message_on_a_kafka_source_goes_to_the_error_topic_and_the_pipeline_moves_on() {
    let kafka = KafkaServer::start();
    let (input, output, errors) = (unique_topic("in"), unique_topic("out"), unique_topic("err"));
    kafka.create_topic(&input, 2);
    kafka.create_topic(&output, 2);
    kafka.create_topic(&errors, 1);
    let mut records: Vec<Record> = (0..20)
        .map(|i| Record::keyed(&format!("k{i}"), &format!("ok-{i}")))
        .collect();
    records[7] = Record::keyed("poison", "fail");
    kafka.produce(&input, &records);

    let b = broker_with(&kafka, "scripted", guests::SCRIPTED);
    let id = create_pipeline(
        &b,
        &kafka_pipeline(
            "poison",
            "scripted",
            &input,
            &output,
            Some(&errors),
            json!({"batch_size": 5, "retry_policy": {"max_retries": 1, "backoff_ms": 1}}),
        ),
    );
    let dead = kafka.read_all(&errors, Isolation::ReadCommitted, 1, DRAIN);
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    assert_eq!(key_of(d), "poison");
    assert_eq!(d.value, b"fail");
    assert_eq!(
        header(d, "x-rustmq-error-cause"),
        Some(&b"module_error"[..])
    );
    assert_eq!(header(d, "x-rustmq-attempts"), Some(&b"2"[..]));
    assert_eq!(
        header(d, "x-rustmq-source-topic").map(text),
        Some(format!("kafka://test/{input}"))
    );
    assert!(header(d, "x-rustmq-source-partition").is_some());
    assert!(header(d, "x-rustmq-source-offset").is_some());
    let out = kafka.read_all(&output, Isolation::ReadCommitted, 19, DRAIN);
    let keys: BTreeSet<String> = out.iter().map(key_of).collect();
    assert_eq!(out.len(), 19);
    assert!(!keys.contains("poison"));
    let s = status(&b, &id);
    assert_eq!(s["status"], "running", "{s}");
    let (_, m) = admin_get(&b, &format!("/api/v1/etl/pipelines/{id}/metrics"));
    assert_eq!(m["messages_failed"], 1, "{m}");
}

#[test]
fn a_kafka_record_over_the_header_limits_goes_to_the_error_topic_without_a_call() {
    let kafka = KafkaServer::start();
    let (input, output, errors) = (unique_topic("in"), unique_topic("out"), unique_topic("err"));
    for topic in [&input, &output, &errors] {
        kafka.create_topic(topic, 1);
    }
    let with_headers = |key: &str, n: usize, value_len: usize| {
        let mut r = Record::keyed(key, "ok");
        r.headers = (0..n)
            .map(|i| (format!("h{i}"), vec![b'v'; value_len]))
            .collect();
        r
    };
    // At the limits, over the count, over the bytes, then an ordinary record.
    kafka.produce(
        &input,
        &[
            with_headers("at-limits", 8, 10),
            with_headers("too-many", 9, 1),
            with_headers("too-large", 2, 60),
            Record::keyed("plain", "ok"),
        ],
    );
    let b = BrokerProcess::start(&format!(
        "[server]\nmax_headers_per_message = 8\nmax_header_bytes_per_message = 100\n\n{}",
        config(&kafka, "auto")
    ));
    upload(&b, "scripted", guests::SCRIPTED);
    for mode in ["single_message", "batch"] {
        let (out, err) = (format!("{output}-{mode}"), format!("{errors}-{mode}"));
        kafka.create_topic(&out, 1);
        kafka.create_topic(&err, 1);
        create_pipeline(
            &b,
            &kafka_pipeline(
                &format!("headers-{mode}"),
                "scripted",
                &input,
                &out,
                Some(&err),
                json!({"batch_size": 10, "processing_mode": mode}),
            ),
        );
        let dead = kafka.read_all(&err, Isolation::ReadCommitted, 2, DRAIN);
        let causes: Vec<(String, Option<String>, Option<String>)> = dead
            .iter()
            .map(|d| {
                (
                    key_of(d),
                    header(d, "x-rustmq-error-cause").map(text),
                    header(d, "x-rustmq-attempts").map(text),
                )
            })
            .collect();
        let zero = Some("0".to_string());
        assert_eq!(
            causes,
            [
                (
                    "too-many".into(),
                    Some("too_many_headers".into()),
                    zero.clone()
                ),
                ("too-large".into(), Some("headers_too_large".into()), zero),
            ],
            "{mode}"
        );
        let error = header(&dead[0], "x-rustmq-error").map(text).unwrap();
        assert!(error.contains("server.max_headers_per_message"), "{error}");
        // The dead letter keeps every header it came with.
        assert!(header(&dead[0], "h8").is_some());
        let out = kafka.read_all(&out, Isolation::ReadCommitted, 2, DRAIN);
        let keys: Vec<String> = out.iter().map(key_of).collect();
        assert_eq!(keys, ["at-limits", "plain"], "{mode}");
    }
}

#[test]
fn kafka_to_local_and_local_to_kafka_pipelines_deliver_every_message() {
    let kafka = KafkaServer::start();
    let (from_kafka, to_kafka) = (unique_topic("from"), unique_topic("to"));
    kafka.create_topic(&from_kafka, 3);
    kafka.create_topic(&to_kafka, 3);
    const N: usize = 120;
    kafka.produce(
        &from_kafka,
        &(0..N)
            .map(|i| Record::keyed(&format!("k{i}"), &format!("v{i}")))
            .collect::<Vec<_>>(),
    );
    let b = broker_with(&kafka, "scripted", guests::SCRIPTED);
    let inbound = create_pipeline(
        &b,
        &json!({
            "pipeline_name": "inbound",
            "source_topic": format!("kafka://test/{from_kafka}"),
            "destination_topic": "landed",
            "module_name": "scripted",
            "module_version": "1.0.0",
        }),
    );
    let outbound = create_pipeline(
        &b,
        &json!({
            "pipeline_name": "outbound",
            "source_topic": "landed",
            "destination_topic": format!("kafka://test/{to_kafka}"),
            "module_name": "scripted",
            "module_version": "1.0.0",
            "configuration": {"params": {"tag": "outbound"}}
        }),
    );
    // Kafka -> local -> Kafka: every message arrives, passed through both modules.
    let out = kafka.read_all(&to_kafka, Isolation::ReadCommitted, N, DRAIN);
    let values: BTreeSet<String> = out.iter().map(|c| text(&c.value)).collect();
    assert_eq!(values, (0..N).map(|i| format!("v{i}")).collect());
    assert_eq!(out.len(), N, "no duplicates without a crash");
    assert!(out
        .iter()
        .all(|c| header(c, "tag") == Some(&b"outbound"[..])));
    assert_eq!(read_all(&b, "landed").len(), N);
    for id in [&inbound, &outbound] {
        let s = status(&b, id);
        assert_eq!(s["status"], "running", "{s}");
        assert_eq!(
            s["delivery"], "at_least_once",
            "no transaction spans the broker and Kafka: {s}"
        );
    }
}

#[test]
fn two_brokers_split_the_partitions_and_one_takes_over_when_the_other_is_killed() {
    let kafka = KafkaServer::start();
    let (input, output) = (unique_topic("work"), unique_topic("done"));
    kafka.create_topic(&input, 4);
    kafka.create_topic(&output, 4);
    // Each message takes the module ~2 ms, so the stream lasts long enough to kill
    // a worker in the middle of it.
    const N: usize = 3000;
    let records: Vec<Record> = (0..N)
        .map(|i| Record::keyed(&format!("m{i:05}"), "sleep:2"))
        .collect();
    kafka.produce(&input, &records);

    // At-least-once mode, so the duplicates of the uncommitted window are visible
    // and counted.
    let config = config(&kafka, "off");
    let mut a = BrokerProcess::start(&config);
    let b = BrokerProcess::start(&config);
    // Declared once: the CLI uploads the module to both brokers and creates the
    // pipeline on both (the name gives them one consumer group).
    let definition = a.home().join("shared.json");
    std::fs::write(
        &definition,
        kafka_pipeline(
            "shared",
            "scripted",
            &input,
            &output,
            None,
            json!({"batch_size": 20}),
        )
        .to_string(),
    )
    .unwrap();
    let both_urls = format!("{},{}", a.admin_url, b.admin_url);
    for args in [
        vec![
            "module",
            "upload",
            guests::SCRIPTED,
            "--name",
            "scripted",
            "--version",
            "1.0.0",
        ],
        vec!["pipeline", "create", definition.to_str().unwrap()],
    ] {
        let run = std::process::Command::new(cli_binary())
            .args(&args)
            .env("RUSTMQ_CLI_ADMIN_URL", &both_urls)
            .output()
            .unwrap();
        let shown = text(&run.stdout);
        assert!(
            run.status.success(),
            "{args:?}: {shown} {}",
            text(&run.stderr)
        );
        assert_eq!(shown.matches("== http://127.0.0.1:").count(), 2, "{shown}");
    }
    // Both members own partitions, and together all four.
    let both = wait_until(
        "the two workers to split the partitions",
        DRAIN,
        Duration::from_millis(200),
        || {
            let pa = wait_assigned(&a, "pipeline-1");
            let pb = wait_assigned(&b, "pipeline-1");
            if pa.is_disjoint(&pb) && pa.len() + pb.len() == 4 {
                Ok((pa, pb))
            } else {
                Err(format!("{pa:?} {pb:?}"))
            }
        },
    );
    assert_eq!(status(&a, "pipeline-1")["delivery"], "at_least_once");
    // Kill one mid-stream.
    wait_until("some output", DRAIN, Duration::from_millis(100), || {
        let (_, m) = admin_get(&a, "/api/v1/etl/pipelines/pipeline-1/metrics");
        if m["messages_produced"].as_u64() > Some(50) {
            Ok(())
        } else {
            Err(m.to_string())
        }
    });
    a.sigkill();
    // The survivor takes over the dead worker's partitions...
    wait_until(
        "the survivor to own every partition",
        DRAIN,
        Duration::from_millis(200),
        || {
            let p = wait_assigned(&b, "pipeline-1");
            if p.len() == 4 {
                Ok(())
            } else {
                Err(format!("{p:?}"))
            }
        },
    );
    // ... and together they delivered every message; duplicates only from the
    // killed worker's uncommitted window.
    let out = kafka.read_all(&output, Isolation::ReadUncommitted, N, DRAIN);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for c in &out {
        *seen.entry(key_of(c)).or_default() += 1;
    }
    let missing: Vec<String> = (0..N)
        .map(|i| format!("m{i:05}"))
        .filter(|k| !seen.contains_key(k))
        .collect();
    assert!(
        missing.is_empty(),
        "lost {} messages, the first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let duplicates = out.len() - N;
    eprintln!(
        "two workers ({:?} / {:?}), one killed: {N} messages delivered, {duplicates} duplicate(s)",
        both.0, both.1
    );
    // The killed worker had at most its in-flight batch and the one read ahead per
    // owned partition uncommitted.
    let window = 2 * 20 * both.0.len();
    assert!(
        duplicates <= window,
        "{duplicates} duplicates exceed the uncommitted window of {window}"
    );
}

/// What a restart loop left in the destination.
struct LoopOutcome {
    /// Per key, how often a `read_committed` reader sees it.
    committed: BTreeMap<String, usize>,
    /// Per key, how often it was written at all (aborted transactions included).
    written: BTreeMap<String, usize>,
    /// The group's committed offsets, summed over the partitions.
    offsets: i64,
    /// Source messages.
    n: usize,
}

/// Source messages of a restart loop, and its batch size.
const LOOP_MESSAGES: usize = 1500;
const LOOP_BATCH: usize = 25;

/// Runs an exactly-once pipeline whose broker is stopped mid-stream `rounds` times
/// (SIGKILL when `kill`, else SIGTERM) and restarted each time, until it drains.
fn restart_loop(kafka: &KafkaServer, rounds: usize, kill: bool) -> LoopOutcome {
    let (input, output) = (unique_topic("eos-in"), unique_topic("eos-out"));
    kafka.create_topic(&input, 2);
    kafka.create_topic(&output, 2);
    let n = LOOP_MESSAGES;
    kafka.produce(
        &input,
        &(0..n)
            .map(|i| Record::keyed(&format!("m{i:05}"), "sleep:2"))
            .collect::<Vec<_>>(),
    );
    // The restarted worker keeps its worker id (kept in its data directory) and so
    // its transactional id, which fences the killed one's open transaction; static
    // membership gives it its partitions back at once, on a server that never
    // evicts the dead member (noida-db).
    let config = config(kafka, "auto").replace(
        "transactions = \"auto\"",
        "transactions = \"auto\"\nstatic_membership = true",
    );
    assert!(config.contains("static_membership = true"));
    let mut b = BrokerProcess::start(&config);
    upload(&b, "scripted", guests::SCRIPTED);
    create_pipeline(
        &b,
        &kafka_pipeline(
            "eos",
            "scripted",
            &input,
            &output,
            None,
            json!({"batch_size": LOOP_BATCH}),
        ),
    );
    for round in 0..rounds {
        // Let it make some progress (a transaction is open most of the time: the
        // module takes ~50 ms per batch), then stop it.
        wait_until(
            &format!("round {round}: 100 outputs since the (re)start"),
            DRAIN,
            Duration::from_millis(50),
            || {
                let (_, m) = admin_get(&b, "/api/v1/etl/pipelines/pipeline-1/metrics");
                if m["messages_produced"].as_u64().unwrap_or(0) >= 100 {
                    Ok(())
                } else {
                    Err(m.to_string())
                }
            },
        );
        if kill {
            b.sigkill();
        } else {
            b.sigterm();
        }
        b.restart();
        let s = status(&b, "pipeline-1");
        assert_eq!(s["delivery"], "exactly_once", "{s}");
    }
    let offsets = wait_until(
        "the group to commit every offset",
        DRAIN,
        Duration::from_millis(200),
        || {
            let s = status(&b, "pipeline-1");
            let sum: i64 = s["kafka"]["partitions"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter_map(|p| p["committed_offset"].as_i64())
                        .sum()
                })
                .unwrap_or(0);
            if sum >= n as i64 {
                Ok(sum)
            } else {
                Err(s.to_string())
            }
        },
    );
    let count = |isolation| {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for c in kafka.read_all(&output, isolation, n, Duration::from_secs(30)) {
            *seen.entry(key_of(&c)).or_default() += 1;
        }
        seen
    };
    LoopOutcome {
        written: count(Isolation::ReadUncommitted),
        committed: count(Isolation::ReadCommitted),
        offsets,
        n,
    }
}

fn missing(seen: &BTreeMap<String, usize>, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("m{i:05}"))
        .filter(|k| !seen.contains_key(k))
        .collect()
}

#[test]
fn exactly_once_holds_across_restarts_for_a_read_committed_reader() {
    // noida-db hides aborted and open transactions from read_committed, so it can
    // tell a duplicate from an aborted write.
    let kafka = KafkaServer::start_noida();
    let o = restart_loop(&kafka, 3, false);
    let lost = missing(&o.committed, o.n);
    assert!(
        lost.is_empty(),
        "lost {}: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let twice: Vec<(&String, &usize)> = o.committed.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        twice.is_empty(),
        "a read_committed reader saw {} message(s) more than once: {:?}",
        twice.len(),
        &twice[..twice.len().min(10)]
    );
    assert_eq!(o.offsets, o.n as i64);
}

#[test]
fn a_sigkill_mid_transaction_leaves_only_its_open_batch_behind() {
    // After each SIGKILL the restarted worker fences the dead one's transaction and
    // goes on from the committed offsets: every message is written, the offsets end
    // exactly at the end, and the only extra writes are the open transactions of the
    // killed workers (at most one batch each), which Kafka aborts. noida-db writes no
    // abort marker for a transaction fenced after a crash, so its read_committed
    // readers stall at the first one (docs/scaling.md); the aborted writes are
    // counted from everything written instead.
    let kafka = KafkaServer::start_noida();
    const KILLS: usize = 3;
    let o = restart_loop(&kafka, KILLS, true);
    let lost = missing(&o.written, o.n);
    assert!(
        lost.is_empty(),
        "lost {}: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert_eq!(o.offsets, o.n as i64, "the offsets end exactly at the end");
    let extra: usize = o.written.values().map(|c| c - 1).sum();
    eprintln!(
        "SIGKILL loop on noida-db: {} messages, {extra} write(s) in killed transactions",
        o.n
    );
    assert!(
        extra <= KILLS * LOOP_BATCH,
        "{extra} extra writes: more than one open batch per kill"
    );
}

#[test]
fn the_sigkill_loop_on_tansu_loses_nothing_and_counts_its_duplicates() {
    // tansu shows aborted records to read_committed readers: what it can prove is
    // at-least-once; the duplicates it shows are the aborted transactions.
    let kafka = KafkaServer::start();
    if kafka.kind() != ServerKind::Tansu {
        return;
    }
    let o = restart_loop(&kafka, 3, true);
    let lost = missing(&o.committed, o.n);
    assert!(
        lost.is_empty(),
        "lost {}: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert_eq!(o.offsets, o.n as i64);
    let duplicates: usize = o.committed.values().map(|c| c - 1).sum();
    eprintln!("SIGKILL loop on tansu: {} messages, {duplicates} duplicate(s) from aborted transactions (tansu shows them to read_committed)", o.n);
}

#[test]
fn a_stopped_kafka_server_is_reported_and_the_pipeline_finishes_after_it_resumes() {
    let kafka = KafkaServer::start();
    if !kafka.owned() {
        return; // an external cluster cannot be paused by the test
    }
    let (input, output) = (unique_topic("outage-in"), unique_topic("outage-out"));
    kafka.create_topic(&input, 2);
    kafka.create_topic(&output, 2);
    const N: usize = 1000;
    kafka.produce(
        &input,
        &(0..N)
            .map(|i| Record::keyed(&format!("m{i:05}"), "sleep:3"))
            .collect::<Vec<_>>(),
    );
    let b = broker_with(&kafka, "scripted", guests::SCRIPTED);
    let id = create_pipeline(
        &b,
        &kafka_pipeline(
            "outage",
            "scripted",
            &input,
            &output,
            None,
            json!({"batch_size": 20}),
        ),
    );
    wait_until("some output", DRAIN, Duration::from_millis(50), || {
        let (_, m) = admin_get(&b, &format!("/api/v1/etl/pipelines/{id}/metrics"));
        if m["messages_produced"].as_u64() > Some(40) {
            Ok(())
        } else {
            Err(m.to_string())
        }
    });
    kafka.pause();
    // Longer than the client timeouts (socket 5 s, session 6 s): the pipeline must
    // report the outage, not crash.
    let reported = wait_until(
        "the outage in the status",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let s = status(&b, &id);
            assert_ne!(s["status"], "failed", "{s}");
            if s["kafka"]["outage"].is_string() {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        },
    );
    kafka.resume();
    let out = kafka.read_all(&output, Isolation::ReadUncommitted, N, DRAIN);
    let keys: BTreeSet<String> = out.iter().map(key_of).collect();
    assert_eq!(keys.len(), N, "lost messages after the outage ({reported})");
    let s = wait_until(
        "the outage to clear",
        DRAIN,
        Duration::from_millis(200),
        || {
            let s = status(&b, &id);
            if s["kafka"]["outage"].is_null() {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        },
    );
    assert_eq!(s["status"], "running", "{s}");
    assert!(b.pid().is_some(), "the broker is still up");
}

#[test]
fn a_pipeline_naming_an_undeclared_cluster_is_refused_with_the_fix() {
    let b = BrokerProcess::start("[etl]\nmodules_path = \"modules\"\n");
    upload(&b, "scripted", guests::SCRIPTED);
    let (status, v) = admin_post(
        &b,
        "/api/v1/etl/pipelines",
        &json!({
            "pipeline_name": "nowhere",
            "source_topic": "kafka://prod/orders",
            "destination_topic": "out",
            "module_name": "scripted",
            "module_version": "1.0.0",
        }),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let m = error_message(&v);
    assert!(m.contains("source_topic"), "{m}");
    assert!(m.contains("[kafka.clusters.prod]"), "{m}");
    // Nothing was created.
    let (_, list) = admin_get(&b, "/api/v1/etl/pipelines");
    assert_eq!(list["pipelines"], json!([]), "{list}");
    // The message API is untouched by it.
    let (s, _) = produce(&b, "out", &json!({"value": "x"}));
    assert_eq!(s, StatusCode::OK);
}

#[test]
fn a_refused_librdkafka_property_stops_the_broker_at_start_with_the_key() {
    let (exit, stderr) = BrokerProcess::run_to_exit(
        "[kafka.clusters.main]\nbootstrap_servers = \"127.0.0.1:9\"\nproperties = { \"sasl.mechanismz\" = \"PLAIN\" }\n",
        &[],
    );
    assert!(!exit.success());
    assert!(stderr.contains("kafka.clusters.main"), "{stderr}");
    assert!(stderr.contains("sasl.mechanismz"), "{stderr}");
    let (exit, stderr) = BrokerProcess::run_to_exit(
        "[kafka.clusters.main]\nbootstrap_servers = \"127.0.0.1:9\"\nproperties = { \"group.id\" = \"g\" }\n",
        &[],
    );
    assert!(!exit.success());
    assert!(stderr.contains("consumer_group"), "{stderr}");
}
