//! Faults around the broker process: a loop of SIGKILLs at pseudo-random points of a
//! running pipeline (every source message must end up exactly once in the
//! destination or error topic, in order), bad storage at start (a clear error and a
//! non-zero exit, never a panic), and the HTTP edges an attacker reaches first:
//! every admin route behind the token, loopback-only defaults, the upload cap
//! applied before the body is buffered, modules pinned against deletion.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::StatusCode;
use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::guests;
use serde_json::{json, Value};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn json_of(r: reqwest::blocking::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn upload(b: &BrokerProcess, token: Option<&str>, name: &str, version: &str, path: &str) {
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

fn create_pipeline(b: &BrokerProcess, token: Option<&str>, name: &str, module: &str) -> String {
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

fn produce_batch(b: &BrokerProcess, topic: &str, msgs: &[(String, &str)]) {
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
fn keys(b: &BrokerProcess, topic: &str) -> Vec<String> {
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

/// Resident set size of `pid` in bytes, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// xorshift64*: a seeded, dependency-free source of kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Generous bound on the broker's resident memory during the kill loop.
const RSS_BOUND: u64 = 1 << 30;

#[test]
fn sigkill_loop_loses_and_duplicates_no_pipeline_message() {
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe_u64);
    let mut rng = Rng(seed);
    let mut b = BrokerProcess::start("[etl]\nenabled = true\n");
    upload(&b, None, "scripted", "1.0.0", guests::SCRIPTED);
    let id = create_pipeline(&b, None, "crashy", "scripted");
    let started = Instant::now();
    let mut produced = 0usize;
    let kills = 8;
    for round in 0..kills {
        // A chunk of messages, one in five a dead letter, acknowledged before the kill.
        let chunk: Vec<(String, &str)> = (produced..produced + 40)
            .map(|i| (format!("s{i:05}"), if i % 5 == 0 { "dead" } else { "pass" }))
            .collect();
        produced += chunk.len();
        for part in chunk.chunks(10) {
            produce_batch(&b, "crashy-in", part);
        }
        // Kill at a pseudo-random point while the pipeline works through them.
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        let pid = b.pid().unwrap();
        assert!(rss_bytes(pid) < RSS_BOUND, "broker RSS over the bound");
        b.sigkill();
        b.restart();

        // After the restart the pipeline resumes and accounts for every message once.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (out, err) = loop {
            let out = keys(&b, "crashy-out");
            let err = keys(&b, "crashy-err");
            if out.len() + err.len() >= produced || Instant::now() > deadline {
                break (out, err);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let expect_out: Vec<String> = (0..produced)
            .filter(|i| i % 5 != 0)
            .map(|i| format!("s{i:05}"))
            .collect();
        let expect_err: Vec<String> = (0..produced)
            .filter(|i| i % 5 == 0)
            .map(|i| format!("s{i:05}"))
            .collect();
        assert_eq!(
            out, expect_out,
            "destination after kill {round} (seed {seed})"
        );
        assert_eq!(
            err, expect_err,
            "error topic after kill {round} (seed {seed})"
        );
        let (s, status) = json_of(
            client()
                .get(format!("{}/api/v1/etl/pipelines/{id}/status", b.admin_url))
                .send()
                .unwrap(),
        );
        assert_eq!(s, StatusCode::OK);
        assert_eq!(status["status"], "running", "{status}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(240),
        "the kill loop took {:?}",
        started.elapsed()
    );
}

fn assert_clear_failure(status: std::process::ExitStatus, stderr: &str, needle: &str) {
    assert!(!status.success(), "the broker started anyway: {stderr}");
    assert!(
        status.code().is_some(),
        "the broker died of a signal: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
}

#[test]
fn modules_path_that_cannot_be_created_fails_start_clearly() {
    // A regular file where the directory should be: refused even to root, which
    // ignores permission bits.
    let home = tempfile::tempdir().unwrap();
    let blocker = home.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let config = format!(
        "[etl]\nenabled = true\nmodules_path = {:?}\n",
        blocker.join("wasm")
    );
    let (status, stderr) = BrokerProcess::run_to_exit(&config, &[]);
    assert_clear_failure(status, &stderr, "not-a-dir");
}

#[test]
fn data_dir_that_cannot_be_written_fails_start_clearly() {
    let home = tempfile::tempdir().unwrap();
    let blocker = home.path().join("data-file");
    std::fs::write(&blocker, b"x").unwrap();
    let data_dir = blocker.join("data");
    let (status, stderr) = BrokerProcess::run_to_exit(
        "",
        &[("RUSTMQ_STORAGE_DATA_DIR", data_dir.to_str().unwrap())],
    );
    assert_clear_failure(status, &stderr, "data-file");
}

// ---- the HTTP edges ----------------------------------------------------------------

/// Every admin route and method. Must match the routers: the test below checks
/// this list against the `.route(...)` calls in the admin API's source.
const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/etl/modules"),
    ("POST", "/api/v1/etl/modules"),
    ("GET", "/api/v1/etl/modules/{module_id}"),
    ("DELETE", "/api/v1/etl/modules/{module_id}"),
    ("GET", "/api/v1/etl/modules/{module_id}/wasm"),
    ("GET", "/api/v1/etl/pipelines"),
    ("POST", "/api/v1/etl/pipelines"),
    ("GET", "/api/v1/etl/pipelines/{id}"),
    ("PATCH", "/api/v1/etl/pipelines/{id}"),
    ("DELETE", "/api/v1/etl/pipelines/{id}"),
    ("POST", "/api/v1/etl/pipelines/{id}/start"),
    ("POST", "/api/v1/etl/pipelines/{id}/stop"),
    ("GET", "/api/v1/etl/pipelines/{id}/status"),
    ("GET", "/api/v1/etl/pipelines/{id}/metrics"),
    ("GET", "/api/v1/etl/pipelines/{id}/state"),
    ("DELETE", "/api/v1/etl/pipelines/{id}/state"),
    ("GET", "/api/v1/metrics"),
    ("GET", "/metrics"),
];

/// `(method, path)` of every `.route(path, method(..).method(..))` in the admin
/// API's source files.
fn routes_in_source() -> Vec<(String, String)> {
    let api = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src/api");
    let mut found = Vec::new();
    for file in ["admin.rs", "modules.rs", "pipelines.rs", "metrics.rs"] {
        let text = std::fs::read_to_string(api.join(file)).unwrap();
        for call in text.split(".route(").skip(1) {
            let path = call.split('"').nth(1).unwrap().to_string();
            // The handlers run to the closing parenthesis of `.route(`.
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap();
            for method in ["get", "post", "patch", "delete", "put"] {
                let used = call[..end].contains(&format!(" {method}("))
                    || call[..end].contains(&format!("({method}("))
                    || call[..end].contains(&format!(".{method}("));
                if used {
                    found.push((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn admin_route_list_matches_the_routers() {
    let mut listed: Vec<(String, String)> = ADMIN_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    listed.sort();
    assert_eq!(listed, routes_in_source());
}

#[test]
fn every_admin_route_needs_the_token_and_changes_nothing_without_it() {
    let token = "s3cret-token";
    let b =
        BrokerProcess::start_with_env("[etl]\nenabled = true\n", &[("RUSTMQ_ADMIN_TOKEN", token)]);
    upload(&b, Some(token), "scripted", "1.0.0", guests::SCRIPTED);
    let id = create_pipeline(&b, Some(token), "guarded", "scripted");
    let snapshot = |b: &BrokerProcess| {
        let get = |path: &str| {
            let (s, v) = json_of(
                client()
                    .get(format!("{}{path}", b.admin_url))
                    .bearer_auth(token)
                    .send()
                    .unwrap(),
            );
            assert_eq!(s, StatusCode::OK, "{path}: {v}");
            v
        };
        let modules = get("/api/v1/etl/modules");
        let pipeline = get(&format!("/api/v1/etl/pipelines/{id}"));
        (
            modules.to_string(),
            pipeline["status"].clone(),
            pipeline["module_id"].clone(),
        )
    };
    let before = snapshot(&b);
    for (method, path) in ADMIN_ROUTES {
        let path = path
            .replace("{module_id}", "scripted-v1.0.0")
            .replace("{id}", &id);
        let url = format!("{}{path}", b.admin_url);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        for auth in [None, Some("wrong-token"), Some("")] {
            let mut req = client()
                .request(method.clone(), &url)
                .header("X-Module-Name", "evil")
                .header("X-Module-Version", "9.9.9")
                .header("Content-Type", "application/json")
                .body(r#"{"module_version":"^1","enabled":false}"#);
            if let Some(t) = auth {
                req = req.bearer_auth(t);
            }
            let (s, v) = json_of(req.send().unwrap());
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{method} {path} ({auth:?}): {v}"
            );
            assert_eq!(v["error"]["code"], "unauthorized", "{method} {path}");
        }
    }
    assert_eq!(
        snapshot(&b),
        before,
        "an unauthorised request changed state"
    );
}

#[test]
fn listen_addresses_default_to_loopback() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("empty.toml");
    std::fs::write(&path, "").unwrap();
    let config = rustmq_etl::config::BrokerConfig::load(&path).unwrap();
    assert!(config.server.admin_addr.ip().is_loopback());
    assert!(config.server.messages_addr.ip().is_loopback());
    assert_eq!(config.admin.token, None);
}

/// Sends `head` (request line and headers) and `body`, then reads the response's
/// status line without finishing the request.
fn raw_status(addr: &str, head: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer and close before reading all of it.
    let _ = stream.write_all(body);
    let mut response = [0u8; 512];
    let n = stream.read(&mut response).unwrap();
    String::from_utf8_lossy(&response[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn uploads_are_capped_before_the_body_is_buffered() {
    let b = BrokerProcess::start("[etl]\nenabled = true\nmax_module_size_bytes = 65536\n");
    let addr = b.admin_url.trim_start_matches("http://").to_string();
    // A declared gigabyte is refused from the headers alone: no body is ever sent.
    let status = raw_status(
        &addr,
        "POST /api/v1/etl/modules HTTP/1.1\r\nHost: x\r\nX-Module-Name: big\r\nX-Module-Version: 1.0.0\r\nContent-Length: 1073741824\r\n\r\n",
        b"",
    );
    assert!(status.contains(" 413 "), "{status}");
    // A chunked body is cut once it passes the cap, while the client is still
    // sending (the request is never finished).
    let chunk = vec![b'a'; 100_000];
    let mut body = format!("{:x}\r\n", chunk.len()).into_bytes();
    body.extend_from_slice(&chunk);
    body.extend_from_slice(b"\r\n");
    let status = raw_status(
        &addr,
        "POST /api/v1/etl/modules HTTP/1.1\r\nHost: x\r\nX-Module-Name: big\r\nX-Module-Version: 1.0.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        &body,
    );
    assert!(status.contains(" 413 "), "{status}");
    // Nothing was stored.
    let (s, v) = json_of(
        client()
            .get(format!("{}/api/v1/etl/modules", b.admin_url))
            .send()
            .unwrap(),
    );
    assert_eq!(s, StatusCode::OK);
    assert!(!v.to_string().contains("big"), "{v}");
}

#[test]
fn a_module_in_use_cannot_be_deleted_and_can_be_upgraded() {
    let b = BrokerProcess::start("[etl]\nenabled = true\n");
    upload(&b, None, "scripted", "1.0.0", guests::SCRIPTED);
    let id = create_pipeline(&b, None, "pinned", "scripted");
    let delete = |module: &str| {
        json_of(
            client()
                .delete(format!("{}/api/v1/etl/modules/{module}", b.admin_url))
                .send()
                .unwrap(),
        )
    };
    let (s, v) = delete("scripted-v1.0.0");
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains(&id), "{v}");
    produce_batch(&b, "pinned-in", &[("a".into(), "pass")]);

    // Upgrade while it runs, then the old version is free to go.
    upload(&b, None, "scripted", "1.1.0", guests::SCRIPTED);
    let (s, v) = json_of(
        client()
            .patch(format!("{}/api/v1/etl/pipelines/{id}", b.admin_url))
            .json(&json!({"module_version": "1.1.0"}))
            .send()
            .unwrap(),
    );
    assert!(s.is_success(), "{v}");
    produce_batch(&b, "pinned-in", &[("b".into(), "pass")]);
    let (s, v) = delete("scripted-v1.0.0");
    assert!(s.is_success(), "{v}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while keys(&b, "pinned-out").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the pipeline stalled after the upgrade"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(keys(&b, "pinned-out"), ["a", "b"]);
    let (s, v) = delete("scripted-v1.1.0");
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
}
