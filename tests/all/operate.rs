//! Operating pipelines over HTTP: resetting a pipeline's position re-delivers exactly
//! from the offset (or the time) it is reset to, running or stopped, and a target
//! that does not exist changes nothing.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::guests;
use rustmq_etl_tests::http::{admin_get, admin_post, produce, read_all, upload_module, wait_until};

/// A broker with the identity module and a pipeline `replay` from `in` to `out`.
fn broker_with_pipeline() -> (BrokerProcess, String) {
    let b = BrokerProcess::start("[etl]\nenabled = true\n");
    let (code, v) = upload_module(
        &b,
        "identity",
        "1.0.0",
        std::fs::read(guests::IDENTITY).unwrap(),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let (code, v) = admin_post(
        &b,
        "/api/v1/etl/pipelines",
        &json!({
            "pipeline_name": "replay",
            "source_topic": "in",
            "destination_topic": "out",
            "module_name": "identity",
            "module_version": "^1",
            "configuration": {"batch_size": 4}
        }),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    (b, v["pipeline_id"].as_str().unwrap().to_string())
}

fn produce_values(b: &BrokerProcess, values: std::ops::Range<u32>) {
    let messages: Vec<Value> = values.map(|i| json!({"value": format!("m{i}")})).collect();
    let (code, v) = produce(b, "in", &json!({ "messages": messages }));
    assert_eq!(code, StatusCode::OK, "{v}");
}

/// Waits until the pipeline has committed up to `offset` and `out` holds `count`
/// messages; returns their values.
fn delivered(b: &BrokerProcess, id: &str, offset: u64, count: usize) -> Vec<String> {
    wait_until(
        "the pipeline to deliver",
        Duration::from_secs(60),
        Duration::from_millis(20),
        || {
            let (_, s) = admin_get(b, &format!("/api/v1/etl/pipelines/{id}/status"));
            let out = read_all(b, "out");
            (s["committed_offset"].as_u64() >= Some(offset) && out.len() >= count)
                .then(|| {
                    out.iter()
                        .map(|m| m["value"].as_str().unwrap().to_string())
                        .collect::<Vec<_>>()
                })
                .ok_or(format!("status {s}, {} delivered", out.len()))
        },
    )
}

/// Runs `rustmq-etl` against `b`.
fn cli(b: &BrokerProcess, args: &[&str]) -> std::process::Output {
    rustmq_etl_tests::broker::run_cli(b, args, &[])
}

fn values(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

fn reset(b: &BrokerProcess, id: &str, to: Value) -> (StatusCode, Value) {
    admin_post(
        b,
        &format!("/api/v1/etl/pipelines/{id}/reset"),
        &json!({ "to": to }),
    )
}

#[test]
fn reset_to_an_offset_redelivers_exactly_from_there_and_the_pipeline_runs_on() {
    let (b, id) = broker_with_pipeline();
    produce_values(&b, 0..10);
    assert_eq!(delivered(&b, &id, 10, 10), values(0..10));
    let (code, s) = reset(&b, &id, json!(4));
    assert_eq!(code, StatusCode::OK, "{s}");
    assert_eq!(s["status"], "running", "{s}");
    let mut want = values(0..10);
    want.extend(values(4..10));
    assert_eq!(delivered(&b, &id, 10, 16), want);
    // It runs on: new messages follow once, after the replay.
    produce_values(&b, 10..12);
    want.extend(values(10..12));
    assert_eq!(delivered(&b, &id, 12, 18), want);
    // Earliest replays everything; latest skips what is there.
    let (code, s) = reset(&b, &id, json!("earliest"));
    assert_eq!(code, StatusCode::OK, "{s}");
    want.extend(values(0..12));
    assert_eq!(delivered(&b, &id, 12, 30), want);
    let (code, s) = reset(&b, &id, json!("latest"));
    assert_eq!(code, StatusCode::OK, "{s}");
    produce_values(&b, 12..13);
    want.extend(values(12..13));
    assert_eq!(delivered(&b, &id, 13, 31), want);
}

#[test]
fn reset_to_a_time_redelivers_from_the_first_message_appended_at_or_after_it() {
    let (b, id) = broker_with_pipeline();
    produce_values(&b, 0..5);
    // The next messages are appended after the clock has passed every earlier one's
    // append time (the broker and the test read the same clock).
    let appended = rustmq_etl::message::now_millis();
    while rustmq_etl::message::now_millis() <= appended {
        std::hint::spin_loop();
    }
    let since = rustmq_etl::message::now_millis();
    produce_values(&b, 5..9);
    assert_eq!(delivered(&b, &id, 9, 9), values(0..9));
    let (code, s) = reset(&b, &id, json!({ "timestamp_ms": since }));
    assert_eq!(code, StatusCode::OK, "{s}");
    let mut want = values(0..9);
    want.extend(values(5..9));
    assert_eq!(delivered(&b, &id, 9, 13), want);
}

#[test]
fn a_stopped_pipeline_is_reset_without_starting_and_a_bad_target_changes_nothing() {
    let (b, id) = broker_with_pipeline();
    produce_values(&b, 0..6);
    assert_eq!(delivered(&b, &id, 6, 6), values(0..6));
    let (code, s) = admin_post(&b, &format!("/api/v1/etl/pipelines/{id}/stop"), &json!({}));
    assert_eq!(code, StatusCode::OK, "{s}");

    let (code, v) = reset(&b, &id, json!(7));
    assert_eq!(code, StatusCode::RANGE_NOT_SATISFIABLE, "{v}");
    assert_eq!(v["error"]["code"], "offset_out_of_range", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("0..6"),
        "{v}"
    );
    let (code, v) = reset(&b, &id, json!("beginning"));
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"earliest\""),
        "{v}"
    );
    let (code, v) = reset(&b, "no-such-pipeline", json!(0));
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    let (_, s) = admin_get(&b, &format!("/api/v1/etl/pipelines/{id}/status"));
    assert_eq!(
        s["committed_offset"], 6,
        "a refused reset moved the pipeline: {s}"
    );

    let (code, s) = reset(&b, &id, json!(2));
    assert_eq!(code, StatusCode::OK, "{s}");
    assert_eq!(s["status"], "stopped", "{s}");
    assert_eq!(s["committed_offset"], 2, "{s}");
    assert_eq!(read_all(&b, "out").len(), 6, "a stopped pipeline delivered");
    let (code, s) = admin_post(&b, &format!("/api/v1/etl/pipelines/{id}/start"), &json!({}));
    assert_eq!(code, StatusCode::OK, "{s}");
    let mut want = values(0..6);
    want.extend(values(2..6));
    assert_eq!(delivered(&b, &id, 6, 10), want);
}

#[test]
fn the_cli_resets_and_backfills_a_pipeline_and_names_a_bad_position() {
    let (b, id) = broker_with_pipeline();
    produce_values(&b, 0..5);
    assert_eq!(delivered(&b, &id, 5, 5), values(0..5));
    let cli = |args: &[&str]| cli(&b, args);
    let out = cli(&["pipeline", "reset", "replay", "--to", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("next offset 3"), "{stdout}");
    let mut want = values(0..5);
    want.extend(values(3..5));
    assert_eq!(delivered(&b, &id, 5, 7), want);

    let out = cli(&["pipeline", "reset", "replay", "--timestamp-ms", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    want.extend(values(0..5));
    assert_eq!(delivered(&b, &id, 5, 12), want);

    let out = cli(&["pipeline", "reset", "replay", "--to", "first"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("give earliest, latest, an offset or ms:T"),
        "{stderr}"
    );
    let out = cli(&["pipeline", "reset", "replay"]);
    assert!(
        !out.status.success(),
        "a reset without a position must be refused"
    );

    // A backfill is followed until it completes.
    let out = cli(&[
        "pipeline", "backfill", "replay", "--from", "1", "--to", "4", "--into", "cli-side",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("completed, offsets 1..4 into cli-side"),
        "{stdout}"
    );
    let side: Vec<String> = read_all(&b, "cli-side")
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(side, values(1..4));
    let out = cli(&[
        "pipeline",
        "backfill",
        "replay",
        "--from",
        "ms:0",
        "--to",
        "latest",
        "--into",
        "cli-all",
        "--no-wait",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("started pipeline-"), "{stdout}");
}

/// Creates a pipeline over `in` into `into`, from `start` to before `end`.
fn bounded(b: &BrokerProcess, name: &str, into: &str, start: u64, end: u64) -> String {
    let (code, v) = admin_post(
        b,
        "/api/v1/etl/pipelines",
        &json!({
            "pipeline_name": name,
            "source_topic": "in",
            "destination_topic": into,
            "module_name": "identity",
            "module_version": "^1",
            "start_from": start,
            "end_offset": end,
            "configuration": {"batch_size": 2}
        }),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    v["pipeline_id"].as_str().unwrap().to_string()
}

fn completed(b: &BrokerProcess, id: &str) -> Value {
    wait_until(
        "the bounded pipeline to complete",
        Duration::from_secs(60),
        Duration::from_millis(20),
        || {
            let (_, s) = admin_get(b, &format!("/api/v1/etl/pipelines/{id}/status"));
            (s["status"] == "completed")
                .then(|| s.clone())
                .ok_or(s.to_string())
        },
    )
}

#[test]
fn a_bounded_pipeline_delivers_exactly_its_range_then_completes_and_stays_completed() {
    let (mut b, live) = broker_with_pipeline();
    produce_values(&b, 0..10);
    let id = bounded(&b, "range", "range-out", 3, 7);
    let s = completed(&b, &id);
    assert_eq!(s["committed_offset"], 7, "{s}");
    assert_eq!(s["end_offset"], 7, "{s}");
    assert_eq!(s["lag"], 0, "{s}");
    let got: Vec<String> = read_all(&b, "range-out")
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, values(3..7));
    // The live pipeline beside it delivered everything once.
    assert_eq!(delivered(&b, &live, 10, 10), values(0..10));
    // An empty range completes at once, with its position at its end.
    let empty = bounded(&b, "empty-range", "empty-out", 5, 5);
    assert_eq!(completed(&b, &empty)["committed_offset"], 5);
    // Completed pipelines are not resumed by a restart; more messages change nothing.
    b.restart();
    produce_values(&b, 10..12);
    assert_eq!(delivered(&b, &live, 12, 12), values(0..12));
    for (id, out, count) in [(&id, "range-out", 4), (&empty, "empty-out", 0)] {
        let (_, s) = admin_get(&b, &format!("/api/v1/etl/pipelines/{id}/status"));
        assert_eq!(s["status"], "completed", "{s}");
        assert_eq!(read_all(&b, out).len(), count, "{out}");
    }
    // A range that ends before it starts is refused.
    let (code, v) = admin_post(
        &b,
        "/api/v1/etl/pipelines",
        &json!({"pipeline_name": "backwards", "source_topic": "in", "destination_topic": "x",
                "module_name": "identity", "module_version": "^1", "start_from": 5, "end_offset": 4}),
    );
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("end_offset"),
        "{v}"
    );
}

#[test]
fn a_backfill_gives_exactly_its_range_in_the_side_topic_while_the_live_pipeline_runs_on() {
    let (b, live) = broker_with_pipeline();
    // A second version of the module, which the backfill runs instead of the pinned one.
    let (code, v) = upload_module(
        &b,
        "identity",
        "1.1.0",
        std::fs::read(guests::IDENTITY).unwrap(),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    produce_values(&b, 0..20);
    assert_eq!(delivered(&b, &live, 20, 20), values(0..20));
    let (code, v) = admin_post(
        &b,
        &format!("/api/v1/etl/pipelines/{live}/backfill"),
        &json!({"from": 5, "to": 15, "into": "side", "module_version": "1.1.0"}),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    assert_eq!(v["module_version"], "1.1.0", "{v}");
    let backfill = v["pipeline_id"].as_str().unwrap().to_string();
    // Messages produced while it runs go to the live pipeline only.
    produce_values(&b, 20..25);
    let s = completed(&b, &backfill);
    assert_eq!(s["pipeline_name"], "replay.backfill-1", "{s}");
    assert_eq!(
        (s["committed_offset"].as_u64(), s["end_offset"].as_u64()),
        (Some(15), Some(15))
    );
    let side: Vec<String> = read_all(&b, "side")
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        side,
        values(5..15),
        "the side topic holds exactly the range, once"
    );
    assert_eq!(
        delivered(&b, &live, 25, 25),
        values(0..25),
        "the live pipeline is undisturbed"
    );
    let (_, s) = admin_get(&b, &format!("/api/v1/etl/pipelines/{live}/status"));
    assert_eq!(
        (s["status"].as_str(), s["module_version"].as_str()),
        (Some("running"), Some("1.0.0"))
    );

    // "earliest" to "latest", the pinned version, a second name; a range backwards
    // and a missing pipeline are refused.
    let (code, v) = admin_post(
        &b,
        &format!("/api/v1/etl/pipelines/{live}/backfill"),
        &json!({"from": "earliest", "to": "latest", "into": "side-all"}),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    assert_eq!(v["module_version"], "1.0.0", "{v}");
    let all = v["pipeline_id"].as_str().unwrap().to_string();
    assert_eq!(completed(&b, &all)["pipeline_name"], "replay.backfill-2");
    assert_eq!(read_all(&b, "side-all").len(), 25);
    let (code, v) = admin_post(
        &b,
        &format!("/api/v1/etl/pipelines/{live}/backfill"),
        &json!({"from": 9, "to": 3, "into": "never"}),
    );
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("before it starts"),
        "{v}"
    );
    let (code, _) = admin_post(
        &b,
        "/api/v1/etl/pipelines/nobody/backfill",
        &json!({"from": 0, "to": 1, "into": "never"}),
    );
    assert_eq!(code, StatusCode::NOT_FOUND);
}

/// A pipeline `name` on module `scripted` (failures to the shared topic `errs`).
fn scripted_pipeline(b: &BrokerProcess, name: &str, source: &str, into: &str) -> String {
    let (code, v) = admin_post(
        b,
        "/api/v1/etl/pipelines",
        &json!({
            "pipeline_name": name, "source_topic": source, "destination_topic": into,
            "error_topic": "errs", "module_name": "scripted", "module_version": "=1.0.0",
            "configuration": {"batch_size": 2, "retry_policy": {"max_retries": 0, "backoff_ms": 1}}
        }),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    v["pipeline_id"].as_str().unwrap().to_string()
}

fn value_of(m: &Value) -> &str {
    m["value"].as_str().unwrap()
}

#[test]
fn a_redrive_takes_only_the_pipelines_dead_letters_and_a_fixed_version_delivers_them() {
    let b = BrokerProcess::start("[etl]\nenabled = true\n");
    for (version, module) in [("1.0.0", guests::SCRIPTED), ("1.1.0", guests::IDENTITY)] {
        let (code, v) = upload_module(&b, "scripted", version, std::fs::read(module).unwrap());
        assert_eq!(code, StatusCode::CREATED, "{v}");
    }
    let id = scripted_pipeline(&b, "dl", "in", "out");
    let other = scripted_pipeline(&b, "other", "in2", "out2");
    let batch = |topic: &str, values: &[&str]| {
        let messages: Vec<Value> = values
            .iter()
            .map(|v| json!({"value": v, "key": v}))
            .collect();
        let (code, v) = produce(&b, topic, &json!({ "messages": messages }));
        assert_eq!(code, StatusCode::OK, "{v}");
    };
    batch("in", &["a", "dead", "b", "dead", "c"]);
    batch("in2", &["dead"]);
    let settled = |want_errs: usize| {
        wait_until(
            "dead letters",
            Duration::from_secs(60),
            Duration::from_millis(20),
            || {
                let errs = read_all(&b, "errs");
                (errs.len() == want_errs)
                    .then_some(errs.clone())
                    .ok_or(format!("{} dead letters", errs.len()))
            },
        )
    };
    settled(3);
    assert_eq!(delivered(&b, &id, 5, 3), ["a", "b", "c"]);

    // The pinned version fails them again: they go back once each, counted, as
    // this pipeline's dead letters from where they first came; the redrive ends.
    let (code, v) = admin_post(
        &b,
        &format!("/api/v1/etl/pipelines/{id}/redrive"),
        &json!({}),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let first = v["pipeline_id"].as_str().unwrap().to_string();
    assert_eq!(completed(&b, &first)["pipeline_name"], "dl.redrive-1");
    let errs = settled(5);
    for again in &errs[3..] {
        assert_eq!(value_of(again), "dead");
        assert_eq!(
            again["headers"]["x-rustmq-pipeline"],
            id.as_str(),
            "{again}"
        );
        assert_eq!(again["headers"]["x-rustmq-redrives"], "1", "{again}");
        assert_eq!(again["headers"]["x-rustmq-source-topic"], "in", "{again}");
        assert_eq!(
            again["headers"]["x-rustmq-error-cause"], "dead_letter",
            "{again}"
        );
    }
    let offsets: Vec<&Value> = errs[3..]
        .iter()
        .map(|m| &m["headers"]["x-rustmq-source-offset"])
        .collect();
    assert_eq!(offsets, [&json!("1"), &json!("3")]);

    // The fixed version delivers every dead letter of this pipeline in the range
    // (the two first ones and their second failures), without failure headers; the
    // other pipeline's stays where it is.
    let (code, v) = admin_post(
        &b,
        &format!("/api/v1/etl/pipelines/{id}/redrive"),
        &json!({"module_version": "1.1.0"}),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let fixed = v["pipeline_id"].as_str().unwrap().to_string();
    let s = completed(&b, &fixed);
    assert_eq!(
        (s["pipeline_name"].as_str(), s["module_version"].as_str()),
        (Some("dl.redrive-2"), Some("1.1.0"))
    );
    assert_eq!(settled(5).len(), 5, "nothing failed again");
    let out = read_all(&b, "out");
    let values: Vec<&str> = out.iter().map(value_of).collect();
    assert_eq!(values, ["a", "b", "c", "dead", "dead", "dead", "dead"]);
    for redriven in &out[3..] {
        assert!(
            redriven["headers"]["x-rustmq-error"].is_null(),
            "{redriven}"
        );
        assert_eq!(
            redriven["headers"]["x-rustmq-module-version"], "1.1.0",
            "{redriven}"
        );
    }
    let redrives: Vec<&Value> = out[3..]
        .iter()
        .map(|m| &m["headers"]["x-rustmq-redrives"])
        .collect();
    assert_eq!(
        redrives,
        [&json!("1"), &json!("1"), &json!("2"), &json!("2")]
    );
    assert!(read_all(&b, "out2").is_empty());
    let of_other = errs[..3]
        .iter()
        .filter(|m| m["headers"]["x-rustmq-pipeline"] == other.as_str())
        .count();
    assert_eq!(
        of_other, 1,
        "the other pipeline's dead letter is still there, once"
    );
    // The command line does the same, following the redrive until it completes.
    let out = cli(
        &b,
        &["pipeline", "redrive", "dl", "--module-version", "1.1.0"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("(dl.redrive-3): completed, offsets 0..5 into out"),
        "{stdout}"
    );
    assert_eq!(read_all(&b, "out").len(), 11);
    let (code, v) = admin_post(&b, "/api/v1/etl/pipelines/nobody/redrive", &json!({}));
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
}

#[test]
fn a_redrive_killed_midway_delivers_every_dead_letter_exactly_once_after_the_restart() {
    const N: usize = 3000;
    let mut b = BrokerProcess::start("[etl]\nenabled = true\n");
    for (version, module) in [("1.0.0", guests::SCRIPTED), ("1.1.0", guests::IDENTITY)] {
        let (code, v) = upload_module(&b, "scripted", version, std::fs::read(module).unwrap());
        assert_eq!(code, StatusCode::CREATED, "{v}");
    }
    let id = scripted_pipeline(&b, "crashy", "in", "out");
    let keys: Vec<String> = (0..N).map(|i| format!("k{i:05}")).collect();
    for part in keys.chunks(500) {
        let messages: Vec<Value> = part
            .iter()
            .map(|k| json!({"key": k, "value": "dead"}))
            .collect();
        let (code, v) = produce(&b, "in", &json!({ "messages": messages }));
        assert_eq!(code, StatusCode::OK, "{v}");
    }
    wait_until(
        "the dead letters",
        Duration::from_secs(120),
        Duration::from_millis(50),
        || {
            let (_, t) = rustmq_etl_tests::http::send(
                rustmq_etl_tests::http::client().get(format!("{}/api/v1/topics/errs", b.data_url)),
            );
            (t["end_offset"].as_u64() == Some(N as u64))
                .then_some(())
                .ok_or(t.to_string())
        },
    );
    let (code, v) = admin_post(
        &b,
        &format!("/api/v1/etl/pipelines/{id}/redrive"),
        &json!({"module_version": "1.1.0"}),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let redrive = v["pipeline_id"].as_str().unwrap().to_string();
    // Killed as soon as it has committed part of the range.
    let at = wait_until(
        "the redrive to be midway",
        Duration::from_secs(60),
        Duration::from_millis(1),
        || {
            let (_, s) = admin_get(&b, &format!("/api/v1/etl/pipelines/{redrive}/status"));
            let at = s["committed_offset"].as_u64().unwrap_or(0);
            (at > 0).then_some(at).ok_or(s.to_string())
        },
    );
    assert!(at < N as u64, "the redrive ended before the kill (at {at})");
    b.sigkill();
    b.restart();
    completed(&b, &redrive);
    let mut delivered: Vec<String> = read_all(&b, "out")
        .iter()
        .map(|m| m["key"].as_str().unwrap().to_string())
        .collect();
    delivered.sort();
    assert_eq!(
        delivered, keys,
        "every dead letter in the destination, once"
    );
    let (_, t) = rustmq_etl_tests::http::send(
        rustmq_etl_tests::http::client().get(format!("{}/api/v1/topics/errs", b.data_url)),
    );
    assert_eq!(t["end_offset"], N, "nothing failed again: {t}");
}
