//! The HTTP edges an attacker reaches first: every admin route behind the token,
//! loopback-only defaults, the upload cap applied before the body is buffered,
//! modules pinned against deletion.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::guests;
use rustmq_etl_tests::http::ADMIN_ROUTES;
use serde_json::json;

use super::*;

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
