//! What a module can make the broker allocate is bounded whatever the batch size:
//! driven over HTTP against the broker binary, measured as the broker's peak
//! resident set (`VmHWM`).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::guests;
use rustmq_etl_tests::http::{admin_get, admin_post, produce, upload_module};

const MIB: u64 = 1024 * 1024;

/// The ceiling docs/pipelines.md gives for one pipeline's batches with the default
/// settings is far below this; the broker's own footprint (guest instances, the
/// storage cache) comes on top.
const PEAK_BOUND: u64 = 1024 * MIB;

/// Peak resident set of `pid` in bytes, from /proc.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// Waits until pipeline `id` has committed up to `offset` of its source.
fn wait_committed(b: &BrokerProcess, id: &str, offset: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (status, v) = admin_get(b, &format!("/api/v1/etl/pipelines/{id}/status"));
        assert_eq!(status, StatusCode::OK, "{v}");
        if v["committed_offset"].as_u64() >= Some(offset) {
            return v;
        }
        assert_eq!(v["status"], "running", "{v}");
        assert!(Instant::now() < deadline, "not committed in time: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_batch_of_15_mib_answers_is_committed_in_parts_within_the_memory_ceiling() {
    let b = BrokerProcess::start("");
    let (status, v) = upload_module(
        &b,
        "hostile",
        "1.0.0",
        std::fs::read(guests::HOSTILE).unwrap(),
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    // 60 inputs in one batch (the default batch size is 100), each answered with
    // 15 MiB: 900 MiB of outputs, which one commit used to hold at once.
    let n = 60u64;
    let answer = format!("huge:{}", 15 * MIB);
    let messages: Vec<Value> = (0..n)
        .map(|i| json!({"key": format!("k{i}"), "value": answer}))
        .collect();
    let (status, v) = produce(&b, "big-in", &json!({ "messages": messages }));
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = admin_post(
        &b,
        "/api/v1/etl/pipelines",
        &json!({
            "pipeline_name": "big",
            "source_topic": "big-in",
            "destination_topic": "big-out",
            "error_topic": "big-err",
            "module_name": "hostile",
            "module_version": "^1"
        }),
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["pipeline_id"].as_str().unwrap();
    wait_committed(&b, id, n);
    let (_, m) = admin_get(&b, &format!("/api/v1/etl/pipelines/{id}/metrics"));
    assert_eq!(m["messages_processed"], n, "{m}");
    assert_eq!(m["messages_failed"], 0, "{m}");
    // Cut at 64 MiB of outputs, the batch went in parts: at least 900 / (64 + 15).
    assert!(m["batches_committed"].as_u64().unwrap() >= 12, "{m}");
    let peak = peak_rss(b.pid().unwrap());
    assert!(
        peak < PEAK_BOUND,
        "peak RSS {} MiB with 900 MiB of outputs in one batch",
        peak / MIB
    );
}

#[test]
fn deleting_two_million_missing_keys_in_one_call_holds_no_memory() {
    // Memory is the point here, not time: the two million host calls of one message
    // take seconds in a debug build, so the call gets a minute.
    let b = BrokerProcess::start("[etl]\nexecution_timeout_ms = 60000\n");
    let (status, v) = upload_module(
        &b,
        "counter",
        "1.0.0",
        std::fs::read(guests::COUNTER).unwrap(),
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = admin_post(
        &b,
        "/api/v1/etl/pipelines",
        &json!({
            "pipeline_name": "deletes",
            "source_topic": "deletes-in",
            "destination_topic": "deletes-out",
            "error_topic": "deletes-err",
            "module_name": "counter",
            "module_version": "^1",
            "configuration": {"timeout_ms": 60000}
        }),
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["pipeline_id"].as_str().unwrap();
    // A first message warms the pipeline up: its instance, its state, its buffers.
    let (status, v) = produce(&b, "deletes-in", &json!({"key": "k", "value": "x"}));
    assert_eq!(status, StatusCode::OK, "{v}");
    wait_committed(&b, id, 1);
    let before = peak_rss(b.pid().unwrap());
    // Each delete of a key that is not there used to stay in memory until the
    // commit, charged nothing: some 100 bytes each.
    let (status, v) = produce(
        &b,
        "deletes-in",
        &json!({"key": "k", "value": "delete-missing:2000000"}),
    );
    assert_eq!(status, StatusCode::OK, "{v}");
    let s = wait_committed(&b, id, 2);
    let (_, m) = admin_get(&b, &format!("/api/v1/etl/pipelines/{id}/metrics"));
    assert_eq!(m["messages_processed"], 2, "{m} {s}");
    let grown = peak_rss(b.pid().unwrap()).saturating_sub(before);
    assert!(
        grown < 64 * MIB,
        "peak RSS grew {} MiB over two million deletes of missing keys",
        grown / MIB
    );
}

/// Open file handles of process `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Whether the server closed `stream` (end of file or a reset), waiting up to `limit`.
fn closed_by_server(stream: &mut std::net::TcpStream, limit: Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // An error answer (a 408, say) before the close: read on.
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn stalled_clients_cannot_take_the_ports_or_starve_the_admin_api() {
    use std::io::Write;
    let b = BrokerProcess::start(
        "[server]\nmax_connections = 32\nadmin_max_connections = 8\n\
         header_read_timeout_ms = 1000\nbody_read_timeout_ms = 1000\n",
    );
    let pid = b.pid().unwrap();
    let files_before = open_files(pid);
    let data = b.data_url.trim_start_matches("http://").to_string();
    // 150 clients that never finish their request head, and 50 that never finish
    // their body: far more than the message port takes at once.
    let mut stalled = Vec::new();
    for i in 0..200 {
        let mut s = std::net::TcpStream::connect(&data).unwrap();
        let head = if i < 150 {
            "POST /api/v1/topics/t/messages HTTP/1.1\r\nHost: x\r\n".to_string()
        } else {
            "POST /api/v1/topics/t/messages HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"va"
                .to_string()
        };
        s.write_all(head.as_bytes()).unwrap();
        stalled.push(s);
    }
    // The admin API answers throughout, on its own connections.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let (status, v) = admin_get(&b, "/api/v1/status");
        assert_eq!(status, StatusCode::OK, "{v}");
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(1),
        "admin status took {slowest:?}"
    );
    // The broker holds at most the message port's cap of them.
    let files = open_files(pid);
    eprintln!(
        "200 stalled clients: admin status slowest of 20 {slowest:?}, open files {files} ({files_before} before)"
    );
    assert!(
        files <= files_before + 32 + 8,
        "{files} open files with 200 stalled clients ({files_before} before)"
    );
    // Each stalled client is closed once its time is up, freeing its slot...
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, s) in stalled.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            closed_by_server(s, left.max(Duration::from_millis(1))),
            "client {i} is still open"
        );
    }
    // ...and the port serves again.
    let (status, v) = produce(&b, "t", &json!({"value": "after"}));
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[test]
fn concurrent_header_heavy_produces_and_consumes_stay_within_the_memory_ceiling() {
    let b = BrokerProcess::start("");
    // Messages of 1,000 headers each (under the 1,024 limit), 8 MiB a request.
    let headers: serde_json::Map<String, Value> = (0..1000)
        .map(|i| (format!("h{i:03}"), json!("v")))
        .collect();
    let message = json!({"value": "x", "headers": headers});
    let per_request = (8 * MIB as usize) / message.to_string().len();
    let body = json!({ "messages": vec![message; per_request] }).to_string();
    let data = b.data_url.clone();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (data, body) = (data.clone(), body.clone());
            std::thread::spawn(move || {
                let r = rustmq_etl_tests::http::client()
                    .post(format!("{data}/api/v1/topics/heavy/messages"))
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .unwrap();
                r.status()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), StatusCode::OK);
    }
    let after_produce = peak_rss(b.pid().unwrap());
    let threads: Vec<_> = (0..24)
        .map(|_| {
            let data = data.clone();
            std::thread::spawn(move || {
                let r = rustmq_etl_tests::http::client()
                    .get(format!(
                        "{data}/api/v1/topics/heavy/messages?offset=0&max_messages=1000"
                    ))
                    .send()
                    .unwrap();
                let status = r.status();
                let _ = r.bytes().unwrap();
                status
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), StatusCode::OK);
    }
    let peak = peak_rss(b.pid().unwrap());
    eprintln!(
        "peak after produces {} MiB, after consumes {} MiB",
        after_produce / MIB,
        peak / MIB
    );
    assert!(peak < PEAK_BOUND, "peak RSS {} MiB", peak / MIB);
}
